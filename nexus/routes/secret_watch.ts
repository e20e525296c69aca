/**
 * Long-poll reads (`GET /v1/secrets/data/{path}?newerThan=N&wait=30s`, ADR
 * 0024): the read route hands a request here once its guard has admitted
 * the caller, and answers what `wait()` returns. A long-poll over several
 * paths (`POST /v1/secrets/watch`, ADR 0033) waits the same way in
 * `waitForAny()`, and answers only the versions that changed.
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
 * sealed rows) and opens nothing: only the answer is decrypted. While idle a
 * watch holds a timer, a `close` listener on its response and one entry in
 * the changes' map per path, and does no work. A client that disconnects closes the
 * response, which ends the watch and frees its slot at once.
 *
 * Bounds. Each watch holds a connection for up to MAX_WATCH_WAIT_MS, so
 * their number is capped in all and per SPIFFE ID (`WatchLimits`); one more
 * is refused with 429 `ERR_TOO_MANY_WATCHES` before anything is read.
 */
import type { SecretPath } from '../../shared/api/secret_path.ts';
import type { WatchQuery } from '../../shared/api/secrets.ts';
import { TooManyWatchesError } from '../../shared/errors/errors.ts';
import type { SecretChanges } from '../store/secret_changes.ts';
import type { SecretStore, SecretVersion } from '../store/secret_store.ts';

/**
 * Where a watch hears that its client went away: the node response (its
 * `close` comes when the connection does, or once it is answered). Not an
 * `AbortSignal`: an `AbortController`, its signal's two listener maps and the
 * closures around them were most of the 1.7 KiB per idle watch that this
 * saved (docs/performance.md, "Idle watchers"). `destroyed` (a response's
 * own field on Node and Deno) tells one already gone before the watch began.
 */
export interface ClientGone {
  readonly destroyed: boolean;
  on(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

/** A `ClientGone` over an abort signal: the fetch `Request`'s, without the node adapter (tests). */
export function goneOnAbort(signal: AbortSignal): ClientGone {
  return {
    get destroyed() {
      return signal.aborted;
    },
    on(_event, listener) {
      signal.addEventListener('abort', listener);
    },
    off(_event, listener) {
      signal.removeEventListener('abort', listener);
    },
  };
}

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
  /** The watches waiting now; `close()` ends each (its `Ending` is `closed`). */
  readonly #waiters = new Set<Waiter>();
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
    return this.#waiters.size;
  }

  /**
   * What the watch of `path` by `caller` answers: what a read of the current
   * version answers (its version, or its error: not found, sealed…) once
   * that is other than version `query.newerThan` (`currentVersion()`: 0 for
   * none), or undefined (304) when the wait ends first, the client goes
   * away, or Nexus stops.
   */
  wait(
    path: SecretPath,
    query: WatchQuery,
    caller: string,
    client: ClientGone,
  ): Promise<SecretVersion | undefined> {
    return this.#hold(caller, query.waitMs, client, [path], async () =>
      // Compared without opening anything: only an answer decrypts.
      (await this.#store.currentVersion(path)) === query.newerThan
        ? undefined
        : await this.#store.get(path),
    );
  }

  /**
   * A watch of several paths (`POST /v1/secrets/watch`): once the current
   * version of one or more of them (`currentVersion()`, 0 for none) is other
   * than the caller's in `versions`, those paths and their current versions;
   * undefined (304) as for `wait()`. Nothing is decrypted: the caller reads
   * what changed. An error a read would answer (sealed) is thrown at once.
   * It holds one connection, so it counts as one watch against the limits.
   */
  waitForAny(
    versions: ReadonlyMap<SecretPath, number>,
    waitMs: number,
    caller: string,
    client: ClientGone,
  ): Promise<Map<SecretPath, number> | undefined> {
    return this.#hold(caller, waitMs, client, [...versions.keys()], async (woken) => {
      const changed = new Map<SecretPath, number>();
      // After a change, only the paths it named: one look per change, not one per path.
      for (const path of woken ?? versions.keys()) {
        const current = await this.#store.currentVersion(path);
        if (current !== versions.get(path)) changed.set(path, current);
      }
      return changed.size === 0 ? undefined : changed;
    });
  }

  /**
   * Admits a watch of `paths` by `caller` (or refuses it: the limits), then
   * runs `look` until it answers something: first over every path
   * (`woken` undefined), then after each wake-up over the paths that changed
   * since the last look (undefined after a gap: any may have); undefined
   * once `waitMs` has passed, the client went away, or Nexus stops.
   */
  async #hold<T>(
    caller: string,
    waitMs: number,
    client: ClientGone,
    paths: readonly SecretPath[],
    look: (woken: ReadonlySet<SecretPath> | undefined) => Promise<T | undefined>,
  ): Promise<T | undefined> {
    if (this.#isClosed || client.destroyed) return undefined;
    const held = this.#perIdentity.get(caller) ?? 0;
    if (this.#waiters.size >= this.#limits.maxWatches) {
      throw new TooManyWatchesError(
        `Nexus has ${this.#limits.maxWatches} long-poll reads waiting, its limit; try again later`,
      );
    }
    if (held >= this.#limits.maxWatchesPerIdentity) {
      throw new TooManyWatchesError(
        `This SPIFFE ID has ${this.#limits.maxWatchesPerIdentity} long-poll reads waiting, its limit; try again later`,
      );
    }
    const waiter = new Waiter();
    const timer = setTimeout(endOnTimeout, waitMs, waiter);
    client.on('close', waiter.onGone);
    this.#waiters.add(waiter);
    this.#perIdentity.set(caller, held + 1);
    try {
      let changed: ReadonlySet<SecretPath> | undefined;
      while (waiter.ending === undefined) {
        const woken = waiter.sleep();
        // Before the look: a change committed while it runs still wakes us,
        // and is looked at next time round. (From `takeChanged()` to here
        // nothing awaits, so no change falls between the two.)
        const cancels = paths.map((path) => this.#changes.next(path, waiter.wake));
        try {
          const answer = await look(changed);
          if (answer !== undefined) return answer;
          await woken;
        } finally {
          for (const cancel of cancels) cancel();
        }
        changed = waiter.takeChanged();
      }
      return undefined;
    } finally {
      clearTimeout(timer);
      client.off('close', waiter.onGone);
      this.#waiters.delete(waiter);
      const left = (this.#perIdentity.get(caller) ?? 1) - 1;
      if (left === 0) this.#perIdentity.delete(caller);
      else this.#perIdentity.set(caller, left);
    }
  }

  /** Ends every waiting watch now (304), and every later one at once: Nexus is stopping. */
  close(): void {
    this.#isClosed = true;
    for (const waiter of [...this.#waiters]) waiter.end('closed');
  }
}

/**
 * One waiting watch: why it ended, if it has, and what wakes the look in
 * progress. Its two listeners are made once, with it. With its timer, its
 * promises and its entry in the changes' map, it is all that an idle watch
 * holds of its own.
 */
class Waiter {
  ending: Ending | undefined;
  #resolve: () => void = noop;
  /** The paths changed since `takeChanged()`; GAP after a gap; undefined for none yet. */
  #changed: Set<SecretPath> | typeof GAP | undefined;
  /** The client went away: one function, so that `off` finds what `on` added. */
  readonly onGone = (): void => this.end('aborted');
  /** A change of a path (named), or a gap (undefined): the look in progress looks again. */
  readonly wake = (path: SecretPath | undefined): void => {
    if (path === undefined) {
      this.#changed = GAP;
    } else if (this.#changed === undefined) {
      this.#changed = new Set([path]);
    } else if (this.#changed !== GAP) {
      this.#changed.add(path);
    }
    this.#resolve();
  };

  /** What changed since the last call: those paths, or undefined after a gap (look at all). */
  takeChanged(): ReadonlySet<SecretPath> | undefined {
    const changed = this.#changed;
    this.#changed = undefined;
    return changed === GAP ? undefined : (changed ?? new Set());
  }

  end(why: Ending): void {
    this.ending ??= why;
    this.#resolve();
  }

  /** Settles at the next `wake()` or `end()`, whichever comes first. */
  sleep(): Promise<void> {
    return new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }
}

/** What a waiter records for a gap of the change feed: anything may have changed. */
const GAP = 'gap';

/** A timer's callback with its waiter as argument: no closure per watch. */
function endOnTimeout(waiter: Waiter): void {
  waiter.end('timeout');
}

function noop(): void {
  // Nothing waits yet.
}
