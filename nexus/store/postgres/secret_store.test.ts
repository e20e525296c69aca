/**
 * The SecretStore contract on PostgreSQL, then what two Nexus processes on
 * one database rely on: two stores on two separate pools see each other's
 * writes at once, and check-and-set holds across them. Also: tampered rows
 * fail to open, and the tables refuse rows that break the invariants.
 *
 * Skipped, with a notice, unless SPIKE_TEST_DATABASE_URL is set.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { and, asc, eq, sql } from 'drizzle-orm';
import type pg from 'pg';
import { parseSecretPath, type SecretPath } from '../../../shared/api/secret_path.ts';
import { randomBytes } from '../../../shared/crypto/bytes.ts';
import { ConflictError, DecryptionFailedError } from '../../../shared/errors/errors.ts';
import {
  dropScratchDatabases,
  openScratchDatabase,
  postgresSkip,
  TEST_DATABASE_URL_ENV,
} from '../../../test/harness/postgres.ts';
import { DEFAULT_CACHE_LIMITS, SealedRowCache } from '../sealed_row_cache.ts';
import type { QuotaUsage } from '../secret_quotas.ts';
import type { KeyringAccess } from '../secret_store.ts';
import {
  recountUsage,
  runSecretStoreContract,
  writeQuotaHistory,
} from '../testing/secret_store_contract.ts';
import { CHANGE_FEED_BOUND_MS, type ChangeFeedStatus, PgChangeFeed } from './change_feed.ts';
import { openPostgresDatabase, type PgDb, type PostgresDatabase } from './db.ts';
import { secretMetadata, secretQuotaUsage, secrets } from './schema.ts';
import { PgSecretStore } from './secret_store.ts';

const skip = postgresSkip();
after(dropScratchDatabases);
const p = (text: string): SecretPath => parseSecretPath(text);

function keyringOf(key: Uint8Array): KeyringAccess {
  return (use) => use(key, 1);
}

async function storedVersions(database: PostgresDatabase, path: SecretPath): Promise<number[]> {
  const rows = await database.db
    .select({ version: secrets.version })
    .from(secrets)
    .where(eq(secrets.path, path))
    .orderBy(asc(secrets.version));
  return rows.map((row) => row.version);
}

/** A namespace's counter row (zeros without one) and its recount from every row. */
async function quotaUsage(
  database: PostgresDatabase,
  namespace: string,
): Promise<{ counted: QuotaUsage; recounted: QuotaUsage }> {
  const { db } = database;
  const [row] = await db
    .select({ paths: secretQuotaUsage.paths, bytes: secretQuotaUsage.bytes })
    .from(secretQuotaUsage)
    .where(eq(secretQuotaUsage.namespace, namespace));
  const metadataRows = await db
    .select({ path: secretMetadata.path, customMetadata: secretMetadata.customMetadata })
    .from(secretMetadata);
  const versionRows = await db
    .select({ path: secrets.path, ciphertext: secrets.ciphertext })
    .from(secrets);
  return {
    counted: row ?? { paths: 0, bytes: 0 },
    recounted: recountUsage(namespace, metadataRows, versionRows),
  };
}

/** Two pools on one emptied database: two Nexus processes, as far as the store can tell. */
async function withTwoPools(
  body: (one: PgSecretStore, two: PgSecretStore, first: PostgresDatabase) => Promise<void>,
): Promise<void> {
  const { database: first, url } = await openScratchDatabase();
  const second = await openPostgresDatabase({ url });
  try {
    const options = { keyring: keyringOf(KEY), maxVersionsDefault: 10 };
    await body(
      new PgSecretStore({ ...options, database: first }),
      new PgSecretStore({ ...options, database: second }),
      first,
    );
  } finally {
    await first.close();
    await second.close();
  }
}

const KEY = randomBytes(32);

/** Resolves once `condition()` holds; fails after the deadline. */
async function until(condition: () => boolean, what: string, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * What one Nexus process builds on a database (as `open_stores.ts` does): a
 * change feed, a cache of sealed rows gated and evicted by it, the store.
 */
interface Replica {
  readonly store: PgSecretStore;
  readonly cache: SealedRowCache;
  readonly feed: PgChangeFeed;
  readonly statuses: ChangeFeedStatus[];
  /** `feed.isCurrent()` when each status was reported. */
  readonly currentAtStatus: boolean[];
  /** Every change the feed delivered, as `path@version`. */
  readonly changes: string[];
}

async function startReplica(
  database: PostgresDatabase,
  options: Omit<ConstructorParameters<typeof PgSecretStore>[0], 'database' | 'cache'>,
): Promise<Replica> {
  const statuses: ChangeFeedStatus[] = [];
  const currentAtStatus: boolean[] = [];
  const changes: string[] = [];
  const feed: PgChangeFeed = new PgChangeFeed({
    listen: (channels, handlers) => database.listen(channels, handlers),
    onStatus: (status) => {
      statuses.push(status);
      currentAtStatus.push(feed.isCurrent());
    },
  });
  const cache = new SealedRowCache(DEFAULT_CACHE_LIMITS, { isServing: () => feed.isCurrent() });
  feed.onChange((path, version) => {
    cache.changed(path);
    changes.push(`${path}@${version}`);
  });
  feed.onGap(() => cache.clear());
  feed.start();
  await until(() => feed.isCurrent(), 'the change feed is current');
  return {
    store: new PgSecretStore({ ...options, database, cache }),
    cache,
    feed,
    statuses,
    currentAtStatus,
    changes,
  };
}

/**
 * Reads `path` through `replica` until it returns `version`: a read issued
 * once the bound has passed since `ackedAt` (the write's acknowledgement,
 * `performance.now()`) must never return an older one.
 */
async function readUntilVersion(
  replica: Replica,
  path: SecretPath,
  version: number,
  ackedAt: number,
): Promise<number> {
  const deadline = ackedAt + 10_000;
  for (let reads = 1; ; reads++) {
    const issuedAt = performance.now();
    const read = await replica.store.get(path);
    if (read.version === version) return reads;
    assert.ok(read.version < version, `read version ${read.version} beyond ${version}`);
    assert.ok(
      issuedAt - ackedAt < CHANGE_FEED_BOUND_MS,
      `version ${read.version} read ${Math.round(issuedAt - ackedAt)} ms after version ${version} was acknowledged`,
    );
    assert.ok(performance.now() < deadline, 'never converged');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

if (skip !== false) {
  test(`PostgreSQL secret store (${TEST_DATABASE_URL_ENV})`, { skip }, () => {});
} else {
  runSecretStoreContract('PostgreSQL', async (options) => {
    const { database: first, url } = await openScratchDatabase();
    const databases = [first];
    return {
      store: new PgSecretStore({ ...options, database: first }),
      async connect() {
        // connect(): a second pool, as another Nexus process would have.
        const another = await openPostgresDatabase({ url });
        databases.push(another);
        return new PgSecretStore({ ...options, database: another });
      },
      storedVersions: (path) => storedVersions(first, path),
      quotaUsage: (namespace) => quotaUsage(first, namespace),
      async dispose() {
        for (const database of databases) await database.close();
      },
    };
  });

  // One scratch database for the whole cached run, emptied before each test:
  // a database per test, as above, would double this file's time.
  let cachedRun: Promise<{ database: PostgresDatabase; url: string }> | undefined;
  after(async () => (await cachedRun)?.database.close());
  runSecretStoreContract('PostgreSQL, cached', async (options) => {
    cachedRun ??= openScratchDatabase();
    const { database: first, url } = await cachedRun;
    await first.db.execute(sql`TRUNCATE secret_metadata, secrets, secret_quota_usage`);
    const databases: PostgresDatabase[] = [];
    const replica = await startReplica(first, options);
    return {
      store: replica.store,
      async connect() {
        // Another pool in the same process: it shares the process's cache.
        const another = await openPostgresDatabase({ url });
        databases.push(another);
        return new PgSecretStore({ ...options, database: another, cache: replica.cache });
      },
      storedVersions: (path) => storedVersions(first, path),
      quotaUsage: (namespace) => quotaUsage(first, namespace),
      async dispose() {
        await replica.feed.close();
        for (const database of databases) await database.close();
      },
    };
  });

  describe('PgSecretStore caches on two pools (two Nexus processes)', () => {
    async function withTwoReplicas(
      body: (a: Replica, b: Replica, first: PostgresDatabase) => Promise<void>,
    ) {
      const { database: first, url } = await openScratchDatabase();
      const second = await openPostgresDatabase({ url });
      const options = { keyring: keyringOf(KEY), maxVersionsDefault: 3 };
      const replicas: Replica[] = [];
      try {
        replicas.push(await startReplica(first, options), await startReplica(second, options));
        await body(replicas[0] as Replica, replicas[1] as Replica, first);
      } finally {
        for (const replica of replicas) await replica.feed.close();
        await first.close();
        await second.close();
      }
    }

    test('every kind of write notifies every feed with the path and its version, on commit only', () =>
      withTwoReplicas(async (a, b) => {
        const path = p('feed/x');
        await a.store.put(path, { n: '1' });
        await a.store.put(path, { n: '2' });
        await assert.rejects(a.store.put(path, { n: 'stale' }, { cas: 1 }), ConflictError);
        await a.store.softDelete(path);
        await a.store.undelete(path);
        await a.store.destroy(path, [1]);
        await a.store.writeMetadata(path, { maxVersions: 1 });
        await a.store.deletePath(path);
        const expected = ['1', '2', '2', '2', '2', '2', '0'].map((v) => `${path}@${v}`);
        for (const replica of [a, b]) {
          await until(() => replica.changes.length >= expected.length, 'every change arrived');
          assert.deepEqual(replica.changes, expected);
        }
      }));

    test('a write through A shows through B (cached) within the bound after its acknowledgement', () =>
      withTwoReplicas(async (a, b) => {
        const path = p('replica/x');
        await a.store.put(path, { n: '1' });
        await until(() => b.changes.includes(`${path}@1`), 'B heard of version 1');
        for (let i = 0; i < 2; i++) assert.equal((await b.store.get(path)).version, 1);
        assert.equal(b.cache.lookup(path, undefined)?.row?.version, 1, 'B did not cache');
        for (let version = 2; version <= 6; version++) {
          await a.store.put(path, { n: String(version) });
          await readUntilVersion(b, path, version, performance.now());
          assert.deepEqual((await b.store.get(path)).data, { n: String(version) });
        }
        await a.store.softDelete(path);
        const ackedAt = performance.now();
        for (;;) {
          const issuedAt = performance.now();
          const gone = await b.store.get(path).then(
            () => false,
            (err: Error) => /deleted/.test(err.message),
          );
          if (gone) break;
          assert.ok(issuedAt - ackedAt < CHANGE_FEED_BOUND_MS, 'a deleted version still read');
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      }));

    test("killing B's listening connection stops its cache at once; it reads fresh data and reconnects", () =>
      withTwoReplicas(async (a, b, first) => {
        const path = p('replica/killed');
        await a.store.put(path, { n: '1' });
        // Once B heard of the write, its read is no longer dropped as possibly stale.
        await until(() => b.changes.includes(`${path}@1`), 'B heard of version 1');
        // Kept from its second read (the cache's admission rule).
        await b.store.get(path);
        await b.store.get(path);
        assert.equal(b.cache.size, 1);
        const listening = b.statuses.at(-1);
        assert.ok(listening?.state === 'listening');
        // As an operator (or a failover) would: from another session.
        const { rows } = await first.db.execute(
          sql`SELECT pg_terminate_backend(${listening.backendPid}) AS ok`,
        );
        assert.deepEqual(rows, [{ ok: true }]);
        await a.store.put(path, { n: '2' });
        await readUntilVersion(b, path, 2, performance.now());
        await until(() => b.statuses.some((s) => s.state === 'lost'), 'B noticed');
        // The moment it noticed, its cache stopped serving.
        assert.equal(b.currentAtStatus[b.statuses.findIndex((s) => s.state === 'lost')], false);
        await until(() => b.feed.isCurrent(), 'B listens again');
        assert.equal(b.statuses.at(-1)?.state, 'listening');
        assert.notEqual(
          (b.statuses.at(-1) as { backendPid: number }).backendPid,
          listening.backendPid,
        );
        // Listening again, B caches again, and follows A's writes again.
        // (A read that overlaps a change notification is not kept: read until one is.)
        const deadline = Date.now() + 10_000;
        while (b.cache.lookup(path, undefined)?.row?.version !== 2) {
          assert.ok(Date.now() < deadline, 'B never cached again');
          assert.equal((await b.store.get(path)).version, 2);
        }
        await a.store.put(path, { n: '3' });
        await readUntilVersion(b, path, 3, performance.now());
      }));
  });

  describe('PgSecretStore on two pools (two Nexus processes)', () => {
    test('a write through one is read through the other at once', () =>
      withTwoPools(async (one, two) => {
        const path = p('shared/db');
        await one.put(path, { password: 'first' });
        assert.deepEqual((await two.get(path)).data, { password: 'first' });
        await two.put(path, { password: 'second' });
        assert.deepEqual((await one.get(path)).data, { password: 'second' });
        assert.equal((await one.readMetadata(path)).currentVersion, 2);
        await one.softDelete(path);
        await assert.rejects(two.get(path), /deleted/);
        assert.deepEqual((await two.list('shared/', { limit: 10 })).paths, [path]);
      }));

    test('check-and-set holds across them: a stale version fails, nothing is written', () =>
      withTwoPools(async (one, two, first) => {
        const path = p('shared/cas');
        await one.put(path, { v: '1' }, { cas: 0 });
        await one.put(path, { v: '2' }, { cas: 1 });
        await assert.rejects(two.put(path, { v: 'stale' }, { cas: 1 }), ConflictError);
        await assert.rejects(two.put(path, { v: 'stale' }, { cas: 0 }), ConflictError);
        assert.deepEqual(await storedVersions(first, path), [1, 2]);
        assert.equal((await two.put(path, { v: '3' }, { cas: 2 })).currentVersion, 3);
      }));

    test('of writers racing with the same cas on two pools exactly one wins', () =>
      withTwoPools(async (one, two) => {
        const path = p('shared/race');
        await one.put(path, { v: '1' });
        for (let round = 1; round <= 5; round++) {
          const results = await Promise.allSettled(
            Array.from({ length: 8 }, (_, i) =>
              (i % 2 === 0 ? one : two).put(path, { writer: `${round}-${i}` }, { cas: round }),
            ),
          );
          const winners = results.filter((r) => r.status === 'fulfilled');
          assert.equal(winners.length, 1, `round ${round}`);
          for (const result of results) {
            if (result.status === 'rejected') assert.ok(result.reason instanceof ConflictError);
          }
        }
        assert.equal((await two.readMetadata(path)).currentVersion, 6);
      }));
  });

  describe('PgSecretStore quota counters', () => {
    test('an existing database gets its quota counters when the migration runs', async () => {
      const { database: first, url } = await openScratchDatabase();
      let database = first;
      try {
        const store = new PgSecretStore({
          database,
          keyring: keyringOf(KEY),
          maxVersionsDefault: 2,
        });
        const namespaces = await writeQuotaHistory(store);
        const before = await Promise.all(namespaces.map((ns) => quotaUsage(database, ns)));
        // The database as it was before quotas: no counter table, and the two
        // migrations that make and fill it not applied. (drizzle applies what
        // is newer than the newest applied migration: the later ones are
        // undone too, and applied again after them.)
        const journal = JSON.parse(
          readFileSync(new URL('./migrations/meta/_journal.json', import.meta.url), 'utf8'),
        ) as { entries: { tag: string; when: number }[] };
        const since = journal.entries.find((e) => e.tag === '0002_secret_quota_usage')?.when;
        assert.ok(since !== undefined);
        await database.db.execute(sql`DROP TABLE secret_quota_usage`);
        await database.db.execute(sql`DROP TABLE transit_key_versions, transit_keys`);
        await database.db.execute(
          sql`ALTER TABLE root_key DROP COLUMN split_shares, DROP COLUMN split_threshold`,
        );
        await database.db.execute(sql`ALTER TABLE secret_metadata DROP COLUMN metadata_key_term`);
        await database.db.execute(sql`ALTER TABLE secrets DROP COLUMN key_term`);
        await database.db.execute(
          sql`DELETE FROM drizzle.__drizzle_migrations WHERE created_at >= ${since}`,
        );
        await database.close();
        database = await openPostgresDatabase({ url });
        for (const [i, namespace] of namespaces.entries()) {
          const after = await quotaUsage(database, namespace);
          assert.ok(after.counted.paths > 0);
          assert.deepEqual(after.counted, after.recounted);
          assert.deepEqual(after, before[i]);
        }
      } finally {
        await database.close();
      }
    });
  });

  describe('PgSecretStore against tampering', () => {
    test('a ciphertext copied to another version fails to open', () =>
      withTwoPools(async (one, _two, first) => {
        const path = p('tamper/x');
        await one.put(path, { v: '1' });
        await one.put(path, { v: '2' });
        await first.db.execute(
          sql`UPDATE ${secrets} SET ciphertext = (SELECT ciphertext FROM ${secrets} WHERE path = ${path} AND version = 1) WHERE path = ${path} AND version = 2`,
        );
        await assert.rejects(one.get(path, 2), DecryptionFailedError);
        assert.deepEqual((await one.get(path, 1)).data, { v: '1' });
      }));

    test('a flipped bit fails to open', () =>
      withTwoPools(async (one, _two, first) => {
        const path = p('tamper/bit');
        await one.put(path, { v: 'secret' });
        const [row] = await first.db
          .select({ ciphertext: secrets.ciphertext })
          .from(secrets)
          .where(and(eq(secrets.path, path), eq(secrets.version, 1)));
        const flipped = new Uint8Array(row?.ciphertext ?? []);
        flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 1;
        await first.db.update(secrets).set({ ciphertext: flipped }).where(eq(secrets.path, path));
        await assert.rejects(one.get(path), DecryptionFailedError);
      }));

    test('the tables refuse rows that break the invariants', () =>
      withTwoPools(async (_one, _two, first) => {
        const { db } = first;
        const meta = {
          path: 'x',
          createdAtMs: 1,
          updatedAtMs: 1,
          currentVersion: 1,
          oldestVersion: 1,
        };
        await assert.rejects(db.insert(secretMetadata).values({ ...meta, oldestVersion: 0 }));
        await assert.rejects(db.insert(secretMetadata).values({ ...meta, currentVersion: 0 }));
        await assert.rejects(db.insert(secretMetadata).values({ ...meta, maxVersions: 0 }));
        // A version needs its path's metadata row.
        await assert.rejects(
          db.insert(secrets).values({ path: 'x', version: 1, createdAtMs: 1, ciphertext: null }),
        );
        await db.insert(secretMetadata).values(meta);
        // Destroyed exactly when it has no data.
        await assert.rejects(
          db
            .insert(secrets)
            .values({ path: 'x', version: 1, createdAtMs: 1, destroyed: false, ciphertext: null }),
        );
        await assert.rejects(
          db.insert(secrets).values({
            path: 'x',
            version: 1,
            createdAtMs: 1,
            destroyed: true,
            ciphertext: new Uint8Array([1]),
          }),
        );
        await db
          .insert(secrets)
          .values({ path: 'x', version: 1, createdAtMs: 1, ciphertext: new Uint8Array([1, 2]) });
        // Deleting the path takes its versions along.
        await db.delete(secretMetadata).where(eq(secretMetadata.path, 'x'));
        assert.deepEqual(await db.select().from(secrets), []);
      }));
  });

  describe('PgSecretStore list queries', () => {
    test('read one index range in byte order, never the whole table', () =>
      withTwoPools(async (one, _two, first) => {
        for (let i = 0; i < 30; i++) await one.put(p(`big/s${String(i).padStart(2, '0')}`), {});
        await one.put(p('big'), {});
        await one.put(p('big-sibling'), {});
        const pool = (first.db as PgDb & { readonly $client: pg.Pool }).$client;
        const issued: { text: string; values: readonly unknown[] }[] = [];
        const query = pool.query.bind(pool);
        // Records the statements the store sends, to ask the planner about them.
        pool.query = ((config: { text: string; values?: unknown[] }, values?: unknown[]) => {
          issued.push({ text: config.text, values: config.values ?? values ?? [] });
          return query(config as never, values as never);
        }) as typeof pool.query;
        // Each call, and whether its plan may sort: a page of `list` must come
        // in index order, so that its LIMIT stops the read; the few rows
        // `listExisting` finds may be sorted.
        const calls: ReadonlyArray<readonly [() => Promise<unknown>, boolean]> = [
          [() => one.list('', { limit: 5 }), false],
          [() => one.list('big/', { limit: 5, after: p('big/s10') }), false],
          [() => one.list('big', { limit: 5 }), false],
          [() => one.listExisting([p('big/s03'), p('big/s29'), p('nothing')]), true],
        ];
        const plans: { readonly shown: string; readonly lines: string[] }[] = [];
        const client = await pool.connect();
        try {
          for (const [call, maySort] of calls) {
            issued.length = 0;
            await call();
            const [statement] = issued;
            assert.ok(statement !== undefined && issued.length === 1);
            // With the other ways priced out, the plan shows whether an index
            // can serve (on a table this small the planner would rather read
            // it all). EXPLAIN takes no bind parameters: values go in as literals.
            await client.query(
              `SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = ${maySort ? 'on' : 'off'}`,
            );
            const literal = statement.text.replace(/\$(\d+)/g, (_, n: string) => {
              const value = statement.values[Number(n) - 1];
              return typeof value === 'number'
                ? String(value)
                : client.escapeLiteral(String(value));
            });
            const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${literal}`);
            const lines = plan.rows.map((row) => row['QUERY PLAN']);
            plans.push({ shown: `${statement.text}\n${lines.join('\n')}`, lines });
            if (!maySort) {
              assert.ok(
                lines.every((line) => !line.includes('Sort')),
                plans.at(-1)?.shown,
              );
            }
          }
        } finally {
          client.release();
          pool.query = query;
        }
        for (const [index, { shown, lines }] of plans.entries()) {
          assert.ok(
            lines.every((line) => !line.includes('Seq Scan')),
            shown,
          );
          // Everything but the first (the whole store) is an index range.
          assert.equal(
            lines.some((line) => line.includes('Index Cond')),
            index > 0,
            shown,
          );
        }
      }));
  });
}
