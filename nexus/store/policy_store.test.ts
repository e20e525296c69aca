/**
 * The PolicyStore contract, run against every implementation, plus what only
 * the SQLite store has (rows on a real file, another connection, a row
 * edited into something invalid). openSqliteDatabase() takes files only
 * (it refuses ":memory:"), so SQLite runs on a temporary file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { sql } from 'drizzle-orm';
import type { PolicyDocument } from '../../shared/api/policies.ts';
import { InternalError, InvalidRequestError } from '../../shared/errors/errors.ts';
import {
  dropScratchDatabases,
  openScratchDatabase,
  postgresSkip,
} from '../../test/harness/postgres.ts';
import type { PolicyStore, PolicyStoreOptions } from './policy_store.ts';
import { PgPolicyStore } from './postgres/policy_store.ts';
import { openSqliteDatabase, type SqliteDatabase } from './sqlite/db.ts';
import { SqlitePolicyStore } from './sqlite/policy_store.ts';
import { MemoryPolicyStore } from './testing/memory_policy_store.ts';

after(dropScratchDatabases);
const scratchDirs: string[] = [];
after(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

function freshDatabasePath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'spike-policies-'));
  scratchDirs.push(dir);
  return join(dir, 'nexus.db');
}

interface Fixture {
  readonly store: PolicyStore;
  dispose(): Promise<void>;
}

const IMPLEMENTATIONS: ReadonlyArray<{
  name: string;
  create(options: PolicyStoreOptions): Promise<Fixture>;
  /** Why the implementation's tests are skipped here (PostgreSQL without a URL). */
  skip?: string | false;
}> = [
  {
    name: 'MemoryPolicyStore',
    create: (options) =>
      Promise.resolve({ store: new MemoryPolicyStore(options), dispose: () => Promise.resolve() }),
  },
  {
    name: 'SqlitePolicyStore (SQLite file)',
    async create(options) {
      const database = await openSqliteDatabase({ path: freshDatabasePath() });
      return {
        store: new SqlitePolicyStore(database.db, options),
        dispose: () => database.close(),
      };
    },
  },
  {
    name: 'PgPolicyStore (PostgreSQL)',
    skip: postgresSkip(),
    async create(options) {
      const { database } = await openScratchDatabase();
      return { store: new PgPolicyStore(database.db, options), dispose: () => database.close() };
    },
  },
];

function document(name: string, overrides: Partial<PolicyDocument> = {}): PolicyDocument {
  return {
    name,
    spiffeIdPattern: 'spiffe://example.org/apps/web',
    pathPattern: 'apps/web/**',
    permissions: ['read', 'list'],
    ...overrides,
  };
}

/** A clock the test moves by hand. */
function manualClock(startMs: number) {
  let nowMs = startMs;
  return {
    now: () => nowMs,
    set(ms: number) {
      nowMs = ms;
    },
  };
}

for (const implementation of IMPLEMENTATIONS) {
  describe(`PolicyStore contract: ${implementation.name}`, {
    skip: implementation.skip ?? false,
  }, () => {
    async function withStore(
      run: (store: PolicyStore, clock: ReturnType<typeof manualClock>) => Promise<void>,
    ) {
      const clock = manualClock(1_000);
      const fixture = await implementation.create({ now: clock.now });
      try {
        await run(fixture.store, clock);
      } finally {
        await fixture.dispose();
      }
    }

    test('starts empty', () =>
      withStore(async (store) => {
        assert.deepEqual(await store.list(), []);
        assert.equal(await store.get('web'), undefined);
        assert.equal(await store.delete('web'), false);
      }));

    test('upsert creates a policy and get/list return it with its times', () =>
      withStore(async (store) => {
        const stored = await store.upsert(document('web'));
        const expected = {
          ...document('web'),
          createdAt: new Date(1_000),
          updatedAt: new Date(1_000),
        };
        assert.deepEqual({ ...stored }, expected);
        assert.deepEqual({ ...(await store.get('web')) }, expected);
        assert.deepEqual(
          (await store.list()).map((policy) => ({ ...policy })),
          [expected],
        );
      }));

    test('upsert of an existing name replaces it and keeps createdAt', () =>
      withStore(async (store, clock) => {
        await store.upsert(document('web'));
        clock.set(2_000);
        const replaced = await store.upsert(
          document('web', { pathPattern: 'apps/**', permissions: ['super'] }),
        );
        assert.equal(replaced.pathPattern, 'apps/**');
        assert.deepEqual(replaced.permissions, ['super']);
        assert.equal(replaced.createdAt.getTime(), 1_000);
        assert.equal(replaced.updatedAt.getTime(), 2_000);
        const read = await store.get('web');
        assert.equal(read?.createdAt.getTime(), 1_000);
        assert.equal(read?.updatedAt.getTime(), 2_000);
        assert.equal((await store.list()).length, 1);
      }));

    test('list sorts by name in byte order', () =>
      withStore(async (store) => {
        for (const name of ['b', 'a-2', 'B', 'a', 'a.1', '_x']) {
          await store.upsert(document(name));
        }
        assert.deepEqual(
          (await store.list()).map((policy) => policy.name),
          ['B', '_x', 'a', 'a-2', 'a.1', 'b'],
        );
      }));

    test('delete removes exactly the named policy and says whether it existed', () =>
      withStore(async (store) => {
        await store.upsert(document('a'));
        await store.upsert(document('b'));
        assert.equal(await store.delete('a'), true);
        assert.equal(await store.delete('a'), false);
        assert.equal(await store.get('a'), undefined);
        assert.deepEqual(
          (await store.list()).map((policy) => policy.name),
          ['b'],
        );
      }));

    test('names are case-sensitive', () =>
      withStore(async (store) => {
        await store.upsert(document('Web'));
        assert.equal(await store.get('web'), undefined);
        assert.equal(await store.delete('web'), false);
        assert.equal((await store.get('Web'))?.name, 'Web');
      }));

    test('upsert refuses a malformed document and stores nothing', () =>
      withStore(async (store) => {
        await assert.rejects(
          store.upsert(document('web', { permissions: [] })),
          InvalidRequestError,
        );
        await assert.rejects(
          store.upsert({ ...document('web'), extra: 1 } as PolicyDocument),
          InvalidRequestError,
        );
        assert.deepEqual(await store.list(), []);
      }));

    test('returned policies cannot change what is stored', () =>
      withStore(async (store) => {
        const stored = await store.upsert(document('web'));
        assert.throws(() => {
          (stored as { name: string }).name = 'other';
        }, TypeError);
        (stored.permissions as string[]).push('super');
        stored.createdAt.setTime(0);
        const read = await store.get('web');
        assert.deepEqual(read?.permissions, ['read', 'list']);
        assert.equal(read?.createdAt.getTime(), 1_000);
      }));
  });
}

describe('SqlitePolicyStore on a real SQLite file', () => {
  async function open(path: string): Promise<SqliteDatabase> {
    return openSqliteDatabase({ path });
  }

  test('stores permissions as a JSON array in the policies table', async () => {
    const database = await open(freshDatabasePath());
    try {
      await new SqlitePolicyStore(database.db, { now: () => 5 }).upsert(document('web'));
      const rows = await database.db.all<Record<string, unknown>>(sql`SELECT * FROM policies`);
      assert.deepEqual(rows, [
        {
          name: 'web',
          spiffe_id_pattern: 'spiffe://example.org/apps/web',
          path_pattern: 'apps/web/**',
          permissions: '["read","list"]',
          created_at_ms: 5,
          updated_at_ms: 5,
        },
      ]);
    } finally {
      await database.close();
    }
  });

  test('another connection, and a reopened file, see every change at once', async () => {
    const path = freshDatabasePath();
    const a = await open(path);
    const b = await open(path);
    try {
      const storeA = new SqlitePolicyStore(a.db);
      const storeB = new SqlitePolicyStore(b.db);
      await storeA.upsert(document('web'));
      assert.equal((await storeB.get('web'))?.name, 'web');
      assert.equal(await storeB.delete('web'), true);
      assert.equal(await storeA.get('web'), undefined);
      await storeB.upsert(document('kept'));
    } finally {
      await a.close();
      await b.close();
    }
    const reopened = await open(path);
    try {
      assert.deepEqual(
        (await new SqlitePolicyStore(reopened.db).list()).map((policy) => policy.name),
        ['kept'],
      );
    } finally {
      await reopened.close();
    }
  });

  test('racing upserts of one name leave one row with the first createdAt', async () => {
    const path = freshDatabasePath();
    const a = await open(path);
    const b = await open(path);
    try {
      let tick = 0;
      const now = () => {
        tick += 1;
        return tick;
      };
      const stores = [new SqlitePolicyStore(a.db, { now }), new SqlitePolicyStore(b.db, { now })];
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (stores[i % 2] as SqlitePolicyStore).upsert(document('web', { pathPattern: `p${i}` })),
        ),
      );
      const all = await (stores[0] as SqlitePolicyStore).list();
      assert.equal(all.length, 1);
      assert.equal(all[0]?.createdAt.getTime(), 1);
      assert.ok((all[0]?.updatedAt.getTime() ?? 0) > 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a row edited into something invalid is an InternalError naming the policy', async () => {
    const database = await open(freshDatabasePath());
    try {
      const store = new SqlitePolicyStore(database.db);
      await store.upsert(document('web'));
      for (const permissions of ['not json', '["execute"]', '[]', '{"read":true}']) {
        await database.db.run(sql`UPDATE policies SET permissions = ${permissions}`);
        await assert.rejects(store.get('web'), (err: unknown) => {
          assert.ok(err instanceof InternalError);
          assert.match(err.message, /Stored policy "web" is invalid/);
          return true;
        });
        await assert.rejects(store.list(), InternalError);
      }
      // delete needs no valid row.
      assert.equal(await store.delete('web'), true);
    } finally {
      await database.close();
    }
  });
});
