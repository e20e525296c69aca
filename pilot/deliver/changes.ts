/**
 * How `spike run --watch` and `spike agent` learn that a secret they use
 * has a new version: the one seam between them and the way it is found
 * out. Today that is polling each path's metadata (which needs `read`, as
 * reading the secret does, and carries no value) every POLL_INTERVAL_MS,
 * backing off up to MAX_BACKOFF_MS while Nexus cannot answer. Once the SDK
 * has a `watch()` over Nexus's long poll, only this file changes.
 */
import { isBrokerError } from '../../shared/errors/errors.ts';
import { delay } from '../../shared/runtime/delay.ts';
import type { DeliveryClient } from './fetch.ts';

/** How often each path's current version is asked for while Nexus answers. */
export const POLL_INTERVAL_MS = 1_000;
/** The longest wait between two checks while Nexus cannot answer. */
export const MAX_BACKOFF_MS = 5_000;

/** Path → the version of it in use. */
export type Versions = ReadonlyMap<string, number>;

export interface ChangeWatcher {
  /**
   * Resolves, once at least one path's current version is other than the
   * one in `known`, with those paths and their current versions. Failures
   * to ask are retried (see `onState`); it rejects only when `signal`
   * aborts, with its reason.
   */
  nextChange(known: Versions, signal: AbortSignal): Promise<Versions>;
}

/** Whether the last check worked; reported only when that changes. */
export type WatchState =
  | { readonly ok: true }
  | { readonly ok: false; readonly path: string; readonly error: unknown };

export interface PollingOptions {
  readonly intervalMs?: number;
  readonly maxBackoffMs?: number;
  readonly onState?: (state: WatchState) => void;
}

/** The change watcher that polls `getMetadata` of each path. */
export function createPollingWatcher(
  client: Pick<DeliveryClient, 'getMetadata'>,
  options: PollingOptions = {},
): ChangeWatcher {
  const intervalMs = options.intervalMs ?? POLL_INTERVAL_MS;
  const maxBackoffMs = options.maxBackoffMs ?? MAX_BACKOFF_MS;
  let healthy = true;
  const report = (state: WatchState) => {
    if (state.ok === healthy) return;
    healthy = state.ok;
    options.onState?.(state);
  };
  return {
    async nextChange(known, signal) {
      let waitMs = intervalMs;
      for (;;) {
        await delay(waitMs, { signal });
        const paths = [...known.keys()];
        const settled = await Promise.allSettled(paths.map((path) => client.getMetadata(path)));
        signal.throwIfAborted();
        const changed = new Map<string, number>();
        let failure: WatchState | undefined;
        paths.forEach((path, i) => {
          const result = settled[i] as PromiseSettledResult<{ currentVersion: number }>;
          if (result.status === 'rejected') {
            failure ??= { ok: false, path, error: result.reason };
          } else if (result.value.currentVersion !== known.get(path)) {
            changed.set(path, result.value.currentVersion);
          }
        });
        if (changed.size > 0) {
          report({ ok: true });
          return changed;
        }
        if (failure === undefined) {
          report({ ok: true });
          waitMs = intervalMs;
        } else {
          report(failure);
          waitMs = Math.min(maxBackoffMs, waitMs * 2);
        }
      }
    },
  };
}

/** One line about a failure, with its code when it has one; never a value (errors carry none). */
export function describeError(err: unknown): string {
  if (isBrokerError(err)) return `${err.message} [${err.code}]`;
  return err instanceof Error ? err.message : String(err);
}
