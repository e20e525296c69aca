/**
 * The `memory` backend: the SQL secret store on a private in-memory SQLite
 * database, so tests and throw-away runs get exactly the semantics (and the
 * encryption) of the file-backed store. Everything is gone once closed.
 */
import { openMemoryDatabase } from './db.ts';
import { SqlSecretStore, type SqlSecretStoreOptions } from './sql_secret_store.ts';

export type MemorySecretStoreOptions = Omit<SqlSecretStoreOptions, 'database' | 'ownsDatabase'>;

/** A new, empty store; its `close()` discards the database. */
export async function createMemorySecretStore(
  options: MemorySecretStoreOptions,
): Promise<SqlSecretStore> {
  const database = await openMemoryDatabase();
  try {
    return new SqlSecretStore({ ...options, database, ownsDatabase: true });
  } catch (err) {
    await database.close();
    throw err;
  }
}
