/**
 * TransitKeyStore on PostgreSQL, which several Nexus processes may share.
 * Each write is one transaction that locks the key's row first
 * (`SELECT ... FOR UPDATE`), so rotations of one key through any Nexus run
 * one after another and never claim the same version; a create that races
 * another loses on the primary key. Using a key is one statement (the key's
 * row joined to the versions it needs), and so is reading its metadata. The
 * rules are `_transit_rows.ts`, shared with the SQLite twin.
 */
import { and, asc, eq, inArray, or, sql } from 'drizzle-orm';
import { checkedNow, requireUnsealed } from '../_secret_rules.ts';
import {
  checkKeyName,
  checkMinDecryptionVersion,
  checkRotation,
  checkVersions,
  keyExists,
  keyNotFound,
  lendKey,
  resealMaterial,
  type SealedMaterialRow,
  sealNewMaterial,
  toKeyInfo,
} from '../_transit_rows.ts';
import {
  addCount,
  checkSweepLimit,
  type KeyringSweepTarget,
  resealStep,
  type SweepPosition,
  type SweepStep,
} from '../keyring_sweep.ts';
import type { KeyringAccess } from '../secret_store.ts';
import type {
  OpenedTransitKey,
  TransitKeyInfo,
  TransitKeyStore,
  TransitKeyStoreOptions,
} from '../transit_key_store.ts';
import type { PgDb } from './db.ts';
import { transitKeys, transitKeyVersions } from './schema.ts';

export interface PgTransitKeyStoreOptions extends TransitKeyStoreOptions {
  /** Used, not owned: whoever opened the database closes it. */
  readonly db: PgDb;
  readonly keyring: KeyringAccess;
}

/** A transaction handle (what `db.transaction()` passes its callback). */
type Tx = Parameters<Parameters<PgDb['transaction']>[0]>[0];

export class PgTransitKeyStore implements TransitKeyStore, KeyringSweepTarget {
  readonly sweepName = 'transit';
  readonly #db: PgDb;
  readonly #keyring: KeyringAccess;
  readonly #now: () => number;

  constructor(options: PgTransitKeyStoreOptions) {
    this.#db = options.db;
    this.#keyring = options.keyring;
    this.#now = options.now ?? Date.now;
  }

  async create(name: string): Promise<TransitKeyInfo> {
    checkKeyName(name);
    requireUnsealed(this.#keyring);
    const sealed = sealNewMaterial(this.#keyring, name, 1);
    return this.#db.transaction(async (tx) => {
      const nowMs = checkedNow(this.#now);
      const inserted = await tx
        .insert(transitKeys)
        .values({
          name,
          createdAtMs: nowMs,
          updatedAtMs: nowMs,
          latestVersion: 1,
          minDecryptionVersion: 1,
        })
        .onConflictDoNothing()
        .returning({ name: transitKeys.name });
      if (inserted.length === 0) throw keyExists(name);
      await tx
        .insert(transitKeyVersions)
        .values({ name, version: 1, createdAtMs: nowMs, ...sealed });
      return readInfo(tx, name);
    });
  }

  async get(name: string): Promise<TransitKeyInfo> {
    checkKeyName(name);
    requireUnsealed(this.#keyring);
    return readInfo(this.#db, name);
  }

  async list(): Promise<string[]> {
    requireUnsealed(this.#keyring);
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    const rows = await this.#db
      .select({ name: transitKeys.name })
      .from(transitKeys)
      .orderBy(asc(sql`${transitKeys.name} COLLATE "C"`));
    return rows.map((row) => row.name);
  }

  async rotate(name: string): Promise<TransitKeyInfo> {
    checkKeyName(name);
    requireUnsealed(this.#keyring);
    return this.#db.transaction(async (tx) => {
      const head = await lockKey(tx, name);
      checkRotation(name, head.latestVersion);
      const version = head.latestVersion + 1;
      const sealed = sealNewMaterial(this.#keyring, name, version);
      const nowMs = checkedNow(this.#now);
      await tx.insert(transitKeyVersions).values({ name, version, createdAtMs: nowMs, ...sealed });
      await tx
        .update(transitKeys)
        .set({ latestVersion: version, updatedAtMs: nowMs })
        .where(eq(transitKeys.name, name));
      return readInfo(tx, name);
    });
  }

  async configure(
    name: string,
    options: { readonly minDecryptionVersion: number },
  ): Promise<TransitKeyInfo> {
    checkKeyName(name);
    requireUnsealed(this.#keyring);
    return this.#db.transaction(async (tx) => {
      const head = await lockKey(tx, name);
      checkMinDecryptionVersion(options.minDecryptionVersion, head.latestVersion);
      await tx
        .update(transitKeys)
        .set({
          minDecryptionVersion: options.minDecryptionVersion,
          updatedAtMs: checkedNow(this.#now),
        })
        .where(eq(transitKeys.name, name));
      return readInfo(tx, name);
    });
  }

  async delete(name: string): Promise<void> {
    checkKeyName(name);
    requireUnsealed(this.#keyring);
    // Its versions go with it (ON DELETE CASCADE).
    const rows = await this.#db
      .delete(transitKeys)
      .where(eq(transitKeys.name, name))
      .returning({ name: transitKeys.name });
    if (rows.length === 0) throw keyNotFound(name);
  }

  /** One step of a keyring sweep (`keyring_sweep.ts`): version rows in (name, version) order. */
  async rewrapOlderTerms(from: SweepPosition | undefined, limit: number): Promise<SweepStep> {
    checkSweepLimit(limit);
    requireUnsealed(this.#keyring);
    const active = this.#keyring((_key, term) => term);
    return await this.#db.transaction(async (tx) => {
      const { rows } = await tx.execute<{
        name: string;
        version: number;
        keyring_term: number;
        sealed_material: Uint8Array;
      }>(sql`
        SELECT name, version, keyring_term, sealed_material FROM transit_key_versions
        WHERE (name, version) > (${from?.key ?? ''}, ${from?.version ?? 0}::integer)
          AND keyring_term < ${active}::integer
        ORDER BY name, version LIMIT ${limit}::integer
        FOR UPDATE SKIP LOCKED`);
      const found = rows.map((row) => ({
        position: { table: 'transit_key_versions', key: row.name, version: row.version },
        reseal: () => ({
          row,
          ...resealMaterial(this.#keyring, row.name, row.version, {
            keyringTerm: row.keyring_term,
            sealedMaterial: new Uint8Array(row.sealed_material),
          }),
        }),
      }));
      const { resealed, step } = resealStep(found, limit, undefined);
      for (const { row, sealedMaterial, keyringTerm } of resealed) {
        await tx
          .update(transitKeyVersions)
          .set({ sealedMaterial, keyringTerm })
          .where(
            and(
              eq(transitKeyVersions.name, row.name),
              eq(transitKeyVersions.version, row.version),
              eq(transitKeyVersions.keyringTerm, row.keyring_term),
            ),
          );
      }
      return step;
    });
  }

  async countByTerm(): Promise<ReadonlyMap<number, number>> {
    const { rows } = await this.#db.execute<{ term: number; count: string }>(
      sql`SELECT keyring_term AS term, count(*) AS count FROM transit_key_versions GROUP BY keyring_term`,
    );
    const counts = new Map<number, number>();
    for (const row of rows) addCount(counts, row.term, row.count);
    return counts;
  }

  async useKey<T>(
    name: string,
    versions: readonly number[],
    use: (key: OpenedTransitKey) => T,
  ): Promise<T> {
    checkKeyName(name);
    checkVersions(versions);
    requireUnsealed(this.#keyring);
    const wanted = [...new Set(versions)];
    const rows = await this.#db
      .select({
        latestVersion: transitKeys.latestVersion,
        minDecryptionVersion: transitKeys.minDecryptionVersion,
        version: transitKeyVersions.version,
        keyringTerm: transitKeyVersions.keyringTerm,
        sealedMaterial: transitKeyVersions.sealedMaterial,
      })
      .from(transitKeys)
      .leftJoin(
        transitKeyVersions,
        and(
          eq(transitKeyVersions.name, transitKeys.name),
          wanted.length === 0
            ? eq(transitKeyVersions.version, transitKeys.latestVersion)
            : or(
                eq(transitKeyVersions.version, transitKeys.latestVersion),
                inArray(transitKeyVersions.version, wanted),
              ),
        ),
      )
      .where(eq(transitKeys.name, name));
    const head = rows[0];
    if (head === undefined) throw keyNotFound(name);
    const sealed = new Map<number, SealedMaterialRow>();
    for (const row of rows) {
      if (row.version === null || row.keyringTerm === null || row.sealedMaterial === null) continue;
      sealed.set(row.version, { keyringTerm: row.keyringTerm, sealedMaterial: row.sealedMaterial });
    }
    return lendKey(
      this.#keyring,
      { name, latestVersion: head.latestVersion, minDecryptionVersion: head.minDecryptionVersion },
      sealed,
      use,
    );
  }
}

/** The key's row, locked until the transaction ends; NotFoundError without one. */
async function lockKey(tx: Tx, name: string): Promise<{ latestVersion: number }> {
  const [row] = await tx
    .select({ latestVersion: transitKeys.latestVersion })
    .from(transitKeys)
    .where(eq(transitKeys.name, name))
    .for('update');
  if (row === undefined) throw keyNotFound(name);
  return row;
}

/** The key's metadata in one statement, so the versions are those of the row it reads. */
async function readInfo(db: PgDb | Tx, name: string): Promise<TransitKeyInfo> {
  const rows = await db
    .select({
      key: transitKeys,
      version: transitKeyVersions.version,
      createdAtMs: transitKeyVersions.createdAtMs,
    })
    .from(transitKeys)
    .innerJoin(transitKeyVersions, eq(transitKeyVersions.name, transitKeys.name))
    .where(eq(transitKeys.name, name))
    .orderBy(asc(transitKeyVersions.version));
  const first = rows[0];
  if (first === undefined) throw keyNotFound(name);
  return toKeyInfo(first.key, rows);
}
