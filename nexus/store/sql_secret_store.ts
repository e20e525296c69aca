/**
 * SecretStore on SQLite (drizzle + libsql): KV v2 semantics over encrypted
 * rows. The `memory` backend is this same class on an in-memory database
 * (`memory_secret_store.ts`), so there is one implementation of the rules.
 *
 * Atomicity. The client has one connection, so an interactive transaction
 * would hold it across awaits and block every other call. Each write is
 * therefore one `db.batch([...])`: a single transaction that runs to COMMIT
 * without yielding, so a crash leaves all of it or none of it, and
 * `synchronous = FULL` makes it durable once acknowledged.
 *
 * Concurrency. Data is encrypted before the batch, bound to the version it
 * will have, so a write first reads the current version. The batch then
 * claims the next number with a conditional statement (UPDATE ... WHERE
 * current_version = <read>, or INSERT of a new path ON CONFLICT DO NOTHING)
 * and every other statement depends only on the state the claim leaves, so
 * a lost claim changes nothing. Whether the claim won is read from its
 * RETURNING rows (never `rowsAffected`). A writer without check-and-set then
 * retries; one with check-and-set gets ConflictError. Of two writers with the
 * same `cas`, exactly one wins.
 *
 * Invariants the statements keep: a path has a `secret_metadata` row exactly
 * when it has version rows; its versions are the contiguous range
 * oldest..current (pruning removes from the bottom, destroy keeps the row);
 * and at most `cap` of them are kept, where cap = the path's override or the
 * store's default. Pruning is written as a function of the metadata row, so
 * running it is always correct, whoever's write it follows.
 *
 * Listing shows every path that has metadata, as Vault does: a path whose
 * versions are all deleted or destroyed is still listed until `deletePath`.
 */
import {
  and,
  asc,
  eq,
  gt,
  gte,
  inArray,
  isNotNull,
  isNull,
  lt,
  or,
  type SQL,
  sql,
} from 'drizzle-orm';
import {
  parseSecretPath,
  parseSecretPrefix,
  type SecretPath,
} from '../../shared/api/secret_path.ts';
import {
  ConflictError,
  InternalError,
  InvalidRequestError,
  NotFoundError,
} from '../../shared/errors/errors.ts';
import type { SqliteDatabase, SqliteDb } from './db.ts';
import { type SecretMetadataRow, secretMetadata, secrets } from './schema.ts';
import {
  openCustomMetadata,
  openSecretData,
  sealCustomMetadata,
  sealSecretData,
} from './secret_cipher.ts';
import {
  checkCustomMetadata,
  checkMaxVersions,
  checkSecretData,
  MAX_VERSIONS_PER_REQUEST,
} from './secret_limits.ts';
import type {
  ListOptions,
  ListPage,
  MetadataUpdate,
  PutOptions,
  SecretData,
  SecretMetadata,
  SecretStore,
  SecretVersion,
  VersionInfo,
} from './secret_store.ts';

/**
 * Lends the data key to `use` while Nexus is unsealed; throws NotReadyError
 * while sealed. `rootKey.withKeyring.bind(rootKey)` in production.
 */
export type KeyringAccess = <T>(use: (key: Uint8Array) => T) => T;

export interface SqlSecretStoreOptions {
  readonly database: SqliteDatabase;
  readonly keyring: KeyringAccess;
  /** The cap on kept versions of paths without their own (1..1000). */
  readonly maxVersionsDefault: number;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  readonly now?: () => number;
  /**
   * Whether `close()` closes the database too. Default false: the database
   * is usually shared with other stores, and its opener closes it.
   */
  readonly ownsDatabase?: boolean;
}

/** Page sizes `list` accepts. */
export const MAX_LIST_LIMIT = 1000;
/**
 * Attempts of a write without check-and-set before giving up with
 * ConflictError. Each lost attempt means another write to the same path
 * committed meanwhile, so this bounds only a pathological stampede.
 */
const MAX_PUT_ATTEMPTS = 64;

/** The columns of a version row that are not its data. */
const VERSION_COLUMNS = {
  version: secrets.version,
  createdAtMs: secrets.createdAtMs,
  deletedAtMs: secrets.deletedAtMs,
  destroyed: secrets.destroyed,
} as const;

interface VersionRow {
  readonly version: number;
  readonly createdAtMs: number;
  readonly deletedAtMs: number | null;
  readonly destroyed: boolean;
}

interface PathState {
  readonly row: SecretMetadataRow;
  readonly versions: readonly VersionRow[];
}

type VersionChange = 'delete' | 'undelete' | 'destroy';

export class SqlSecretStore implements SecretStore {
  readonly #database: SqliteDatabase;
  readonly #keyring: KeyringAccess;
  readonly #maxVersionsDefault: number;
  readonly #now: () => number;
  readonly #ownsDatabase: boolean;
  #isClosed = false;

  constructor(options: SqlSecretStoreOptions) {
    const { database, keyring, maxVersionsDefault, now = Date.now, ownsDatabase = false } = options;
    if (typeof keyring !== 'function') {
      throw new TypeError('The keyring option must be a function lending the data key');
    }
    checkMaxVersions(maxVersionsDefault, 'maxVersionsDefault');
    this.#database = database;
    this.#keyring = keyring;
    this.#maxVersionsDefault = maxVersionsDefault;
    this.#now = now;
    this.#ownsDatabase = ownsDatabase;
  }

  async put(path: SecretPath, data: SecretData, options: PutOptions = {}): Promise<SecretMetadata> {
    checkPath(path);
    checkSecretData(data);
    const { cas } = options;
    if (cas !== undefined) checkVersionNumber(cas, 'cas');
    this.#requireUnsealed();
    const db = this.#db();
    for (let attempt = 1; attempt <= MAX_PUT_ATTEMPTS; attempt++) {
      const [current] = await db
        .select({ version: secretMetadata.currentVersion })
        .from(secretMetadata)
        .where(eq(secretMetadata.path, path));
      const currentVersion = current?.version ?? 0;
      if (cas !== undefined && cas !== currentVersion) {
        throw casConflict(cas, currentVersion);
      }
      const version = currentVersion + 1;
      const ciphertext = this.#keyring((key) => sealSecretData(key, path, version, data));
      const nowMs = this.#nowMs();
      const claim =
        current === undefined
          ? db
              .insert(secretMetadata)
              .values({
                path,
                createdAtMs: nowMs,
                updatedAtMs: nowMs,
                currentVersion: version,
                oldestVersion: version,
                maxVersions: null,
                customMetadata: null,
              })
              .onConflictDoNothing()
              .returning({ path: secretMetadata.path })
          : db
              .update(secretMetadata)
              .set({ currentVersion: version, updatedAtMs: nowMs })
              .where(
                and(
                  eq(secretMetadata.path, path),
                  eq(secretMetadata.currentVersion, currentVersion),
                ),
              )
              .returning({ path: secretMetadata.path });
      // Inserts exactly when the path's current version is now `version` and
      // no row holds it yet: after a won claim always, after a lost one never
      // (whoever moved current to `version` wrote its row in the same batch).
      const insertVersion = db
        .insert(secrets)
        .select(
          db
            .select({
              path: secretMetadata.path,
              version: secretMetadata.currentVersion,
              createdAtMs: sql<number>`${nowMs}`.as('created_at_ms'),
              deletedAtMs: sql<number | null>`NULL`.as('deleted_at_ms'),
              destroyed: sql<boolean>`0`.as('destroyed'),
              ciphertext: sql<Uint8Array>`${ciphertext}`.as('ciphertext'),
            })
            .from(secretMetadata)
            .where(and(eq(secretMetadata.path, path), eq(secretMetadata.currentVersion, version))),
        )
        .onConflictDoNothing();
      const [claimed, , , , metadataRows, versionRows] = await db.batch([
        claim,
        insertVersion,
        this.#pruneStatement(db, path),
        this.#raiseOldestStatement(db, path),
        selectMetadata(db, path),
        selectVersions(db, path),
      ]);
      if (claimed.length === 1) {
        return this.#toMetadata(path, metadataRows[0], versionRows);
      }
      if (cas !== undefined) {
        // Another write won the race for the version `cas` expected to replace.
        throw casConflict(cas, metadataRows[0]?.currentVersion ?? 0);
      }
    }
    throw new ConflictError(
      `Too many concurrent writes to "${path}": gave up after ${MAX_PUT_ATTEMPTS} attempts`,
    );
  }

  async get(path: SecretPath, version?: number): Promise<SecretVersion> {
    checkPath(path);
    if (version !== undefined) checkVersionNumber(version, 'version');
    this.#requireUnsealed();
    const db = this.#db();
    const wanted =
      version === undefined || version === 0
        ? sql`(SELECT ${secretMetadata.currentVersion} FROM ${secretMetadata} WHERE ${secretMetadata.path} = ${path})`
        : sql`${version}`;
    const [metadataRows, rows] = await db.batch([
      selectMetadata(db, path),
      db
        .select({ ...VERSION_COLUMNS, ciphertext: secrets.ciphertext })
        .from(secrets)
        .where(and(eq(secrets.path, path), sql`${secrets.version} = ${wanted}`)),
    ]);
    const metadata = metadataRows[0];
    if (metadata === undefined) {
      throw missingPath(path);
    }
    const number = version === undefined || version === 0 ? metadata.currentVersion : version;
    const row = rows[0];
    if (row === undefined) {
      throw this.#missingVersion(path, number, metadata);
    }
    if (row.destroyed || row.ciphertext === null) {
      throw new NotFoundError(`Version ${number} of "${path}" is destroyed`);
    }
    if (row.deletedAtMs !== null) {
      throw new NotFoundError(`Version ${number} of "${path}" is deleted`);
    }
    const sealed = row.ciphertext;
    const data = this.#keyring((key) => openSecretData(key, path, number, sealed));
    return Object.freeze({ path, version: number, data, createdAt: new Date(row.createdAtMs) });
  }

  async list(prefix: string, options: ListOptions): Promise<ListPage> {
    const checkedPrefix = parseSecretPrefix(prefix);
    const { limit, after } = options;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new InvalidRequestError(
        `A list limit must be an integer from 1 to ${MAX_LIST_LIMIT} (got ${String(limit)})`,
      );
    }
    if (after !== undefined) checkPath(after);
    this.#requireUnsealed();
    const conditions: SQL[] = [];
    const under = prefixCondition(checkedPrefix);
    if (under !== undefined) conditions.push(under);
    if (after !== undefined) conditions.push(gt(secretMetadata.path, after));
    const rows = await this.#db()
      .select({ path: secretMetadata.path })
      .from(secretMetadata)
      .where(and(...conditions))
      .orderBy(asc(secretMetadata.path))
      .limit(limit + 1);
    const paths = rows.slice(0, limit).map((row) => row.path as SecretPath);
    const last = paths[paths.length - 1];
    return rows.length > limit && last !== undefined
      ? Object.freeze({ paths: Object.freeze(paths), next: last })
      : Object.freeze({ paths: Object.freeze(paths) });
  }

  softDelete(path: SecretPath, versions?: readonly number[]): Promise<SecretMetadata> {
    return this.#changeVersions(path, versions, 'delete');
  }

  undelete(path: SecretPath, versions?: readonly number[]): Promise<SecretMetadata> {
    return this.#changeVersions(path, versions, 'undelete');
  }

  destroy(path: SecretPath, versions: readonly number[]): Promise<SecretMetadata> {
    return this.#changeVersions(path, versions, 'destroy');
  }

  async deletePath(path: SecretPath): Promise<void> {
    checkPath(path);
    this.#requireUnsealed();
    const db = this.#db();
    // Versions first, then the row they reference (the foreign key cascades
    // as well; explicit keeps the batch the same on every dialect).
    const [, deleted] = await db.batch([
      db.delete(secrets).where(eq(secrets.path, path)),
      db
        .delete(secretMetadata)
        .where(eq(secretMetadata.path, path))
        .returning({ path: secretMetadata.path }),
    ]);
    if (deleted.length === 0) {
      throw missingPath(path);
    }
  }

  async readMetadata(path: SecretPath): Promise<SecretMetadata> {
    checkPath(path);
    this.#requireUnsealed();
    const state = await this.#readState(path);
    return this.#toMetadata(path, state.row, state.versions);
  }

  async writeMetadata(path: SecretPath, update: MetadataUpdate): Promise<SecretMetadata> {
    checkPath(path);
    if (typeof update !== 'object' || update === null) {
      throw new InvalidRequestError('A metadata update must be an object');
    }
    const { maxVersions, customMetadata } = update;
    if (maxVersions !== undefined && maxVersions !== null) checkMaxVersions(maxVersions);
    if (customMetadata !== undefined) checkCustomMetadata(customMetadata);
    this.#requireUnsealed();
    if (maxVersions === undefined && customMetadata === undefined) {
      return this.readMetadata(path);
    }
    const sealed =
      customMetadata === undefined || Object.keys(customMetadata).length === 0
        ? null
        : this.#keyring((key) => sealCustomMetadata(key, path, customMetadata));
    const db = this.#db();
    const [updated, , , metadataRows, versionRows] = await db.batch([
      db
        .update(secretMetadata)
        .set({
          updatedAtMs: this.#nowMs(),
          ...(maxVersions === undefined ? {} : { maxVersions }),
          ...(customMetadata === undefined ? {} : { customMetadata: sealed }),
        })
        .where(eq(secretMetadata.path, path))
        .returning({ path: secretMetadata.path }),
      // A lower cap prunes at once.
      this.#pruneStatement(db, path),
      this.#raiseOldestStatement(db, path),
      selectMetadata(db, path),
      selectVersions(db, path),
    ]);
    if (updated.length === 0) {
      throw missingPath(path);
    }
    return this.#toMetadata(path, metadataRows[0], versionRows);
  }

  /** Stops using the store; closes the database only if the store owns it. */
  async close(): Promise<void> {
    this.#isClosed = true;
    if (this.#ownsDatabase) {
      await this.#database.close();
    }
  }

  async #changeVersions(
    path: SecretPath,
    versions: readonly number[] | undefined,
    change: VersionChange,
  ): Promise<SecretMetadata> {
    checkPath(path);
    const requested = checkVersionList(versions, change === 'destroy');
    this.#requireUnsealed();
    const state = await this.#readState(path);
    const current = state.row.currentVersion;
    const targets = [...new Set((requested ?? [current]).map((v) => (v === 0 ? current : v)))];
    const byNumber = new Map(state.versions.map((row) => [row.version, row]));
    for (const version of targets) {
      if (!byNumber.has(version)) {
        throw this.#missingVersion(path, version, state.row);
      }
    }
    const changing = targets.filter((version) =>
      isChanged(byNumber.get(version) as VersionRow, change),
    );
    if (changing.length === 0) {
      return this.#toMetadata(path, state.row, state.versions);
    }
    const db = this.#db();
    const nowMs = this.#nowMs();
    const rows = and(eq(secrets.path, path), inArray(secrets.version, changing));
    const statement =
      change === 'delete'
        ? db
            .update(secrets)
            .set({ deletedAtMs: nowMs })
            .where(and(rows, isNull(secrets.deletedAtMs)))
        : change === 'undelete'
          ? db
              .update(secrets)
              .set({ deletedAtMs: null })
              .where(and(rows, isNotNull(secrets.deletedAtMs), eq(secrets.destroyed, false)))
          : db
              .update(secrets)
              .set({ destroyed: true, ciphertext: null })
              .where(and(rows, eq(secrets.destroyed, false)));
    const [, , metadataRows, versionRows] = await db.batch([
      statement,
      db.update(secretMetadata).set({ updatedAtMs: nowMs }).where(eq(secretMetadata.path, path)),
      selectMetadata(db, path),
      selectVersions(db, path),
    ]);
    const row = metadataRows[0];
    if (row === undefined) {
      // The path was deleted between the read and this write.
      throw missingPath(path);
    }
    return this.#toMetadata(path, row, versionRows);
  }

  /** The path's metadata row and version rows, read in one transaction. */
  async #readState(path: SecretPath): Promise<PathState> {
    const db = this.#db();
    const [metadataRows, versions] = await db.batch([
      selectMetadata(db, path),
      selectVersions(db, path),
    ]);
    const row = metadataRows[0];
    if (row === undefined) {
      throw missingPath(path);
    }
    return { row, versions };
  }

  /** Removes the versions below the path's cap (a no-op when none are). */
  #pruneStatement(db: SqliteDb, path: SecretPath) {
    return db
      .delete(secrets)
      .where(
        and(
          eq(secrets.path, path),
          sql`${secrets.version} < (SELECT ${this.#keptFrom()} FROM ${secretMetadata} WHERE ${secretMetadata.path} = ${path})`,
        ),
      );
  }

  /** Moves `oldest_version` up to the first version the cap keeps. */
  #raiseOldestStatement(db: SqliteDb, path: SecretPath) {
    const keptFrom = this.#keptFrom();
    return db
      .update(secretMetadata)
      .set({
        oldestVersion: sql`CASE WHEN ${secretMetadata.oldestVersion} < ${keptFrom} THEN ${keptFrom} ELSE ${secretMetadata.oldestVersion} END`,
      })
      .where(eq(secretMetadata.path, path));
  }

  /** The lowest version the cap keeps, in terms of the metadata row. */
  #keptFrom(): SQL {
    return sql`(${secretMetadata.currentVersion} - COALESCE(${secretMetadata.maxVersions}, ${this.#maxVersionsDefault}) + 1)`;
  }

  #toMetadata(
    path: SecretPath,
    row: SecretMetadataRow | undefined,
    versionRows: readonly VersionRow[],
  ): SecretMetadata {
    if (row === undefined) {
      throw new InternalError(`The metadata of "${path}" vanished inside a transaction`);
    }
    const sealed = row.customMetadata;
    const customMetadata =
      sealed === null
        ? Object.freeze({})
        : this.#keyring((key) => openCustomMetadata(key, path, sealed));
    const versions: VersionInfo[] = versionRows.map((version) =>
      Object.freeze({
        version: version.version,
        createdAt: new Date(version.createdAtMs),
        deletedAt: version.deletedAtMs === null ? null : new Date(version.deletedAtMs),
        destroyed: version.destroyed,
      }),
    );
    return Object.freeze({
      path,
      createdAt: new Date(row.createdAtMs),
      updatedAt: new Date(row.updatedAtMs),
      currentVersion: row.currentVersion,
      oldestVersion: row.oldestVersion,
      maxVersions: row.maxVersions ?? this.#maxVersionsDefault,
      maxVersionsOverride: row.maxVersions,
      versions: Object.freeze(versions),
      customMetadata,
    });
  }

  #missingVersion(path: SecretPath, version: number, row: SecretMetadataRow): NotFoundError {
    if (version < row.oldestVersion) {
      return new NotFoundError(
        `Version ${version} of "${path}" was removed: only the newest ${row.maxVersions ?? this.#maxVersionsDefault} versions are kept`,
      );
    }
    return new NotFoundError(`Version ${version} of "${path}" does not exist`);
  }

  /** Throws NotReadyError while sealed, before anything is read or written. */
  #requireUnsealed(): void {
    this.#keyring(() => undefined);
  }

  #nowMs(): number {
    const nowMs = this.#now();
    if (!Number.isSafeInteger(nowMs) || nowMs < 0) {
      throw new InternalError(`The clock returned an invalid time: ${String(nowMs)}`);
    }
    return nowMs;
  }

  #db(): SqliteDb {
    if (this.#isClosed) throw new InternalError('The secret store is closed');
    return this.#database.db;
  }
}

/** Whether `change` would alter the version `row`. */
function isChanged(row: VersionRow, change: VersionChange): boolean {
  switch (change) {
    case 'delete':
      return row.deletedAtMs === null;
    case 'undelete':
      // A destroyed version has no data to come back to.
      return row.deletedAtMs !== null && !row.destroyed;
    case 'destroy':
      return !row.destroyed;
  }
}

function selectMetadata(db: SqliteDb, path: SecretPath) {
  return db.select().from(secretMetadata).where(eq(secretMetadata.path, path));
}

function selectVersions(db: SqliteDb, path: SecretPath) {
  return db
    .select(VERSION_COLUMNS)
    .from(secrets)
    .where(eq(secrets.path, path))
    .orderBy(asc(secrets.version));
}

/**
 * Paths under a checked prefix, by segments: `app/` matches `app/x` and
 * `app/y/z`; `app` matches `app` itself too, never `apple`. Written as byte
 * ranges (`'/' + 1` is `'0'`), so no LIKE pattern needs escaping.
 */
function prefixCondition(prefix: string): SQL | undefined {
  if (prefix === '') return undefined;
  const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const below = and(gte(secretMetadata.path, `${base}/`), lt(secretMetadata.path, `${base}0`));
  if (below === undefined) return undefined;
  return prefix.endsWith('/') ? below : or(eq(secretMetadata.path, base), below);
}

function checkPath(path: unknown): asserts path is SecretPath {
  // Typed callers pass parsed paths; re-checking is cheap and keeps a cast
  // string from reaching the database or an AAD.
  parseSecretPath(path);
}

/** A version number argument: an integer >= 0 (0 means the current version). */
function checkVersionNumber(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidRequestError(`${name} must be an integer >= 0 (got ${String(value)})`);
  }
}

/**
 * The versions of a delete, undelete or destroy: undefined or empty means the
 * current one, except for destroy, which must name its versions.
 */
function checkVersionList(
  versions: readonly number[] | undefined,
  isRequired: boolean,
): readonly number[] | undefined {
  if (versions === undefined || (Array.isArray(versions) && versions.length === 0)) {
    if (isRequired) {
      throw new InvalidRequestError('Name the versions to destroy');
    }
    return undefined;
  }
  if (!Array.isArray(versions)) {
    throw new InvalidRequestError('versions must be an array of version numbers');
  }
  if (versions.length > MAX_VERSIONS_PER_REQUEST) {
    throw new InvalidRequestError(
      `At most ${MAX_VERSIONS_PER_REQUEST} versions may be named at once (got ${versions.length})`,
    );
  }
  for (const version of versions) checkVersionNumber(version, 'A version');
  return versions;
}

function missingPath(path: SecretPath): NotFoundError {
  return new NotFoundError(`No secret at "${path}"`);
}

function casConflict(cas: number, current: number): ConflictError {
  return new ConflictError(
    cas === 0
      ? `Check-and-set failed: "cas: 0" requires that the secret does not exist, and it is at version ${current}`
      : current === 0
        ? `Check-and-set failed: expected version ${cas}, but the secret does not exist`
        : `Check-and-set failed: expected version ${cas}, but the current version is ${current}`,
  );
}
