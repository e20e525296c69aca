/**
 * Who waits for which secret path to change, and the one place every change
 * is told: the secret stores call `changed(path)` once a write of theirs has
 * committed (both backends, every write method), and on PostgreSQL the
 * change feed (`change_feed.ts`) calls it for the writes of every Nexus on
 * the database, and `gap()` when it may have missed some. A long-poll read
 * (`nexus/routes/secret_watch.ts`) waits here.
 *
 * A wake-up is a hint, never the news itself: each waiter is called once and
 * forgotten, and re-reads the path to learn what changed. So a change told
 * twice (a write of this process, then its own notification through the
 * feed) costs a second read, and a gap, which says only that something may
 * have changed, wakes everyone.
 *
 * Cheap while idle: one map entry per watched path and one set entry per
 * waiter, no timer and no work until a change arrives.
 */
import type { SecretPath } from '../../shared/api/secret_path.ts';

export class SecretChanges {
  /** Waiters by path; a path's set is removed with its last waiter. */
  readonly #waiting = new Map<SecretPath, Set<(changed: SecretPath | undefined) => void>>();
  #count = 0;

  /** Waiters registered now. */
  get size(): number {
    return this.#count;
  }

  /**
   * Calls `wake` once, at the next change of `path` (with `path`) or the next
   * gap (with undefined: anything may have changed), unless the returned
   * cancel runs first. Cancelling twice, or after the wake, does nothing.
   */
  next(path: SecretPath, wake: (changed: SecretPath | undefined) => void): () => void {
    let waiters = this.#waiting.get(path);
    if (waiters === undefined) {
      waiters = new Set();
      this.#waiting.set(path, waiters);
    }
    // A function of its own, so the same `wake` given twice counts twice.
    const entry = (changed: SecretPath | undefined) => wake(changed);
    waiters.add(entry);
    this.#count += 1;
    return () => {
      const current = this.#waiting.get(path);
      if (current?.delete(entry) !== true) return;
      this.#count -= 1;
      if (current.size === 0) this.#waiting.delete(path);
    };
  }

  /** `path` changed (committed): wakes its waiters. */
  changed(path: SecretPath): void {
    const waiters = this.#waiting.get(path);
    if (waiters === undefined) return;
    this.#waiting.delete(path);
    this.#count -= waiters.size;
    for (const wake of waiters) wake(path);
  }

  /** Changes may have been missed (a reconnected feed): wakes every waiter. */
  gap(): void {
    const all = [...this.#waiting.values()];
    this.#waiting.clear();
    this.#count = 0;
    for (const waiters of all) {
      for (const wake of waiters) wake(undefined);
    }
  }
}
