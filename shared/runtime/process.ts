/**
 * The process edge for every program: runs a main function, turns a
 * ConfigError into exit status 2 with every problem listed, any other start-up
 * failure into status 1, and stops cleanly on SIGINT/SIGTERM.
 */
import process from 'node:process';
import { ConfigError, isBrokerError } from '../errors/errors.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_CONFIG = 2;

/** A stop that takes longer than this is abandoned with exit status 1. */
const STOP_TIMEOUT_MS = 10_000;

/** What a started program gives back: how to stop it. */
export type Stop = () => Promise<void>;

export function environment(): Readonly<Record<string, string | undefined>> {
  return process.env;
}

export function writeStderr(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function writeStdout(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Exits at once: what was written to a pipe and not yet taken may be lost. */
export function exit(code: number): never {
  process.exit(code);
}

/**
 * Exits once everything written to stdout and stderr has been handed to the
 * system. On Node, writes to a pipe are asynchronous: `process.exit` right
 * after them drops what the reader has not taken yet (all but the first
 * 64 KiB of a large `spike secret get | …`). A write's callback runs after
 * every earlier write, so an empty write on each stream marks the end.
 */
export function exitWhenFlushed(code: number): Promise<never> {
  process.exitCode = code;
  return new Promise<never>(() => {
    let pending = 2;
    const flushed = () => {
      pending -= 1;
      if (pending === 0) {
        process.exit(code);
      }
    };
    // A failed write (the reader went away) still calls back: exit anyway.
    process.stdout.write('', flushed);
    process.stderr.write('', flushed);
  });
}

/**
 * Starts a long-running program. `start` returns its stop function; a signal
 * calls it once and exits 0 (a second signal exits at once).
 *
 * The handlers are installed before `start` runs: a program announces that it
 * is ready from inside `start`, and a signal sent right after that line must
 * still stop it cleanly, not kill it by the signal's default action. A signal
 * that arrives while `start` runs stops the program as soon as it has started.
 */
export async function runService(name: string, start: () => Promise<Stop>): Promise<void> {
  let stop: Stop | undefined;
  let stopping = false;
  const runStop = (stopFn: Stop) => {
    stopFn().then(
      () => process.exit(EXIT_OK),
      (err: unknown) => {
        writeStderr(
          `${name}: error while stopping: ${err instanceof Error ? err.message : String(err)}`,
        );
        process.exit(EXIT_FAILURE);
      },
    );
  };
  const onSignal = () => {
    if (stopping) {
      process.exit(EXIT_FAILURE);
    }
    stopping = true;
    setTimeout(() => {
      writeStderr(`${name}: did not stop within ${STOP_TIMEOUT_MS}ms`);
      process.exit(EXIT_FAILURE);
    }, STOP_TIMEOUT_MS).unref();
    if (stop !== undefined) runStop(stop);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    stop = await start();
  } catch (err) {
    reportStartFailure(name, err);
    return;
  }
  if (stopping) runStop(stop);
}

function reportStartFailure(name: string, err: unknown): void {
  if (err instanceof ConfigError) {
    writeStderr(`${name}: ${err.message}`);
    process.exit(EXIT_CONFIG);
  }
  const message = err instanceof Error ? err.message : String(err);
  const code = isBrokerError(err) ? ` [${err.code}]` : '';
  writeStderr(`${name}: could not start${code}: ${message}`);
  process.exit(EXIT_FAILURE);
}
