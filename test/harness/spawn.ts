/**
 * Starts the broker's programs as real child processes for integration tests,
 * on the runtime the test itself runs on (Node through tsx, or Deno), waits
 * for their log lines with timeouts, and keeps their output for failure
 * reports. `stopAll()` kills whatever is still running.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeFlagsOfBin } from '../../shared/runtime/bin_flags.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** A program is its folder; `launcher` is spike-local, the one-command local broker. */
export type Program = 'agent' | 'nexus' | 'keeper' | 'pilot' | 'launcher';
export type Runtime = 'node' | 'deno';

/** The runtime of the current test process: children run on the same one. */
export function currentRuntime(): Runtime {
  return 'Deno' in globalThis ? 'deno' : 'node';
}

export interface SpawnOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly args?: readonly string[];
  readonly runtime?: Runtime;
  /** Flags for Node itself, before the program (e.g. `--cpu-prof`); ignored on Deno. */
  readonly nodeFlags?: readonly string[];
  /** What Deno adds to the program's task; ignored on Node. */
  readonly denoFlags?: DenoFlags;
  /**
   * On Node, start the program as users do, through its bin/ entry (compiled
   * dist/ when current). Tests run the sources; the benchmark sets this.
   */
  readonly viaBin?: boolean;
  /** On Node, start the program's bundle in this folder (a build's output, `scripts/build.sh <dir>`). */
  readonly bundles?: string;
}

/**
 * Additions to a Deno task's command line: V8 flags (joined to the task's own
 * `--v8-flags`, which Deno reads once) and modules run before the program.
 */
export interface DenoFlags {
  readonly v8?: readonly string[];
  readonly preload?: readonly string[];
}

/** The bin/ entry of each program. */
const NODE_BINS: Record<Program, string> = {
  agent: 'spike-agent.js',
  nexus: 'spike-nexus.js',
  keeper: 'spike-keeper.js',
  pilot: 'spike.js',
  launcher: 'spike-local.js',
};

export interface RunningProgram {
  readonly program: Program;
  readonly child: ChildProcess;
  /** Everything written so far, stdout and stderr separately. */
  stdout(): string;
  stderr(): string;
  /** Both streams interleaved as they arrived. */
  output(): string;
  /** Waits until a line of stdout or stderr matches; returns the match. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit status (or the signal's name) once the process ends. */
  exited(timeoutMs?: number): Promise<number | string>;
  stop(): Promise<void>;
  /** Freezes the process (SIGSTOP): it keeps its memory but answers nothing. */
  pause(): void;
  /** Lets a paused process run again (SIGCONT). */
  resume(): void;
  /** Sends a signal through kill(1): Deno's child.kill() reports the signal, not the exit status. */
  signal(name: 'SIGTERM' | 'SIGINT' | 'SIGUSR2'): void;
}

const running = new Set<RunningProgram>();

/** The deno.json task of each program: children run with exactly its permissions. */
const DENO_TASKS: Record<Program, string> = {
  agent: 'agent',
  nexus: 'nexus',
  keeper: 'keeper',
  pilot: 'spike',
  launcher: 'local',
};

export function command(
  program: Program,
  runtime: Runtime,
  nodeFlags: readonly string[] = [],
  viaBin = false,
  bundles?: string,
  denoFlags: DenoFlags = {},
): [string, string[]] {
  if (runtime === 'deno') {
    // Run the documented task's command line, so a task missing a permission
    // fails here rather than for a user.
    const config = JSON.parse(readFileSync(join(ROOT, 'deno.json'), 'utf8')) as {
      tasks: Record<string, string>;
    };
    const task = config.tasks[DENO_TASKS[program]];
    if (task === undefined) {
      throw new Error(`deno.json has no task "${DENO_TASKS[program]}"`);
    }
    const [deno, run, ...rest] = task.split(/\s+/);
    if (deno !== 'deno' || run !== 'run') {
      throw new Error(`Unexpected deno.json task for ${program}: ${task}`);
    }
    return [
      join(ROOT, '.tools/node_modules/.bin/deno'),
      ['run', '--quiet', '--no-check', ...withDenoFlags(rest, denoFlags)],
    ];
  }
  // The flags the program's bin gives itself on its shebang line, however it
  // is started here: as users start it from its bin, where the kernel reads them.
  const flags = [...nodeFlagsOfBin(join(ROOT, 'bin', NODE_BINS[program])), ...nodeFlags];
  if (bundles !== undefined) {
    return [process.execPath, [...flags, join(bundles, NODE_BINS[program])]];
  }
  if (viaBin) return [process.execPath, [...flags, join(ROOT, 'bin', NODE_BINS[program])]];
  return [process.execPath, [...flags, '--import', 'tsx', join(ROOT, program, 'main.ts')]];
}

/** A task's arguments with `extra` added before its script (the last argument). */
export function withDenoFlags(args: readonly string[], extra: DenoFlags): string[] {
  const v8 = extra.v8 ?? [];
  const own = args.find((arg) => arg.startsWith('--v8-flags='));
  const merged = [...(own === undefined ? [] : own.slice('--v8-flags='.length).split(',')), ...v8];
  const rest = args.filter((arg) => arg !== own);
  return [
    ...rest.slice(0, -1),
    ...(merged.length === 0 ? [] : [`--v8-flags=${merged.join(',')}`]),
    ...(extra.preload ?? []).map((file) => `--preload=${file}`),
    ...rest.slice(-1),
  ];
}

export function startProgram(program: Program, options: SpawnOptions = {}): RunningProgram {
  const [cmd, baseArgs] = command(
    program,
    options.runtime ?? currentRuntime(),
    options.nodeFlags,
    options.viaBin,
    options.bundles,
    options.denoFlags,
  );
  const child = spawn(cmd, [...baseArgs, ...(options.args ?? [])], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      NO_COLOR: '1',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let all = '';
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const waiter of waiters) waiter();
  };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    all += chunk;
    notify();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
    all += chunk;
    notify();
  });
  const exit = new Promise<number | string>((resolveExit) => {
    child.on('exit', (code, signal) => {
      running.delete(handle);
      resolveExit(code ?? signal ?? 'unknown');
      notify();
    });
  });
  const handle: RunningProgram = {
    program,
    child,
    stdout: () => out,
    stderr: () => err,
    output: () => all,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolveWait, reject) => {
        const check = () => {
          const match = (out + err).match(pattern);
          if (match) {
            cleanup();
            resolveWait(match);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            reject(new Error(`${program} exited before printing ${pattern}\n${describe(handle)}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(`Timed out waiting for ${pattern} from ${program}\n${describe(handle)}`),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    exited(timeoutMs = 30_000) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${program} did not exit in time\n${describe(handle)}`)),
          timeoutMs,
        );
      });
      return Promise.race([exit, timeout]).finally(() => clearTimeout(timer));
    },
    // Through kill(1): Deno's child_process cannot send SIGCONT.
    pause() {
      execFileSync('kill', ['-STOP', String(child.pid)]);
    },
    resume() {
      execFileSync('kill', ['-CONT', String(child.pid)]);
    },
    signal(name) {
      execFileSync('kill', [`-${name.slice(3)}`, String(child.pid)]);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        // A paused process must run again to handle SIGTERM.
        execFileSync('kill', ['-CONT', String(child.pid)]);
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exit;
        clearTimeout(killer);
      }
    },
  };
  running.add(handle);
  return handle;
}

/** Stops every program this harness started and that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((program) => program.stop()));
}

/** Output of a program, for assertion messages. */
export function describe(program: RunningProgram): string {
  return `--- ${program.program} stdout ---\n${program.stdout()}\n--- ${program.program} stderr ---\n${program.stderr()}`;
}

/** Runs a program to completion (for the CLI) and returns its status and output. */
export async function runProgram(
  program: Program,
  options: SpawnOptions & { timeoutMs?: number } = {},
): Promise<{ status: number | string; stdout: string; stderr: string }> {
  const handle = startProgram(program, options);
  const status = await handle.exited(options.timeoutMs ?? 30_000);
  return { status, stdout: handle.stdout(), stderr: handle.stderr() };
}

/** A TCP port that was free a moment ago (for programs that must keep their port across restarts). */
/**
 * `count` distinct free ports: each is held until all are picked, so the
 * kernel cannot hand the same one out twice (as picking them one at a time
 * can: a port closed a moment ago may come back at once).
 */
export async function freePorts(count: number): Promise<number[]> {
  const { createServer } = await import('node:net');
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolvePort, reject) => {
            server.once('error', reject);
            server.listen(0, '127.0.0.1', () => {
              const address = server.address();
              resolvePort(typeof address === 'object' && address !== null ? address.port : 0);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(
      servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
  }
}

export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}
