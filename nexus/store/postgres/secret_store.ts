/**
 * SecretStore on PostgreSQL (drizzle + pg): the KV v2 semantics of
 * `SqliteSecretStore` for several Nexus processes on one database. Everything
 * that does not need the database (checks, cap arithmetic, prefix ranges,
 * errors, row mapping and the custom-metadata cipher) is shared with the
 * SQLite store through `_secret_rules.ts`, `secret_cipher.ts` and
 * `secret_limits.ts`; what stays here is how the rules run on PostgreSQL.
 *
 * Atomicity. Each write is one interactive transaction on one pooled
 * connection (PostgreSQL has no single-connection limit like the SQLite
 * client), so it commits whole or not at all.
 *
 * Concurrency. A write first locks the path's metadata row
 * (`SELECT ... FOR UPDATE`), so writes to one path run one after another,
 * whichever process sends them, and each sees the last committed state: the
 * check-and-set comparison, the version number the data is sealed to, and the
 * pruning all happen under that lock. A new path is claimed by its primary
 * key: of several transactions inserting its metadata row, one inserts and
 * the others (`ON CONFLICT DO NOTHING`, which waits for the winner to commit)
 * then lock the winner's row and continue as writes to an existing path.
 * Reads are single statements or a read-only REPEATABLE READ transaction, so
 * they see one committed state, and a write committed by any process is
 * visible to the next read at once.
 *
 * Quotas (`secret_quotas.ts`, ADR 0015). Every write that adds or removes
 * charged bytes or paths ends by updating its namespace's
 * `secret_quota_usage` row in the same transaction. An increase is a
 * conditional UPDATE (`... WHERE bytes + <change> <= <quota>`): it locks the
 * row, and a concurrent writer to the same namespace waits for that lock and
 * then re-evaluates its condition on the committed counter (READ COMMITTED
 * re-checks an updated row), so writers on any number of Nexus processes
 * cannot overshoot together. No row updated means the quota would be
 * exceeded: QuotaExceededError rolls the transaction back. The counter update
 * comes last, after the path's row lock, so every transaction takes the two
 * locks in the same order and holds the namespace's only until it commits.
 *
 * Paths compare and sort in byte order (`COLLATE "C"`), as on SQLite,
 * whatever the database's default collation.
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
  keptFrom,
  liveVersionConflict,
  liveVersionOf,
  type MetadataRow,
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
  type QuotaUsage,
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
import type { PgDb, PostgresDatabase } from './db.ts';
import { type SecretMetadataRow, secretMetadata, secretQuotaUsage, secrets } from './schema.ts';

export type PgSecretStoreOptions = SqlSecretStoreOptions<PostgresDatabase> & {
  /**
   * The cache of sealed rows that `get()` reads through (`sealed_row_cache.ts`),
   * gated by this process's change feed (`change_feed.ts`), which evicts the
   * writes of other processes. Default: none.
   */
  readonly cache?: SealedRowCache;
};

/** A transaction handle (what `db.transaction()` passes its callback). */
type Tx = Parameters<Parameters<PgDb['transaction']>[0]>[0];

/**
 * How often a new-path write may find the path created and deleted again
 * between its insert and its lock, before giving up. Each round means two
 * other writes committed meanwhile.
 */
const MAX_CLAIM_ROUNDS = 16;

const VERSION_COLUMNS = {
  version: secrets.version,
  createdAtMs: secrets.createdAtMs,
  deletedAtMs: secrets.deletedAtMs,
  destroyed: secrets.destroyed,
} as const;

/** `column COLLATE "C"`: byte-order comparison and sorting of paths. */
function bytewise(column: typeof secretMetadata.path): SQL {
  return sql`${column} COLLATE "C"`;
}

/** The sweep's tables, in the order a pass walks them. */
const SWEEP_VERSIONS = 'secrets';
const SWEEP_METADATA = 'secret_metadata';

export class PgSecretStore implements SecretStore, KeyringSweepTarget {
  readonly sweepName = 'secrets';
  readonly #database: PostgresDatabase;
  readonly #keyring: KeyringAccess;
  readonly #maxVersionsDefault: number;
  readonly #quotas: SecretQuotas;
  readonly #now: () => number;
  readonly #ownsDatabase: boolean;
  readonly #cache: SealedRowCache;
  readonly #changes: SecretChanges;
  #isClosed = false;

  constructor(options: PgSecretStoreOptions) {
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
    const metadata = await this.#db().transaction(async (tx) => {
      const nowMs = this.#nowMs();
      const locked = await this.#lockOrCreate(tx, path, nowMs, cas);
      if (locked.isCreated) {
        // Version 1 of a new path: nothing to compare, nothing to prune.
        const [ciphertext, keyTerm] = this.#keyring((key, term) => [
          sealSecretData(key, path, 1, data),
          term,
        ]);
        await tx
          .insert(secrets)
          .values({ path, version: 1, createdAtMs: nowMs, ciphertext, keyTerm });
        const versions = await selectVersions(tx, path);
        await this.#charge(tx, path, {
          paths: 1,
          bytes: 2 * rowCharge(path) + ciphertext.length,
        });
        return this.#toMetadata(path, locked.row, versions);
      }
      const current = locked.row.currentVersion;
      if (cas !== undefined && cas !== current) {
        throw casConflict(cas, current);
      }
      const version = current + 1;
      const [ciphertext, keyTerm] = this.#keyring((key, term) => [
        sealSecretData(key, path, version, data),
        term,
      ]);
      const { row, freedBytes } = await this.#updateMetadata(tx, path, locked.row, {
        currentVersion: version,
        updatedAtMs: nowMs,
      });
      await tx.insert(secrets).values({ path, version, createdAtMs: nowMs, ciphertext, keyTerm });
      const versions = await selectVersions(tx, path);
      await this.#charge(tx, path, {
        paths: 0,
        bytes: rowCharge(path) + ciphertext.length - freedBytes,
      });
      return this.#toMetadata(path, row, versions);
    });
    this.#committed(path);
    return metadata;
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
    const number = wanted ?? found.metadata.currentVersion;
    const row = found.row;
    if (row === undefined) {
      throw missingVersion(path, number, found.metadata, this.#maxVersionsDefault);
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
    const path = bytewise(secretMetadata.path);
    const conditions: SQL[] = [];
    const under = prefixCondition(checkedPrefix);
    if (under !== undefined) conditions.push(under);
    if (after !== undefined) conditions.push(gt(path, after));
    const rows = await this.#db()
      .select({ path: secretMetadata.path })
      .from(secretMetadata)
      .where(and(...conditions))
      .orderBy(asc(path))
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
      // Equality on the plain column, so the primary key finds each row.
      .where(inArray(secretMetadata.path, wanted))
      .orderBy(asc(bytewise(secretMetadata.path)));
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
    await this.#db().transaction(async (tx) => {
      const row = await lockMetadata(tx, path);
      if (row === undefined) throw missingPath(path);
      // The row lock holds off every change to the path's versions, so what
      // is checked here is what is deleted.
      if (options.onlyDeleted === true && (await hasLiveVersion(tx, path))) {
        throw liveVersionConflict(path);
      }
      // The foreign key removes the versions with the row.
      const freedBytes = await chargedBytes(tx, path);
      await tx.delete(secretMetadata).where(eq(secretMetadata.path, path));
      await this.#charge(tx, path, {
        paths: -1,
        bytes: -(freedBytes + rowCharge(path) + (row.customMetadata?.length ?? 0)),
      });
    });
    this.#committed(path);
  }

  async readMetadata(path: SecretPath): Promise<SecretMetadata> {
    checkPath(path);
    requireUnsealed(this.#keyring);
    return await this.#db().transaction(
      async (tx) => {
        const [row] = await tx.select().from(secretMetadata).where(eq(secretMetadata.path, path));
        if (row === undefined) throw missingPath(path);
        return this.#toMetadata(path, row, await selectVersions(tx, path));
      },
      { isolationLevel: 'repeatable read', accessMode: 'read only' },
    );
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
    const metadata = await db.transaction(async (tx) => {
      const locked = await lockMetadata(tx, path);
      if (locked === undefined) throw missingPath(path);
      // A lower cap prunes at once (#updateMetadata).
      const { row, freedBytes } = await this.#updateMetadata(tx, path, locked, changes);
      const versions = await selectVersions(tx, path);
      const customChange =
        changes.customMetadata === undefined
          ? 0
          : (changes.customMetadata?.length ?? 0) - (locked.customMetadata?.length ?? 0);
      await this.#charge(tx, path, { paths: 0, bytes: customChange - freedBytes });
      return this.#toMetadata(path, row, versions);
    });
    this.#committed(path);
    return metadata;
  }

  /**
   * One step of a keyring sweep (`keyring_sweep.ts`): version rows in
   * (path, version) order, then custom metadata in path order. The rows a
   * step takes are locked (others' locked rows are skipped: a write or
   * another Nexus's sweep has them) and sealed before the updates, which
   * land in one short transaction.
   */
  async rewrapOlderTerms(from: SweepPosition | undefined, limit: number): Promise<SweepStep> {
    checkSweepLimit(limit);
    requireUnsealed(this.#keyring);
    const active = this.#keyring((_key, term) => term);
    const table = from?.table ?? SWEEP_VERSIONS;
    const key = from?.key ?? '';
    const version = from?.version ?? 0;
    return await this.#db().transaction(async (tx) => {
      if (table === SWEEP_VERSIONS) {
        const { rows } = await tx.execute<{
          path: string;
          version: number;
          key_term: number;
          ciphertext: Uint8Array;
        }>(sql`
          SELECT path, version, key_term, ciphertext FROM secrets
          WHERE (path, version) > (${key}, ${version}::integer) AND key_term < ${active}::integer
            AND ciphertext IS NOT NULL
          ORDER BY path, version LIMIT ${limit}::integer
          FOR UPDATE SKIP LOCKED`);
        const found = rows.map((row) => ({
          position: { table, key: row.path, version: row.version },
          reseal: () => ({
            row,
            ...resealSecretData(
              this.#keyring,
              row.key_term,
              parseSecretPath(row.path),
              row.version,
              new Uint8Array(row.ciphertext),
            ),
          }),
        }));
        const next = { table: SWEEP_METADATA, key: '', version: 0 };
        const { resealed, step } = resealStep(found, limit, next);
        for (const { row, sealed, term } of resealed) {
          await tx
            .update(secrets)
            .set({ ciphertext: sealed, keyTerm: term })
            .where(
              and(
                eq(secrets.path, row.path),
                eq(secrets.version, row.version),
                eq(secrets.keyTerm, row.key_term),
              ),
            );
        }
        return step;
      }
      const { rows } = await tx.execute<{
        path: string;
        metadata_key_term: number;
        custom_metadata: Uint8Array;
      }>(sql`
        SELECT path, metadata_key_term, custom_metadata FROM secret_metadata
        WHERE path > ${key} AND metadata_key_term < ${active}::integer
          AND custom_metadata IS NOT NULL
        ORDER BY path LIMIT ${limit}::integer
        FOR UPDATE SKIP LOCKED`);
      const found = rows.map((row) => ({
        position: { table, key: row.path, version: 0 },
        reseal: () => ({
          row,
          ...resealCustomMetadata(
            this.#keyring,
            row.metadata_key_term,
            parseSecretPath(row.path),
            new Uint8Array(row.custom_metadata),
          ),
        }),
      }));
      const { resealed, step } = resealStep(found, limit, undefined);
      for (const { row, sealed, term } of resealed) {
        await tx
          .update(secretMetadata)
          .set({ customMetadata: sealed, metadataKeyTerm: term })
          .where(
            and(
              eq(secretMetadata.path, row.path),
              eq(secretMetadata.metadataKeyTerm, row.metadata_key_term),
            ),
          );
      }
      return step;
    });
  }

  async countByTerm(): Promise<ReadonlyMap<number, number>> {
    const { rows } = await this.#db().execute<{ term: number; count: string }>(sql`
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
    const metadata = await this.#db().transaction(async (tx) => {
      const row = await lockMetadata(tx, path);
      if (row === undefined) throw missingPath(path);
      const state = { row, versions: await selectVersions(tx, path) };
      const changing = versionsToChange(path, requested, change, state, this.#maxVersionsDefault);
      if (changing.length === 0) {
        return this.#toMetadata(path, row, state.versions);
      }
      const nowMs = this.#nowMs();
      const rows = and(eq(secrets.path, path), inArray(secrets.version, changing));
      if (change === 'delete') {
        await tx
          .update(secrets)
          .set({ deletedAtMs: nowMs })
          .where(and(rows, isNull(secrets.deletedAtMs)));
      } else if (change === 'undelete') {
        await tx
          .update(secrets)
          .set({ deletedAtMs: null })
          .where(and(rows, isNotNull(secrets.deletedAtMs), eq(secrets.destroyed, false)));
      } else {
        // Destroy refunds the sealed data it clears (the rows and their paths stay).
        const [sealed] = await tx
          .select({ bytes: sql<string>`coalesce(sum(octet_length(${secrets.ciphertext})), 0)` })
          .from(secrets)
          .where(and(rows, eq(secrets.destroyed, false)));
        await tx
          .update(secrets)
          .set({ destroyed: true, ciphertext: null })
          .where(and(rows, eq(secrets.destroyed, false)));
        await this.#charge(tx, path, { paths: 0, bytes: -Number(sealed?.bytes ?? 0) });
      }
      const [updated] = await tx
        .update(secretMetadata)
        .set({ updatedAtMs: nowMs })
        .where(eq(secretMetadata.path, path))
        .returning();
      return this.#toMetadata(path, updated, await selectVersions(tx, path));
    });
    this.#committed(path);
    return metadata;
  }

  /**
   * Locks the path's metadata row, creating it (as version 1) when the path
   * is new. Throws ConflictError when `cas` rules out what it finds.
   */
  async #lockOrCreate(
    tx: Tx,
    path: SecretPath,
    nowMs: number,
    cas: number | undefined,
  ): Promise<{ readonly row: SecretMetadataRow; readonly isCreated: boolean }> {
    for (let round = 1; round <= MAX_CLAIM_ROUNDS; round++) {
      const existing = await lockMetadata(tx, path);
      if (existing !== undefined) {
        return { row: existing, isCreated: false };
      }
      if (cas !== undefined && cas !== 0) {
        throw casConflict(cas, 0);
      }
      const [created] = await tx
        .insert(secretMetadata)
        .values({
          path,
          createdAtMs: nowMs,
          updatedAtMs: nowMs,
          currentVersion: 1,
          oldestVersion: 1,
          maxVersions: null,
          customMetadata: null,
        })
        .onConflictDoNothing({ target: secretMetadata.path })
        .returning();
      if (created !== undefined) {
        return { row: created, isCreated: true };
      }
      // Another transaction created the path and committed; lock its row.
    }
    throw new InternalError(`Cannot claim "${path}": it keeps being created and deleted`);
  }

  /**
   * Writes `changes` to the locked metadata row, raises `oldest_version` to
   * what the (possibly new) cap keeps and removes the versions below it;
   * returns the row and what the removed versions were charged.
   */
  async #updateMetadata(
    tx: Tx,
    path: SecretPath,
    locked: SecretMetadataRow,
    changes: Partial<
      Pick<
        SecretMetadataRow,
        'currentVersion' | 'updatedAtMs' | 'maxVersions' | 'customMetadata' | 'metadataKeyTerm'
      >
    >,
  ): Promise<{ readonly row: SecretMetadataRow | undefined; readonly freedBytes: number }> {
    const next: MetadataRow = { ...locked, ...changes };
    const oldestVersion = Math.max(locked.oldestVersion, keptFrom(next, this.#maxVersionsDefault));
    const [row] = await tx
      .update(secretMetadata)
      .set({ ...changes, oldestVersion })
      .where(eq(secretMetadata.path, path))
      .returning();
    const pruned = await tx
      .delete(secrets)
      .where(and(eq(secrets.path, path), lt(secrets.version, oldestVersion)))
      .returning({ sealedBytes: sql<number | null>`octet_length(${secrets.ciphertext})` });
    const freedBytes = pruned.reduce(
      (sum, version) => sum + rowCharge(path) + (version.sealedBytes ?? 0),
      0,
    );
    return { row, freedBytes };
  }

  /**
   * Adds `change` to the counter of the path's namespace, last in the
   * transaction (see "Quotas" above). An increase beyond the namespace's quota
   * changes nothing and throws QuotaExceededError, which rolls back the
   * transaction.
   */
  async #charge(tx: Tx, path: SecretPath, change: QuotaUsage): Promise<void> {
    if (change.paths === 0 && change.bytes === 0) return;
    const namespace = namespaceOf(path);
    const quota = quotaOf(this.#quotas, namespace);
    if (change.paths > 0) {
      // The first path of a namespace creates its counter.
      await tx
        .insert(secretQuotaUsage)
        .values({ namespace, paths: 0, bytes: 0 })
        .onConflictDoNothing({ target: secretQuotaUsage.namespace });
    }
    const fits: SQL[] = [];
    if (change.paths > 0 && quota.paths !== null) {
      fits.push(sql`${secretQuotaUsage.paths} + ${change.paths} <= ${quota.paths}`);
    }
    if (change.bytes > 0 && quota.bytes !== null) {
      fits.push(sql`${secretQuotaUsage.bytes} + ${change.bytes} <= ${quota.bytes}`);
    }
    const updated = await tx
      .update(secretQuotaUsage)
      .set({
        paths: sql`${secretQuotaUsage.paths} + ${change.paths}`,
        bytes: sql`${secretQuotaUsage.bytes} + ${change.bytes}`,
      })
      .where(and(eq(secretQuotaUsage.namespace, namespace), ...fits))
      .returning({ namespace: secretQuotaUsage.namespace });
    if (updated.length === 1) return;
    const [usage] = await tx
      .select({ paths: secretQuotaUsage.paths, bytes: secretQuotaUsage.bytes })
      .from(secretQuotaUsage)
      .where(eq(secretQuotaUsage.namespace, namespace));
    if (usage === undefined) {
      throw new InternalError(`The quota counter of the namespace "${namespace}" is missing`);
    }
    throw quotaExceeded(namespace, exceededLimit(usage, change, quota), quota);
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

  /** What `get()` finds in the database: the metadata and the wanted version, from one snapshot. */
  async #queryVersion(
    path: SecretPath,
    version: number | undefined,
  ): Promise<SealedRead | undefined> {
    const rows = await this.#db()
      .select({
        metadata: secretMetadata,
        version: { ...VERSION_COLUMNS, ciphertext: secrets.ciphertext, keyTerm: secrets.keyTerm },
      })
      .from(secretMetadata)
      .leftJoin(
        secrets,
        and(
          eq(secrets.path, secretMetadata.path),
          eq(
            secrets.version,
            version === undefined ? secretMetadata.currentVersion : sql`${version}::integer`,
          ),
        ),
      )
      .where(eq(secretMetadata.path, path));
    const found = rows[0];
    return found === undefined
      ? undefined
      : { metadata: found.metadata, row: found.version ?? undefined };
  }

  /**
   * After a write of `path` committed: evicts it from the cache of sealed
   * rows, then wakes its watchers (who re-read it past the eviction). Other
   * Nexus hear of it through their change feed: the `secret_metadata`
   * trigger (migration 0004) notifies in the write's transaction.
   */
  #committed(path: SecretPath): void {
    this.#cache.changed(path);
    this.#changes.changed(path);
  }

  #db(): PgDb {
    if (this.#isClosed) throw new InternalError('The secret store is closed');
    return this.#database.db;
  }
}

/** The path's metadata row, locked until the transaction ends; undefined if none. */
async function lockMetadata(tx: Tx, path: SecretPath): Promise<SecretMetadataRow | undefined> {
  const [row] = await tx
    .select()
    .from(secretMetadata)
    .where(eq(secretMetadata.path, path))
    .for('update');
  return row;
}

/** Whether a version of `path` is neither deleted nor destroyed. */
async function hasLiveVersion(tx: Tx, path: SecretPath): Promise<boolean> {
  const [live] = await tx
    .select({ version: secrets.version })
    .from(secrets)
    .where(and(eq(secrets.path, path), isNull(secrets.deletedAtMs), eq(secrets.destroyed, false)))
    .limit(1);
  return live !== undefined;
}

/** What the version rows of `path` are charged: each its row and its sealed data. */
async function chargedBytes(tx: Tx, path: SecretPath): Promise<number> {
  const [sum] = await tx
    .select({
      bytes: sql<string>`coalesce(sum(${ROW_CHARGE_BYTES} + octet_length(${secrets.path}) + coalesce(octet_length(${secrets.ciphertext}), 0)), 0)`,
    })
    .from(secrets)
    .where(eq(secrets.path, path));
  return Number(sum?.bytes ?? 0);
}

function selectVersions(tx: Tx, path: SecretPath): Promise<VersionRow[]> {
  return tx
    .select(VERSION_COLUMNS)
    .from(secrets)
    .where(eq(secrets.path, path))
    .orderBy(asc(secrets.version));
}

/** Paths under a checked prefix (`prefixRange`), as a condition, in byte order. */
function prefixCondition(prefix: string): SQL | undefined {
  const range = prefixRange(prefix);
  if (range === undefined) return undefined;
  const path = bytewise(secretMetadata.path);
  const within = and(gte(path, range.exact ?? range.from), lt(path, range.below));
  if (range.exact === undefined) return within;
  return and(within, or(eq(path, range.exact), gte(path, range.from)));
}
