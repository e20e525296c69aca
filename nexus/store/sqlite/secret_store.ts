/**
 * SecretStore on SQLite (drizzle + libsql): KV v2 semantics over encrypted
 * rows. The `memory` backend is this same class on an in-memory database
 * (`openMemoryDatabase()`), so there is one implementation of the rules.
 *
 * Writes (ADR 0019). Every write (put, soft delete, undelete, destroy,
 * deletePath, writeMetadata) is a synchronous function of statements
 * compiled once on the writer connection (the `*_SQL` constants below), run
 * by `database.write()`: the writes of one event-loop turn share one
 * transaction and one commit (one fsync), each in its own savepoint. Reads
 * (get, list, readMetadata) stay on the read connection and the client.
 *
 * Atomicity. A write's statements run in its savepoint: if any fails, or the
 * write throws (check-and-set, quota, not found), the savepoint is rolled
 * back and that write changed nothing, while the others of its transaction
 * go on. A write is acknowledged only after its transaction committed, so a
 * crash leaves each write all there or not at all, and `synchronous = FULL`
 * makes it durable once acknowledged. If the commit fails, every write of
 * the transaction fails.
 *
 * Concurrency. The transaction runs from BEGIN IMMEDIATE to COMMIT without
 * yielding, and holds SQLite's write lock, so a write reads the state that
 * every write before it left (in this transaction, earlier ones; in another
 * process, committed ones) and nothing changes it before the write is done:
 * writes behave as if run one after another, in the order they were made.
 * A put reads the path's current version inside its savepoint and writes the
 * next one: no write loses an update, no claim is lost, and of two writers
 * with the same `cas` exactly one wins, the other gets ConflictError.
 *
 * Sealing. A put seals its data inside its savepoint, once the version (to
 * which the ciphertext is bound) is known: exactly one seal per put, never
 * a wasted one when many writes to one path share a transaction. Custom
 * metadata is sealed in its write too. Sealing is synchronous, so the
 * transaction still never yields.
 *
 * Invariants every write keeps: a path has a `secret_metadata` row exactly
 * when it has version rows; its versions are the contiguous range
 * oldest..current (pruning removes from the bottom, destroy keeps the row);
 * and at most `cap` of them are kept, where cap = the path's override or the
 * store's default.
 *
 * Quotas (`secret_quotas.ts`, ADR 0015). Every write that adds or removes
 * charged bytes or paths adds its change to the namespace's
 * `secret_quota_usage` row in the same savepoint, computed from the rows it
 * changes (a pruned or deleted row's charge is returned by the DELETE
 * itself), so the counter stays exact. When an increase takes the counter
 * beyond the namespace's quota, the write throws QuotaExceededError and its
 * savepoint rolls back. Only an increase is checked, so freeing never fails.
 *
 * Listing shows every path that has metadata, as Vault does: a path whose
 * versions are all deleted or destroyed is still listed until `deletePath`.
 */
import { and, asc, eq, gt, gte, inArray, lt, or, type SQL, sql as sqlText } from 'drizzle-orm';
import { parseSecretPath, type SecretPath } from '../../../shared/api/secret_path.ts';
import { InternalError } from '../../../shared/errors/errors.ts';
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
  liveVersionOf,
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
import {
  addCount,
  checkSweepLimit,
  type KeyringSweepTarget,
  resealStep,
  type SweepPosition,
  type SweepStep,
} from '../keyring_sweep.ts';
import { NO_CACHE, type SealedRead, type SealedRowCache } from '../sealed_row_cache.ts';
import { SecretChanges } from '../secret_changes.ts';
import { resealCustomMetadata, resealSecretData, sealSecretData } from '../secret_cipher.ts';
import { checkSecretData } from '../secret_limits.ts';
import {
  DEFAULT_SECRET_QUOTAS,
  exceededLimit,
  namespaceOf,
  quotaExceeded,
  quotaOf,
  ROW_CHARGE_BYTES,
  rowCharge,
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
import type { PreparedRead, SqliteDatabase, SqliteDb, WriteStatement } from './db.ts';
import { type SecretMetadataRow, secretMetadata, secrets } from './schema.ts';

export type SqliteSecretStoreOptions = SqlSecretStoreOptions<SqliteDatabase> & {
  /**
   * The cache of sealed rows that `get()` reads through (`sealed_row_cache.ts`),
   * shared by every store on this database in this process. Default: none.
   */
  readonly cache?: SealedRowCache;
};

/** The columns of a version row that are not its data. */
const VERSION_COLUMNS = {
  version: secrets.version,
  createdAtMs: secrets.createdAtMs,
  deletedAtMs: secrets.deletedAtMs,
  destroyed: secrets.destroyed,
} as const;

/**
 * What a write that is not a put counts towards the bound of its
 * transaction (`write()`'s `bytes`): about a row.
 */
const SMALL_WRITE_BYTES = ROW_CHARGE_BYTES;

interface PathState {
  readonly row: SecretMetadataRow;
  readonly versions: readonly VersionRow[];
}

/** A path's row as a write reads it first; undefined when the path does not exist. */
interface PathHead {
  readonly currentVersion: number;
  readonly oldestVersion: number;
  readonly maxVersions: number | null;
  /** The sealed custom metadata's length (0 without). */
  readonly customBytes: number;
}

/** The write statements, compiled once per store on first use. */
type WriteStatements = { readonly [K in keyof typeof WRITE_SQL]: WriteStatement };

/** The sweep's tables, in the order a pass walks them. */
const SWEEP_VERSIONS = 'secrets';
const SWEEP_METADATA = 'secret_metadata';

export class SqliteSecretStore implements SecretStore, KeyringSweepTarget {
  readonly sweepName = 'secrets';
  readonly #database: SqliteDatabase;
  readonly #keyring: KeyringAccess;
  readonly #maxVersionsDefault: number;
  readonly #quotas: SecretQuotas;
  readonly #now: () => number;
  readonly #ownsDatabase: boolean;
  readonly #cache: SealedRowCache;
  readonly #changes: SecretChanges;
  #isClosed = false;
  #readVersionStatement: PreparedRead | undefined;
  #writeStatements: WriteStatements | undefined;

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
      changes = new SecretChanges(),
    } = options;
    this.#database = database;
    this.#cache = cache;
    this.#changes = changes;
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
    const state = await this.#write(
      path,
      () => {
        const sql = this.#statements();
        const head = this.#readHead(path);
        const currentVersion = head?.currentVersion ?? 0;
        if (cas !== undefined && cas !== currentVersion) {
          throw casConflict(cas, currentVersion);
        }
        const version = currentVersion + 1;
        // Sealed here, where the version it is bound to is certain (see "Sealing").
        const [ciphertext, term] = this.#keyring((key, keyTerm) => [
          sealSecretData(key, path, version, data),
          keyTerm,
        ]);
        const nowMs = this.#nowMs();
        if (head === undefined) sql.createPath.run([path, nowMs]);
        else sql.advancePath.run([path, version, nowMs]);
        sql.insertVersion.run([path, version, nowMs, ciphertext, term]);
        const cap = head?.maxVersions ?? this.#maxVersionsDefault;
        const pruned = this.#prune(path, version - cap + 1, head?.oldestVersion ?? 1);
        // A new path's metadata row is charged too.
        const added = ciphertext.length + rowCharge(path) * (head === undefined ? 2 : 1);
        this.#charge(path, head === undefined ? 1 : 0, added - pruned);
        return this.#readState(path);
      },
      dataBytes(data),
    );
    return this.#toMetadata(path, state.row, state.versions);
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

  async currentVersion(path: SecretPath): Promise<number> {
    checkPath(path);
    requireUnsealed(this.#keyring);
    const found = await this.#cache.read(path, undefined, () =>
      this.#queryVersion(path, undefined),
    );
    return liveVersionOf(found);
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
    await this.#write(
      path,
      () => {
        const sql = this.#statements();
        const head = this.#readHead(path);
        if (head === undefined) throw missingPath(path);
        // Checked in this savepoint, so a version written or undeleted
        // after the caller looked is seen here, and the path then kept.
        if (options.onlyDeleted === true && sql.findLiveVersion.get([path]) !== undefined) {
          throw liveVersionConflict(path);
        }
        // The versions first (the foreign key would cascade, but the DELETE
        // returns what each row was charged), then the row they reference.
        const versionBytes = this.#removeVersionsBelow(path, Number.MAX_SAFE_INTEGER);
        sql.deletePath.run([path]);
        this.#charge(path, -1, -(versionBytes + rowCharge(path) + head.customBytes));
      },
      SMALL_WRITE_BYTES,
    );
  }

  async readMetadata(path: SecretPath): Promise<SecretMetadata> {
    checkPath(path);
    requireUnsealed(this.#keyring);
    const state = await this.#readStoredState(path);
    return this.#toMetadata(path, state.row, state.versions);
  }

  async writeMetadata(path: SecretPath, update: MetadataUpdate): Promise<SecretMetadata> {
    checkPath(path);
    checkMetadataUpdate(update);
    requireUnsealed(this.#keyring);
    if (update.maxVersions === undefined && update.customMetadata === undefined) {
      return this.readMetadata(path);
    }
    const state = await this.#write(
      path,
      () => {
        const sql = this.#statements();
        const head = this.#readHead(path);
        if (head === undefined) throw missingPath(path);
        // Sealed and timed in the write, like a put's data.
        const changes = metadataChanges(path, update, this.#nowMs(), this.#keyring);
        const sealed = changes.customMetadata;
        sql.updateMetadata.run([
          path,
          changes.updatedAtMs,
          changes.maxVersions === undefined ? 0 : 1,
          changes.maxVersions ?? null,
          sealed === undefined ? 0 : 1,
          sealed ?? null,
          changes.metadataKeyTerm ?? 1,
        ]);
        // A lower cap prunes at once.
        const cap =
          (update.maxVersions === undefined ? head.maxVersions : update.maxVersions) ??
          this.#maxVersionsDefault;
        const keptFrom = head.currentVersion - cap + 1;
        const pruned = this.#prune(path, keptFrom, head.oldestVersion);
        const customChange = sealed === undefined ? 0 : (sealed?.length ?? 0) - head.customBytes;
        this.#charge(path, 0, customChange - pruned);
        return this.#readState(path);
      },
      dataBytes(update.customMetadata ?? {}),
    );
    return this.#toMetadata(path, state.row, state.versions);
  }

  /**
   * One step of a keyring sweep (`keyring_sweep.ts`): version rows in
   * (path, version) order, then custom metadata in path order, each step one
   * write of the group commit, so reads and other writes go on between steps.
   */
  async rewrapOlderTerms(from: SweepPosition | undefined, limit: number): Promise<SweepStep> {
    checkSweepLimit(limit);
    requireUnsealed(this.#keyring);
    if (this.#isClosed) throw new InternalError('The secret store is closed');
    const active = this.#keyring((_key, term) => term);
    const table = from?.table ?? SWEEP_VERSIONS;
    const key = from?.key ?? '';
    const version = from?.version ?? 0;
    return this.#database.write(() => {
      const sql = this.#statements();
      if (table === SWEEP_VERSIONS) {
        const found = sql.olderVersions.all([key, version, active, limit]).map((cells) => {
          const [path, number, term, ciphertext] = cells;
          return {
            position: { table, key: String(path), version: Number(number) },
            reseal: () => {
              const { sealed, term: to } = resealSecretData(
                this.#keyring,
                Number(term),
                parseSecretPath(String(path)),
                Number(number),
                asBytes(ciphertext) as Uint8Array,
              );
              return [String(path), Number(number), sealed, to, Number(term)];
            },
          };
        });
        const next = { table: SWEEP_METADATA, key: '', version: 0 };
        const { resealed, step } = resealStep(found, limit, next);
        for (const args of resealed) sql.rewrapVersion.run(args);
        return step;
      }
      const found = sql.olderMetadata.all([key, active, limit]).map((cells) => {
        const [path, term, custom] = cells;
        return {
          position: { table, key: String(path), version: 0 },
          reseal: () => {
            const { sealed, term: to } = resealCustomMetadata(
              this.#keyring,
              Number(term),
              parseSecretPath(String(path)),
              asBytes(custom) as Uint8Array,
            );
            return [String(path), sealed, to, Number(term)];
          },
        };
      });
      const { resealed, step } = resealStep(found, limit, undefined);
      for (const args of resealed) sql.rewrapMetadata.run(args);
      return step;
    }, limit * 1024);
  }

  async countByTerm(): Promise<ReadonlyMap<number, number>> {
    const rows = await this.#db().all<{ term: number; count: number }>(sqlText`
      SELECT key_term AS term, count(*) AS count FROM secrets
      WHERE ciphertext IS NOT NULL GROUP BY key_term
      UNION ALL
      SELECT metadata_key_term, count(*) FROM secret_metadata
      WHERE custom_metadata IS NOT NULL GROUP BY metadata_key_term`);
    const counts = new Map<number, number>();
    for (const row of rows) addCount(counts, row.term, row.count);
    return counts;
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
    const state = await this.#write(
      path,
      () => {
        const sql = this.#statements();
        const before = this.#readState(path);
        const changing = versionsToChange(
          path,
          requested,
          change,
          before,
          this.#maxVersionsDefault,
        );
        if (changing.length === 0) return before;
        const list = JSON.stringify(changing);
        const nowMs = this.#nowMs();
        if (change === 'delete') {
          sql.softDeleteVersions.run([path, list, nowMs]);
        } else if (change === 'undelete') {
          sql.undeleteVersions.run([path, list]);
        } else {
          // Destroy refunds the sealed data it clears (the rows and their paths stay).
          const freed = Number((sql.sealedBytesOf.get([path, list]) as unknown[])[0]);
          sql.destroyVersions.run([path, list]);
          this.#charge(path, 0, -freed);
        }
        sql.touchPath.run([path, nowMs]);
        return this.#readState(path);
      },
      SMALL_WRITE_BYTES,
    );
    return this.#toMetadata(path, state.row, state.versions);
  }

  /**
   * Runs `work`, a change of `path`, in the database's group commit (see
   * "Writes" above), then evicts the path from the cache of sealed rows. The
   * eviction runs once the commit (or the failure) is known and before the
   * write's caller resumes, so no read after an acknowledged write is served
   * an older row; a failed write changed nothing, and evicting is harmless.
   * A committed write then wakes the path's watchers, which re-read it past
   * the eviction.
   */
  async #write<T>(path: SecretPath, work: () => T, bytes: number): Promise<T> {
    if (this.#isClosed) throw new InternalError('The secret store is closed');
    let result: T;
    try {
      result = await this.#database.write(work, bytes);
    } finally {
      this.#cache.changed(path);
    }
    this.#changes.changed(path);
    return result;
  }

  /** The write statements; compiled on first use. Only inside `#write` work. */
  #statements(): WriteStatements {
    if (this.#writeStatements === undefined) {
      const compiled: Record<string, WriteStatement> = {};
      for (const [name, text] of Object.entries(WRITE_SQL)) {
        compiled[name] = this.#database.prepareWrite(text);
      }
      this.#writeStatements = compiled as WriteStatements;
    }
    return this.#writeStatements;
  }

  /** The path's row as a write needs it, read in the write's savepoint. */
  #readHead(path: SecretPath): PathHead | undefined {
    const cells = this.#statements().readHead.get([path]);
    if (cells === undefined) return undefined;
    const [current, oldest, maxVersions, customBytes] = cells;
    return {
      currentVersion: Number(current),
      oldestVersion: Number(oldest),
      maxVersions: maxVersions === null ? null : Number(maxVersions),
      customBytes: Number(customBytes),
    };
  }

  /** The path's metadata row and version rows, read in the write's savepoint. */
  #readState(path: SecretPath): PathState {
    const sql = this.#statements();
    const cells = sql.readMetadata.get([path]);
    if (cells === undefined) throw missingPath(path);
    const row = metadataRowOf(path, cells);
    const versions = sql.readVersions.all([path]).map((cells) => versionRowOf(cells, 0));
    return { row, versions };
  }

  /**
   * Prunes the path's versions below `keptFrom` and raises its oldest
   * version to it; returns what the pruned rows were charged. Nothing to do
   * when `oldest` is already kept.
   */
  #prune(path: SecretPath, keptFrom: number, oldest: number): number {
    if (keptFrom <= oldest) return 0;
    const freed = this.#removeVersionsBelow(path, keptFrom);
    this.#statements().raiseOldest.run([path, keptFrom]);
    return freed;
  }

  /** Removes the path's versions below `below`; returns what the removed rows were charged. */
  #removeVersionsBelow(path: SecretPath, below: number): number {
    let freed = 0;
    for (const [charge] of this.#statements().removeVersionsBelow.all([path, below])) {
      freed += Number(charge);
    }
    return freed;
  }

  /**
   * Adds (`paths`, `bytes`) to the namespace's counter. An increase beyond
   * the namespace's quota throws QuotaExceededError, which rolls the whole
   * write back (see "Quotas" above).
   */
  #charge(path: SecretPath, paths: number, bytes: number): void {
    if (paths === 0 && bytes === 0) return;
    const namespace = namespaceOf(path);
    const sql = this.#statements();
    // A namespace gets its counter with its first path; a refund always finds it.
    if (paths > 0 || bytes > 0) sql.createUsage.run([namespace]);
    const cells = sql.charge.get([namespace, paths, bytes]);
    if (cells === undefined) return;
    const usage = { paths: Number(cells[0]), bytes: Number(cells[1]) };
    const quota = quotaOf(this.#quotas, namespace);
    const isOverPaths = paths > 0 && quota.paths !== null && usage.paths > quota.paths;
    const isOverBytes = bytes > 0 && quota.bytes !== null && usage.bytes > quota.bytes;
    if (isOverPaths || isOverBytes) {
      const before = { paths: usage.paths - paths, bytes: usage.bytes - bytes };
      throw quotaExceeded(namespace, exceededLimit(before, { paths, bytes }, quota), quota);
    }
  }

  /** The path's metadata row and version rows, read in one transaction of the client. */
  async #readStoredState(path: SecretPath): Promise<PathState> {
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
         m.max_versions, m.custom_metadata, m.metadata_key_term,
         s.version, s.created_at_ms, s.deleted_at_ms, s.destroyed, s.ciphertext, s.key_term
  FROM secret_metadata AS m
  LEFT JOIN secrets AS s ON s.path = m.path AND s.version = coalesce(?2, m.current_version)
  WHERE m.path = ?1`;

/** The charge of a version row (`rowCharge`), in SQL: the row, its path, its sealed data. */
const VERSION_CHARGE = `${ROW_CHARGE_BYTES} + length(path) + coalesce(length(ciphertext), 0)`;

/** The versions of ?1 named by the JSON array ?2. */
const LISTED_VERSIONS = 'path = ?1 AND version IN (SELECT value FROM json_each(?2))';

/**
 * The statements of the writes (see "Writes" above), compiled once on the
 * writer connection. ?1 is always the path (the namespace for `charge`).
 */
const WRITE_SQL = {
  /** What a write reads first: no row means the path does not exist. */
  readHead: `
    SELECT current_version, oldest_version, max_versions, coalesce(length(custom_metadata), 0)
    FROM secret_metadata WHERE path = ?1`,
  /** A new path's row (at ?2), at version 1. */
  createPath: `
    INSERT INTO secret_metadata (path, created_at_ms, updated_at_ms, current_version, oldest_version)
    VALUES (?1, ?2, ?2, 1, 1)`,
  /** An existing path's new current version ?2 (at ?3). */
  advancePath:
    'UPDATE secret_metadata SET current_version = ?2, updated_at_ms = ?3 WHERE path = ?1',
  /** Version ?2 (at ?3) with its data ?4 sealed under keyring term ?5. */
  insertVersion: `
    INSERT INTO secrets (path, version, created_at_ms, deleted_at_ms, destroyed, ciphertext, key_term)
    VALUES (?1, ?2, ?3, NULL, 0, ?4, ?5)`,
  /** Removes the versions below ?2 (the cap's pruning, or all); yields each one's charge. */
  removeVersionsBelow: `DELETE FROM secrets WHERE path = ?1 AND version < ?2 RETURNING ${VERSION_CHARGE}`,
  /** Moves `oldest_version` up to ?2, the first version the cap keeps. */
  raiseOldest:
    'UPDATE secret_metadata SET oldest_version = ?2 WHERE path = ?1 AND oldest_version < ?2',
  /** Soft-deletes the listed versions (at ?3) that are not deleted yet. */
  softDeleteVersions: `UPDATE secrets SET deleted_at_ms = ?3 WHERE ${LISTED_VERSIONS} AND deleted_at_ms IS NULL`,
  /** Undeletes the listed versions that are deleted and not destroyed. */
  undeleteVersions: `
    UPDATE secrets SET deleted_at_ms = NULL
    WHERE ${LISTED_VERSIONS} AND deleted_at_ms IS NOT NULL AND destroyed = 0`,
  /** The sealed bytes of the listed versions that are not destroyed: what destroying them frees. */
  sealedBytesOf: `
    SELECT coalesce(sum(length(ciphertext)), 0) FROM secrets WHERE ${LISTED_VERSIONS} AND destroyed = 0`,
  /** Destroys the listed versions: the data goes, the rows stay. */
  destroyVersions: `
    UPDATE secrets SET destroyed = 1, ciphertext = NULL WHERE ${LISTED_VERSIONS} AND destroyed = 0`,
  /** Marks the path as changed at ?2. */
  touchPath: 'UPDATE secret_metadata SET updated_at_ms = ?2 WHERE path = ?1',
  /** A row when the path has a version that is neither deleted nor destroyed. */
  findLiveVersion:
    'SELECT 1 FROM secrets WHERE path = ?1 AND deleted_at_ms IS NULL AND destroyed = 0 LIMIT 1',
  /** Removes the path's row (its versions are removed first). */
  deletePath: 'DELETE FROM secret_metadata WHERE path = ?1',
  /**
   * Metadata at ?2; the cap becomes ?4 when ?3, the custom metadata ?6
   * (sealed under keyring term ?7) when ?5.
   */
  updateMetadata: `
    UPDATE secret_metadata SET
      updated_at_ms = ?2,
      max_versions = CASE WHEN ?3 THEN ?4 ELSE max_versions END,
      custom_metadata = CASE WHEN ?5 THEN ?6 ELSE custom_metadata END,
      metadata_key_term = CASE WHEN ?5 THEN ?7 ELSE metadata_key_term END
    WHERE path = ?1`,
  /** The counter row of namespace ?1 at zero, if it has none yet. */
  createUsage: `
    INSERT INTO secret_quota_usage (namespace, paths, bytes) VALUES (?1, 0, 0)
    ON CONFLICT (namespace) DO NOTHING`,
  /** Adds (?2 paths, ?3 bytes) to the counter of namespace ?1; yields the new counts. */
  charge: `
    UPDATE secret_quota_usage SET paths = paths + ?2, bytes = bytes + ?3
    WHERE namespace = ?1 RETURNING paths, bytes`,
  /** The path's metadata row, as written. */
  readMetadata: `
    SELECT created_at_ms, updated_at_ms, current_version, oldest_version, max_versions,
           custom_metadata, metadata_key_term
    FROM secret_metadata WHERE path = ?1`,
  /**
   * The keyring sweep: up to ?4 version rows after (?1, ?2) sealed under a
   * term older than ?3, and one row rewrapped if it is still under term ?5.
   */
  olderVersions: `
    SELECT path, version, key_term, ciphertext FROM secrets
    WHERE (path, version) > (?1, ?2) AND key_term < ?3 AND ciphertext IS NOT NULL
    ORDER BY path, version LIMIT ?4`,
  rewrapVersion: `
    UPDATE secrets SET ciphertext = ?3, key_term = ?4
    WHERE path = ?1 AND version = ?2 AND key_term = ?5 AND ciphertext IS NOT NULL`,
  /** The same for custom metadata: up to ?3 paths after ?1 under a term older than ?2. */
  olderMetadata: `
    SELECT path, metadata_key_term, custom_metadata FROM secret_metadata
    WHERE path > ?1 AND metadata_key_term < ?2 AND custom_metadata IS NOT NULL
    ORDER BY path LIMIT ?3`,
  rewrapMetadata: `
    UPDATE secret_metadata SET custom_metadata = ?2, metadata_key_term = ?3
    WHERE path = ?1 AND metadata_key_term = ?4 AND custom_metadata IS NOT NULL`,
  /** The path's version rows without their data, oldest first. */
  readVersions: `
    SELECT version, created_at_ms, deleted_at_ms, destroyed
    FROM secrets WHERE path = ?1 ORDER BY version`,
} as const;

/**
 * Roughly the bytes a write seals (a map's keys and values), to bound a
 * transaction; the exact size is known only once sealed.
 */
function dataBytes(data: SecretData): number {
  let bytes = ROW_CHARGE_BYTES;
  for (const key in data) bytes += key.length + (data[key] as string).length;
  return bytes;
}

const asBytes = (value: unknown): Uint8Array | null =>
  ArrayBuffer.isView(value)
    ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice()
    : value instanceof ArrayBuffer
      ? new Uint8Array(value.slice(0))
      : null;

/**
 * A metadata row from its seven columns, in the order READ_VERSION_SQL and
 * the write path's readMetadata select them.
 */
function metadataRowOf(path: SecretPath, cells: readonly unknown[]): SecretMetadataRow {
  const [created, updated, current, oldest, maxVersions, custom, customTerm] = cells;
  return {
    path,
    createdAtMs: Number(created),
    updatedAtMs: Number(updated),
    currentVersion: Number(current),
    oldestVersion: Number(oldest),
    maxVersions: maxVersions === null ? null : Number(maxVersions),
    customMetadata: asBytes(custom),
    metadataKeyTerm: Number(customTerm),
  };
}

/** A version row (without its data) from four columns from `at`: version, created, deleted, destroyed. */
function versionRowOf(cells: readonly unknown[], at: number): VersionRow {
  const deletedAt = cells[at + 2];
  return {
    version: Number(cells[at]),
    createdAtMs: Number(cells[at + 1]),
    deletedAtMs: deletedAt === null ? null : Number(deletedAt),
    destroyed: Number(cells[at + 3]) !== 0,
  };
}

/** One row of READ_VERSION_SQL as the metadata row and, if present, the version row. */
function versionFromRow(path: SecretPath, cells: readonly unknown[]) {
  const metadata = metadataRowOf(path, cells);
  const row =
    cells[7] === null
      ? undefined
      : { ...versionRowOf(cells, 7), ciphertext: asBytes(cells[11]), keyTerm: Number(cells[12]) };
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
