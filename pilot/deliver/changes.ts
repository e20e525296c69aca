/**
 * How `spike run --watch` and `spike agent` learn that a secret they use
 * has a new version: the one seam between them and the way it is found
 * out. Each path is watched with the SDK's long-poll read
 * (`getSecretNewerThan`, one at a time, as its `watch()` does; ADR 0024): Nexus answers as soon as the path has another version,
 * through this Nexus or, on PostgreSQL, any other, so a change arrives
 * within a second or two and an idle watch costs one request per wait (30
 * s), not one per second. A failure (Nexus unreachable or sealed, a
 * refusal) is reported through `onState` and retried with back-off, from
 * FIRST_BACKOFF_MS up to MAX_BACKOFF_MS.
 */

import type { SpikeClient } from '../../sdk/client.ts';
import { isBrokerError, NotFoundError } from '../../shared/errors/errors.ts';
import { delay } from '../../shared/runtime/delay.ts';

/** The first wait after a failure; it doubles up to MAX_BACKOFF_MS. */
export const FIRST_BACKOFF_MS = 1_000;
/** The longest wait between two tries while Nexus cannot answer. */
export const MAX_BACKOFF_MS = 5_000;

/** What a watcher needs of a client: the SDK's one long-poll read. */
export type WatchingClient = Pick<SpikeClient, 'getSecretNewerThan'>;

/** Path → the version of it in use. */
export type Versions = ReadonlyMap<string, number>;

export interface ChangeWatcher {
  /**
   * Resolves, once at least one path's current version is other than the
   * one in `known`, with that path and its current version. Failures are
   * retried (see `onState`); it rejects only when `signal` aborts, with its
   * reason.
   */
  nextChange(known: Versions, signal: AbortSignal): Promise<Versions>;
}

/** Whether the last try worked; reported only when that changes. */
export type WatchState =
  | { readonly ok: true }
  | { readonly ok: false; readonly path: string; readonly error: unknown };

export interface WatcherOptions {
  readonly firstBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long each long-poll waits before it is sent again; the SDK's default (30 s) otherwise. */
  readonly waitMs?: number;
  readonly onState?: (state: WatchState) => void;
}

/** The change watcher: a loop of the SDK's long-poll reads per path (as `watch()` runs, with our state reports). */
export function createChangeWatcher(
  client: WatchingClient,
  options: WatcherOptions = {},
): ChangeWatcher {
  const firstBackoffMs = options.firstBackoffMs ?? FIRST_BACKOFF_MS;
  const maxBackoffMs = options.maxBackoffMs ?? MAX_BACKOFF_MS;
  let healthy = true;
  const report = (state: WatchState) => {
    if (state.ok === healthy) return;
    healthy = state.ok;
    options.onState?.(state);
  };

  /** Watches one path until it has a version other than `known`, or `stop` aborts (then undefined). */
  async function changeOf(path: string, known: number, stop: AbortSignal) {
    // What the next long-poll waits to be other than: `known`, or 0 (nothing)
    // once the secret is gone, so that its next version ends the wait.
    let have = known;
    let backoffMs = firstBackoffMs;
    while (!stop.aborted) {
      try {
        const next = await client.getSecretNewerThan(path, have, {
          signal: stop,
          ...(options.waitMs === undefined ? {} : { waitMs: options.waitMs }),
        });
        report({ ok: true });
        backoffMs = firstBackoffMs;
        if (next !== undefined && next.version !== known) return next.version;
      } catch (error) {
        if (stop.aborted) break;
        if (error instanceof NotFoundError && have !== 0) {
          have = 0;
          continue;
        }
        report({ ok: false, path, error });
        try {
          await delay(backoffMs, { signal: stop });
        } catch {
          break;
        }
        backoffMs = Math.min(maxBackoffMs, backoffMs * 2);
      }
    }
    return undefined;
  }

  return {
    async nextChange(known, signal) {
      signal.throwIfAborted();
      const done = new AbortController();
      const stop = AbortSignal.any([signal, done.signal]);
      const aborted = new Promise<never>((_resolve, reject) => {
        stop.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
      aborted.catch(() => {});
      try {
        return await Promise.race([
          aborted,
          ...[...known].map(async ([path, version]) => {
            const changed = await changeOf(path, version, stop);
            // A watch that ended without a change ends only with `stop`.
            return changed === undefined ? aborted : new Map([[path, changed]]);
          }),
        ]);
      } finally {
        done.abort();
      }
    },
  };
}

/** One line about a failure, with its code when it has one; never a value (errors carry none). */
export function describeError(err: unknown): string {
  if (isBrokerError(err)) return `${err.message} [${err.code}]`;
  return err instanceof Error ? err.message : String(err);
}
