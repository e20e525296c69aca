/**
 * Snapshots of the whole database, for the operator routes
 * (`routes/snapshot.ts`, docs/backup.md). Only a SQLite file has them; a
 * PostgreSQL database is backed up with `pg_dump` and restored with
 * `pg_restore` while every Nexus is stopped (ADR 0028).
 */
import type { RootKeyRecord } from './root_key_store.ts';

export interface SnapshotStore {
  /**
   * Creates a new, empty scratch file (0600) beside the database, for a copy
   * being made or checked, and returns its path. Scratch files left by a
   * Nexus that stopped mid-way are removed when the store opens.
   */
  scratchFile(): Promise<string>;
  /** Removes a scratch file and whatever SQLite left beside it. */
  removeScratch(path: string): Promise<void>;
  /**
   * Writes a consistent copy of the database into `target`, an empty
   * scratch file. Every secret in it stays sealed.
   */
  copyTo(target: string): Promise<void>;
  /**
   * Checks the database file at `path` (a snapshot's body, already
   * checksummed) and brings it to this Nexus's schema. Returns its root key
   * record. `SnapshotInvalidError` when it is not a database of this broker
   * that this Nexus can read: unreadable, a newer schema, never initialised.
   */
  prepare(path: string): Promise<RootKeyRecord>;
  /**
   * Replaces every row of the database with the rows of the prepared file
   * at `path`, in one transaction, then empties the cache of sealed rows.
   * The generation counter of the root key never goes back (a Keeper may
   * hold a shard of any generation handed out before).
   */
  replaceWith(path: string): Promise<void>;
}
