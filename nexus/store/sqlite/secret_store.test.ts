/**
 * The SecretStore contract on the SQLite file store and on the memory store,
 * then what only a real file can show: tampering with stored rows, a wrong
 * data key, reopening, and durability across a SIGKILL.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { after, describe, test } from 'node:test';
import { and, asc, eq, sql } from 'drizzle-orm';
import { parseSecretPath, type SecretPath } from '../../../shared/api/secret_path.ts';
import { randomBytes } from '../../../shared/crypto/bytes.ts';
import { DecryptionFailedError, InternalError } from '../../../shared/errors/errors.ts';
import { DEFAULT_CACHE_LIMITS, SealedRowCache } from '../sealed_row_cache.ts';
import type { QuotaUsage, SecretQuotas } from '../secret_quotas.ts';
import type { KeyringAccess } from '../secret_store.ts';
import { createMemorySecretStore } from '../testing/memory_secret_store.ts';
import {
  type ContractStoreOptions,
  recountUsage,
  runSecretStoreContract,
  type SecretStoreFixture,
  writeQuotaHistory,
} from '../testing/secret_store_contract.ts';
import { openMemoryDatabase, openSqliteDatabase, type SqliteDatabase } from './db.ts';
import { secretMetadata, secretQuotaUsage, secrets } from './schema.ts';
import { SqliteSecretStore } from './secret_store.ts';

const scratchDirs: string[] = [];
after(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

function freshDatabasePath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'spike-secrets-'));
  scratchDirs.push(dir);
  return join(dir, 'data', 'spike.db');
}

function keyringOf(key: Uint8Array): KeyringAccess {
  return (use) => use(key, 1);
}

async function storedVersions(database: SqliteDatabase, path: SecretPath): Promise<number[]> {
  const rows = await database.db
    .select({ version: secrets.version })
    .from(secrets)
    .where(eq(secrets.path, path))
    .orderBy(asc(secrets.version));
  return rows.map((row) => row.version);
}

/** A namespace's counter row (zeros without one) and its recount from every row. */
async function quotaUsage(
  database: SqliteDatabase,
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

/**
 * A fixture over `open()`ed databases: the first is the store's, others are
 * connect()'s. With `cached`, every store reads through one cache of sealed
 * rows, as the stores of one Nexus process do.
 */
async function sqlFixture(
  options: ContractStoreOptions,
  open: () => Promise<SqliteDatabase>,
  shareFirst: boolean,
  cached = false,
): Promise<SecretStoreFixture> {
  const first = await open();
  const databases = [first];
  const cache = cached ? new SealedRowCache(DEFAULT_CACHE_LIMITS) : undefined;
  const withCache = cache === undefined ? {} : { cache };
  const store = new SqliteSecretStore({ ...options, ...withCache, database: first });
  return {
    store,
    async connect() {
      const database = shareFirst ? first : await open();
      if (database !== first) databases.push(database);
      return new SqliteSecretStore({ ...options, ...withCache, database });
    },
    storedVersions: (path) => storedVersions(first, path),
    quotaUsage: (namespace) => quotaUsage(first, namespace),
    async dispose() {
      for (const database of databases) await database.close();
    },
  };
}

runSecretStoreContract('SQLite file', (options) => {
  const path = freshDatabasePath();
  // connect(): a second connection to the same file.
  return sqlFixture(options, () => openSqliteDatabase({ path }), false);
});

runSecretStoreContract('memory', (options) =>
  // One in-memory database has one connection: connect() shares it.
  sqlFixture(options, openMemoryDatabase, true),
);

runSecretStoreContract('SQLite file, cached', (options) => {
  const path = freshDatabasePath();
  return sqlFixture(options, () => openSqliteDatabase({ path }), false, true);
});

runSecretStoreContract('memory, cached', (options) =>
  sqlFixture(options, openMemoryDatabase, true, true),
);

describe('createMemorySecretStore', () => {
  test('gives a working, private store that close() discards', async () => {
    const options = { keyring: keyringOf(randomBytes(32)), maxVersionsDefault: 3 };
    const one = await createMemorySecretStore(options);
    const two = await createMemorySecretStore(options);
    const path = parseSecretPath('mem/x');
    await one.put(path, { a: 'b' });
    assert.deepEqual((await one.get(path)).data, { a: 'b' });
    assert.deepEqual((await two.list('', { limit: 10 })).paths, []);
    await one.close();
    await assert.rejects(one.get(path), InternalError);
    await two.close();
  });

  test('validates its options', async () => {
    await assert.rejects(
      createMemorySecretStore({ keyring: keyringOf(randomBytes(32)), maxVersionsDefault: 0 }),
    );
  });
});

describe('the secret tables', () => {
  for (const [name, open] of [
    ['file', () => openSqliteDatabase({ path: freshDatabasePath() })],
    ['memory', openMemoryDatabase],
  ] as const) {
    test(`refuse rows that break the invariants (${name})`, async () => {
      const database = await open();
      const { db } = database;
      try {
        const meta = {
          path: 'x',
          createdAtMs: 1,
          updatedAtMs: 1,
          currentVersion: 2,
          oldestVersion: 1,
        };
        const version = { path: 'x', version: 1, createdAtMs: 1, ciphertext: new Uint8Array(41) };
        // A version needs its path's metadata row (foreign key).
        await assert.rejects(db.insert(secrets).values(version));
        await assert.rejects(db.insert(secretMetadata).values({ ...meta, oldestVersion: 0 }));
        await assert.rejects(db.insert(secretMetadata).values({ ...meta, oldestVersion: 3 }));
        await assert.rejects(db.insert(secretMetadata).values({ ...meta, maxVersions: 0 }));
        await db.insert(secretMetadata).values(meta);
        // Destroyed exactly when the ciphertext is gone.
        await assert.rejects(db.insert(secrets).values({ ...version, ciphertext: null }));
        await assert.rejects(db.insert(secrets).values({ ...version, destroyed: true }));
        await assert.rejects(db.insert(secrets).values({ ...version, version: 0 }));
        await db.insert(secrets).values(version);
        await db
          .insert(secrets)
          .values({ ...version, version: 2, ciphertext: null, destroyed: true });
        // Deleting the metadata row takes the versions with it.
        await db.delete(secretMetadata).where(eq(secretMetadata.path, 'x'));
        assert.deepEqual(await db.select().from(secrets), []);
      } finally {
        await database.close();
      }
    });
  }
});

describe('group commit: the writes of one turn share a transaction', () => {
  /** What a store call came to: its value, or its error's class and message. */
  async function settle(call: Promise<unknown>): Promise<unknown> {
    try {
      return { value: await call };
    } catch (err) {
      return { error: (err as Error).name, message: (err as Error).message };
    }
  }

  for (const [name, open] of [
    ['file', () => openSqliteDatabase({ path: freshDatabasePath() })],
    ['memory', openMemoryDatabase],
  ] as const) {
    async function withStore(
      options: { readonly quotas?: SecretQuotas },
      run: (store: SqliteSecretStore, database: SqliteDatabase) => Promise<void>,
    ): Promise<void> {
      const database = await open();
      try {
        const keyring = keyringOf(randomBytes(32));
        await run(
          new SqliteSecretStore({ database, keyring, maxVersionsDefault: 1000, ...options }),
          database,
        );
      } finally {
        await database.close();
      }
    }

    test(`puts to one path in one turn get contiguous versions in arrival order (${name})`, () =>
      withStore({}, async (store, database) => {
        const path = parseSecretPath('turn/one');
        // More than one transaction takes (64), so the turn spans several.
        const count = 150;
        const puts = Array.from({ length: count }, (_, i) => store.put(path, { i: String(i) }));
        const written = await Promise.all(puts);
        assert.deepEqual(
          written.map((metadata) => metadata.currentVersion),
          Array.from({ length: count }, (_, i) => i + 1),
        );
        for (let i = 0; i < count; i++) {
          assert.deepEqual((await store.get(path, i + 1)).data, { i: String(i) });
        }
        assert.deepEqual(
          await storedVersions(database, path),
          Array.from({ length: count }, (_, i) => i + 1),
        );
        const usage = await quotaUsage(database, 'turn');
        assert.deepEqual(usage.counted, usage.recounted);
      }));

    test(`puts to many paths in one turn all commit and read back (${name})`, () =>
      withStore({}, async (store, database) => {
        const paths = Array.from({ length: 100 }, (_, i) => parseSecretPath(`many/p${i}`));
        const written = await Promise.all(paths.map((path) => store.put(path, { p: path })));
        assert.ok(written.every((metadata) => metadata.currentVersion === 1));
        for (const path of paths) assert.deepEqual((await store.get(path)).data, { p: path });
        const usage = await quotaUsage(database, 'many');
        assert.equal(usage.counted.paths, 100);
        assert.deepEqual(usage.counted, usage.recounted);
      }));

    test(`check-and-set in one turn: exactly one winner, the first (${name})`, () =>
      withStore({}, async (store) => {
        const existing = parseSecretPath('cas/existing');
        await store.put(existing, { n: '0' });
        const fresh = parseSecretPath('cas/fresh');
        const onExisting = Array.from({ length: 10 }, (_, i) =>
          settle(store.put(existing, { n: String(i + 1) }, { cas: 1 })),
        );
        const onFresh = Array.from({ length: 10 }, (_, i) =>
          settle(store.put(fresh, { n: String(i) }, { cas: 0 })),
        );
        for (const outcomes of [await Promise.all(onExisting), await Promise.all(onFresh)]) {
          assert.ok(outcomes[0] !== undefined && 'value' in (outcomes[0] as object));
          for (const outcome of outcomes.slice(1)) {
            assert.equal((outcome as { error: string }).error, 'ConflictError');
          }
        }
        assert.deepEqual(await store.get(existing), await store.get(existing, 2));
        assert.deepEqual((await store.get(existing)).data, { n: '1' });
        assert.deepEqual((await store.get(fresh)).data, { n: '0' });
        assert.equal((await store.readMetadata(fresh)).currentVersion, 1);
      }));

    test(`a write refused by its quota or check-and-set fails alone; the others commit (${name})`, () =>
      withStore(
        {
          quotas: {
            default: { paths: null, bytes: null },
            namespaces: new Map([['tight', { paths: 2, bytes: null }]]),
          },
        },
        async (store, database) => {
          const outcomes = await Promise.all([
            settle(store.put(parseSecretPath('tight/a'), { v: 'a' })),
            settle(store.put(parseSecretPath('tight/b'), { v: 'b' }, { cas: 5 })),
            settle(store.put(parseSecretPath('tight/c'), { v: 'c' })),
            settle(store.put(parseSecretPath('tight/d'), { v: 'd' })),
            settle(store.put(parseSecretPath('other/e'), { v: 'e' })),
          ]);
          assert.deepEqual(
            outcomes.map((o) => (o as { error?: string }).error ?? 'ok'),
            ['ok', 'ConflictError', 'ok', 'QuotaExceededError', 'ok'],
          );
          assert.deepEqual((await store.list('', { limit: 10 })).paths, [
            'other/e',
            'tight/a',
            'tight/c',
          ]);
          for (const namespace of ['tight', 'other']) {
            const usage = await quotaUsage(database, namespace);
            assert.deepEqual(usage.counted, usage.recounted);
          }
        },
      ));

    test(`writes of every kind in one turn end as if run one after another (${name})`, async () => {
      const x = parseSecretPath('seq/x');
      const y = parseSecretPath('seq/y');
      const calls = (store: SqliteSecretStore): (() => Promise<unknown>)[] => [
        () => store.put(x, { v: '2' }),
        () => store.softDelete(x),
        () => store.put(x, { v: '3' }, { cas: 2 }),
        () => store.put(x, { v: 'lost' }, { cas: 2 }),
        () => store.destroy(x, [1]),
        () => store.writeMetadata(x, { maxVersions: 2, customMetadata: { k: 'v' } }),
        () => store.undelete(x, [2]),
        () => store.undelete(x, [1]),
        () => store.deletePath(y, { onlyDeleted: true }),
        () => store.softDelete(y),
        () => store.deletePath(y, { onlyDeleted: true }),
        () => store.put(y, { v: 'again' }, { cas: 0 }),
      ];
      /** The outcome of every call and the state after: in sequence, or all in one turn. */
      async function run(inOneTurn: boolean) {
        const database = await open();
        try {
          const store = new SqliteSecretStore({
            database,
            keyring: keyringOf(randomBytes(32)),
            maxVersionsDefault: 10,
            now: () => 1_700_000_000_000,
          });
          await store.put(x, { v: '1' });
          await store.put(y, { v: '1' });
          const outcomes: unknown[] = [];
          if (inOneTurn) {
            outcomes.push(...(await Promise.all(calls(store).map((call) => settle(call())))));
          } else {
            for (const call of calls(store)) outcomes.push(await settle(call()));
          }
          const state = [];
          for (const path of [x, y]) {
            state.push(await store.readMetadata(path), await storedVersions(database, path));
          }
          state.push((await quotaUsage(database, 'seq')).counted);
          return { outcomes, state };
        } finally {
          await database.close();
        }
      }
      const inSequence = await run(false);
      // The sequence itself exercises every branch: some calls fail.
      assert.ok(inSequence.outcomes.some((o) => (o as { error?: string }).error !== undefined));
      assert.deepEqual(await run(true), inSequence);
    });
  }
});

describe('SqliteSecretStore on a file', () => {
  const PATH_A = parseSecretPath('attack/a');
  const PATH_B = parseSecretPath('attack/b');

  /** A file store with two paths of two versions each, and the raw database. */
  async function attackSetup() {
    const database = await openSqliteDatabase({ path: freshDatabasePath() });
    const key = randomBytes(32);
    const store = new SqliteSecretStore({
      database,
      keyring: keyringOf(key),
      maxVersionsDefault: 10,
    });
    for (const path of [PATH_A, PATH_B]) {
      await store.put(path, { v: `${path}#1` });
      await store.put(path, { v: `${path}#2` });
      await store.writeMetadata(path, { customMetadata: { owner: path } });
    }
    return { database, key, store };
  }

  async function ciphertextOf(
    database: SqliteDatabase,
    path: SecretPath,
    version: number,
  ): Promise<Uint8Array> {
    const [row] = await database.db
      .select({ ciphertext: secrets.ciphertext })
      .from(secrets)
      .where(and(eq(secrets.path, path), eq(secrets.version, version)));
    assert.ok(row?.ciphertext instanceof Uint8Array);
    return row.ciphertext;
  }

  async function setCiphertext(
    database: SqliteDatabase,
    path: SecretPath,
    version: number,
    ciphertext: Uint8Array,
  ): Promise<void> {
    await database.db
      .update(secrets)
      .set({ ciphertext })
      .where(and(eq(secrets.path, path), eq(secrets.version, version)));
  }

  const isDecryptionFailure = (err: unknown) =>
    err instanceof DecryptionFailedError && err.message === 'Decryption failed';

  test('ciphertexts are what is stored: no plaintext in the rows', async () => {
    const { database } = await attackSetup();
    try {
      const rows = await database.db.select().from(secrets);
      const metadata = await database.db.select().from(secretMetadata);
      // Byte for byte (windows-1252 keeps ASCII bytes as they are).
      const blobs = [...rows, ...metadata]
        .flatMap((row) => Object.values(row))
        .filter((value) => value instanceof Uint8Array)
        .map((blob) => new TextDecoder('windows-1252').decode(blob));
      assert.equal(blobs.length, 6);
      for (const needle of ['attack/a#1', 'attack/a#2', 'attack/b#2', '"v"', '"owner"']) {
        assert.ok(!blobs.some((text) => text.includes(needle)), needle);
      }
    } finally {
      await database.close();
    }
  });

  test('the cache of sealed rows holds ciphertext only: no plaintext in any entry', async () => {
    const database = await openSqliteDatabase({ path: freshDatabasePath() });
    try {
      const cache = new SealedRowCache(DEFAULT_CACHE_LIMITS);
      const store = new SqliteSecretStore({
        database,
        keyring: keyringOf(randomBytes(32)),
        maxVersionsDefault: 10,
        cache,
      });
      for (const path of [PATH_A, PATH_B]) {
        await store.put(path, { v: `${path}#1` });
        await store.put(path, { v: `${path}#2` });
        await store.writeMetadata(path, { customMetadata: { owner: path } });
        // Fills the current version, then an explicit one; the second read is a hit.
        for (const version of [undefined, 1, undefined, 1]) {
          assert.match((await store.get(path, version)).data.v as string, /^attack\/.#\d$/);
        }
      }
      assert.equal(cache.size, 2);
      const held = [PATH_A, PATH_B].flatMap((path) =>
        [undefined, 1, 2].map((version) => cache.lookup(path, version)),
      );
      // Every byte array and every string the entries hold, byte for byte.
      const texts: string[] = [];
      const walk = (value: unknown): void => {
        if (value instanceof Uint8Array) texts.push(new TextDecoder('windows-1252').decode(value));
        else if (typeof value === 'string') texts.push(value);
        else if (value !== null && typeof value === 'object') Object.values(value).forEach(walk);
      };
      walk(held);
      assert.ok(held.every((read) => read?.row?.ciphertext instanceof Uint8Array));
      for (const needle of [
        'attack/a#1',
        'attack/a#2',
        'attack/b#1',
        'attack/b#2',
        '"v"',
        '"owner"',
      ]) {
        assert.ok(!texts.some((text) => text.includes(needle)), needle);
      }
    } finally {
      await database.close();
    }
  });

  test('a flipped bit in stored data fails to decrypt, at any position', async () => {
    const { database, store } = await attackSetup();
    try {
      const original = await ciphertextOf(database, PATH_A, 2);
      for (const index of [0, 1, 12, 25, original.length - 17, original.length - 1]) {
        const tampered = original.slice();
        tampered[index] = (tampered[index] as number) ^ 0x04;
        await setCiphertext(database, PATH_A, 2, tampered);
        await assert.rejects(store.get(PATH_A), isDecryptionFailure);
      }
      await setCiphertext(database, PATH_A, 2, original.subarray(0, 30));
      await assert.rejects(store.get(PATH_A), isDecryptionFailure);
      await setCiphertext(database, PATH_A, 2, original);
      assert.deepEqual((await store.get(PATH_A)).data, { v: 'attack/a#2' });
      // The other rows were never affected.
      assert.deepEqual((await store.get(PATH_A, 1)).data, { v: 'attack/a#1' });
    } finally {
      await database.close();
    }
  });

  test('ciphertexts swapped between paths fail to decrypt', async () => {
    const { database, store } = await attackSetup();
    try {
      const a = await ciphertextOf(database, PATH_A, 2);
      const b = await ciphertextOf(database, PATH_B, 2);
      await setCiphertext(database, PATH_A, 2, b);
      await setCiphertext(database, PATH_B, 2, a);
      await assert.rejects(store.get(PATH_A), isDecryptionFailure);
      await assert.rejects(store.get(PATH_B, 2), isDecryptionFailure);
    } finally {
      await database.close();
    }
  });

  test('ciphertexts swapped between versions of one path fail to decrypt', async () => {
    const { database, store } = await attackSetup();
    try {
      const one = await ciphertextOf(database, PATH_A, 1);
      const two = await ciphertextOf(database, PATH_A, 2);
      await setCiphertext(database, PATH_A, 1, two);
      await setCiphertext(database, PATH_A, 2, one);
      await assert.rejects(store.get(PATH_A, 1), isDecryptionFailure);
      await assert.rejects(store.get(PATH_A), isDecryptionFailure);
    } finally {
      await database.close();
    }
  });

  test('custom metadata flipped or swapped between paths fails to decrypt', async () => {
    const { database, store } = await attackSetup();
    try {
      const read = async (path: SecretPath) => {
        const [row] = await database.db
          .select({ sealed: secretMetadata.customMetadata })
          .from(secretMetadata)
          .where(eq(secretMetadata.path, path));
        assert.ok(row?.sealed instanceof Uint8Array);
        return row.sealed;
      };
      const write = (path: SecretPath, sealed: Uint8Array) =>
        database.db
          .update(secretMetadata)
          .set({ customMetadata: sealed })
          .where(eq(secretMetadata.path, path));
      const a = await read(PATH_A);
      const b = await read(PATH_B);
      await write(PATH_A, b);
      await assert.rejects(store.readMetadata(PATH_A), isDecryptionFailure);
      const flipped = a.slice();
      flipped[flipped.length - 3] = (flipped[flipped.length - 3] as number) ^ 0x80;
      await write(PATH_A, flipped);
      await assert.rejects(store.readMetadata(PATH_A), isDecryptionFailure);
      assert.deepEqual((await store.readMetadata(PATH_B)).customMetadata, { owner: 'attack/b' });
    } finally {
      await database.close();
    }
  });

  test('a row moved to another version number fails to decrypt', async () => {
    const { database, store } = await attackSetup();
    try {
      // Renumber version 1 as 3 (an attacker "rolling forward" old data).
      await database.db.batch([
        database.db.delete(secrets).where(and(eq(secrets.path, PATH_A), eq(secrets.version, 2))),
        database.db
          .update(secrets)
          .set({ version: 2 })
          .where(and(eq(secrets.path, PATH_A), eq(secrets.version, 1))),
      ]);
      await assert.rejects(store.get(PATH_A), isDecryptionFailure);
    } finally {
      await database.close();
    }
  });

  test('a wrong data key fails to decrypt and never yields plaintext', async () => {
    const { database } = await attackSetup();
    try {
      const wrong = new SqliteSecretStore({
        database,
        keyring: keyringOf(randomBytes(32)),
        maxVersionsDefault: 10,
      });
      await assert.rejects(wrong.get(PATH_A), isDecryptionFailure);
      await assert.rejects(wrong.get(PATH_B, 1), isDecryptionFailure);
      await assert.rejects(wrong.readMetadata(PATH_A), isDecryptionFailure);
      // Paths are in clear by design: listing needs no key.
      assert.deepEqual((await wrong.list('', { limit: 10 })).paths, [PATH_A, PATH_B]);
    } finally {
      await database.close();
    }
  });

  test('what was written reads back after the file is reopened', async () => {
    const path = freshDatabasePath();
    const key = randomBytes(32);
    const secret = parseSecretPath('reopen/x');
    let database = await openSqliteDatabase({ path });
    let store = new SqliteSecretStore({ database, keyring: keyringOf(key), maxVersionsDefault: 2 });
    await store.put(secret, { a: '1' });
    await store.put(secret, { a: '2' });
    await store.put(secret, { a: '3' });
    await store.writeMetadata(secret, { customMetadata: { c: 'd' } });
    await store.softDelete(secret, [2]);
    await database.close();
    database = await openSqliteDatabase({ path });
    store = new SqliteSecretStore({ database, keyring: keyringOf(key), maxVersionsDefault: 2 });
    try {
      assert.deepEqual((await store.get(secret)).data, { a: '3' });
      const metadata = await store.readMetadata(secret);
      assert.equal(metadata.oldestVersion, 2);
      assert.deepEqual(metadata.customMetadata, { c: 'd' });
      assert.notEqual(metadata.versions[0]?.deletedAt, null);
      assert.deepEqual(await storedVersions(database, secret), [2, 3]);
    } finally {
      await database.close();
    }
  });

  test('an existing database gets its quota counters when the migration runs', async () => {
    const path = freshDatabasePath();
    const options = { keyring: keyringOf(randomBytes(32)), maxVersionsDefault: 2 };
    let database = await openSqliteDatabase({ path });
    const namespaces = await writeQuotaHistory(new SqliteSecretStore({ ...options, database }));
    const before = await Promise.all(namespaces.map((ns) => quotaUsage(database, ns)));
    // The database as it was before quotas: no counter table, and the two
    // migrations that make and fill it not applied. (drizzle applies what is
    // newer than the newest applied migration: the later ones are undone
    // too, and applied again after them.)
    const journal = JSON.parse(
      readFileSync(new URL('./migrations/meta/_journal.json', import.meta.url), 'utf8'),
    ) as { entries: { tag: string; when: number }[] };
    const since = journal.entries.find((entry) => entry.tag === '0002_secret_quota_usage')?.when;
    assert.ok(since !== undefined);
    await database.db.run(sql`DROP TABLE secret_quota_usage`);
    await database.db.run(sql`DROP TABLE transit_key_versions`);
    await database.db.run(sql`DROP TABLE transit_keys`);
    await database.db.run(sql`ALTER TABLE root_key DROP COLUMN split_shares`);
    await database.db.run(sql`ALTER TABLE root_key DROP COLUMN split_threshold`);
    await database.db.run(sql`ALTER TABLE secret_metadata DROP COLUMN metadata_key_term`);
    await database.db.run(sql`ALTER TABLE secrets DROP COLUMN key_term`);
    await database.db.run(sql`DELETE FROM __drizzle_migrations WHERE created_at >= ${since}`);
    await database.close();
    database = await openSqliteDatabase({ path });
    try {
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

  test('the store does not close a database it does not own', async () => {
    const database = await openSqliteDatabase({ path: freshDatabasePath() });
    try {
      const options = { database, keyring: keyringOf(randomBytes(32)), maxVersionsDefault: 2 };
      const store = new SqliteSecretStore(options);
      await store.close();
      await assert.rejects(store.list('', { limit: 1 }), InternalError);
      const again = new SqliteSecretStore(options);
      assert.deepEqual(await again.list('', { limit: 1 }), { paths: [] });
    } finally {
      await database.close();
    }
  });

  for (const writers of [1, 7]) {
    test(`every acknowledged write survives a SIGKILL, and none is half-written (${writers} concurrent writer${writers === 1 ? '' : 's'})`, async () => {
      const path = freshDatabasePath();
      const key = randomBytes(32);
      const acknowledged = await writeUntilKilled(path, key, 150, writers);
      assert.ok(acknowledged.length >= 150, `only ${acknowledged.length} writes acknowledged`);

      const database = await openSqliteDatabase({ path });
      try {
        const [check] = await database.db.all<{ integrity_check: string }>(
          sql`PRAGMA integrity_check`,
        );
        assert.equal(check?.integrity_check, 'ok');
        const store = new SqliteSecretStore({
          database,
          keyring: keyringOf(key),
          maxVersionsDefault: 1000,
        });
        for (const ack of acknowledged) {
          const read = await store.get(parseSecretPath(ack.path), ack.version);
          assert.equal(read.data.i, String(ack.i));
        }
        // Every version that exists at all (acknowledged or not) is whole:
        // readable, and its metadata agrees with its rows.
        const { paths } = await store.list('', { limit: 1000 });
        assert.ok(paths.length > 0);
        for (const secretPath of paths) {
          const metadata = await store.readMetadata(secretPath);
          const versions = await storedVersions(database, secretPath);
          assert.equal(versions.at(-1), metadata.currentVersion);
          assert.equal(versions[0], metadata.oldestVersion);
          assert.equal(versions.length, metadata.currentVersion - metadata.oldestVersion + 1);
          for (const version of versions) {
            const read = await store.get(secretPath, version);
            assert.equal(read.data.pad?.length, 512);
          }
          const newest = acknowledged.filter((a) => a.path === secretPath).at(-1)?.version ?? 0;
          // Each path has one writer, so at most its one write in flight at
          // the kill committed unacknowledged.
          assert.ok(metadata.currentVersion - newest <= 1);
        }
        // The quota counter was written with the rows it counts, so it is exact.
        const usage = await quotaUsage(database, 'durable');
        assert.deepEqual(usage.counted, usage.recounted);
      } finally {
        await database.close();
      }
    });
  }
});

interface Acknowledged {
  readonly path: string;
  readonly version: number;
  readonly i: number;
}

/**
 * Runs `writers` concurrent writers in a child process (the current runtime)
 * that put versions as fast as they can (writer w to its own paths
 * `durable/<w>/<0..6>`, so their puts share group commits) and print each
 * one once `put` resolved; kills it with SIGKILL once `atLeast` were printed,
 * at a random moment soon after.
 */
function writeUntilKilled(
  path: string,
  key: Uint8Array,
  atLeast: number,
  writers: number,
): Promise<Acknowledged[]> {
  const url = (file: string) => new URL(file, import.meta.url).href;
  const code = `
    const { openSqliteDatabase } = await import(${JSON.stringify(url('./db.ts'))});
    const { SqliteSecretStore } = await import(${JSON.stringify(url('./secret_store.ts'))});
    const { parseSecretPath } = await import(${JSON.stringify(url('../../../shared/api/secret_path.ts'))});
    const { stdout } = await import('node:process');
    const key = Uint8Array.from(${JSON.stringify([...key])});
    const database = await openSqliteDatabase({ path: ${JSON.stringify(path)} });
    const store = new SqliteSecretStore({ database, keyring: (use) => use(key, 1), maxVersionsDefault: 1000 });
    const pad = 'p'.repeat(512);
    let i = 0;
    async function writer(w) {
      for (;;) {
        const n = ++i;
        const path = parseSecretPath('durable/' + w + '/' + (n % 7));
        const metadata = await store.put(path, { i: String(n), pad });
        const line = JSON.stringify({ path, version: metadata.currentVersion, i: n }) + '\\n';
        await new Promise((resolve) => stdout.write(line, resolve));
      }
    }
    await Promise.all(Array.from({ length: ${writers} }, (_, w) => writer(w)));
  `;
  const isDeno = 'Deno' in globalThis;
  const args = isDeno
    ? ['eval', '--quiet', code]
    : ['--import', 'tsx', '--input-type=module', '-e', code];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    let stderr = '';
    const acknowledged: Acknowledged[] = [];
    let isKillScheduled = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) acknowledged.push(JSON.parse(line) as Acknowledged);
      if (acknowledged.length >= atLeast && !isKillScheduled) {
        isKillScheduled = true;
        setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 20));
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && isKillScheduled) resolve(acknowledged);
      else reject(new Error(`writer ended with ${status ?? signal}: ${stderr}`));
    });
  });
}
