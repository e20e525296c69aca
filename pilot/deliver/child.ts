/**
 * One child process with the caller's stdin, stdout and stderr: started from
 * an argv (no shell), signalled by its ID, and stopped with SIGTERM, a grace
 * period, then SIGKILL. Its exit is reported as a shell would: its own
 * status, or 128 plus the number of the signal that ended it.
 */
import { spawn } from 'node:child_process';
import { exitStatusOfSignal, type SignalName, sendSignal } from '../../shared/runtime/signals.ts';

export interface ChildSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Default: the caller's stdin, stdout and stderr. */
  readonly stdio?: 'inherit' | 'no-stdin';
}

export interface ChildExit {
  /** The status to pass on: the child's own, or 128 + the signal's number. */
  readonly status: number;
  /** The signal that ended it, if one did. */
  readonly signal: string | null;
}

export interface RunningChild {
  readonly pid: number;
  /** Settles once the child has ended (never rejects). */
  readonly exited: Promise<ChildExit>;
  /** Sends a signal unless the child has ended. */
  signal(name: SignalName): void;
  /** SIGTERM, then SIGKILL when it is still running after `graceMs`. */
  stop(graceMs: number): Promise<ChildExit>;
}

/** The child could not be started; `status` is what a shell would exit with. */
export class StartFailedError extends Error {
  readonly status: number;

  constructor(command: string, code: string | undefined) {
    const reason =
      code === 'ENOENT'
        ? 'command not found'
        : code === 'EACCES'
          ? 'permission denied'
          : (code ?? 'failed');
    super(`cannot start "${command}": ${reason}`);
    this.name = 'StartFailedError';
    // 127 and 126 are what a shell exits with for these two.
    this.status = code === 'ENOENT' ? 127 : 126;
  }
}

/** Starts the child; rejects with StartFailedError when it cannot be started. */
export function startChild(spec: ChildSpec): Promise<RunningChild> {
  const child = spawn(spec.command, [...spec.args], {
    env: { ...spec.env },
    stdio: spec.stdio === 'no-stdin' ? ['ignore', 'inherit', 'inherit'] : 'inherit',
  });
  let ended = false;
  const exited = new Promise<ChildExit>((resolve) => {
    child.once('exit', (code, signal) => {
      ended = true;
      resolve(
        signal === null
          ? { status: code ?? 1, signal: null }
          : { status: exitStatusOfSignal(signal), signal },
      );
    });
  });
  const signalChild = (name: SignalName) => {
    if (!ended && child.pid !== undefined) sendSignal(child.pid, name);
  };
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      // Only a failed start: a running child's errors (a failed kill) are not
      // emitted here, since signals go through sendSignal.
      reject(new StartFailedError(spec.command, (err as { code?: string }).code));
    });
    child.once('spawn', () => {
      resolve({
        pid: child.pid as number,
        exited,
        signal: signalChild,
        async stop(graceMs) {
          signalChild('SIGTERM');
          let timer: ReturnType<typeof setTimeout> | undefined;
          const killed = new Promise<void>((resolveKill) => {
            timer = setTimeout(() => {
              signalChild('SIGKILL');
              resolveKill();
            }, graceMs);
          });
          await Promise.race([exited, killed]);
          clearTimeout(timer);
          return exited;
        },
      });
    });
  });
}
