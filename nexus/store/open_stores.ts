/**
 * Opens the database of the configured backend and the stores on it,
 * so `main.ts` composes one value whatever the backend:
 * - `sqlite`: a file (`spike.db`) in the data directory;
 * - `memory`: a private in-memory SQLite database, gone at exit;
 * - `postgres`: a pool on a PostgreSQL server, which several Nexus processes
 *   may share (every decision two of them could race on is made by the
 *   database: row locks, conditional updates, primary keys).
 */
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import type { KeyringSweepTarget } from './keyring_sweep.ts';
import type { PolicyStore } from './policy_store.ts';
import { type ChangeFeedStatus, PgChangeFeed } from './postgres/change_feed.ts';
import { openPostgresDatabase } from './postgres/db.ts';
import { PgPolicyStore } from './postgres/policy_store.ts';
import { PgRootKeyStore } from './postgres/root_key_store.ts';
import { PgSecretStore } from './postgres/secret_store.ts';
import { PgTransitKeyStore } from './postgres/transit_key_store.ts';
import type { RootKeyStore } from './root_key_store.ts';
import {
  DEFAULT_CACHE_LIMITS,
  SealedRowCache,
  type SealedRowCacheLimits,
} from './sealed_row_cache.ts';
import { SecretChanges } from './secret_changes.ts';
import type { SecretQuotas } from './secret_quotas.ts';
import type { KeyringAccess, SecretStore } from './secret_store.ts';
import type { SnapshotStore } from './snapshot_store.ts';
import { openMemoryDatabase, openSqliteDatabase, type SqliteSynchronous } from './sqlite/db.ts';
import { SqlitePolicyStore } from './sqlite/policy_store.ts';
import { SqliteRootKeyStore } from './sqlite/root_key_store.ts';
import { SqliteSecretStore } from './sqlite/secret_store.ts';
import { SqliteSnapshots } from './sqlite/snapshot_store.ts';
import { SqliteTransitKeyStore } from './sqlite/transit_key_store.ts';
import type { TransitKeyStore } from './transit_key_store.ts';

export type StoreBackend =
  | { readonly kind: 'sqlite'; readonly dataDir: string; readonly synchronous: SqliteSynchronous }
  | { readonly kind: 'memory' }
  | { readonly kind: 'postgres'; readonly url: string };

export interface OpenStoresOptions {
  readonly backend: StoreBackend;
  readonly keyring: KeyringAccess;
  readonly maxVersionsDefault: number;
  /** Storage quotas per secret namespace; default `DEFAULT_SECRET_QUOTAS`. */
  readonly quotas?: SecretQuotas;
  /** The limits of the cache of sealed rows; default `DEFAULT_CACHE_LIMITS`, 0 disables. */
  readonly cache?: SealedRowCacheLimits;
  /** Told about failures of idle PostgreSQL connections (the pool replaces them). */
  readonly onConnectionError?: (err: Error) => void;
  /** Told when the PostgreSQL change feed starts listening or loses its connection. */
  readonly onChangeFeed?: (status: ChangeFeedStatus) => void;
}

export interface Stores {
  readonly rootKeys: RootKeyStore;
  readonly secrets: SecretStore;
  readonly policies: PolicyStore;
  /** Snapshots of the database: a SQLite file only (ADR 0028). */
  readonly snapshots: SnapshotStore | undefined;
  /**
   * Where the changes of secret paths are told: by the secret store's own
   * writes and, on PostgreSQL, by the change feed for those of every Nexus.
   */
  readonly changes: SecretChanges;
  readonly transitKeys: TransitKeyStore;
  /** What a keyring sweep walks, in order: the secrets, then the named keys. */
  readonly sweepTargets: readonly KeyringSweepTarget[];
  /** Where the data lives, for the start-up log (a PostgreSQL password is masked). */
  readonly location: string;
  /**
   * One cheap round trip to the database (`select 1`), for the readiness
   * probe; rejects when the database cannot answer. The caller sets the
   * deadline.
   */
  ping(): Promise<void>;
  /** Closes the database (every store on it). */
  close(): Promise<void>;
}

export async function openStores(options: OpenStoresOptions): Promise<Stores> {
  const { backend, keyring, maxVersionsDefault, quotas, cache = DEFAULT_CACHE_LIMITS } = options;
  const changes = new SecretChanges();
  const secretOptions = {
    keyring,
    maxVersionsDefault,
    ...(quotas === undefined ? {} : { quotas }),
  };
  if (backend.kind === 'postgres') {
    const database = await openPostgresDatabase({
      url: backend.url,
      ...(options.onConnectionError === undefined
        ? {}
        : { onIdleError: options.onConnectionError }),
    });
    // Other Nexus processes write too: the cache serves only while the
    // change feed is current, and evicts what it reports (ADR 0018); the
    // watchers of a path wake by it, after the eviction, so that their
    // re-read finds the change (ADR 0024). The feed always runs: watchers
    // need it whether the cache is on or not.
    const feed = new PgChangeFeed({
      listen: (channels, handlers) => database.listen(channels, handlers),
      ...(options.onChangeFeed === undefined ? {} : { onStatus: options.onChangeFeed }),
    });
    const rowCache = new SealedRowCache(cache, { isServing: () => feed.isCurrent() });
    feed.onChange((path) => {
      rowCache.changed(path);
      changes.changed(path);
    });
    feed.onGap(() => {
      rowCache.clear();
      changes.gap();
    });
    feed.start();
    const secrets = new PgSecretStore({ ...secretOptions, database, cache: rowCache, changes });
    const transitKeys = new PgTransitKeyStore({ db: database.db, keyring });
    return {
      rootKeys: new PgRootKeyStore(database),
      secrets,
      changes,
      policies: new PgPolicyStore(database.db),
      snapshots: undefined,
      transitKeys,
      sweepTargets: [secrets, transitKeys],
      location: database.redactedUrl,
      async ping() {
        await database.db.execute(sql`select 1`);
      },
      async close() {
        await feed.close();
        await database.close();
      },
    };
  }
  const database =
    backend.kind === 'memory'
      ? await openMemoryDatabase()
      : await openSqliteDatabase({
          path: join(backend.dataDir, 'spike.db'),
          synchronous: backend.synchronous,
        });
  // This process is the only writer of its file, so its own writes are
  // every change the cache must hear of (ADR 0018), a restore included.
  const rowCache = new SealedRowCache(cache);
  const secrets = new SqliteSecretStore({ ...secretOptions, database, cache: rowCache, changes });
  const transitKeys = new SqliteTransitKeyStore({ database, keyring });
  return {
    rootKeys: new SqliteRootKeyStore(database),
    secrets,
    changes,
    policies: new SqlitePolicyStore(database.db),
    snapshots:
      backend.kind === 'memory'
        ? undefined
        : new SqliteSnapshots({
            database,
            // Every row may have changed: nothing cached stands, and every watch looks again.
            onReplaced: () => {
              rowCache.clear();
              changes.gap();
            },
          }),
    transitKeys,
    sweepTargets: [secrets, transitKeys],
    location: database.path,
    async ping() {
      await database.db.run(sql`select 1`);
    },
    close: () => database.close(),
  };
}
