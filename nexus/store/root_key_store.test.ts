/**
 * The RootKeyStore contract, run against every implementation, plus what only
 * the SQLite store has (files, modes, reopening, several processes).
 *
 * "Another connection" is a second openSqliteDatabase() on the same file for
 * SQLite, and a second handle on the same state for the memory store.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { after, describe, test } from 'node:test';
import { sql } from 'drizzle-orm';
import {
  dropScratchDatabases,
  openScratchDatabase,
  postgresSkip,
} from '../../test/harness/postgres.ts';
import { openPostgresDatabase } from './postgres/db.ts';
import { PgRootKeyStore } from './postgres/root_key_store.ts';
import type { InitialiseRequest, RootKeyStore, RotationCommit } from './root_key_store.ts';
import { openSqliteDatabase } from './sqlite/db.ts';
import { SqliteRootKeyStore } from './sqlite/root_key_store.ts';
import { MemoryRootKeyStore } from './testing/memory_root_key_store.ts';

interface Fixture {
  readonly store: RootKeyStore;
  /** Another connection onto the same data; closed by dispose(). */
  connect(): Promise<RootKeyStore>;
  dispose(): Promise<void>;
}

interface Implementation {
  readonly name: string;
  create(): Promise<Fixture>;
  /** Why the implementation's tests are skipped here (PostgreSQL without a URL). */
  readonly skip?: string | false;
}

after(dropScratchDatabases);
const scratchDirs: string[] = [];
after(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'spike-store-'));
  scratchDirs.push(dir);
  return dir;
}

/** A database path whose two parent directories do not exist yet. */
function freshDatabasePath(): string {
  return join(scratchDir(), 'data', 'nexus', 'spike.db');
}

async function openSqliteStore(path: string): Promise<SqliteRootKeyStore> {
  return new SqliteRootKeyStore(await openSqliteDatabase({ path }));
}

const IMPLEMENTATIONS: readonly Implementation[] = [
  {
    name: 'MemoryRootKeyStore',
    create() {
      const store = new MemoryRootKeyStore();
      return Promise.resolve({
        store,
        // The same state through a second reference: closing it must not
        // close the first, so close() is a no-op on this handle.
        connect: () =>
          Promise.resolve({
            read: () => store.read(),
            tryInitialise: (request: InitialiseRequest) => store.tryInitialise(request),
            tryTakeOver: (request: InitialiseRequest, now: Date) => store.tryTakeOver(request, now),
            allocateGeneration: () => store.allocateGeneration(),
            commitGeneration: (generation: number, owner: string, sealed: Uint8Array) =>
              store.commitGeneration(generation, owner, sealed),
            commitRotation: (rotation: RotationCommit) => store.commitRotation(rotation),
            replaceSealedKeyring: (expected: Uint8Array, next: Uint8Array) =>
              store.replaceSealedKeyring(expected, next),
            close: () => Promise.resolve(),
          }),
        dispose: () => store.close(),
      });
    },
  },
  {
    name: 'SqliteRootKeyStore',
    async create() {
      const path = freshDatabasePath();
      const stores = [await openSqliteStore(path)];
      const [store] = stores as [SqliteRootKeyStore];
      return {
        store,
        async connect() {
          const another = await openSqliteStore(path);
          stores.push(another);
          return another;
        },
        async dispose() {
          for (const each of stores) await each.close();
        },
      };
    },
  },
  {
    name: 'PgRootKeyStore',
    skip: postgresSkip(),
    async create() {
      // connect(): a second pool on the same database (another Nexus process).
      const { database, url } = await openScratchDatabase();
      const stores = [new PgRootKeyStore(database)];
      const [store] = stores as [PgRootKeyStore];
      return {
        store,
        async connect() {
          const another = new PgRootKeyStore(await openPostgresDatabase({ url }));
          stores.push(another);
          return another;
        },
        async dispose() {
          for (const each of stores) await each.close();
        },
      };
    },
  },
];

const T0 = Date.parse('2030-01-01T00:00:00Z');

function keyring(fill: number, length = 48): Uint8Array {
  return new Uint8Array(length).fill(fill);
}

function request(owner: string, deadlineMs = T0, fill = 1): InitialiseRequest {
  return { sealedKeyring: keyring(fill), owner, deadline: new Date(deadlineMs) };
}

async function withFixture(
  implementation: Implementation,
  body: (fixture: Fixture) => Promise<void>,
): Promise<void> {
  const fixture = await implementation.create();
  try {
    await body(fixture);
  } finally {
    await fixture.dispose();
  }
}

for (const implementation of IMPLEMENTATIONS) {
  const it = (name: string, body: (fixture: Fixture) => Promise<void>) =>
    test(name, () => withFixture(implementation, body));

  describe(`${implementation.name} (RootKeyStore contract)`, {
    skip: implementation.skip ?? false,
  }, () => {
    it('a fresh store reads undefined', async ({ store }) => {
      assert.equal(await store.read(), undefined);
    });

    it('tryInitialise() creates generation 1, owned, uncommitted', async ({ store }) => {
      assert.equal(await store.tryInitialise(request('nexus-a', T0, 7)), true);
      const record = await store.read();
      assert.ok(record);
      assert.deepEqual(record.sealedKeyring, keyring(7));
      assert.equal(record.lastGeneration, 1);
      assert.equal(record.committedGeneration, null);
      assert.equal(record.initOwner, 'nexus-a');
      assert.deepEqual(record.initDeadline, new Date(T0));
    });

    it('tryInitialise() on an initialised store returns false and changes nothing', async ({
      store,
    }) => {
      assert.equal(await store.tryInitialise(request('nexus-a', T0, 1)), true);
      const before = await store.read();
      assert.equal(await store.tryInitialise(request('nexus-b', T0 + 5, 2)), false);
      assert.deepEqual(await store.read(), before);
    });

    it('exactly one of many concurrent tryInitialise() calls on two connections wins', async ({
      store,
    }) => {
      // A fresh store per round: the race is only interesting on an empty one.
      for (let round = 0; round < 12; round++) {
        await withFixture(implementation, async (fixture) => {
          const other = await fixture.connect();
          const attempts = Array.from({ length: 8 }, (_, i) => {
            const on = i % 2 === 0 ? fixture.store : other;
            return on.tryInitialise(request(`nexus-${i}`, T0 + i, i + 1));
          });
          const results = await Promise.all(attempts);
          const winners = results.flatMap((won, i) => (won ? [i] : []));
          assert.equal(winners.length, 1, `round ${round}: winners ${winners.join(', ')}`);
          const [winner] = winners as [number];
          const record = await other.read();
          assert.ok(record);
          assert.equal(record.initOwner, `nexus-${winner}`);
          assert.deepEqual(record.sealedKeyring, keyring(winner + 1));
          assert.equal(record.lastGeneration, 1);
        });
      }
      assert.equal(await store.read(), undefined);
    });

    it('tryTakeOver() refuses an empty store and a deadline not yet passed', async ({ store }) => {
      assert.equal(await store.tryTakeOver(request('nexus-b'), new Date(T0 + 1)), undefined);
      await store.tryInitialise(request('nexus-a', T0));
      assert.equal(await store.tryTakeOver(request('nexus-b'), new Date(T0 - 1)), undefined);
      // The deadline itself still belongs to the owner.
      assert.equal(await store.tryTakeOver(request('nexus-b'), new Date(T0)), undefined);
      const record = await store.read();
      assert.equal(record?.initOwner, 'nexus-a');
      assert.equal(record?.lastGeneration, 1);
    });

    it('tryTakeOver() after the deadline replaces the initialisation with a new generation', async ({
      store,
    }) => {
      await store.tryInitialise(request('nexus-a', T0, 1));
      const generation = await store.tryTakeOver(
        request('nexus-b', T0 + 60_000, 2),
        new Date(T0 + 1),
      );
      assert.equal(generation, 2);
      const record = await store.read();
      assert.ok(record);
      assert.deepEqual(record.sealedKeyring, keyring(2));
      assert.equal(record.lastGeneration, 2);
      assert.equal(record.committedGeneration, null);
      assert.equal(record.initOwner, 'nexus-b');
      assert.deepEqual(record.initDeadline, new Date(T0 + 60_000));
    });

    it('a late commit by the owner that was taken over fails; the new owner commits', async ({
      store,
    }) => {
      await store.tryInitialise(request('nexus-a', T0));
      const generation = await store.tryTakeOver(request('nexus-b', T0 + 60_000), new Date(T0 + 1));
      assert.equal(generation, 2);
      assert.equal(await store.commitGeneration(1, 'nexus-a', keyring(1)), false);
      assert.equal(await store.commitGeneration(2, 'nexus-a', keyring(1)), false);
      assert.equal((await store.read())?.committedGeneration, null);
      assert.equal(await store.commitGeneration(2, 'nexus-b', keyring(1)), true);
      const record = await store.read();
      assert.equal(record?.committedGeneration, 2);
      assert.equal(record?.initOwner, null);
      assert.equal(record?.initDeadline, null);
    });

    it('tryTakeOver() refuses a committed store, even long after the deadline', async ({
      store,
    }) => {
      await store.tryInitialise(request('nexus-a', T0));
      assert.equal(await store.commitGeneration(1, 'nexus-a', keyring(1)), true);
      assert.equal(
        await store.tryTakeOver(request('nexus-b'), new Date(T0 + 86_400_000)),
        undefined,
      );
      const record = await store.read();
      assert.deepEqual(record?.sealedKeyring, keyring(1));
      assert.equal(record?.lastGeneration, 1);
      assert.equal(record?.committedGeneration, 1);
    });

    it('exactly one of concurrent tryTakeOver() calls on two connections wins', async ({
      store,
      connect,
    }) => {
      const other = await connect();
      await store.tryInitialise(request('nexus-a', T0));
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          (i % 2 === 0 ? store : other).tryTakeOver(
            request(`nexus-${i}`, T0 + 60_000, i + 10),
            new Date(T0 + 1),
          ),
        ),
      );
      const winners = results.flatMap((generation, i) => (generation === undefined ? [] : [i]));
      assert.equal(winners.length, 1, `winners ${winners.join(', ')}`);
      const [winner] = winners as [number];
      assert.equal(results[winner], 2);
      const record = await store.read();
      assert.equal(record?.initOwner, `nexus-${winner}`);
      assert.deepEqual(record?.sealedKeyring, keyring(winner + 10));
    });

    it('allocateGeneration() hands out increasing numbers after the first', async ({ store }) => {
      await assert.rejects(store.allocateGeneration(), { code: 'ERR_INTERNAL' });
      await store.tryInitialise(request('nexus-a'));
      assert.equal(await store.allocateGeneration(), 2);
      assert.equal(await store.allocateGeneration(), 3);
      assert.equal((await store.read())?.lastGeneration, 3);
    });

    it('allocateGeneration() never repeats a number under concurrency from two connections', async ({
      store,
      connect,
    }) => {
      const other = await connect();
      await store.tryInitialise(request('nexus-a'));
      const perConnection = 60;
      const generations = await Promise.all(
        Array.from({ length: 2 * perConnection }, (_, i) =>
          (i % 2 === 0 ? store : other).allocateGeneration(),
        ),
      );
      assert.equal(new Set(generations).size, generations.length);
      const sorted = [...generations].sort((a, b) => a - b);
      assert.deepEqual(
        sorted,
        Array.from({ length: 2 * perConnection }, (_, i) => i + 2),
      );
      assert.equal((await other.read())?.lastGeneration, 2 * perConnection + 1);
    });

    it('a takeover generation is never one handed out before', async ({ store }) => {
      await store.tryInitialise(request('nexus-a', T0));
      assert.equal(await store.allocateGeneration(), 2);
      assert.equal(await store.tryTakeOver(request('nexus-b', T0 + 9), new Date(T0 + 1)), 3);
      assert.equal(await store.allocateGeneration(), 4);
    });

    it('commitGeneration() never lowers the committed generation', async ({ store, connect }) => {
      const other = await connect();
      await store.tryInitialise(request('nexus-a'));
      for (let i = 0; i < 4; i++) await store.allocateGeneration();
      assert.equal(await store.commitGeneration(3, 'nexus-a', keyring(1)), true);
      assert.equal(await other.commitGeneration(2, 'anyone', keyring(1)), true);
      assert.equal((await store.read())?.committedGeneration, 3);
      const results = await Promise.all([
        store.commitGeneration(4, 'x', keyring(1)),
        other.commitGeneration(5, 'y', keyring(1)),
        store.commitGeneration(1, 'z', keyring(1)),
        other.commitGeneration(3, 'w', keyring(1)),
      ]);
      assert.deepEqual(results, [true, true, true, true]);
      assert.equal((await other.read())?.committedGeneration, 5);
    });

    it('commitGeneration() while initialising is for the owner only', async ({ store }) => {
      await store.tryInitialise(request('nexus-a', T0));
      assert.equal(await store.commitGeneration(1, 'nexus-b', keyring(1)), false);
      const record = await store.read();
      assert.equal(record?.committedGeneration, null);
      assert.equal(record?.initOwner, 'nexus-a');
      assert.deepEqual(record?.initDeadline, new Date(T0));
      assert.equal(await store.commitGeneration(1, 'nexus-a', keyring(1)), true);
      // Once committed, the owner no longer matters: any Nexus records re-splits.
      assert.equal(await store.allocateGeneration(), 2);
      assert.equal(await store.commitGeneration(2, 'nexus-b', keyring(1)), true);
      assert.equal((await store.read())?.committedGeneration, 2);
    });

    it('commitGeneration() refuses a generation never handed out and bad arguments', async ({
      store,
    }) => {
      await assert.rejects(store.commitGeneration(1, 'nexus-a', keyring(1)), {
        code: 'ERR_INTERNAL',
      });
      await store.tryInitialise(request('nexus-a'));
      await assert.rejects(store.commitGeneration(2, 'nexus-a', keyring(1)), RangeError);
      await assert.rejects(store.commitGeneration(0, 'nexus-a', keyring(1)), RangeError);
      await assert.rejects(store.commitGeneration(1.5, 'nexus-a', keyring(1)), RangeError);
      await assert.rejects(store.commitGeneration(1, '', keyring(1)), TypeError);
      assert.equal((await store.read())?.committedGeneration, null);
    });

    it('commitGeneration() commits only while the sealed keyring is the one it names', async ({
      store,
    }) => {
      await store.tryInitialise(request('nexus-a', T0, 1));
      assert.equal(await store.commitGeneration(1, 'nexus-a', keyring(2)), false);
      assert.equal((await store.read())?.committedGeneration, null);
      assert.equal(await store.commitGeneration(1, 'nexus-a', keyring(1)), true);
      assert.equal(await store.allocateGeneration(), 2);
      assert.equal(await store.replaceSealedKeyring(keyring(1), keyring(3)), true);
      // A split verified against the old bytes (a stale Nexus) never commits.
      assert.equal(await store.commitGeneration(2, 'nexus-b', keyring(1)), false);
      assert.equal((await store.read())?.committedGeneration, 1);
      assert.equal(await store.commitGeneration(2, 'nexus-b', keyring(3)), true);
      assert.equal((await store.read())?.committedGeneration, 2);
    });

    it('commitRotation() swaps the keyring, commits the generation and records the shape at once', async ({
      store,
      connect,
    }) => {
      const other = await connect();
      await store.tryInitialise(request('nexus-a', T0, 1));
      await store.commitGeneration(1, 'nexus-a', keyring(1));
      const generation = await store.allocateGeneration();
      const rotation = {
        generation,
        expectedSealed: keyring(1),
        nextSealed: keyring(5),
        shares: 5,
        threshold: 3,
      };
      assert.equal(await other.commitRotation(rotation), true);
      const record = await store.read();
      assert.deepEqual(record?.sealedKeyring, keyring(5));
      assert.equal(record?.committedGeneration, generation);
      assert.equal(record?.splitShares, 5);
      assert.equal(record?.splitThreshold, 3);
      // Replayed, or raced by a second rotation from the same bytes: refused.
      const later = await store.allocateGeneration();
      assert.equal(await store.commitRotation({ ...rotation, generation: later }), false);
      assert.deepEqual((await store.read())?.sealedKeyring, keyring(5));
    });

    it('commitRotation() loses to a changed keyring and to a commit at or above its generation', async ({
      store,
    }) => {
      await store.tryInitialise(request('nexus-a', T0, 1));
      const rotation = (generation: number) => ({
        generation,
        expectedSealed: keyring(1),
        nextSealed: keyring(6),
        shares: 3,
        threshold: 2,
      });
      // Not before the first commit.
      assert.equal(await store.commitRotation(rotation(1)), false);
      await store.commitGeneration(1, 'nexus-a', keyring(1));
      const g2 = await store.allocateGeneration();
      const g3 = await store.allocateGeneration();
      // A re-split committed after the rotation's generation was handed out
      // may have pruned it from the Keepers: the rotation must not commit.
      assert.equal(await store.commitGeneration(g3, 'nexus-b', keyring(1)), true);
      assert.equal(await store.commitRotation(rotation(g2)), false);
      const g4 = await store.allocateGeneration();
      assert.equal(await store.replaceSealedKeyring(keyring(1), keyring(2)), true);
      assert.equal(await store.commitRotation(rotation(g4)), false);
      const record = await store.read();
      assert.deepEqual(record?.sealedKeyring, keyring(2));
      assert.equal(record?.committedGeneration, g3);
      assert.equal(record?.splitShares, null);
    });

    it('of concurrent commitRotation() calls from two connections exactly one wins', async ({
      store,
      connect,
    }) => {
      const other = await connect();
      await store.tryInitialise(request('nexus-a', T0, 1));
      await store.commitGeneration(1, 'nexus-a', keyring(1));
      const generations = [
        await store.allocateGeneration(),
        await store.allocateGeneration(),
        await store.allocateGeneration(),
        await store.allocateGeneration(),
      ];
      const results = await Promise.all(
        generations.map((generation, i) =>
          (i % 2 === 0 ? store : other).commitRotation({
            generation,
            expectedSealed: keyring(1),
            nextSealed: keyring(20 + i),
            shares: 3,
            threshold: 2,
          }),
        ),
      );
      assert.equal(results.filter(Boolean).length, 1);
      const winner = results.indexOf(true);
      const record = await store.read();
      assert.deepEqual(record?.sealedKeyring, keyring(20 + winner));
      assert.equal(record?.committedGeneration, generations[winner]);
    });

    it('commitRotation() refuses bad shapes and a generation never handed out', async ({
      store,
    }) => {
      await store.tryInitialise(request('nexus-a', T0, 1));
      await store.commitGeneration(1, 'nexus-a', keyring(1));
      const good = {
        generation: await store.allocateGeneration(),
        expectedSealed: keyring(1),
        nextSealed: keyring(2),
        shares: 3,
        threshold: 2,
      };
      await assert.rejects(store.commitRotation({ ...good, threshold: 1 }), RangeError);
      await assert.rejects(store.commitRotation({ ...good, threshold: 4 }), RangeError);
      await assert.rejects(
        store.commitRotation({ ...good, shares: 256, threshold: 2 }),
        RangeError,
      );
      await assert.rejects(store.commitRotation({ ...good, generation: 0 }), RangeError);
      await assert.rejects(store.commitRotation({ ...good, generation: 99 }), RangeError);
      await assert.rejects(
        store.commitRotation({ ...good, nextSealed: new Uint8Array(0) }),
        TypeError,
      );
      const record = await store.read();
      assert.deepEqual(record?.sealedKeyring, keyring(1));
      assert.equal(record?.committedGeneration, 1);
    });

    it('tryInitialise() and tryTakeOver() refuse malformed requests', async ({ store }) => {
      const good = request('nexus-a');
      await assert.rejects(
        store.tryInitialise({ ...good, sealedKeyring: new Uint8Array(0) }),
        TypeError,
      );
      await assert.rejects(store.tryInitialise({ ...good, owner: '' }), TypeError);
      await assert.rejects(
        store.tryInitialise({ ...good, deadline: new Date(Number.NaN) }),
        TypeError,
      );
      await assert.rejects(store.tryTakeOver(good, new Date(Number.NaN)), TypeError);
      assert.equal(await store.read(), undefined);
    });

    it('bytes are copied in and out exactly', async ({ store }) => {
      const backing = Uint8Array.from({ length: 64 }, (_, i) => i);
      const view = backing.subarray(8, 40);
      await store.tryInitialise({ sealedKeyring: view, owner: 'nexus-a', deadline: new Date(T0) });
      backing.fill(0xff);
      const first = await store.read();
      assert.deepEqual(
        first?.sealedKeyring,
        Uint8Array.from({ length: 32 }, (_, i) => i + 8),
      );
      first?.sealedKeyring.fill(0);
      const second = await store.read();
      assert.equal(second?.sealedKeyring.length, 32);
      assert.equal(second?.sealedKeyring[0], 8);
      assert.ok(Object.isFrozen(second));
    });

    it('a closed store refuses every operation', async ({ store }) => {
      await store.tryInitialise(request('nexus-a'));
      await store.close();
      await assert.rejects(store.read());
      await assert.rejects(store.allocateGeneration());
      await assert.rejects(store.tryInitialise(request('nexus-b')));
      await store.close();
    });
  });
}

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

describe('SqliteRootKeyStore (files and processes)', () => {
  test('the database file is 0600 and the directory it creates 0700', async () => {
    const path = freshDatabasePath();
    const store = await openSqliteStore(path);
    try {
      await store.tryInitialise(request('nexus-a'));
      assert.equal(modeOf(path), 0o600);
      assert.equal(modeOf(join(path, '..')), 0o700);
      assert.equal(modeOf(join(path, '../..')), 0o700);
      for (const suffix of ['-wal', '-shm']) {
        assert.equal(modeOf(`${path}${suffix}`), 0o600, suffix);
      }
    } finally {
      await store.close();
    }
  });

  test('reopening keeps the data', async () => {
    const path = freshDatabasePath();
    const first = await openSqliteStore(path);
    await first.tryInitialise(request('nexus-a', T0, 9));
    await first.allocateGeneration();
    await first.commitGeneration(2, 'nexus-a', keyring(9));
    await first.close();
    const second = await openSqliteStore(path);
    try {
      assert.deepEqual(await second.read(), {
        sealedKeyring: keyring(9),
        lastGeneration: 2,
        committedGeneration: 2,
        splitShares: null,
        splitThreshold: null,
        initOwner: null,
        initDeadline: null,
      });
      assert.equal(await second.allocateGeneration(), 3);
    } finally {
      await second.close();
    }
  });

  test('the pragmas hold: WAL, synchronous FULL, foreign keys, busy timeout', async () => {
    const database = await openSqliteDatabase({ path: freshDatabasePath(), busyTimeoutMs: 4321 });
    try {
      const pragma = async (name: string) =>
        Object.values(
          (await database.db.get<Record<string, unknown>>(sql.raw(`PRAGMA ${name}`))) ?? {},
        )[0];
      assert.equal(await pragma('journal_mode'), 'wal');
      assert.equal(await pragma('synchronous'), 2);
      assert.equal(await pragma('foreign_keys'), 1);
      assert.equal(await pragma('busy_timeout'), 4321);
    } finally {
      await database.close();
    }
  });

  test('the database refuses a second row and an uncommitted row without an owner', async () => {
    const database = await openSqliteDatabase({ path: freshDatabasePath() });
    try {
      const insert = (id: number, owner: string | null, deadline: number | null) =>
        database.db.run(
          sql`INSERT INTO root_key (id, sealed_keyring, last_generation, init_owner, init_deadline_ms, created_at_ms, updated_at_ms) VALUES (${id}, x'01', 1, ${owner}, ${deadline}, 0, 0)`,
        );
      // drizzle wraps the driver's error; the constraint is named in its cause.
      const violates = (constraint: string) => (err: unknown) =>
        String((err as Error).cause).includes(`CHECK constraint failed: ${constraint}`);
      await assert.rejects(insert(2, 'a', 1), violates('root_key_single_row'));
      await assert.rejects(insert(1, null, null), violates('root_key_init_until_commit'));
      await assert.rejects(insert(1, 'a', null), violates('root_key_init_owner_deadline'));
    } finally {
      await database.close();
    }
  });

  test('two opens racing on a fresh file both migrate it and work', async () => {
    for (let round = 0; round < 5; round++) {
      const path = freshDatabasePath();
      const [a, b] = await Promise.all([openSqliteStore(path), openSqliteStore(path)]);
      try {
        assert.equal(await a.tryInitialise(request('nexus-a')), true);
        assert.equal(await b.tryInitialise(request('nexus-b')), false);
        assert.equal(await b.allocateGeneration(), 2);
      } finally {
        await a.close();
        await b.close();
      }
    }
  });

  test('opening works from any working directory', async () => {
    const path = freshDatabasePath();
    const cwd = process.cwd();
    process.chdir(tmpdir());
    try {
      const store = await openSqliteStore(path);
      assert.equal(await store.read(), undefined);
      await store.close();
    } finally {
      process.chdir(cwd);
    }
  });

  test('openSqliteDatabase() refuses a path that is not a file', async () => {
    await assert.rejects(openSqliteDatabase({ path: '' }), TypeError);
    await assert.rejects(openSqliteDatabase({ path: ':memory:' }), TypeError);
    await assert.rejects(
      openSqliteDatabase({ path: freshDatabasePath(), busyTimeoutMs: -1 }),
      RangeError,
    );
  });

  test('two processes racing: one initialises, generations never repeat', async () => {
    const path = freshDatabasePath();
    const perProcess = 150;
    const startAtMs = Date.now() + 1500;
    const outputs = await Promise.all(
      ['nexus-p1', 'nexus-p2'].map((owner) => runChild(path, owner, perProcess, startAtMs)),
    );
    const results = outputs.map(
      (out) => JSON.parse(out) as { isWinner: boolean; generations: number[] },
    );
    assert.equal(results.filter((r) => r.isWinner).length, 1);
    const all = results.flatMap((r) => r.generations);
    assert.equal(new Set(all).size, 2 * perProcess);
    assert.deepEqual(
      [...all].sort((a, b) => a - b),
      Array.from({ length: 2 * perProcess }, (_, i) => i + 2),
    );
  });
});

/**
 * Runs a child process on this test's runtime that opens `path`, waits for
 * `startAtMs` (so both children start together), tries to initialise, then
 * allocates `count` generations and prints the outcome as JSON.
 */
function runChild(path: string, owner: string, count: number, startAtMs: number): Promise<string> {
  const dbUrl = new URL('./sqlite/db.ts', import.meta.url).href;
  const storeUrl = new URL('./sqlite/root_key_store.ts', import.meta.url).href;
  const code = `
    const { openSqliteDatabase } = await import(${JSON.stringify(dbUrl)});
    const { SqliteRootKeyStore } = await import(${JSON.stringify(storeUrl)});
    const store = new SqliteRootKeyStore(await openSqliteDatabase({ path: ${JSON.stringify(path)} }));
    await new Promise((r) => setTimeout(r, Math.max(0, ${startAtMs} - Date.now())));
    const isWinner = await store.tryInitialise({
      sealedKeyring: new Uint8Array([1, 2, 3]),
      owner: ${JSON.stringify(owner)},
      deadline: new Date(${T0}),
    });
    // Even the loser finds the record: its INSERT lost to an existing row.
    const generations = [];
    for (let i = 0; i < ${count}; i++) generations.push(await store.allocateGeneration());
    await store.close();
    const { stdout } = await import('node:process');
    stdout.write(JSON.stringify({ isWinner, generations }));
  `;
  const isDeno = 'Deno' in globalThis;
  const args = isDeno
    ? ['eval', '--quiet', code]
    : ['--import', 'tsx', '--input-type=module', '-e', code];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      if (status === 0) resolve(stdout);
      else reject(new Error(`child ${owner} exited with ${status}: ${stderr}`));
    });
  });
}
