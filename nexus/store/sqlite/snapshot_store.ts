/**
 * Snapshots of a SQLite database (ADR 0028). A copy is `VACUUM INTO` a new
 * file: SQLite reads the database in one read transaction, so the copy is
 * one consistent state, compacted, with no WAL beside it. A restore copies
 * every row of a checked snapshot into the live database in ONE write
 * transaction on the writer connection: every reader (the read-only
 * connection, the client) sees the old state or the new one, never a mix,
 * and a failure rolls back to the old one whole.
 *
 * Both run through `alone()`: synchronous, on the writer, between group
 * commits, so they hold the event loop for their duration: on the shared
 * two-core machine, 0.5 s to copy a database of 130 MB and 1.2 s to
 * restore it (ADR 0028).
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InternalError, SnapshotInvalidError } from '../../../shared/errors/errors.ts';
import { ROOT_KEY_ROW_ID, toRootKeyRecord } from '../_root_key_rows.ts';
import type { RootKeyRecord } from '../root_key_store.ts';
import type { SnapshotStore } from '../snapshot_store.ts';
import {
  type AloneConnection,
  knownMigrationCount,
  openRestoreCandidate,
  type SqliteDatabase,
} from './db.ts';

export interface SqliteSnapshotsOptions {
  readonly database: SqliteDatabase;
  /** Called once a restore committed: the cache of sealed rows is stale. */
  readonly onReplaced: () => void;
}

/** The table drizzle-kit's migrator keeps its journal in: never copied. */
const MIGRATIONS_TABLE = '__drizzle_migrations';
const SNAPSHOT_SCHEMA = 'snapshot';
/** Scratch files are named `spike.db.snapshot-<uuid>` beside `spike.db`. */
const SCRATCH_INFIX = '.snapshot-';

export class SqliteSnapshots implements SnapshotStore {
  readonly #database: SqliteDatabase;
  readonly #onReplaced: () => void;
  readonly #scratchPrefix: string;

  /** Removes the scratch files a Nexus that stopped mid-way left beside the database. */
  constructor(options: SqliteSnapshotsOptions) {
    this.#database = options.database;
    this.#onReplaced = options.onReplaced;
    this.#scratchPrefix = `${basename(options.database.path)}${SCRATCH_INFIX}`;
    const folder = dirname(options.database.path);
    for (const name of readdirSync(folder)) {
      if (name.startsWith(this.#scratchPrefix)) rmSync(join(folder, name), { force: true });
    }
  }

  async scratchFile(): Promise<string> {
    const path = `${this.#database.path}${SCRATCH_INFIX}${randomUUID()}`;
    const handle = await open(path, 'wx', 0o600);
    await handle.close();
    return path;
  }

  async removeScratch(path: string): Promise<void> {
    if (!basename(path).startsWith(this.#scratchPrefix)) {
      throw new InternalError(`"${path}" is not a scratch file of this database`);
    }
    for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
      await rm(file, { force: true });
    }
  }

  async copyTo(target: string): Promise<void> {
    this.#database.alone((connection) => connection.run('VACUUM INTO ?', [target]));
  }

  async prepare(path: string): Promise<RootKeyRecord> {
    const candidate = await openRestoreCandidate(path);
    try {
      return candidate.alone((connection) => {
        const applied = Number(
          connection.all(`SELECT count(*) FROM "${MIGRATIONS_TABLE}"`)[0]?.[0] ?? 0,
        );
        const known = knownMigrationCount();
        if (applied > known) {
          throw new SnapshotInvalidError(
            `The snapshot's database has ${applied} schema migrations, this Nexus knows ${known}: restore it with a newer Nexus`,
          );
        }
        const row = connection.all(
          'SELECT sealed_keyring, last_generation, committed_generation, init_owner, init_deadline_ms FROM root_key WHERE id = ?',
          [ROOT_KEY_ROW_ID],
        )[0];
        if (row === undefined) {
          throw new SnapshotInvalidError(
            "The snapshot's database was never initialised: it holds no root key record",
          );
        }
        const record = toRootKeyRecord({
          sealedKeyring: new Uint8Array(row[0] as ArrayBuffer),
          lastGeneration: Number(row[1]),
          committedGeneration: row[2] === null ? null : Number(row[2]),
          // Not read: judging a snapshot needs only its keyring and generations.
          splitShares: null,
          splitThreshold: null,
          initOwner: row[3] as string | null,
          initDeadlineMs: row[4] === null ? null : Number(row[4]),
        });
        if (record.committedGeneration === null) {
          throw new SnapshotInvalidError(
            'The snapshot was taken before its broker finished initialising its root key',
          );
        }
        return record;
      });
    } finally {
      await candidate.close();
    }
  }

  async replaceWith(path: string): Promise<void> {
    this.#database.alone((connection) => {
      connection.run(`ATTACH DATABASE ? AS ${SNAPSHOT_SCHEMA}`, [path]);
      try {
        copyEveryRow(connection);
      } finally {
        connection.run(`DETACH DATABASE ${SNAPSHOT_SCHEMA}`);
      }
    });
    this.#onReplaced();
  }
}

/**
 * In one transaction: empties every table of `main` and fills it from the
 * attached snapshot, column by column by name; foreign keys are checked at
 * the commit, once both sides are whole. The tables are read from the live
 * schema, so a table added by a later migration is copied too.
 */
function copyEveryRow(connection: AloneConnection): void {
  const tables = connection
    .all(
      `SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name <> ?`,
      [MIGRATIONS_TABLE],
    )
    .map((row) => String(row[0]));
  const lastGeneration = connection.all('SELECT last_generation FROM main.root_key WHERE id = ?', [
    ROOT_KEY_ROW_ID,
  ])[0]?.[0];
  connection.run('BEGIN IMMEDIATE');
  try {
    connection.run('PRAGMA defer_foreign_keys = ON');
    for (const table of tables) {
      connection.run(`DELETE FROM main.${quote(table)}`);
    }
    for (const table of tables) {
      const columns = connection
        .all(`PRAGMA main.table_info(${quote(table)})`)
        .map((row) => quote(String(row[1])))
        .join(', ');
      connection.run(
        `INSERT INTO main.${quote(table)} (${columns}) SELECT ${columns} FROM ${SNAPSHOT_SCHEMA}.${quote(table)}`,
      );
    }
    if (lastGeneration !== undefined && lastGeneration !== null) {
      connection.run(
        'UPDATE main.root_key SET last_generation = ? WHERE id = ? AND last_generation < ?',
        [Number(lastGeneration), ROOT_KEY_ROW_ID, Number(lastGeneration)],
      );
    }
    connection.run('COMMIT');
  } catch (err) {
    if (connection.inTransaction) connection.run('ROLLBACK');
    throw err;
  }
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}
