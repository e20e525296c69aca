/**
 * One program of the local broker as a child process on the launcher's own
 * runtime: `node bin/spike-<program>.js`, or `deno run` with exactly
 * the permissions of the program's deno.json task. Its stdout and stderr go
 * to `<logs dir>/<name>.log`; the last few kilobytes are also kept in memory
 * so that a failure report can show them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Env } from '../shared/config/env.ts';
import { nodeFlagsOfBin } from '../shared/runtime/bin_flags.ts';

export type Runtime = 'node' | 'deno';
export type Program = 'agent' | 'keeper' | 'nexus';

/** The deno.json task of each program: children run with exactly its permissions. */
const DENO_TASKS: Record<Program, string> = { agent: 'agent', keeper: 'keeper', nexus: 'nexus' };
const NODE_BINS: Record<Program, string> = {
  agent: 'spike-agent.js',
  keeper: 'spike-keeper.js',
  nexus: 'spike-nexus.js',
};
/** How much recent output is kept for failure reports. */
const TAIL_CHARS = 4_000;
/** A child that ignores SIGTERM this long is killed. */
const STOP_GRACE_MS = 10_000;

export interface ChildSpec {
  /** Also the log file's name: `agent`, `keeper-1`, `nexus`… */
  readonly name: string;
  readonly program: Program;
  /** The child's whole environment. */
  readonly env: Env;
}

export interface ChildRuntime {
  readonly runtime: Runtime;
  /** The node or deno binary the launcher itself runs on. */
  readonly execPath: string;
  /** The package root: holds deno.json and the programs' folders. */
  readonly rootDir: string;
  readonly logsDir: string;
}

export class Child {
  readonly name: string;
  readonly logFile: string;
  readonly #child: ChildProcess;
  readonly #log: WriteStream;
  readonly #exited: Promise<number | string>;
  #tail = '';
  #status: number | string | undefined;
  readonly #listeners = new Set<() => void>();

  constructor(spec: ChildSpec, runtime: ChildRuntime) {
    this.name = spec.name;
    this.logFile = join(runtime.logsDir, `${spec.name}.log`);
    this.#log = createWriteStream(this.logFile, { flags: 'a', mode: 0o600 });
    const [command, args] = commandFor(spec.program, runtime);
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(spec.env)) {
      if (value !== undefined) env[key] = value;
    }
    this.#child = spawn(command, args, {
      cwd: runtime.rootDir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const onOutput = (chunk: string) => {
      this.#log.write(chunk);
      this.#tail = (this.#tail + chunk).slice(-TAIL_CHARS);
      this.#notify();
    };
    this.#child.stdout?.setEncoding('utf8').on('data', onOutput);
    this.#child.stderr?.setEncoding('utf8').on('data', onOutput);
    this.#exited = new Promise((resolve) => {
      const finish = (status: number | string) => {
        if (this.#status !== undefined) return;
        this.#status = status;
        this.#log.end();
        resolve(status);
        this.#notify();
      };
      this.#child.once('exit', (code, signal) => finish(code ?? signal ?? 'unknown'));
      // A binary that cannot be started never emits 'exit'.
      this.#child.once('error', (err) => {
        onOutput(`spike-local: cannot start ${spec.name}: ${err.message}\n`);
        finish('not started');
      });
    });
  }

  /** The exit status (or signal name) once the child ended, else undefined. */
  get status(): number | string | undefined {
    return this.#status;
  }

  get exited(): Promise<number | string> {
    return this.#exited;
  }

  /** The last few kilobytes the child wrote. */
  tail(): string {
    return this.#tail;
  }

  /** Resolves when a written line matches; rejects if the child ends, on timeout or abort. */
  waitForOutput(pattern: RegExp, options: { timeoutMs: number; signal: AbortSignal }) {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pattern.test(this.#tail)) {
          done();
          resolve();
        } else if (this.#status !== undefined) {
          done();
          reject(this.failure(`ended (status ${this.#status}) while starting`));
        } else if (options.signal.aborted) {
          done();
          reject(options.signal.reason);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(this.failure(`did not start within ${options.timeoutMs}ms`));
      }, options.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        options.signal.removeEventListener('abort', check);
      };
      this.#listeners.add(check);
      options.signal.addEventListener('abort', check);
      check();
    });
  }

  /** An Error that names the child, what happened, its log file and its last lines. */
  failure(what: string): Error {
    const tail = this.#tail.trimEnd().split('\n').slice(-15).join('\n');
    return new Error(
      `${this.name} ${what}; its log is ${this.logFile}${tail === '' ? '' : `. Last lines:\n${tail}`}`,
    );
  }

  /** SIGTERM, then SIGKILL if it has not ended within the grace period. */
  async stop(): Promise<number | string> {
    if (this.#status === undefined) {
      this.#child.kill('SIGTERM');
      const killer = setTimeout(() => this.#child.kill('SIGKILL'), STOP_GRACE_MS);
      await this.#exited;
      clearTimeout(killer);
    }
    return this.#exited;
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }
}

function commandFor(program: Program, runtime: ChildRuntime): [string, string[]] {
  const main = join(runtime.rootDir, program, 'main.ts');
  if (runtime.runtime === 'node') {
    // The program's bin entry: compiled dist/ when current, else tsx
    // (bin/_start.js), with the Node flags its shebang line gives it.
    const bin = join(runtime.rootDir, 'bin', NODE_BINS[program]);
    return [runtime.execPath, [...nodeFlagsOfBin(bin), bin]];
  }
  // The documented task's flags, so a task missing a permission fails here
  // rather than for someone running the program alone.
  const config = JSON.parse(readFileSync(join(runtime.rootDir, 'deno.json'), 'utf8')) as {
    tasks?: Record<string, string>;
  };
  const task = config.tasks?.[DENO_TASKS[program]];
  const words = task?.split(/\s+/) ?? [];
  if (words[0] !== 'deno' || words[1] !== 'run' || words.at(-1) !== `${program}/main.ts`) {
    throw new Error(
      `deno.json task "${DENO_TASKS[program]}" must be "deno run <flags> ${program}/main.ts"`,
    );
  }
  return [runtime.execPath, ['run', '--quiet', ...words.slice(2, -1), main]];
}
