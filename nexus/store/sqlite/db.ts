/**
 * Opens the SQLite database of Nexus. The only file that imports a SQLite
 * driver (`@libsql/client`, which loads on Node and Deno alike).
 *
 * Opening does everything a usable database needs, in order: a private
 * directory (0700) and file (0600), the pragmas, and the committed drizzle-kit
 * migrations under `migrations/`.
 *
 * Pragmas, and why:
 * - `journal_mode = WAL`: readers never block the writer and a commit writes
 *   one file. It is a property of the file, so it holds for every connection.
 * - `synchronous = FULL`: in WAL mode, NORMAL already survives a crash of the
 *   process (`kill -9`), but a power loss or OS crash may roll back the last
 *   acknowledged commits. FULL syncs the WAL on every commit, so an
 *   acknowledged write (a committed shard generation, a secret) is durable.
 *   A broker writes rarely; one fsync per commit is a fair price. An operator
 *   may choose NORMAL (`SPIKE_NEXUS_SQLITE_SYNCHRONOUS`), e.g. to load many
 *   secrets at once: the driver runs on the event loop, so each fsync also
 *   holds up every other request (docs/performance.md).
 * - `busy_timeout` (the client's `timeout` option, applied to every connection
 *   it opens): another process or connection holding the write lock makes a
 *   statement wait up to that long instead of failing with SQLITE_BUSY at once.
 * - `foreign_keys = ON`: plain SQLite leaves it off per connection (this
 *   libsql build happens to default it on, as it defaults `synchronous` to
 *   FULL); set and checked anyway, so a driver update cannot change them.
 *
 * The client keeps a single connection (`concurrency: 1`). The driver runs
 * each statement synchronously on the calling thread, so more connections add
 * no parallelism; one connection guarantees that the per-connection pragmas
 * above hold for every statement, and that this process never waits (blocking
 * its event loop) on a lock held by its own other connection. Consequence for
 * callers: do multi-statement writes as one `db.batch([...])`, which runs to
 * COMMIT without yielding, rather than an interactive `db.transaction()` that
 * would hold the only connection across awaits.
 *
 * Writes of secrets (ADR 0019). The secret store writes through `write()`:
 * synchronous work on statements compiled once (`prepareWrite()`) on a third
 * connection of the `libsql` driver, the writer, with the same pragmas as the
 * client's. The writes of one event-loop turn share one transaction and one
 * commit (`_group_commit.ts`), each in its own savepoint. Every transaction
 * of this process, on either connection, runs from BEGIN to COMMIT without
 * yielding, so the two never wait on each other.
 *
 * Hot reads. The client compiles every statement anew, and drizzle builds
 * the SQL text anew, on each call: about 10× the cost of running a compiled
 * statement (docs/performance.md). The few reads on the request path
 * therefore go through `prepareRead()`: statements compiled once on a second,
 * read-only (`query_only`) connection of the `libsql` driver underneath the
 * client. In WAL mode that reader never waits on the writer and sees every
 * commit that finished before its statement starts, so a caller reads its own
 * acknowledged writes. A memory database runs `prepareRead()` through the
 * client.
 *
 * Snapshots. `alone()` lends the writer connection to synchronous work
 * that must not share a transaction: `VACUUM INTO` (a consistent copy,
 * read in one read transaction) and a restore (`ATTACH` cannot run inside a
 * transaction). It commits the queued writes first; since the work does
 * not yield, no write of this process can start before it ends.
 *
 * A memory database is a named, shared-cache SQLite database in memory
 * (`file:<random name>?mode=memory&cache=shared`): the client and the writer
 * are two connections to the same data, as for a file, and it is gone once
 * both close. Shared cache locks tables rather than the file, which is no
 * concern here since no transaction ever spans a turn.
 */
import { randomUUID } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Client, createClient } from '@libsql/client';
import { drizzle, type LibSQLDatabase } from 'drizzle-orm/libsql';
import { migrate } from 'drizzle-orm/libsql/migrator';
import Database from 'libsql';
import { InternalError, SnapshotInvalidError } from '../../../shared/errors/errors.ts';
import { type CommitConnection, GroupCommit, type WriteWork } from './_group_commit.ts';
import * as schema from './schema.ts';

/**
 * The `synchronous` settings an operator may choose (see "Pragmas" above);
 * `nexus/config.ts` reads `SPIKE_NEXUS_SQLITE_SYNCHRONOUS` against this list.
 */
export const SQLITE_SYNCHRONOUS = ['full', 'normal'] as const;
export type SqliteSynchronous = (typeof SQLITE_SYNCHRONOUS)[number];

/** The drizzle handle over the Nexus schema. */
export type SqliteDb = LibSQLDatabase<typeof schema>;

export interface OpenSqliteDatabaseOptions {
  /** The database file; its directory is created (0700) when missing. */
  readonly path: string;
  /** How long a statement waits for another connection's lock. Default 5000. */
  readonly busyTimeoutMs?: number;
  /** `full` (default) or `normal`; see "Pragmas" above. */
  readonly synchronous?: SqliteSynchronous;
}

/** A read statement compiled once: positional arguments in, its first row (as an array) out. */
export interface PreparedRead {
  get(args: readonly (string | number | null)[]): Promise<unknown[] | undefined>;
}

/** What a compiled write statement binds: positional arguments. */
export type SqlArgument = string | number | Uint8Array | null;

/**
 * A statement compiled once on the writer connection, for the work of
 * `write()` only (outside it, a statement would commit on its own).
 */
export interface WriteStatement {
  /** Runs it; every row it yields (a SELECT's, or a RETURNING clause's), each as an array. */
  all(args: readonly SqlArgument[]): unknown[][];
  /** Runs it; its first row, as an array. */
  get(args: readonly SqlArgument[]): unknown[] | undefined;
  /** Runs it for its effect. */
  run(args: readonly SqlArgument[]): void;
}

export interface SqliteDatabase {
  readonly db: SqliteDb;
  /** A hot read, compiled once (see "Hot reads" above). Only for SELECT statements. */
  prepareRead(sql: string): PreparedRead;
  /** Compiles a statement for the work of `write()` (see "Writes of secrets" above). */
  prepareWrite(sql: string): WriteStatement;
  /**
   * Runs `work` in this turn's transaction, in its own savepoint; resolves
   * with what it returned once that transaction is committed, rejects with
   * what it threw (and then it changed nothing) or with the commit's error.
   * `bytes`: roughly what it writes, to bound a transaction.
   */
  write<T>(work: WriteWork<T>, bytes: number): Promise<T>;
  /**
   * Runs `work` at once on the writer connection, alone: the writes queued
   * for group commit are committed first, and no transaction is open when it
   * starts (see "Snapshots" above). For a snapshot and a restore only.
   */
  alone<T>(work: (connection: AloneConnection) => T): T;
  /** The absolute path of the database file (`:memory:` for an in-memory database). */
  readonly path: string;
  /** Closes the connection. Idempotent. */
  close(): Promise<void>;
}

/** The writer connection as `alone()` lends it: statements with positional arguments. */
export interface AloneConnection {
  /** Runs a statement for its effect. */
  run(sql: string, args?: readonly SqlArgument[]): void;
  /** Runs a statement; every row, each as an array. */
  all(sql: string, args?: readonly SqlArgument[]): unknown[][];
  /** Whether a transaction is open (SQLite rolls back by itself on some errors). */
  readonly inTransaction: boolean;
}

export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** Where the committed drizzle-kit migrations live, whatever the cwd or runtime. */
const MIGRATIONS_FOLDER = fileURLToPath(new URL('./migrations', import.meta.url));

/**
 * Another process (or connection) may apply the same migration at the same
 * moment; the loser's transaction fails and rolls back whole, and a second
 * pass then finds it applied. A few passes cover that race.
 */
const MIGRATE_ATTEMPTS = 3;

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

interface Pragma {
  readonly set: string;
  readonly name: string;
  readonly want: unknown;
}

const FOREIGN_KEYS_PRAGMA: Pragma = {
  set: 'PRAGMA foreign_keys = ON',
  name: 'foreign_keys',
  want: 1,
};

/** The pragmas each connection must end up with, checked after setting them. */
function filePragmas(synchronous: SqliteSynchronous): readonly Pragma[] {
  return [
    { set: 'PRAGMA journal_mode = WAL', name: 'journal_mode', want: 'wal' },
    synchronous === 'full'
      ? { set: 'PRAGMA synchronous = FULL', name: 'synchronous', want: 2 }
      : { set: 'PRAGMA synchronous = NORMAL', name: 'synchronous', want: 1 },
    FOREIGN_KEYS_PRAGMA,
  ];
}

/** An in-memory database has no journal file to sync; only the constraints matter. */
const MEMORY_PRAGMAS: readonly Pragma[] = [FOREIGN_KEYS_PRAGMA];

export async function openSqliteDatabase(
  options: OpenSqliteDatabaseOptions,
): Promise<SqliteDatabase> {
  const {
    path: givenPath,
    busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS,
    synchronous = 'full',
  } = options;
  if (synchronous !== 'full' && synchronous !== 'normal') {
    throw new RangeError(`Expected synchronous to be "full" or "normal", got "${synchronous}"`);
  }
  if (typeof givenPath !== 'string' || givenPath === '' || givenPath.startsWith(':')) {
    throw new TypeError(`Expected a database file path, got "${String(givenPath)}"`);
  }
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new RangeError(`Expected busyTimeoutMs to be an integer >= 0, got ${busyTimeoutMs}`);
  }
  const path = resolve(givenPath);
  prepareFile(path);

  const client = createClient({
    url: pathToFileURL(path).href,
    concurrency: 1,
    timeout: busyTimeoutMs,
  });
  const pragmas = filePragmas(synchronous);
  const database = await finishOpening(client, path, pragmas, () => restrictModes(path));
  let reader: Database.Database | undefined;
  let writer: Database.Database;
  try {
    reader = new Database(path, { timeout: busyTimeoutMs });
    reader.exec('PRAGMA query_only = ON');
    writer = openWriter(path, { timeout: busyTimeoutMs }, pragmas);
  } catch (err) {
    if (reader?.open) reader.close();
    await database.close();
    throw err;
  }
  const compiledReader = reader;
  const writes = writeMethods(writer);
  return {
    ...database,
    prepareRead(sql) {
      const statement = compiledReader.prepare(sql).raw(true);
      return {
        async get(args) {
          return statement.get(...args) as unknown[] | undefined;
        },
      };
    },
    ...writes,
    close() {
      writes.close();
      if (compiledReader.open) compiledReader.close();
      return database.close();
    },
  };
}

/** The path reported by a database opened with `openMemoryDatabase()`. */
export const MEMORY_DATABASE_PATH = ':memory:';

/**
 * A private, empty database in memory with the same schema (migrations) and
 * semantics as a file: the `memory` backend and tests. It lives on its one
 * connection and is gone once closed. Journal and sync pragmas do not apply
 * to memory; foreign keys are set and checked as for a file.
 */
export async function openMemoryDatabase(): Promise<SqliteDatabase> {
  const name = `file:spike-memory-${randomUUID()}?mode=memory&cache=shared`;
  // The client reads a file URL's path as the name to open: the whole URI,
  // encoded, so that its query is not taken for the client's own options.
  const client = createClient({ url: `file:${encodeURIComponent(name)}`, concurrency: 1 });
  const database = await finishOpening(client, MEMORY_DATABASE_PATH, MEMORY_PRAGMAS, () => {});
  let writer: Database.Database;
  try {
    writer = openWriter(name, {}, MEMORY_PRAGMAS);
  } catch (err) {
    await database.close();
    throw err;
  }
  const writes = writeMethods(writer);
  return {
    ...database,
    ...writes,
    close() {
      writes.close();
      return database.close();
    },
  };
}

/** The writer connection: opened, its pragmas set and checked. */
function openWriter(
  name: string,
  options: { readonly timeout?: number },
  pragmas: readonly Pragma[],
): Database.Database {
  const writer = new Database(name, options);
  try {
    for (const pragma of pragmas) {
      writer.exec(pragma.set);
      const got = (writer.prepare(`PRAGMA ${pragma.name}`).raw(true).get() as unknown[])[0];
      if (got !== pragma.want) {
        throw new InternalError(
          `Cannot set "${pragma.name}" to ${JSON.stringify(pragma.want)} on the writer connection: it is ${JSON.stringify(got)}`,
        );
      }
    }
    return writer;
  } catch (err) {
    writer.close();
    throw err;
  }
}

/**
 * `prepareWrite()` and `write()` on the writer connection, and the close
 * that first commits what is queued, then closes it.
 */
function writeMethods(writer: Database.Database) {
  const control = new Map<string, Database.Statement>();
  const connection: CommitConnection = {
    run(sql) {
      let statement = control.get(sql);
      if (statement === undefined) {
        statement = writer.prepare(sql);
        control.set(sql, statement);
      }
      statement.run([]);
    },
    get inTransaction() {
      return writer.inTransaction;
    },
  };
  const group = new GroupCommit(connection);
  return {
    prepareWrite(sql: string): WriteStatement {
      const statement = writer.prepare(sql);
      // raw() is for statements that yield rows (SELECT, or RETURNING).
      if (statement.reader) statement.raw(true);
      return {
        // One array argument binds positionally (spread, a lone Uint8Array
        // would be taken for named parameters).
        all: (args) => statement.all(args) as unknown[][],
        get: (args) => statement.get(args) as unknown[] | undefined,
        run: (args) => {
          statement.run(args);
        },
      };
    },
    write<T>(work: WriteWork<T>, bytes: number): Promise<T> {
      return group.submit(work, bytes);
    },
    alone<T>(work: (connection: AloneConnection) => T): T {
      group.flush();
      if (writer.inTransaction) {
        throw new InternalError('The writer connection is inside a transaction');
      }
      return work({
        run(sql, args = []) {
          writer.prepare(sql).run([...args]);
        },
        all(sql, args = []) {
          return writer
            .prepare(sql)
            .raw(true)
            .all([...args]) as unknown[][];
        },
        get inTransaction() {
          return writer.inTransaction;
        },
      });
    },
    close(): void {
      if (!writer.open) return;
      group.close();
      writer.close();
    },
  };
}

/** Pragmas, migrations, then the handle; closes the client if any step fails. */
async function finishOpening(
  client: Client,
  path: string,
  pragmas: readonly Pragma[],
  afterMigrations: () => void,
): Promise<Omit<SqliteDatabase, 'prepareWrite' | 'write' | 'alone'>> {
  const db = drizzle({ client, schema });
  try {
    await applyPragmas(client, path, pragmas);
    await migrateWithRetry(db);
    afterMigrations();
  } catch (err) {
    client.close();
    throw err;
  }
  let isClosed = false;
  return {
    db,
    path,
    prepareRead(sql) {
      return {
        async get(args) {
          const result = await client.execute({ sql, args: [...args] });
          const row = result.rows[0];
          return row === undefined ? undefined : (Array.from(row) as unknown[]);
        },
      };
    },
    close() {
      if (!isClosed) {
        isClosed = true;
        client.close();
      }
      return Promise.resolve();
    },
  };
}

/**
 * Creates the directory (0700) if missing and the file (0600) if missing, so
 * the file is never readable by others, not even for a moment. An existing
 * directory keeps its mode: it may be shared (a path under /tmp, say).
 */
function prepareFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: DIR_MODE });
  closeSync(openSync(path, 'a', FILE_MODE));
  chmodSync(path, FILE_MODE);
}

/** The file, its WAL and its shared-memory index: readable by the owner only. */
function restrictModes(path: string): void {
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    if (existsSync(file)) chmodSync(file, FILE_MODE);
  }
}

async function applyPragmas(
  client: Client,
  path: string,
  pragmas: readonly Pragma[],
): Promise<void> {
  for (const pragma of pragmas) {
    await retryWhileBusy(() => client.execute(pragma.set));
    const result = await retryWhileBusy(() => client.execute(`PRAGMA ${pragma.name}`));
    const got = result.rows[0]?.[0];
    if (got !== pragma.want) {
      throw new InternalError(
        `Cannot set "${pragma.name}" to ${JSON.stringify(pragma.want)} on "${path}": it is ${JSON.stringify(got)}`,
      );
    }
  }
}

/**
 * Retries a statement that SQLite refused with SQLITE_BUSY. Switching the
 * journal to WAL needs an exclusive lock, and SQLite answers BUSY at once
 * (without its busy handler) when two processes open a fresh file together.
 */
async function retryWhileBusy<T>(run: () => Promise<T>, deadlineMs = 10_000): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== 'SQLITE_BUSY' || Date.now() > deadline) {
        throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(10 * attempt, 200)));
    }
  }
}

async function migrateWithRetry(db: SqliteDb): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
      return;
    } catch (err) {
      if (attempt >= MIGRATE_ATTEMPTS) {
        throw new InternalError(`Cannot apply the database migrations in "${MIGRATIONS_FOLDER}"`, {
          cause: err,
        });
      }
    }
  }
}

/** The first 16 bytes of every SQLite database file. */
const SQLITE_FILE_MAGIC = 'SQLite format 3\0';

/**
 * Opens a database file that is to replace the live one (the body of a
 * snapshot): refuses one SQLite cannot read whole (`PRAGMA quick_check`)
 * before anything writes to it, then opens it like any database file, which
 * brings its schema up to this Nexus's migrations. `SnapshotInvalidError`
 * when it is not a readable SQLite database.
 */
export async function openRestoreCandidate(path: string): Promise<SqliteDatabase> {
  const magic = new Uint8Array(SQLITE_FILE_MAGIC.length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, magic, 0, magic.length, 0);
  } finally {
    closeSync(fd);
  }
  if (new TextDecoder().decode(magic) !== SQLITE_FILE_MAGIC) {
    throw new SnapshotInvalidError('The snapshot does not hold a SQLite database');
  }
  let check: Database.Database | undefined;
  let problems: unknown[][];
  try {
    check = new Database(path, { readonly: true });
    problems = check.prepare('PRAGMA quick_check').raw(true).all() as unknown[][];
  } catch (err) {
    throw new SnapshotInvalidError('SQLite cannot read the database in the snapshot', {
      cause: err,
    });
  } finally {
    if (check?.open) check.close();
  }
  if (problems.length !== 1 || problems[0]?.[0] !== 'ok') {
    throw new SnapshotInvalidError(
      `The database in the snapshot fails SQLite's integrity check (${problems.length} problems)`,
    );
  }
  return openSqliteDatabase({ path, synchronous: 'normal' });
}

/** How many migrations this Nexus knows (a database that applied more is newer than it). */
export function knownMigrationCount(): number {
  const journal = JSON.parse(
    readFileSync(join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8'),
  ) as { entries?: unknown };
  if (!Array.isArray(journal.entries)) {
    throw new InternalError(`The migrations journal in "${MIGRATIONS_FOLDER}" has no entries`);
  }
  return journal.entries.length;
}
