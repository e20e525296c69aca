/**
 * Root-key rotation in the manager (docs/root-key.md, "Rotating the root
 * key"): a rotation that commits, ones that change nothing (too few Keepers,
 * a lost race), a second Nexus that still holds the old key (its re-split
 * can neither commit nor prune; it takes the new key from the Keepers
 * without sealing), and changes of the split's shape.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { constantTimeEqual } from '../../shared/crypto/bytes.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { type InProcessKeeper, inProcessKeeper } from '../../test/harness/in_process_keeper.ts';
import type { RootKeyStore } from '../store/root_key_store.ts';
import { MemoryRootKeyStore } from '../store/testing/memory_root_key_store.ts';
import { sealKeyring, verifyRootKey } from './keyring.ts';
import { recoverRootKey } from './recover.ts';
import { RootKey } from './root_key.ts';
import { RootKeyManager } from './root_key_manager.ts';

const logger = createLogger({ component: 'test', sink: createMemorySink(), level: 'error' });

const keeper = (name: string) => inProcessKeeper(name);

/** A store whose operations a test can intercept (to interleave two Nexus). */
function hookedStore(
  backing: RootKeyStore,
  hooks: {
    beforeCommit?: (() => Promise<void>) | undefined;
    beforeRotation?: (() => Promise<void>) | undefined;
  },
): RootKeyStore {
  return {
    read: () => backing.read(),
    tryInitialise: (request) => backing.tryInitialise(request),
    tryTakeOver: (request, now) => backing.tryTakeOver(request, now),
    allocateGeneration: () => backing.allocateGeneration(),
    async commitGeneration(generation, owner, sealed) {
      const hook = hooks.beforeCommit;
      hooks.beforeCommit = undefined;
      await hook?.();
      return backing.commitGeneration(generation, owner, sealed);
    },
    async commitRotation(rotation) {
      const hook = hooks.beforeRotation;
      hooks.beforeRotation = undefined;
      await hook?.();
      return backing.commitRotation(rotation);
    },
    replaceSealedKeyring: (expected, next) => backing.replaceSealedKeyring(expected, next),
    close: () => backing.close(),
  };
}

function nexus(store: RootKeyStore, keepers: readonly InProcessKeeper[], threshold = 2) {
  const rootKey = new RootKey();
  const manager = new RootKeyManager({
    store,
    keepers: keepers.map((k) => k.link),
    threshold,
    rootKey,
    logger,
    checkIntervalMs: 60_000,
    recoveryMaxIntervalMs: 1000,
  });
  return { rootKey, manager, key: () => rootKey.withKey((k) => k.slice()) };
}

/** What a Nexus starting now would rebuild from every Keeper's shards, verified. */
async function recoverable(
  store: RootKeyStore,
  keepers: readonly InProcessKeeper[],
): Promise<Uint8Array | undefined> {
  const record = await store.read();
  assert.ok(record);
  const shards = keepers.flatMap((k) => k.holder().list());
  const found = await recoverRootKey(shards, (c) => verifyRootKey(c, record.sealedKeyring));
  return found?.key;
}

function same(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && constantTimeEqual(a, b);
}

describe('root-key rotation', () => {
  test('a rotation re-seals the same keyring under a new key held by the Keepers, and prunes the old generations', async () => {
    const store = new MemoryRootKeyStore();
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const a = nexus(store, keepers);
    await a.manager.step();
    const oldKey = a.key();
    const keyringBefore = a.rootKey.keyringPlaintext();

    const result = await a.manager.rotateRootKey({});
    assert.deepEqual(
      { shares: result.shares, threshold: result.threshold, keepers: result.keepers },
      { shares: 3, threshold: 2, keepers: ['k1', 'k2', 'k3'] },
    );
    const newKey = a.key();
    assert.ok(!constantTimeEqual(newKey, oldKey));
    const record = await store.read();
    assert.ok(record);
    assert.equal(verifyRootKey(newKey, record.sealedKeyring), true);
    assert.equal(verifyRootKey(oldKey, record.sealedKeyring), false);
    assert.equal(record.committedGeneration, result.generation);
    assert.equal(a.rootKey.generation, result.generation);
    assert.deepEqual(a.rootKey.keyringPlaintext(), keyringBefore, 'the data keys did not change');
    for (const k of keepers) assert.deepEqual(k.holder().generations(), [result.generation]);
    assert.ok(same(await recoverable(store, keepers), newKey));
    assert.equal(a.manager.rootKeyStatus().lastRotation?.generation, result.generation);

    // A Nexus started now unseals with the new key.
    const b = nexus(store, keepers);
    await b.manager.step();
    assert.ok(constantTimeEqual(b.key(), newKey));
  });

  test('with fewer Keepers than the threshold taking the new key, nothing changes', async () => {
    const store = new MemoryRootKeyStore();
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const a = nexus(store, keepers);
    await a.manager.step();
    const oldKey = a.key();
    const before = await store.read();
    const generationsBefore = keepers.map((k) => k.holder().generations());
    (keepers[1] as InProcessKeeper).state.isUp = false;
    (keepers[2] as InProcessKeeper).state.isUp = false;

    await assert.rejects(a.manager.rotateRootKey({}), { code: 'ERR_KEEPERS_UNAVAILABLE' });
    assert.ok(constantTimeEqual(a.key(), oldKey), 'the old key stays in use');
    const after = await store.read();
    assert.deepEqual(after?.sealedKeyring, before?.sealedKeyring);
    assert.equal(after?.committedGeneration, before?.committedGeneration);
    // k1 took a shard of the new key but dropped nothing.
    assert.ok(
      (keepers[0] as InProcessKeeper)
        .holder()
        .generations()
        .includes(before?.committedGeneration ?? 0),
    );
    for (const k of keepers) k.state.isUp = true;
    assert.deepEqual(
      keepers.slice(1).map((k) => k.holder().generations()),
      generationsBefore.slice(1),
    );
    assert.ok(same(await recoverable(store, keepers), oldKey));
  });

  test('a rotation that loses the race for the sealed keyring changes nothing', async () => {
    const backing = new MemoryRootKeyStore();
    const hooks: { beforeRotation?: (() => Promise<void>) | undefined } = {};
    const store = hookedStore(backing, hooks);
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const a = nexus(store, keepers);
    await a.manager.step();
    const oldKey = a.key();
    // Another Nexus re-seals the keyring (same key, a data-key rotation) meanwhile.
    let raced: Uint8Array | undefined;
    hooks.beforeRotation = async () => {
      const record = await backing.read();
      assert.ok(record);
      raced = sealKeyring(oldKey, a.rootKey.keyringPlaintext());
      assert.equal(await backing.replaceSealedKeyring(record.sealedKeyring, raced), true);
    };
    await assert.rejects(a.manager.rotateRootKey({}), { code: 'ERR_CONFLICT' });
    assert.ok(constantTimeEqual(a.key(), oldKey));
    const record = await backing.read();
    assert.ok(raced !== undefined && record !== undefined);
    assert.deepEqual(record.sealedKeyring, raced);
    assert.ok(same(await recoverable(store, keepers), oldKey));
  });

  test('a rotation loses to a re-split committed after its generation was handed out (it may have pruned it)', async () => {
    const backing = new MemoryRootKeyStore();
    const hooks: { beforeRotation?: (() => Promise<void>) | undefined } = {};
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const a = nexus(hookedStore(backing, hooks), keepers);
    await a.manager.step();
    const oldKey = a.key();
    const b = nexus(backing, keepers);
    await b.manager.step();
    hooks.beforeRotation = async () => {
      // B re-splits the old key (a Keeper restarted) and prunes down to it.
      (keepers[0] as InProcessKeeper).restart();
      await b.manager.step();
    };
    await assert.rejects(a.manager.rotateRootKey({}), { code: 'ERR_CONFLICT' });
    assert.ok(constantTimeEqual(a.key(), oldKey));
    assert.ok(same(await recoverable(backing, keepers), oldKey));
  });

  test("a stale Nexus's re-split can neither commit nor prune once another rotated; it then takes the new key without sealing", async () => {
    const backing = new MemoryRootKeyStore();
    const hooks: { beforeCommit?: (() => Promise<void>) | undefined } = {};
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const a = nexus(backing, keepers);
    await a.manager.step();
    const b = nexus(hookedStore(backing, hooks), keepers);
    await b.manager.step();
    const oldKey = b.key();
    let rotated: number | undefined;
    // B's re-split has placed its shards of the old key; A rotates before B commits.
    hooks.beforeCommit = async () => {
      rotated = (await a.manager.rotateRootKey({})).generation;
    };
    (keepers[0] as InProcessKeeper).restart();
    const committedBefore = b.rootKey.generation;
    await b.manager.step();
    assert.ok(rotated !== undefined);
    const newKey = a.key();
    assert.equal((await backing.read())?.committedGeneration, rotated);
    assert.ok(same(await recoverable(backing, keepers), newKey), 'the new key is still held');
    for (const k of keepers) assert.ok(k.holder().generations().includes(rotated));

    // B kept the old key through that step (its commit was refused) …
    assert.ok(constantTimeEqual(b.key(), oldKey));
    assert.equal(b.rootKey.generation, committedBefore);
    // … and its next check picks the new key up from the Keepers, staying ready.
    await b.manager.step();
    assert.equal(b.rootKey.isReady, true);
    assert.ok(constantTimeEqual(b.key(), newKey));
    assert.equal(b.manager.rootKeyStatus().lastRotation !== undefined, true);
  });

  test('a Nexus that cannot rebuild the rotated key yet stays ready, but neither re-splits nor exports its old key', async () => {
    const store = new MemoryRootKeyStore();
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const a = nexus(store, keepers);
    await a.manager.step();
    const b = nexus(store, keepers);
    await b.manager.step();
    const oldKey = b.key();
    await a.manager.rotateRootKey({});
    for (const k of keepers) k.state.isUp = false;
    const generations = keepers.map((k) => k.holder().generations());
    await b.manager.step();
    assert.equal(b.rootKey.isReady, true);
    assert.ok(constantTimeEqual(b.key(), oldKey));
    await assert.rejects(b.manager.recoveryShards(), { code: 'ERR_CONFLICT' });
    await assert.rejects(b.manager.rotateRootKey({}), { code: 'ERR_CONFLICT' });
    for (const k of keepers) k.state.isUp = true;
    assert.deepEqual(
      keepers.map((k) => k.holder().generations()),
      generations,
    );
    await b.manager.step();
    assert.ok(constantTimeEqual(b.key(), a.key()));
    assert.equal((await b.manager.recoveryShards()).length, 3);
  });

  test('a rotation to threshold 3 of 3 is kept by later re-splits, of this Nexus and of another', async () => {
    const store = new MemoryRootKeyStore();
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const a = nexus(store, keepers);
    await a.manager.step();
    const b = nexus(store, keepers);
    await b.manager.step();
    const result = await a.manager.rotateRootKey({ threshold: 3 });
    assert.equal(result.threshold, 3);
    const record = await store.read();
    assert.equal(record?.splitShares, 3);
    assert.equal(record?.splitThreshold, 3);
    for (const k of keepers) assert.equal(k.holder().list()[0]?.threshold, 3);
    // B (configured 2 of 3) picks up the key; a Keeper restarts; B re-splits 3 of 3.
    await b.manager.step();
    assert.ok(constantTimeEqual(b.key(), a.key()));
    (keepers[0] as InProcessKeeper).restart();
    await b.manager.step();
    const generation = (await store.read())?.committedGeneration;
    assert.ok(generation !== null && generation !== undefined && generation > result.generation);
    for (const k of keepers) {
      assert.deepEqual(k.holder().generations(), [generation]);
      assert.equal(k.holder().list()[0]?.threshold, 3);
    }
    assert.deepEqual(
      { shares: b.manager.rootKeyStatus().shares, threshold: b.manager.rootKeyStatus().threshold },
      { shares: 3, threshold: 3 },
    );
    assert.ok(same(await recoverable(store, keepers), a.key()));
    // Recovery shards for operators take the same shape.
    const shards = await a.manager.recoveryShards();
    assert.deepEqual(
      shards.map((shard) => shard.threshold),
      [3, 3, 3],
    );
  });

  test('with five Keepers configured, shares go 5 → 3 (two Keepers get none) and back to 5', async () => {
    const store = new MemoryRootKeyStore();
    const keepers = ['k1', 'k2', 'k3', 'k4', 'k5'].map(keeper);
    const a = nexus(store, keepers, 3);
    await a.manager.step();
    const down = await a.manager.rotateRootKey({ shares: 3, threshold: 2 });
    assert.deepEqual(down.keepers, ['k1', 'k2', 'k3']);
    for (const k of keepers.slice(0, 3))
      assert.deepEqual(k.holder().generations(), [down.generation]);
    for (const k of keepers.slice(3)) {
      assert.ok(!k.holder().generations().includes(down.generation));
    }
    // Keepers outside the shape are not re-supplied by the checks.
    (keepers[4] as InProcessKeeper).restart();
    await a.manager.step();
    assert.deepEqual((keepers[4] as InProcessKeeper).holder().generations(), []);
    assert.equal((await store.read())?.committedGeneration, down.generation);
    assert.ok(same(await recoverable(store, keepers), a.key()));

    const up = await a.manager.rotateRootKey({ shares: 5, threshold: 3 });
    assert.deepEqual(up.keepers, ['k1', 'k2', 'k3', 'k4', 'k5']);
    for (const k of keepers) assert.ok(k.holder().generations().includes(up.generation));
    const record = await store.read();
    assert.deepEqual([record?.splitShares, record?.splitThreshold], [5, 3]);
    assert.ok(same(await recoverable(store, keepers), a.key()));
  });

  test('a shape the Keepers cannot hold is refused before anything changes', async () => {
    const store = new MemoryRootKeyStore();
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const a = nexus(store, keepers);
    await a.manager.step();
    const before = await store.read();
    for (const shape of [
      { shares: 4 },
      { threshold: 1 },
      { threshold: 4 },
      { shares: 2, threshold: 3 },
    ]) {
      await assert.rejects(a.manager.rotateRootKey(shape), { code: 'ERR_INVALID_REQUEST' });
    }
    assert.deepEqual(await store.read(), before);
  });

  test('a sealed Nexus refuses to rotate', async () => {
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const a = nexus(new MemoryRootKeyStore(), keepers);
    await assert.rejects(a.manager.rotateRootKey({}), { code: 'ERR_NOT_READY' });
  });
});
