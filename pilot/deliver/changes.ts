/**
 * How `spike run --watch` and `spike agent` learn that a secret they use
 * has a new version: the one seam between them and the way it is found
 * out. The paths are watched together, with the SDK's long-poll over
 * several paths (`waitForVersions`, ADR 0033; in groups of
 * MAX_WATCH_PATHS): Nexus answers as soon as one of them has another
 * version, through this Nexus or, on PostgreSQL, any other, so a change
 * arrives within a second or two, and an idle watch costs one connection
 * and one request every 30 s (the wait), however many paths it names. A
 * failure (Nexus unreachable or sealed, a refusal) is reported through
 * `onState` and retried with back-off, from FIRST_BACKOFF_MS up to
 * MAX_BACKOFF_MS. A path the caller may not read refuses its whole group,
 * so a refused group is watched in halves until that path is alone.
 */

import type { SpikeClient } from '../../sdk/client.ts';
import { MAX_WATCH_PATHS } from '../../shared/api/secrets.ts';
import { AccessDeniedError, isBrokerError } from '../../shared/errors/errors.ts';
import { delay } from '../../shared/runtime/delay.ts';

/** The first wait after a failure; it doubles up to MAX_BACKOFF_MS. */
export const FIRST_BACKOFF_MS = 1_000;
/** The longest wait between two tries while Nexus cannot answer. */
export const MAX_BACKOFF_MS = 5_000;

/** What a watcher needs of a client: the SDK's long-poll over several paths. */
export type WatchingClient = Pick<SpikeClient, 'waitForVersions'>;

/** Path → the version of it in use. */
export type Versions = ReadonlyMap<string, number>;

export interface ChangeWatcher {
  /**
   * Resolves, once at least one path's current version is other than the
   * one in `known` (and not none: a deleted secret is waited out until its
   * next version), with those paths and their current versions. Failures
   * are retried (see `onState`); it rejects only when `signal` aborts, with
   * its reason.
   */
  nextChange(known: Versions, signal: AbortSignal): Promise<Versions>;
}

/** Whether the last try worked; reported only when that changes. */
export type WatchState =
  | { readonly ok: true }
  | { readonly ok: false; readonly paths: readonly string[]; readonly error: unknown };

export interface WatcherOptions {
  readonly firstBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long each long-poll waits before it is sent again; the SDK's default (30 s) otherwise. */
  readonly waitMs?: number;
  readonly onState?: (state: WatchState) => void;
}

/** The change watcher: a loop of long-polls per group of paths, with our state reports. */
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

  /** Watches one group of paths until one has a version other than `known`, or `stop` aborts (then undefined). */
  async function changeOf(known: Versions, stop: AbortSignal): Promise<Versions | undefined> {
    // What the next long-poll waits to be other than: `known`, or 0
    // (nothing) for a path whose secret is gone, so that its next version
    // ends the wait.
    const have = new Map(known);
    let backoffMs = firstBackoffMs;
    while (!stop.aborted) {
      try {
        const answer = await client.waitForVersions(have, {
          signal: stop,
          ...(options.waitMs === undefined ? {} : { waitMs: options.waitMs }),
        });
        report({ ok: true });
        backoffMs = firstBackoffMs;
        const changed = new Map<string, number>();
        for (const [path, version] of answer ?? []) {
          // Only paths we asked about count; a gone secret is no change.
          if (!have.has(path)) continue;
          have.set(path, version);
          if (version !== 0 && version !== known.get(path)) changed.set(path, version);
        }
        if (changed.size > 0) return changed;
      } catch (error) {
        if (stop.aborted) break;
        if (error instanceof AccessDeniedError && known.size > 1) {
          // One path refused refuses the whole long-poll. Halves are watched
          // apart until the refused path is alone: it is reported by name
          // and retried, and the others stay watched meanwhile.
          const halves = groupsOf(known, Math.ceil(known.size / 2));
          return await Promise.race(halves.map((half) => changeOf(half, stop)));
        }
        report({ ok: false, paths: [...known.keys()], error });
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
          ...groupsOf(known, MAX_WATCH_PATHS).map(async (group) => {
            const changed = await changeOf(group, stop);
            // A watch that ended without a change ends only with `stop`.
            return changed === undefined ? aborted : changed;
          }),
        ]);
      } finally {
        done.abort();
      }
    },
  };
}

/** `known` cut into groups of at most `size` paths, in order. */
function groupsOf(known: Versions, size: number): Versions[] {
  const entries = [...known];
  const groups: Versions[] = [];
  for (let i = 0; i < entries.length; i += size) {
    groups.push(new Map(entries.slice(i, i + size)));
  }
  return groups;
}

/** One line about a failure, with its code when it has one; never a value (errors carry none). */
export function describeError(err: unknown): string {
  if (isBrokerError(err)) return `${err.message} [${err.code}]`;
  return err instanceof Error ? err.message : String(err);
}
