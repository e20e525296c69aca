/**
 * SecretStore on SQLite (drizzle + libsql): KV v2 semantics over encrypted
 * rows. The `memory` backend is this same class on an in-memory database
 * (`openMemoryDatabase()`), so there is one implementation of the rules.
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
 * Quotas (`secret_quotas.ts`, ADR 0015). Every batch that adds or removes
 * charged bytes or paths also updates the namespace's `secret_quota_usage`
 * row, by an amount computed in SQL from the rows it is about to change, so
 * the counter is exact whatever ran before. A batch cannot abort itself on a
 * condition (RAISE works only in triggers), so the update that would take a
 * counter beyond its quota sets it to NULL instead: the NOT NULL constraint
 * fails, libsql rolls the whole batch back, and the store throws
 * QuotaExceededError. Only an increase is checked, so freeing never fails.
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
import type { SecretPath } from '../../../shared/api/secret_path.ts';
import {
  ConflictError,
  InternalError,
  type QuotaExceededError,
} from '../../../shared/errors/errors.ts';
import {
  casConflict,
  checkedNow,
  checkListArguments,
  checkListedPaths,
  checkMetadataUpdate,
  checkPath,
  checkStoreOptions,
  checkVersionList,
  checkVersionNumber,
  liveVersionConflict,
  metadataChanges,
  missingPath,
  missingVersion,
  openVersion,
  prefixRange,
  requireUnsealed,
  type SqlSecretStoreOptions,
  toListedPaths,
  toListPage,
  toMetadata,
  type VersionChange,
  type VersionRow,
  versionsToChange,
} from '../_secret_rules.ts';
import { type SealedRead, SealedRowCache } from '../sealed_row_cache.ts';
import { sealSecretData } from '../secret_cipher.ts';
import { checkSecretData } from '../secret_limits.ts';
import {
  DEFAULT_SECRET_QUOTAS,
  namespaceOf,
  quotaExceeded,
  quotaOf,
  ROW_CHARGE_BYTES,
  rowCharge,
  type SecretQuota,
  type SecretQuotas,
} from '../secret_quotas.ts';
import type {
  DeletePathOptions,
  KeyringAccess,
  ListOptions,
  ListPage,
  MetadataUpdate,
  PutOptions,
  SecretData,
  SecretMetadata,
  SecretStore,
  SecretVersion,
} from '../secret_store.ts';
import type { PreparedRead, SqliteDatabase, SqliteDb } from './db.ts';
import { type SecretMetadataRow, secretMetadata, secretQuotaUsage, secrets } from './schema.ts';

export type SqliteSecretStoreOptions = SqlSecretStoreOptions<SqliteDatabase> & {
  /**
   * The cache of sealed rows that `get()` reads through (`sealed_row_cache.ts`),
   * shared by every store on this database in this process. Default: none.
   */
  readonly cache?: SealedRowCache;
};

/** The cache of a store built without one: holds nothing. */
const NO_CACHE = new SealedRowCache({ maxEntries: 0, maxBytes: 0 });

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

interface PathState {
  readonly row: SecretMetadataRow;
  readonly versions: readonly VersionRow[];
}

export class SqliteSecretStore implements SecretStore {
  readonly #database: SqliteDatabase;
  readonly #keyring: KeyringAccess;
  readonly #maxVersionsDefault: number;
  readonly #quotas: SecretQuotas;
  readonly #now: () => number;
  readonly #ownsDatabase: boolean;
  readonly #cache: SealedRowCache;
  #isClosed = false;
  #readVersionStatement: PreparedRead | undefined;

  constructor(options: SqliteSecretStoreOptions) {
    checkStoreOptions(options);
    const {
      database,
      keyring,
      maxVersionsDefault,
      quotas = DEFAULT_SECRET_QUOTAS,
      now = Date.now,
      ownsDatabase = false,
      cache = NO_CACHE,
    } = options;
    this.#database = database;
    this.#cache = cache;
    this.#keyring = keyring;
    this.#maxVersionsDefault = maxVersionsDefault;
    this.#quotas = quotas;
    this.#now = now;
    this.#ownsDatabase = ownsDatabase;
  }

  async put(path: SecretPath, data: SecretData, options: PutOptions = {}): Promise<SecretMetadata> {
    checkPath(path);
    checkSecretData(data);
    const { cas } = options;
    if (cas !== undefined) checkVersionNumber(cas, 'cas');
    requireUnsealed(this.#keyring);
    const db = this.#db();
    const namespace = namespaceOf(path);
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
      // Charged exactly when the claim was won: the current version is now
      // `version` and its row is not written yet. A new path's metadata row
      // is charged too; the versions the cap is about to prune are refunded.
      const added = ciphertext.length + rowCharge(path) * (current === undefined ? 2 : 1);
      const charge = this.#chargeStatement(db, namespace, {
        paths: current === undefined ? 1 : 0,
        bytes: sql`${added} - ${this.#prunedBytes(path, this.#keptFrom())}`,
        onlyIf: and(
          sql`EXISTS (SELECT 1 FROM ${secretMetadata} WHERE ${secretMetadata.path} = ${path} AND ${secretMetadata.currentVersion} = ${version})`,
          sql`NOT EXISTS (SELECT 1 FROM ${secrets} WHERE ${secrets.path} = ${path} AND ${secrets.version} = ${version})`,
        ),
      });
      const [claimed, , , , , , metadataRows, versionRows] = await this.#batch(namespace, [
        claim,
        ensureUsageRow(db, namespace),
        charge,
        insertVersion,
        this.#pruneStatement(db, path),
        this.#raiseOldestStatement(db, path),
        selectMetadata(db, path),
        selectVersions(db, path),
      ]);
      if (claimed.length === 1) {
        this.#cache.changed(path);
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
    requireUnsealed(this.#keyring);
    const wanted = version === 0 ? undefined : version;
    const found = await this.#cache.read(path, wanted, () => this.#queryVersion(path, wanted));
    if (found === undefined) {
      throw missingPath(path);
    }
    const { metadata, row } = found;
    const number = wanted ?? metadata.currentVersion;
    if (row === undefined) {
      throw missingVersion(path, number, metadata, this.#maxVersionsDefault);
    }
    return openVersion(path, number, row, this.#keyring);
  }

  async list(prefix: string, options: ListOptions): Promise<ListPage> {
    const { prefix: checkedPrefix, limit, after } = checkListArguments(prefix, options);
    requireUnsealed(this.#keyring);
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
    return toListPage(rows, limit);
  }

  async listExisting(paths: readonly SecretPath[]): Promise<readonly SecretPath[]> {
    const wanted = checkListedPaths(paths);
    requireUnsealed(this.#keyring);
    if (wanted.length === 0) return toListedPaths([]);
    const rows = await this.#db()
      .select({ path: secretMetadata.path })
      .from(secretMetadata)
      .where(inArray(secretMetadata.path, wanted))
      .orderBy(asc(secretMetadata.path));
    return toListedPaths(rows);
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

  async deletePath(path: SecretPath, options: DeletePathOptions = {}): Promise<void> {
    checkPath(path);
    requireUnsealed(this.#keyring);
    const db = this.#db();
    const namespace = namespaceOf(path);
    // With onlyDeleted, every statement also requires that no version is
    // live. The version rows are deleted only when it holds, so it still
    // reads the same in the last statement: all three act, or none does.
    const noLiveVersion =
      options.onlyDeleted === true
        ? sql`NOT EXISTS (SELECT 1 FROM ${secrets} WHERE ${secrets.path} = ${path} AND ${secrets.deletedAtMs} IS NULL AND ${secrets.destroyed} = 0)`
        : sql`1 = 1`;
    // The refund first, computed from the rows about to go; then the versions,
    // then the row they reference (the foreign key cascades as well; explicit
    // keeps the batch the same on every dialect).
    const [, , deleted] = await this.#batch(namespace, [
      this.#chargeStatement(db, namespace, {
        paths: -1,
        bytes: sql`0 - ${this.#prunedBytes(path)} - (SELECT ${ROW_CHARGE_BYTES} + length(${secretMetadata.path}) + coalesce(length(${secretMetadata.customMetadata}), 0) FROM ${secretMetadata} WHERE ${secretMetadata.path} = ${path})`,
        onlyIf: sql`EXISTS (SELECT 1 FROM ${secretMetadata} WHERE ${secretMetadata.path} = ${path}) AND ${noLiveVersion}`,
      }),
      db.delete(secrets).where(and(eq(secrets.path, path), noLiveVersion)),
      db
        .delete(secretMetadata)
        .where(and(eq(secretMetadata.path, path), noLiveVersion))
        .returning({ path: secretMetadata.path }),
    ]);
    this.#cache.changed(path);
    if (deleted.length === 0) {
      const [kept] = await db
        .select({ path: secretMetadata.path })
        .from(secretMetadata)
        .where(eq(secretMetadata.path, path));
      throw kept === undefined ? missingPath(path) : liveVersionConflict(path);
    }
  }

  async readMetadata(path: SecretPath): Promise<SecretMetadata> {
    checkPath(path);
    requireUnsealed(this.#keyring);
    const state = await this.#readState(path);
    return this.#toMetadata(path, state.row, state.versions);
  }

  async writeMetadata(path: SecretPath, update: MetadataUpdate): Promise<SecretMetadata> {
    checkPath(path);
    checkMetadataUpdate(update);
    requireUnsealed(this.#keyring);
    if (update.maxVersions === undefined && update.customMetadata === undefined) {
      return this.readMetadata(path);
    }
    const db = this.#db();
    const changes = metadataChanges(path, update, this.#nowMs(), this.#keyring);
    const namespace = namespaceOf(path);
    const row = (column: SQL) =>
      sql`(SELECT ${column} FROM ${secretMetadata} WHERE ${secretMetadata.path} = ${path})`;
    // Computed from the row before the update: the custom metadata's change
    // in size, less what the (possibly new) cap is about to prune.
    const cap =
      update.maxVersions === undefined
        ? sql`coalesce(${secretMetadata.maxVersions}, ${this.#maxVersionsDefault})`
        : sql`${update.maxVersions ?? this.#maxVersionsDefault}`;
    const customChange =
      changes.customMetadata === undefined
        ? sql`0`
        : sql`${changes.customMetadata?.length ?? 0} - ${row(sql`coalesce(length(${secretMetadata.customMetadata}), 0)`)}`;
    const [, updated, , , metadataRows, versionRows] = await this.#batch(namespace, [
      this.#chargeStatement(db, namespace, {
        paths: 0,
        bytes: sql`${customChange} - ${this.#prunedBytes(path, this.#keptFrom(cap))}`,
        onlyIf: sql`EXISTS (SELECT 1 FROM ${secretMetadata} WHERE ${secretMetadata.path} = ${path})`,
      }),
      db
        .update(secretMetadata)
        .set(changes)
        .where(eq(secretMetadata.path, path))
        .returning({ path: secretMetadata.path }),
      // A lower cap prunes at once.
      this.#pruneStatement(db, path),
      this.#raiseOldestStatement(db, path),
      selectMetadata(db, path),
      selectVersions(db, path),
    ]);
    this.#cache.changed(path);
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
    requireUnsealed(this.#keyring);
    const state = await this.#readState(path);
    const changing = versionsToChange(path, requested, change, state, this.#maxVersionsDefault);
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
    const touch = db
      .update(secretMetadata)
      .set({ updatedAtMs: nowMs })
      .where(eq(secretMetadata.path, path));
    const reads = [selectMetadata(db, path), selectVersions(db, path)] as const;
    let metadataRows: SecretMetadataRow[];
    let versionRows: VersionRow[];
    if (change === 'destroy') {
      // Destroy refunds the sealed data it clears (the rows and their paths stay).
      const namespace = namespaceOf(path);
      [, , , metadataRows, versionRows] = await this.#batch(namespace, [
        this.#chargeStatement(db, namespace, {
          paths: 0,
          bytes: sql`0 - (SELECT coalesce(sum(length(${secrets.ciphertext})), 0) FROM ${secrets} WHERE ${and(rows, eq(secrets.destroyed, false))})`,
          onlyIf: undefined,
        }),
        statement,
        touch,
        ...reads,
      ]);
    } else {
      [, , metadataRows, versionRows] = await db.batch([statement, touch, ...reads]);
    }
    this.#cache.changed(path);
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

  /** The lowest version the cap (default: the row's own) keeps, in terms of the metadata row. */
  #keptFrom(
    cap: SQL = sql`COALESCE(${secretMetadata.maxVersions}, ${this.#maxVersionsDefault})`,
  ): SQL {
    return sql`(${secretMetadata.currentVersion} - ${cap} + 1)`;
  }

  /**
   * What the version rows of `path` below `keptFrom` (all of them without it)
   * are charged: each its row and its sealed data.
   */
  #prunedBytes(path: SecretPath, keptFrom?: SQL): SQL {
    const below =
      keptFrom === undefined
        ? sql``
        : sql` AND ${secrets.version} < (SELECT ${keptFrom} FROM ${secretMetadata} WHERE ${secretMetadata.path} = ${path})`;
    return sql`(SELECT coalesce(sum(${ROW_CHARGE_BYTES} + length(${secrets.path}) + coalesce(length(${secrets.ciphertext}), 0)), 0) FROM ${secrets} WHERE ${secrets.path} = ${path}${below})`;
  }

  /**
   * Adds `change` to the namespace's counter when `onlyIf` holds. An increase
   * beyond the namespace's quota writes NULL, which fails the batch (see
   * "Quotas" above); `#batch` turns that into QuotaExceededError.
   */
  #chargeStatement(
    db: SqliteDb,
    namespace: string,
    change: { readonly paths: number; readonly bytes: SQL; readonly onlyIf: SQL | undefined },
  ) {
    const quota = quotaOf(this.#quotas, namespace);
    return db
      .update(secretQuotaUsage)
      .set({
        paths: guardedSum(secretQuotaUsage.paths, sql`${change.paths}`, quota.paths),
        bytes: guardedSum(secretQuotaUsage.bytes, change.bytes, quota.bytes),
      })
      .where(and(eq(secretQuotaUsage.namespace, namespace), change.onlyIf));
  }

  /** Runs a batch whose charge may exceed the quota of `namespace`. */
  async #batch<T extends Parameters<SqliteDb['batch']>[0]>(namespace: string, statements: T) {
    try {
      return await this.#db().batch(statements);
    } catch (err) {
      throw quotaError(err, namespace, quotaOf(this.#quotas, namespace)) ?? err;
    }
  }

  #toMetadata(
    path: SecretPath,
    row: SecretMetadataRow | undefined,
    versionRows: readonly VersionRow[],
  ): SecretMetadata {
    return toMetadata(path, row, versionRows, {
      keyring: this.#keyring,
      maxVersionsDefault: this.#maxVersionsDefault,
    });
  }

  #nowMs(): number {
    return checkedNow(this.#now);
  }

  /** What `get()` finds in the database: the metadata row and the wanted version's row. */
  async #queryVersion(
    path: SecretPath,
    version: number | undefined,
  ): Promise<SealedRead | undefined> {
    const cells = await this.#readVersion().get([path, version ?? null]);
    return cells === undefined ? undefined : versionFromRow(path, cells);
  }

  /** The hot read of `get()`, compiled once (see "Hot reads" in db.ts). */
  #readVersion(): PreparedRead {
    if (this.#isClosed) throw new InternalError('The secret store is closed');
    this.#readVersionStatement ??= this.#database.prepareRead(READ_VERSION_SQL);
    return this.#readVersionStatement;
  }

  #db(): SqliteDb {
    if (this.#isClosed) throw new InternalError('The secret store is closed');
    return this.#database.db;
  }
}

/**
 * A path's metadata with one of its versions (?2, or the current one when
 * null) in one statement. The version columns are null when that version is
 * gone; no row at all means the path does not exist.
 */
const READ_VERSION_SQL = `
  SELECT m.created_at_ms, m.updated_at_ms, m.current_version, m.oldest_version,
         m.max_versions, m.custom_metadata,
         s.version, s.created_at_ms, s.deleted_at_ms, s.destroyed, s.ciphertext
  FROM secret_metadata AS m
  LEFT JOIN secrets AS s ON s.path = m.path AND s.version = coalesce(?2, m.current_version)
  WHERE m.path = ?1`;

const asBytes = (value: unknown): Uint8Array | null =>
  ArrayBuffer.isView(value)
    ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice()
    : value instanceof ArrayBuffer
      ? new Uint8Array(value.slice(0))
      : null;

/** One row of READ_VERSION_SQL as the metadata row and, if present, the version row. */
function versionFromRow(path: SecretPath, cells: readonly unknown[]) {
  const [
    created,
    updated,
    current,
    oldest,
    maxVersions,
    custom,
    version,
    at,
    deletedAt,
    gone,
    data,
  ] = cells;
  const metadata: SecretMetadataRow = {
    path,
    createdAtMs: Number(created),
    updatedAtMs: Number(updated),
    currentVersion: Number(current),
    oldestVersion: Number(oldest),
    maxVersions: maxVersions === null ? null : Number(maxVersions),
    customMetadata: asBytes(custom),
  };
  const row =
    version === null
      ? undefined
      : {
          version: Number(version),
          createdAtMs: Number(at),
          deletedAtMs: deletedAt === null ? null : Number(deletedAt),
          destroyed: Number(gone) !== 0,
          ciphertext: asBytes(data),
        };
  return { metadata, row };
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

/** Paths under a checked prefix (`prefixRange`), as a condition. */
function prefixCondition(prefix: string): SQL | undefined {
  const range = prefixRange(prefix);
  if (range === undefined) return undefined;
  const path = secretMetadata.path;
  const within = and(gte(path, range.exact ?? range.from), lt(path, range.below));
  if (range.exact === undefined) return within;
  return and(within, or(eq(path, range.exact), gte(path, range.from)));
}

/** Creates the namespace's counter row at zero, if it has none yet. */
function ensureUsageRow(db: SqliteDb, namespace: string) {
  return db
    .insert(secretQuotaUsage)
    .values({ namespace, paths: 0, bytes: 0 })
    .onConflictDoNothing({ target: secretQuotaUsage.namespace });
}

/**
 * `column + change`, or NULL when a positive change would take it beyond
 * `limit` (null: no limit). NULL fails the column's NOT NULL constraint.
 */
function guardedSum(
  column: typeof secretQuotaUsage.paths | typeof secretQuotaUsage.bytes,
  change: SQL,
  limit: number | null,
): SQL {
  if (limit === null) return sql`${column} + (${change})`;
  return sql`CASE WHEN (${change}) > 0 AND ${column} + (${change}) > ${limit} THEN NULL ELSE ${column} + (${change}) END`;
}

const QUOTA_VIOLATION_REGEXP = /NOT NULL constraint failed: secret_quota_usage\.(paths|bytes)/;

/** The QuotaExceededError a failed batch stands for, or undefined if it failed otherwise. */
function quotaError(
  err: unknown,
  namespace: string,
  quota: SecretQuota,
): QuotaExceededError | undefined {
  for (let cause = err; cause instanceof Error; cause = cause.cause) {
    const match = QUOTA_VIOLATION_REGEXP.exec(cause.message);
    if (match !== null) return quotaExceeded(namespace, match[1] as 'paths' | 'bytes', quota);
  }
  return undefined;
}
