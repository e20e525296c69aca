/**
 * Signals for programs that supervise a child process (`spike run`) or run
 * until stopped (`spike agent`): catching signals for a while, and sending
 * one to a process by its ID. Sending goes through `process.kill` rather
 * than `ChildProcess.kill`: on Deno the latter makes the child's exit event
 * report the signal instead of the status the child chose to exit with.
 */
import { constants } from 'node:os';
import process from 'node:process';

/**
 * The signals a supervisor passes on to its child. Job control (SIGTSTP,
 * SIGCONT) is left to the terminal, and SIGKILL and SIGSTOP cannot be caught.
 */
export const FORWARDED_SIGNALS = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGWINCH',
] as const satisfies readonly NodeJS.Signals[];

export type SignalName = NodeJS.Signals;

/**
 * Calls `handler` with the signal's name whenever one of `names` arrives,
 * instead of the signal's default action, until the returned function is
 * called.
 */
export function onSignals(
  names: readonly SignalName[],
  handler: (name: SignalName) => void,
): () => void {
  const listeners = names.map((name) => {
    const listener = () => handler(name);
    process.on(name, listener);
    return [name, listener] as const;
  });
  return () => {
    for (const [name, listener] of listeners) process.off(name, listener);
  };
}

/**
 * Sends a signal to a process; false when no such process exists any more
 * (it ended, and its ID may be reused). On Deno this needs `--allow-run`.
 */
export function sendSignal(pid: number, name: SignalName): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new RangeError(`sendSignal() takes a positive process ID, got ${pid}`);
  }
  try {
    process.kill(pid, name);
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ESRCH') return false;
    throw err;
  }
}

/** Whether a string names a signal of this system (`SIGHUP`, `SIGUSR1`…). */
export function isSignalName(name: string): name is SignalName {
  return /^SIG[A-Z0-9]+$/.test(name) && Object.hasOwn(constants.signals, name);
}

/**
 * The exit status a shell reports for a process killed by a signal: 128 plus
 * the signal's number (SIGTERM: 143).
 */
export function exitStatusOfSignal(name: string): number {
  const number = (constants.signals as Record<string, number>)[name];
  return 128 + (number ?? 0);
}
