/**
 * What the keyring sweep (`nexus/keyring/sweeper.ts`) asks of a store that
 * seals rows under the keyring: seal rows of older terms again under the
 * active one, a batch at a time, and count rows per term for the status.
 *
 * A pass walks the store's sealed rows in key order. Each step takes up to
 * `limit` rows sealed under a term older than the active one, after the
 * position the previous step returned, and replaces each ciphertext with the
 * same plaintext sealed under the active term, in one transaction, and only
 * if the row still holds the ciphertext it read (so a concurrent destroy or
 * another Nexus's sweep wins, and nothing is written twice). The position
 * is the only state: a crash loses nothing but the pass, and the next pass
 * skips every row already under the active term.
 */
import { DecryptionFailedError } from '../../shared/errors/errors.ts';

/** Where a pass goes on: the last row a step looked at, as its store names it. */
export interface SweepPosition {
  /** The table the row is in (a store may sweep several, one after the other). */
  readonly table: string;
  readonly key: string;
  readonly version: number;
}

export interface SweepStep {
  /** Rows sealed again under the active term. */
  readonly rewrapped: number;
  /**
   * Rows that failed to open (altered or damaged: the integrity alarm has
   * rung for each). They keep their term, and the sweep goes past them.
   */
  readonly failed: number;
  /** Where the next step starts; undefined once the pass is at the end. */
  readonly next: SweepPosition | undefined;
}

export interface KeyringSweepTarget {
  /** What the status calls it: `secrets`, `transit`. */
  readonly sweepName: string;
  rewrapOlderTerms(from: SweepPosition | undefined, limit: number): Promise<SweepStep>;
  /** How many sealed rows each term seals now. */
  countByTerm(): Promise<ReadonlyMap<number, number>>;
}

/** A row a step found: where it is, and how to seal it again under the active term. */
export interface FoundRow<T> {
  readonly position: SweepPosition;
  /** The row's new ciphertext, as its store writes it; throws DecryptionFailedError when it fails to open. */
  readonly reseal: () => T;
}

/**
 * The rows of one step sealed again, skipping (and counting) those that fail
 * to open, and the step's outcome: the next step starts after the last row
 * when this one was full, else at `whenDone` (the store's next table, or
 * undefined at the end of the pass).
 */
export function resealStep<T>(
  rows: readonly FoundRow<T>[],
  limit: number,
  whenDone: SweepPosition | undefined,
): { readonly resealed: T[]; readonly step: SweepStep } {
  const resealed: T[] = [];
  for (const row of rows) {
    try {
      resealed.push(row.reseal());
    } catch (err) {
      if (!(err instanceof DecryptionFailedError)) throw err;
    }
  }
  const last = rows[rows.length - 1];
  return {
    resealed,
    step: {
      rewrapped: resealed.length,
      failed: rows.length - resealed.length,
      next: rows.length === limit && last !== undefined ? last.position : whenDone,
    },
  };
}

/** Adds `count` rows of `term` to `counts`. */
export function addCount(counts: Map<number, number>, term: unknown, count: unknown): void {
  const key = Number(term);
  counts.set(key, (counts.get(key) ?? 0) + Number(count));
}

/** The batch size a step may take: a positive integer up to 10,000. */
export function checkSweepLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
    throw new RangeError(`A sweep step takes 1 to 10000 rows, got ${String(limit)}`);
  }
}
