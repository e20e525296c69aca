/**
 * Long-poll reads (`GET /v1/secrets/data/{path}?newerThan=N&wait=30s`, ADR
 * 0024): the read route hands a request here once its guard has admitted
 * the caller, and answers what `wait()` returns.
 *
 * What a watch answers. The caller has version N of the path (0: nothing).
 * As soon as a read of the current version would answer anything else (a
 * newer version; an older one, after the path was deleted and written
 * again; or, when N > 0, not found: the path, or its current version, was
 * deleted or destroyed), the watch answers exactly that, at once if it is so
 * already. Errors a read would answer (sealed, say) are answered at once
 * too. Otherwise it waits, and once `wait` has passed it answers 304 with no
 * body: cheap (nothing is decrypted) and unmistakable for an answer with
 * data. When Nexus stops (`close()`) every watch answers 304 at once, so a
 * stop never waits on one; the client asks again, elsewhere or later.
 *
 * How it waits. It registers with `SecretChanges` before it looks, so a
 * change committed between the look and the wait still wakes it; every
 * wake-up (a change of the path, or a gap of the change feed, which may hide
 * one) is followed by a look, never trusted alone. A look is the store's
 * `currentVersion()`, which reads what a read reads (through the cache of
 * sealed rows) and opens nothing: only the answer is decrypted. While idle a watch holds a
 * timer, an abort listener and one entry in the changes' map, and does no
 * work. A client that disconnects aborts the request's signal, which ends
 * the watch and frees its slot at once.
 *
 * Bounds. Each watch holds a connection for up to MAX_WATCH_WAIT_MS, so
 * their number is capped in all and per SPIFFE ID (`WatchLimits`); one more
 * is refused with 429 `ERR_TOO_MANY_WATCHES` before anything is read.
 */
import type { ServerResponse } from 'node:http';
import type { SecretPath } from '../../shared/api/secret_path.ts';
import type { WatchQuery } from '../../shared/api/secrets.ts';
import { TooManyWatchesError } from '../../shared/errors/errors.ts';
import type { SecretChanges } from '../store/secret_changes.ts';
import type { SecretStore, SecretVersion } from '../store/secret_store.ts';

export interface WatchLimits {
  /** Watches waiting at once in this Nexus; 0 refuses every watch. */
  readonly maxWatches: number;
  /** Watches waiting at once for one SPIFFE ID; 0 refuses every watch. */
  readonly maxWatchesPerIdentity: number;
}

/**
 * Half of the default connection caps (`DEFAULT_SERVER_LIMITS`: 1024 in all,
 * 128 per SPIFFE ID), since each watch holds a connection: waiting reads
 * never take every connection an identity, or Nexus, may have.
 */
export const DEFAULT_WATCH_LIMITS: WatchLimits = Object.freeze({
  maxWatches: 512,
  maxWatchesPerIdentity: 64,
});

export interface SecretWatchesOptions {
  readonly store: SecretStore;
  /** Where the store (and, on PostgreSQL, the change feed) tells of changes. */
  readonly changes: SecretChanges;
  readonly limits?: WatchLimits;
}

/** Why a wait ended without a change to answer. */
type Ending = 'timeout' | 'aborted' | 'closed';

export class SecretWatches {
  readonly #store: SecretStore;
  readonly #changes: SecretChanges;
  readonly #limits: WatchLimits;
  readonly #perIdentity = new Map<string, number>();
  /** Ends each waiting watch (its `Ending` is `closed`). */
  readonly #enders = new Set<() => void>();
  #isClosed = false;

  constructor(options: SecretWatchesOptions) {
    const limits = options.limits ?? DEFAULT_WATCH_LIMITS;
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`Expected ${name} to be an integer >= 0, got ${value}`);
      }
    }
    this.#store = options.store;
    this.#changes = options.changes;
    this.#limits = limits;
  }

  /** Watches waiting now. */
  get size(): number {
    return this.#enders.size;
  }

  /**
   * What the watch of `path` by `caller` answers: what a read of the current
   * version answers (its version, or its error: not found, sealed…) once
   * that is other than version `query.newerThan` (`currentVersion()`: 0 for
   * none), or undefined (304) when the wait ends first, the request is
   * aborted, or Nexus stops.
   */
  async wait(
    path: SecretPath,
    query: WatchQuery,
    caller: string,
    signal: AbortSignal,
  ): Promise<SecretVersion | undefined> {
    if (this.#isClosed || signal.aborted) return undefined;
    const held = this.#perIdentity.get(caller) ?? 0;
    if (this.#enders.size >= this.#limits.maxWatches) {
      throw new TooManyWatchesError(
        `Nexus has ${this.#limits.maxWatches} long-poll reads waiting, its limit; try again later`,
      );
    }
    if (held >= this.#limits.maxWatchesPerIdentity) {
      throw new TooManyWatchesError(
        `This SPIFFE ID has ${this.#limits.maxWatchesPerIdentity} long-poll reads waiting, its limit; try again later`,
      );
    }
    let ending: Ending | undefined;
    // Resolves the wait in progress; replaced on each round.
    let wake: () => void = noop;
    const end = (why: Ending) => {
      ending ??= why;
      wake();
    };
    const timer = setTimeout(() => end('timeout'), query.waitMs);
    const onAbort = () => end('aborted');
    const onClose = () => end('closed');
    signal.addEventListener('abort', onAbort, { once: true });
    this.#enders.add(onClose);
    this.#perIdentity.set(caller, held + 1);
    try {
      while (ending === undefined) {
        const woken = new Promise<void>((resolve) => {
          wake = resolve;
        });
        // Before the read: a change committed while it runs still wakes us.
        const cancel = this.#changes.next(path, () => wake());
        try {
          // Compared without opening anything: only an answer decrypts.
          if ((await this.#store.currentVersion(path)) !== query.newerThan) {
            return await this.#store.get(path);
          }
          await woken;
        } finally {
          cancel();
        }
      }
      return undefined;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      this.#enders.delete(onClose);
      const left = (this.#perIdentity.get(caller) ?? 1) - 1;
      if (left === 0) this.#perIdentity.delete(caller);
      else this.#perIdentity.set(caller, left);
    }
  }

  /** Ends every waiting watch now (304), and every later one at once: Nexus is stopping. */
  close(): void {
    this.#isClosed = true;
    for (const end of [...this.#enders]) end();
  }
}

function noop(): void {
  // Nothing waits yet.
}

/** Aborts when the response closes: answered, or its client went away mid-wait. */
export function whenClosed(response: ServerResponse): AbortSignal {
  const controller = new AbortController();
  response.once('close', () => controller.abort());
  return controller.signal;
}
