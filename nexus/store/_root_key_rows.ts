/**
 * The `root_key` row back into a `RootKeyRecord`, for both dialects (SQLite
 * `sqlite/root_key_store.ts`, PostgreSQL `postgres/root_key_store.ts`). Pure.
 */
import { InternalError } from '../../shared/errors/errors.ts';
import type { RootKeyRecord } from './root_key_store.ts';

/** The row's columns as either dialect reads them. */
export interface RootKeyRowLike {
  readonly sealedKeyring: Uint8Array;
  readonly lastGeneration: number;
  readonly committedGeneration: number | null;
  readonly splitShares: number | null;
  readonly splitThreshold: number | null;
  readonly initOwner: string | null;
  readonly initDeadlineMs: number | null;
}

/** The single row's key (the table's CHECK allows no other). */
export const ROOT_KEY_ROW_ID = 1;
export const FIRST_GENERATION = 1;

export function toRootKeyRecord(row: RootKeyRowLike): RootKeyRecord {
  return Object.freeze({
    sealedKeyring: row.sealedKeyring,
    lastGeneration: row.lastGeneration,
    committedGeneration: row.committedGeneration,
    splitShares: row.splitShares,
    splitThreshold: row.splitThreshold,
    initOwner: row.initOwner,
    initDeadline: row.initDeadlineMs === null ? null : new Date(row.initDeadlineMs),
  });
}

/**
 * After a commit changed nothing: a lost race (false), or a caller's bug
 * (throws). The last generation only ever grows, so a record read after the
 * UPDATE is as good as one read in it for deciding whether `generation` was
 * ever handed out.
 */
export function explainNoCommit(record: RootKeyRecord | undefined, generation: number): false {
  if (record === undefined) {
    throw new InternalError('Cannot commit a generation: the root key record does not exist');
  }
  if (generation > record.lastGeneration) {
    throw new RangeError(
      `Cannot commit generation ${generation}: only ${record.lastGeneration} were allocated`,
    );
  }
  return false;
}
