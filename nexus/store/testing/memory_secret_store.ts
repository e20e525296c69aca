/**
 * The `memory` backend: the SQL secret store on a private in-memory SQLite
 * database, so tests and throw-away runs get exactly the semantics (and the
 * encryption) of the file-backed store. Everything is gone once closed.
 */
import { openMemoryDatabase } from '../sqlite/db.ts';
import { SqliteSecretStore, type SqliteSecretStoreOptions } from '../sqlite/secret_store.ts';

export type MemorySecretStoreOptions = Omit<SqliteSecretStoreOptions, 'database' | 'ownsDatabase'>;

/** A new, empty store; its `close()` discards the database. */
export async function createMemorySecretStore(
  options: MemorySecretStoreOptions,
): Promise<SqliteSecretStore> {
  const database = await openMemoryDatabase();
  try {
    return new SqliteSecretStore({ ...options, database, ownsDatabase: true });
  } catch (err) {
    await database.close();
    throw err;
  }
}
