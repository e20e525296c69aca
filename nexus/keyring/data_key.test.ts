/**
 * Data-key rotation across Nexus: two RootKeyManagers (two Nexus) on one
 * MemoryRootKeyStore with in-process Keepers (real ShardHolders), each with
 * its own RootKey and its own secret store on one shared SQLite database.
 * A rotation on one is taken up by the other at its next check; two at once
 * never lose a term; a delayed term does not seal before its time; and the
 * operator status counts rows per term and what the sweep has left.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import { ConflictError } from '../../shared/errors/errors.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { inProcessKeeper } from '../../test/harness/in_process_keeper.ts';
import { decodeKeyring, openKeyring } from '../root_key/keyring.ts';
import { RootKey } from '../root_key/root_key.ts';
import { RootKeyManager } from '../root_key/root_key_manager.ts';
import type { RootKeyStore } from '../store/root_key_store.ts';
import type { KeyringAccess } from '../store/secret_store.ts';
import { openMemoryDatabase, type SqliteDatabase } from '../store/sqlite/db.ts';
import { SqliteSecretStore } from '../store/sqlite/secret_store.ts';
import { SqliteTransitKeyStore } from '../store/sqlite/transit_key_store.ts';
import { MemoryRootKeyStore } from '../store/testing/memory_root_key_store.ts';
import { createDataKey } from './data_key.ts';
import { KeyringSweeper } from './sweeper.ts';

const logger = createLogger({ component: 'test', sink: createMemorySink(), level: 'error' });
const MARK = 'D4T4K3Y-';

const databases: SqliteDatabase[] = [];
after(async () => {
  for (const database of databases) await database.close();
});

/** A Keeper in this process: a ShardHolder behind the link Nexus uses. */
const keeperLink = (name: string) => inProcessKeeper(name).link;

/** A clock both Nexus share, which the test moves. */
const clock = { nowMs: Date.now() };
const now = () => clock.nowMs;

interface Nexus {
  readonly rootKey: RootKey;
  readonly manager: RootKeyManager;
  readonly keyring: KeyringAccess;
}

/**
 * Two ready Nexus on one root key store and three Keepers. `storeOf` lets a
 * test put a wrapper between one Nexus and the shared store.
 */
async function twoNexus(
  storeOf: (shared: RootKeyStore, which: 'a' | 'b') => RootKeyStore = (s) => s,
) {
  const shared = new MemoryRootKeyStore();
  const keepers = [keeperLink('k1'), keeperLink('k2'), keeperLink('k3')];
  const nexus = (which: 'a' | 'b'): Nexus => {
    const rootKey = new RootKey({ now });
    const manager = new RootKeyManager({
      store: storeOf(shared, which),
      keepers,
      threshold: 2,
      rootKey,
      logger,
      checkIntervalMs: 60_000,
      recoveryMaxIntervalMs: 1000,
      now,
    });
    return { rootKey, manager, keyring: rootKey.withKeyring.bind(rootKey) as KeyringAccess };
  };
  const a = nexus('a');
  await a.manager.step();
  const b = nexus('b');
  await b.manager.step();
  assert.ok(a.rootKey.isReady && b.rootKey.isReady);
  const database = await openMemoryDatabase();
  databases.push(database);
  const secretsOf = (n: Nexus) =>
    new SqliteSecretStore({ database, keyring: n.keyring, maxVersionsDefault: 10 });
  return {
    shared,
    a,
    b,
    database,
    secretsOf,
    /** The terms of the keyring in the store, opened under the root key. */
    async storedTerms(): Promise<number[]> {
      const record = await shared.read();
      assert.ok(record !== undefined);
      const plaintext = a.rootKey.withKey((key) => openKeyring(key, record.sealedKeyring));
      return decodeKeyring(plaintext).map((t) => t.term);
    },
    stop() {
      a.manager.stop();
      b.manager.stop();
    },
  };
}

const termsOf = (n: Nexus) => n.rootKey.keyringTerms()?.terms.map((t) => t.term);

describe('data-key rotation across two Nexus', () => {
  test('B takes up the keyring A rotated at its next step, and then opens rows A sealed under the new term', async () => {
    const cluster = await twoNexus();
    try {
      const { a, b } = cluster;
      const term = await a.manager.rotateDataKey(0);
      assert.equal(term.term, 2);
      assert.deepEqual(termsOf(a), [1, 2]);
      assert.equal(a.rootKey.keyringTerms()?.active, 2);
      assert.deepEqual(await cluster.storedTerms(), [1, 2]);

      const secretsA = cluster.secretsOf(a);
      const secretsB = cluster.secretsOf(b);
      const path = parseSecretPath('shared/one');
      await secretsA.put(path, { value: `${MARK}1` });
      assert.deepEqual([...(await secretsA.countByTerm())], [[2, 1]]);

      // Until its next check B does not hold term 2: the row is not ready for it.
      assert.deepEqual(termsOf(b), [1]);
      await assert.rejects(secretsB.get(path), { code: 'ERR_NOT_READY' });

      await b.manager.step();
      assert.deepEqual(termsOf(b), [1, 2]);
      assert.equal(b.rootKey.keyringTerms()?.active, 2);
      assert.equal((await secretsB.get(path)).data.value, `${MARK}1`);
      // And B's own writes now seal under term 2 as well.
      await secretsB.put(parseSecretPath('shared/two'), { value: `${MARK}2` });
      assert.deepEqual([...(await secretsA.countByTerm())], [[2, 2]]);
      assert.deepEqual(
        b.rootKey.keyringPlaintext(),
        a.rootKey.keyringPlaintext(),
        'both hold the same keyring',
      );
    } finally {
      cluster.stop();
    }
  });

  test('two rotations at once: each succeeds or gets ConflictError, and no term is lost', async () => {
    const cluster = await twoNexus();
    try {
      const { a, b } = cluster;
      const results = await Promise.allSettled([
        a.manager.rotateDataKey(0),
        b.manager.rotateDataKey(0),
      ]);
      const made: number[] = [];
      for (const result of results) {
        if (result.status === 'fulfilled') made.push(result.value.term);
        else assert.ok(result.reason instanceof ConflictError, String(result.reason));
      }
      assert.ok(made.length >= 1, 'at least one rotation succeeds');
      const stored = await cluster.storedTerms();
      assert.deepEqual(stored, [1, ...made.sort((x, y) => x - y)], 'every term made is stored');
      // Both take the stored keyring up and agree.
      await a.manager.step();
      await b.manager.step();
      assert.deepEqual(termsOf(a), stored);
      assert.deepEqual(termsOf(b), stored);
    } finally {
      cluster.stop();
    }
  });

  test('a rotation that raced another gets ConflictError, keeps the winner’s term, and succeeds once retried', async () => {
    // A's swap waits until B has read the keyring A is replacing, and B's
    // swap until A's is done: B builds on a keyring that is no longer stored.
    let armed = false;
    let bHasRead: () => void = () => undefined;
    const bRead = new Promise<void>((resolve) => {
      bHasRead = resolve;
    });
    let aHasSwapped: () => void = () => undefined;
    const aSwapped = new Promise<void>((resolve) => {
      aHasSwapped = resolve;
    });
    const cluster = await twoNexus((shared, which) => ({
      read: async () => {
        const record = await shared.read();
        if (which === 'b' && armed) bHasRead();
        return record;
      },
      tryInitialise: (request) => shared.tryInitialise(request),
      tryTakeOver: (request, at) => shared.tryTakeOver(request, at),
      allocateGeneration: () => shared.allocateGeneration(),
      commitGeneration: (generation, owner, sealed) =>
        shared.commitGeneration(generation, owner, sealed),
      commitRotation: (rotation) => shared.commitRotation(rotation),
      replaceSealedKeyring: async (expected, next) => {
        if (!armed) return shared.replaceSealedKeyring(expected, next);
        if (which === 'b') {
          await aSwapped;
          return shared.replaceSealedKeyring(expected, next);
        }
        await bRead;
        try {
          return await shared.replaceSealedKeyring(expected, next);
        } finally {
          aHasSwapped();
        }
      },
      close: () => shared.close(),
    }));
    try {
      const { a, b } = cluster;
      armed = true;
      const [fromA, fromB] = await Promise.allSettled([
        a.manager.rotateDataKey(0),
        b.manager.rotateDataKey(0),
      ]);
      armed = false;
      assert.equal(fromA.status, 'fulfilled');
      assert.equal(fromA.value.term, 2);
      assert.equal(fromB.status, 'rejected');
      assert.ok(fromB.reason instanceof ConflictError);
      assert.deepEqual(await cluster.storedTerms(), [1, 2]);
      // The loser changed nothing of its own keyring.
      assert.deepEqual(termsOf(b), [1]);

      await b.manager.step();
      const retried = await b.manager.rotateDataKey(0);
      assert.equal(retried.term, 3);
      assert.deepEqual(await cluster.storedTerms(), [1, 2, 3]);
      await a.manager.step();
      assert.deepEqual(termsOf(a), [1, 2, 3]);
    } finally {
      cluster.stop();
    }
  });

  test('with an activation delay the new term seals nothing before activeFromMs, on either Nexus', async () => {
    const cluster = await twoNexus();
    try {
      const { a, b } = cluster;
      const startMs = clock.nowMs;
      const term = await a.manager.rotateDataKey(30_000);
      assert.equal(term.createdAtMs, startMs);
      assert.equal(term.activeFromMs, startMs + 30_000);
      await b.manager.step();
      assert.deepEqual(termsOf(b), [1, 2]);
      assert.equal(a.rootKey.keyringTerms()?.active, 1);
      assert.equal(b.rootKey.keyringTerms()?.active, 1);

      const secretsA = cluster.secretsOf(a);
      const secretsB = cluster.secretsOf(b);
      await secretsA.put(parseSecretPath('early/a'), { value: `${MARK}a` });
      await secretsB.put(parseSecretPath('early/b'), { value: `${MARK}b` });
      assert.deepEqual([...(await secretsA.countByTerm())], [[1, 2]]);

      clock.nowMs = startMs + 29_999;
      assert.equal(a.rootKey.keyringTerms()?.active, 1);
      clock.nowMs = startMs + 30_000;
      assert.equal(a.rootKey.keyringTerms()?.active, 2);
      assert.equal(b.rootKey.keyringTerms()?.active, 2);
      await secretsB.put(parseSecretPath('late/b'), { value: `${MARK}c` });
      const counts = new Map(await secretsA.countByTerm());
      assert.equal(counts.get(1), 2);
      assert.equal(counts.get(2), 1);
      assert.equal((await secretsA.get(parseSecretPath('early/b'))).data.value, `${MARK}b`);
    } finally {
      clock.nowMs = Date.now();
      cluster.stop();
    }
  });
});

describe('createDataKey', () => {
  async function dataKeyFixture() {
    const cluster = await twoNexus();
    const { a } = cluster;
    const secrets = cluster.secretsOf(a);
    const transit = new SqliteTransitKeyStore({ database: cluster.database, keyring: a.keyring });
    const targets = [secrets, transit];
    const sweeper = new KeyringSweeper({
      targets,
      activeTerm: () => a.rootKey.keyringTerms()?.active,
      logger,
      batchSize: 3,
      pauseMs: 0,
      idleCheckMs: 3_600_000,
    });
    const dataKey = createDataKey({
      rootKey: a.rootKey,
      rotate: (delayMs) => a.manager.rotateDataKey(delayMs),
      sweeper,
      targets,
      activationDelayMs: 0,
    });
    return { cluster, secrets, transit, sweeper, dataKey };
  }

  test('status() counts rows per term and what the sweep has left; rotate() returns the term and wakes the sweep', async () => {
    const { cluster, secrets, transit, sweeper, dataKey } = await dataKeyFixture();
    try {
      for (let i = 0; i < 5; i++) {
        await secrets.put(parseSecretPath(`app/${i}`), { value: `${MARK}${i}` });
      }
      await secrets.writeMetadata(parseSecretPath('app/0'), { customMetadata: { team: 'x' } });
      await transit.create('orders');
      await transit.rotate('orders');

      const before = await dataKey.status();
      assert.equal(before.activeTerm, 1);
      assert.deepEqual(before.terms, [{ term: 1, createdAt: null, activeFrom: null }]);
      assert.deepEqual(before.rowsByTerm, { '1': 8 });
      assert.equal(before.sweep.remaining, 0);
      assert.equal(before.sweep.state, 'idle');
      assert.equal(before.sweep.term, null);
      assert.equal(before.sweep.finishedAt, null);

      // The loop idles on an hour-long check: only rotate()'s wake-up sweeps now.
      sweeper.start();
      await waitFor('the first, empty sweep', () => sweeper.status().finishedAt !== undefined);
      const rotated = await dataKey.rotate();
      assert.equal(rotated.term, 2);
      assert.equal(rotated.createdAt, new Date(clock.nowMs).toISOString());
      assert.equal(rotated.activeFrom, rotated.createdAt);
      await waitFor(
        'the sweep for term 2',
        () => sweeper.status().term === 2 && sweeper.status().finishedAt !== undefined,
      );

      const done = await dataKey.status();
      assert.equal(done.activeTerm, 2);
      assert.deepEqual(
        done.terms.map((t) => t.term),
        [1, 2],
      );
      assert.deepEqual(done.rowsByTerm, { '2': 8 });
      assert.equal(done.sweep.remaining, 0);
      assert.equal(done.sweep.term, 2);
      assert.equal(done.sweep.rewrapped, 8);
      assert.equal(done.sweep.failed, 0);
      assert.ok(done.sweep.startedAt !== null && done.sweep.finishedAt !== null);
      assert.ok(!JSON.stringify(done).includes(MARK));
    } finally {
      await sweeper.stop();
      cluster.stop();
    }
  });

  test('status() shows the rows the sweep has left while it has not run', async () => {
    const { cluster, secrets, dataKey } = await dataKeyFixture();
    try {
      for (let i = 0; i < 4; i++) {
        await secrets.put(parseSecretPath(`app/${i}`), { value: `${MARK}${i}` });
      }
      await dataKey.rotate();
      await secrets.put(parseSecretPath('app/new'), { value: `${MARK}new` });
      const status = await dataKey.status();
      assert.deepEqual(status.rowsByTerm, { '1': 4, '2': 1 });
      assert.equal(status.sweep.remaining, 4);
    } finally {
      cluster.stop();
    }
  });

  test('status() while sealed is NotReadyError', async () => {
    const { cluster, dataKey } = await dataKeyFixture();
    try {
      cluster.a.rootKey.seal();
      await assert.rejects(dataKey.status(), { code: 'ERR_NOT_READY' });
      await assert.rejects(dataKey.rotate(), { code: 'ERR_NOT_READY' });
    } finally {
      cluster.stop();
    }
  });
});

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(5);
  }
}
