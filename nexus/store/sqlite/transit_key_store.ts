/**
 * TransitKeyStore on SQLite. Writes run in the database's group commit
 * (`database.write()`, ADR 0019) on statements compiled once: each reads the
 * key's row, seals new material, and writes in one savepoint, so two
 * rotations of one key never claim the same version. Using a key reads one
 * compiled statement per version it needs (the latest, and each other one
 * asked for) on the read connection. Metadata and the list go through
 * drizzle. The rules are `_transit_rows.ts`, shared with the PostgreSQL twin.
 */
import { asc, eq, sql as sqlText } from 'drizzle-orm';
import { InternalError } from '../../../shared/errors/errors.ts';
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
import type { PreparedRead, SqliteDatabase, WriteStatement } from './db.ts';
import { transitKeys, transitKeyVersions } from './schema.ts';

/** About what one key write adds to a transaction: a row or two and sealed material. */
const KEY_WRITE_BYTES = 256;

export interface SqliteTransitKeyStoreOptions extends TransitKeyStoreOptions {
  /** Used, not owned: whoever opened the database closes it. */
  readonly database: SqliteDatabase;
  readonly keyring: KeyringAccess;
}

type WriteStatements = { readonly [K in keyof typeof WRITE_SQL]: WriteStatement };

export class SqliteTransitKeyStore implements TransitKeyStore, KeyringSweepTarget {
  readonly sweepName = 'transit';
  readonly #database: SqliteDatabase;
  readonly #keyring: KeyringAccess;
  readonly #now: () => number;
  #writeStatements: WriteStatements | undefined;
  #readStatement: PreparedRead | undefined;

  constructor(options: SqliteTransitKeyStoreOptions) {
    this.#database = options.database;
    this.#keyring = options.keyring;
    this.#now = options.now ?? Date.now;
  }

  async create(name: string): Promise<TransitKeyInfo> {
    checkKeyName(name);
    requireUnsealed(this.#keyring);
    return this.#database.write(() => {
      const sql = this.#statements();
      if (sql.readKey.get([name]) !== undefined) throw keyExists(name);
      const sealed = sealNewMaterial(this.#keyring, name, 1);
      const nowMs = checkedNow(this.#now);
      sql.insertKey.run([name, nowMs]);
      sql.insertVersion.run([name, 1, nowMs, sealed.keyringTerm, sealed.sealedMaterial]);
      return this.#readInfo(name);
    }, KEY_WRITE_BYTES);
  }

  async get(name: string): Promise<TransitKeyInfo> {
    checkKeyName(name);
    requireUnsealed(this.#keyring);
    // One statement, so the versions are those of the row it reads.
    const rows = await this.#database.db
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

  async list(): Promise<string[]> {
    requireUnsealed(this.#keyring);
    // SQLite compares text by bytes (BINARY), the order the interface promises.
    const rows = await this.#database.db
      .select({ name: transitKeys.name })
      .from(transitKeys)
      .orderBy(asc(transitKeys.name));
    return rows.map((row) => row.name);
  }

  async rotate(name: string): Promise<TransitKeyInfo> {
    checkKeyName(name);
    requireUnsealed(this.#keyring);
    return this.#database.write(() => {
      const sql = this.#statements();
      const head = this.#readHead(name);
      checkRotation(name, head.latestVersion);
      const version = head.latestVersion + 1;
      const sealed = sealNewMaterial(this.#keyring, name, version);
      const nowMs = checkedNow(this.#now);
      sql.insertVersion.run([name, version, nowMs, sealed.keyringTerm, sealed.sealedMaterial]);
      sql.advanceKey.run([name, version, nowMs]);
      return this.#readInfo(name);
    }, KEY_WRITE_BYTES);
  }

  async configure(
    name: string,
    options: { readonly minDecryptionVersion: number },
  ): Promise<TransitKeyInfo> {
    checkKeyName(name);
    requireUnsealed(this.#keyring);
    return this.#database.write(() => {
      const head = this.#readHead(name);
      checkMinDecryptionVersion(options.minDecryptionVersion, head.latestVersion);
      const nowMs = checkedNow(this.#now);
      this.#statements().setMinDecryption.run([name, options.minDecryptionVersion, nowMs]);
      return this.#readInfo(name);
    }, KEY_WRITE_BYTES);
  }

  async delete(name: string): Promise<void> {
    checkKeyName(name);
    requireUnsealed(this.#keyring);
    await this.#database.write(() => {
      // Its versions go with it (ON DELETE CASCADE).
      if (this.#statements().deleteKey.get([name]) === undefined) throw keyNotFound(name);
    }, KEY_WRITE_BYTES);
  }

  /** One step of a keyring sweep (`keyring_sweep.ts`): version rows in (name, version) order. */
  async rewrapOlderTerms(from: SweepPosition | undefined, limit: number): Promise<SweepStep> {
    checkSweepLimit(limit);
    requireUnsealed(this.#keyring);
    const active = this.#keyring((_key, term) => term);
    return this.#database.write(() => {
      const sql = this.#statements();
      const rows = sql.olderVersions.all([from?.key ?? '', from?.version ?? 0, active, limit]);
      const found = rows.map((cells) => {
        const [name, version, term, sealed] = cells;
        return {
          position: { table: 'transit_key_versions', key: String(name), version: Number(version) },
          reseal: () => {
            const row = { keyringTerm: Number(term), sealedMaterial: toBytes(sealed) };
            const next = resealMaterial(this.#keyring, String(name), Number(version), row);
            return [
              String(name),
              Number(version),
              next.sealedMaterial,
              next.keyringTerm,
              row.keyringTerm,
            ];
          },
        };
      });
      const { resealed, step } = resealStep(found, limit, undefined);
      for (const args of resealed) sql.rewrapVersion.run(args);
      return step;
    }, limit * KEY_WRITE_BYTES);
  }

  async countByTerm(): Promise<ReadonlyMap<number, number>> {
    const rows = await this.#database.db.all<{ term: number; count: number }>(
      sqlText`SELECT keyring_term AS term, count(*) AS count FROM transit_key_versions GROUP BY keyring_term`,
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
    const read = this.#read();
    const latest = await read.get([name, null]);
    if (latest === undefined) throw keyNotFound(name);
    const [latestVersion, minDecryptionVersion] = latest as [number, number];
    const rows = new Map<number, SealedMaterialRow>();
    addRow(rows, latest);
    for (const version of new Set(versions)) {
      if (rows.has(version) || version > latestVersion) continue;
      const cells = await read.get([name, version]);
      if (cells !== undefined) addRow(rows, cells);
    }
    return lendKey(this.#keyring, { name, latestVersion, minDecryptionVersion }, rows, use);
  }

  /** The key's row as a write needs it, read in the write's savepoint. */
  #readHead(name: string): { latestVersion: number } {
    const cells = this.#statements().readKey.get([name]);
    if (cells === undefined) throw keyNotFound(name);
    return { latestVersion: Number(cells[0]) };
  }

  /** The key's metadata, read in the write's savepoint. */
  #readInfo(name: string): TransitKeyInfo {
    const sql = this.#statements();
    const cells = sql.readKey.get([name]);
    if (cells === undefined) throw new InternalError(`Key ${JSON.stringify(name)} vanished`);
    const [latestVersion, minDecryptionVersion, createdAtMs, updatedAtMs] = cells.map(Number) as [
      number,
      number,
      number,
      number,
    ];
    const versions = sql.listVersions
      .all([name])
      .map(([version, created]) => ({ version: Number(version), createdAtMs: Number(created) }));
    return toKeyInfo(
      { name, createdAtMs, updatedAtMs, latestVersion, minDecryptionVersion },
      versions,
    );
  }

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

  #read(): PreparedRead {
    this.#readStatement ??= this.#database.prepareRead(READ_VERSION_SQL);
    return this.#readStatement;
  }
}

/** A row of READ_VERSION_SQL, when it has its version (a key always has its latest). */
function addRow(rows: Map<number, SealedMaterialRow>, cells: readonly unknown[]): void {
  const [, , version, keyringTerm, sealed] = cells;
  if (version === null || version === undefined) return;
  rows.set(Number(version), {
    keyringTerm: Number(keyringTerm),
    sealedMaterial: toBytes(sealed),
  });
}

/** A BLOB as the driver hands it back, copied into a Uint8Array of its own. */
function toBytes(value: unknown): Uint8Array {
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice();
  }
  throw new InternalError('Expected the sealed material of a key version as bytes');
}

/**
 * A key's head with one of its versions (?2, or the latest when null) in one
 * statement; the version columns are null when the key has no such version,
 * and no row at all means there is no such key.
 */
const READ_VERSION_SQL = `
  SELECT k.latest_version, k.min_decryption_version, v.version, v.keyring_term, v.sealed_material
  FROM transit_keys AS k
  LEFT JOIN transit_key_versions AS v ON v.name = k.name AND v.version = coalesce(?2, k.latest_version)
  WHERE k.name = ?1`;

/** The statements of the writes, compiled once on the writer connection; ?1 is the name. */
const WRITE_SQL = {
  /** The keyring sweep: up to ?4 version rows after (?1, ?2) sealed under a term older than ?3. */
  olderVersions: `
    SELECT name, version, keyring_term, sealed_material FROM transit_key_versions
    WHERE (name, version) > (?1, ?2) AND keyring_term < ?3
    ORDER BY name, version LIMIT ?4`,
  /** One version row rewrapped (material ?3 under term ?4) if it is still under term ?5. */
  rewrapVersion: `
    UPDATE transit_key_versions SET sealed_material = ?3, keyring_term = ?4
    WHERE name = ?1 AND version = ?2 AND keyring_term = ?5`,
  readKey: `
    SELECT latest_version, min_decryption_version, created_at_ms, updated_at_ms
    FROM transit_keys WHERE name = ?1`,
  listVersions:
    'SELECT version, created_at_ms FROM transit_key_versions WHERE name = ?1 ORDER BY version',
  /** A new key (at ?2) at version 1. */
  insertKey: `
    INSERT INTO transit_keys (name, created_at_ms, updated_at_ms, latest_version, min_decryption_version)
    VALUES (?1, ?2, ?2, 1, 1)`,
  /** Version ?2 (at ?3) with its keyring term ?4 and sealed material ?5. */
  insertVersion: `
    INSERT INTO transit_key_versions (name, version, created_at_ms, keyring_term, sealed_material)
    VALUES (?1, ?2, ?3, ?4, ?5)`,
  /** The latest version becomes ?2 (at ?3). */
  advanceKey: 'UPDATE transit_keys SET latest_version = ?2, updated_at_ms = ?3 WHERE name = ?1',
  /** The minimum decryption version becomes ?2 (at ?3). */
  setMinDecryption:
    'UPDATE transit_keys SET min_decryption_version = ?2, updated_at_ms = ?3 WHERE name = ?1',
  /** Removes the key (and, by cascade, its versions); a row when there was one. */
  deleteKey: 'DELETE FROM transit_keys WHERE name = ?1 RETURNING name',
} as const;
