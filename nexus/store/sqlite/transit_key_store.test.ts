/**
 * The TransitKeyStore contract on a SQLite file and in memory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { and, asc, eq } from 'drizzle-orm';
import {
  runTransitKeyStoreContract,
  type TransitContractOptions,
  type TransitKeyStoreFixture,
} from '../testing/transit_key_store_contract.ts';
import { openMemoryDatabase, openSqliteDatabase, type SqliteDatabase } from './db.ts';
import { transitKeyVersions } from './schema.ts';
import { SqliteTransitKeyStore } from './transit_key_store.ts';

const scratchDirs: string[] = [];
after(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

async function fixture(
  options: TransitContractOptions,
  open: () => Promise<SqliteDatabase>,
  shared: boolean,
): Promise<TransitKeyStoreFixture> {
  const database = await open();
  const opened: SqliteDatabase[] = [database];
  return {
    store: new SqliteTransitKeyStore({ ...options, database }),
    async connect() {
      const other = shared ? database : await open();
      if (!shared) opened.push(other);
      return new SqliteTransitKeyStore({ ...options, database: other });
    },
    async storedVersions(name) {
      return database.db
        .select({
          version: transitKeyVersions.version,
          keyringTerm: transitKeyVersions.keyringTerm,
          sealedMaterial: transitKeyVersions.sealedMaterial,
        })
        .from(transitKeyVersions)
        .where(eq(transitKeyVersions.name, name))
        .orderBy(asc(transitKeyVersions.version));
    },
    async overwriteMaterial(name, version, sealed) {
      await database.db
        .update(transitKeyVersions)
        .set({ sealedMaterial: sealed })
        .where(and(eq(transitKeyVersions.name, name), eq(transitKeyVersions.version, version)));
    },
    async dispose() {
      for (const each of opened) await each.close();
    },
  };
}

runTransitKeyStoreContract('SQLite file', (options) => {
  const dir = mkdtempSync(join(tmpdir(), 'spike-transit-'));
  scratchDirs.push(dir);
  const path = join(dir, 'data', 'spike.db');
  return fixture(options, () => openSqliteDatabase({ path }), false);
});

runTransitKeyStoreContract('memory', (options) => fixture(options, openMemoryDatabase, true));
