/**
 * Group commit on one SQLite connection (ADR 0019). The writes submitted in
 * one event-loop turn run in ONE transaction with ONE commit, so with
 * `synchronous = FULL` they share one fsync:
 *
 *   BEGIN IMMEDIATE
 *     SAVEPOINT write; <write 1>; RELEASE write      (or ROLLBACK TO + RELEASE)
 *     SAVEPOINT write; <write 2>; RELEASE write
 *     ...
 *   COMMIT
 *
 * A write is a synchronous function (`WriteWork`) that runs its statements on
 * the connection. If it throws, its savepoint is rolled back: it changed
 * nothing, and its promise rejects with what it threw, while the others of
 * the group go on. Nothing settles before the COMMIT: a write is acknowledged
 * only once it is committed, and if the COMMIT fails (or the transaction is
 * lost on the way), every write of the group fails and none of it is kept.
 *
 * Why this is safe: the driver runs every statement synchronously on the
 * calling thread, so the whole transaction, from BEGIN to COMMIT, runs
 * without yielding. Nothing else in this process runs in between, and other
 * connections wait on SQLite's write lock (BEGIN IMMEDIATE takes it first).
 * Each write therefore sees the state every write before it left, exactly as
 * if the writes had run one after another in the order they were submitted.
 *
 * Bounds: a group takes at most `maxWrites` writes and, beyond its first,
 * at most `maxBytes` (as the submitter estimates them), so one turn holds the
 * event loop for a bounded time; the rest wait for the next turn, after the
 * event loop had its chance to serve I/O.
 *
 * No driver here: the connection is what `db.ts` hands in, so the scheduling
 * and the error handling are testable on their own.
 */
import { setImmediate } from 'node:timers';
import { InternalError } from '../../../shared/errors/errors.ts';

/** What group commit needs of a connection: run a statement, tell whether a transaction is open. */
export interface CommitConnection {
  /** Runs one statement without arguments (BEGIN, SAVEPOINT, COMMIT...). */
  run(sql: string): void;
  readonly inTransaction: boolean;
}

/** One write of a group: runs its statements synchronously; throws to undo them. */
export type WriteWork<T> = () => T;

export interface GroupLimits {
  /** At most this many writes per transaction. */
  readonly maxWrites: number;
  /** At most this many bytes per transaction, beyond the first write's. */
  readonly maxBytes: number;
}

/**
 * 64 writes of 1 KiB take about 2–4 ms of CPU together, and 4 MiB bounds the
 * sealing and copying of large ones (a single write of up to 1 MiB of data
 * always goes, alone if need be).
 */
export const DEFAULT_GROUP_LIMITS: GroupLimits = Object.freeze({
  maxWrites: 64,
  maxBytes: 4 * 1024 * 1024,
});

interface Pending {
  readonly work: WriteWork<unknown>;
  readonly bytes: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
}

type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: unknown };

const BEGIN = 'BEGIN IMMEDIATE';
const SAVEPOINT = 'SAVEPOINT write';
const RELEASE = 'RELEASE write';
const ROLLBACK_TO = 'ROLLBACK TO write';
const COMMIT = 'COMMIT';
const ROLLBACK = 'ROLLBACK';

export class GroupCommit {
  readonly #connection: CommitConnection;
  readonly #limits: GroupLimits;
  #queue: Pending[] = [];
  #isScheduled = false;
  #isClosed = false;

  constructor(connection: CommitConnection, limits: GroupLimits = DEFAULT_GROUP_LIMITS) {
    if (!Number.isSafeInteger(limits.maxWrites) || limits.maxWrites < 1) {
      throw new RangeError(`Expected maxWrites to be an integer >= 1, got ${limits.maxWrites}`);
    }
    if (!Number.isSafeInteger(limits.maxBytes) || limits.maxBytes < 0) {
      throw new RangeError(`Expected maxBytes to be an integer >= 0, got ${limits.maxBytes}`);
    }
    this.#connection = connection;
    this.#limits = limits;
  }

  /**
   * Queues `work` for the group of this turn; resolves with what it returned
   * once that group is committed. `bytes` is what it writes, roughly.
   */
  submit<T>(work: WriteWork<T>, bytes: number): Promise<T> {
    if (this.#isClosed) {
      return Promise.reject(new InternalError('The database is closed'));
    }
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, bytes, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /**
   * Commits what is queued, now, then refuses new writes. Called before the
   * connection closes, so that no submitted write is left unsettled.
   */
  close(): void {
    this.#isClosed = true;
    this.flush();
  }

  /**
   * Commits what is queued, now, group by group. Afterwards, until the
   * caller yields, the connection is outside any transaction (for work that
   * must run alone on it: a snapshot, a restore).
   */
  flush(): void {
    while (this.#queue.length > 0) this.#runGroup(this.#takeGroup());
  }

  #schedule(): void {
    if (this.#isScheduled) return;
    this.#isScheduled = true;
    // setImmediate, not a microtask: requests whose data arrived in the same
    // poll phase each run their handler first, and all their writes join.
    setImmediate(() => {
      this.#isScheduled = false;
      if (this.#queue.length === 0) return;
      this.#runGroup(this.#takeGroup());
      if (this.#queue.length > 0) this.#schedule();
    });
  }

  /** The oldest queued writes, within the limits (always at least one). */
  #takeGroup(): Pending[] {
    const { maxWrites, maxBytes } = this.#limits;
    let count = 0;
    let bytes = 0;
    for (const pending of this.#queue) {
      if (count === maxWrites || (count > 0 && bytes + pending.bytes > maxBytes)) break;
      bytes += pending.bytes;
      count++;
    }
    return this.#queue.splice(0, count);
  }

  #runGroup(group: readonly Pending[]): void {
    const connection = this.#connection;
    const outcomes: Outcome[] = [];
    try {
      connection.run(BEGIN);
    } catch (err) {
      for (const pending of group) pending.reject(err);
      return;
    }
    try {
      for (const pending of group) outcomes.push(this.#runOne(pending.work));
      connection.run(COMMIT);
    } catch (err) {
      // The COMMIT failed, or a failed write took the transaction with it:
      // none of the group is kept, so none of it may be acknowledged.
      if (connection.inTransaction) {
        try {
          connection.run(ROLLBACK);
        } catch {
          // Nothing more to undo: SQLite rolls back a transaction it cannot finish.
        }
      }
      for (const pending of group) pending.reject(err);
      return;
    }
    for (const [i, outcome] of outcomes.entries()) {
      const pending = group[i] as Pending;
      if (outcome.ok) pending.resolve(outcome.value);
      else pending.reject(outcome.error);
    }
  }

  /** One write in its savepoint; throws only when the whole transaction is lost. */
  #runOne(work: WriteWork<unknown>): Outcome {
    const connection = this.#connection;
    connection.run(SAVEPOINT);
    try {
      const value = work();
      if (value instanceof Promise) {
        value.catch(() => undefined);
        throw new InternalError('A group-commit write must be synchronous');
      }
      connection.run(RELEASE);
      return { ok: true, value };
    } catch (err) {
      // Some errors (a full disk, an I/O error) make SQLite roll back the
      // whole transaction: then the earlier writes are gone too.
      if (!connection.inTransaction) throw err;
      connection.run(ROLLBACK_TO);
      connection.run(RELEASE);
      return { ok: false, error: err };
    }
  }
}
