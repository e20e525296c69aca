/**
 * The TransitKeyStore contract on PostgreSQL, with connect() a second pool
 * on the same database: another Nexus, as far as the store can tell.
 *
 * Skipped, with a notice, unless SPIKE_TEST_DATABASE_URL is set.
 */
import { after, test } from 'node:test';
import { and, asc, eq } from 'drizzle-orm';
import {
  dropScratchDatabases,
  openScratchDatabase,
  postgresSkip,
  TEST_DATABASE_URL_ENV,
} from '../../../test/harness/postgres.ts';
import { runTransitKeyStoreContract } from '../testing/transit_key_store_contract.ts';
import { openPostgresDatabase, type PostgresDatabase } from './db.ts';
import { transitKeyVersions } from './schema.ts';
import { PgTransitKeyStore } from './transit_key_store.ts';

const skip = postgresSkip();
after(dropScratchDatabases);

if (skip !== false) {
  test(`PostgreSQL transit key store (${TEST_DATABASE_URL_ENV})`, { skip }, () => {});
} else {
  runTransitKeyStoreContract('PostgreSQL', async (options) => {
    const { database, url } = await openScratchDatabase();
    const opened: PostgresDatabase[] = [database];
    return {
      store: new PgTransitKeyStore({ ...options, db: database.db }),
      async connect() {
        const other = await openPostgresDatabase({ url });
        opened.push(other);
        return new PgTransitKeyStore({ ...options, db: other.db });
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
  });
}
