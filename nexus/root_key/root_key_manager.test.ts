import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatShardText, parseShardText } from '../../shared/api/shard_text.ts';
import { constantTimeEqual } from '../../shared/crypto/bytes.ts';
import { ConflictError } from '../../shared/errors/errors.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { inProcessKeeper } from '../../test/harness/in_process_keeper.ts';
import type { RootKeyStore } from '../store/root_key_store.ts';
import { MemoryRootKeyStore } from '../store/testing/memory_root_key_store.ts';
import { RootKey } from './root_key.ts';
import { RootKeyManager } from './root_key_manager.ts';

const logger = createLogger({ component: 'test', sink: createMemorySink(), level: 'error' });

/** An in-process Keeper, down until the test brings it up. */
const keeper = (name: string) => inProcessKeeper(name, { isUp: false });

describe('RootKeyManager', () => {
  test('a first start before the Keepers are up initialises once they come up, with the same key', async () => {
    const store = new MemoryRootKeyStore();
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const rootKey = new RootKey();
    const manager = new RootKeyManager({
      store,
      keepers: keepers.map((k) => k.link),
      threshold: 2,
      rootKey,
      logger,
      checkIntervalMs: 1000,
      recoveryMaxIntervalMs: 1000,
    });
    await manager.step();
    assert.equal(rootKey.isReady, false, 'no Keeper took a shard yet');
    const record = await store.read();
    assert.ok(record !== undefined && record.committedGeneration === null);

    for (const k of keepers) k.state.isUp = true;
    await manager.step();
    assert.equal(
      rootKey.isReady,
      true,
      'ready once the Keepers are up, without waiting for a takeover',
    );
    const key = rootKey.withKey((k) => k.slice());

    // A second Nexus recovers exactly that key from the Keepers.
    const other = new RootKey();
    const second = new RootKeyManager({
      store,
      keepers: keepers.map((k) => k.link),
      threshold: 2,
      rootKey: other,
      logger,
      checkIntervalMs: 1000,
      recoveryMaxIntervalMs: 1000,
    });
    await second.step();
    assert.ok(other.isReady);
    assert.ok(
      constantTimeEqual(
        other.withKey((k) => k.slice()),
        key,
      ),
    );
    manager.stop();
    second.stop();
  });

  test('the Keepers are known the moment a first start makes Nexus ready, before any check', async () => {
    const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
    const [up1, up2] = keepers;
    if (up1 === undefined || up2 === undefined) throw new Error('three Keepers');
    up1.state.isUp = true;
    up2.state.isUp = true;
    const rootKey = new RootKey();
    const manager = new RootKeyManager({
      store: new MemoryRootKeyStore(),
      keepers: keepers.map((k) => k.link),
      threshold: 2,
      rootKey,
      logger,
      // No periodic check runs in this test: step() below is the first start only.
      checkIntervalMs: 60_000,
      recoveryMaxIntervalMs: 1000,
    });
    await manager.step();
    assert.equal(rootKey.isReady, true);
    // What the first split learnt: two Keepers took generation 1, one did not answer.
    assert.deepEqual(manager.keeperStatus(), [
      { name: 'k1', reachable: true, generations: [1] },
      { name: 'k2', reachable: true, generations: [1] },
      { name: 'k3', reachable: false, generations: [] },
    ]);
    manager.stop();
  });

  test('replaceStore: a snapshot under the same key keeps Nexus ready; under another key it is refused, or with force seals Nexus until that key comes back', async () => {
    /** A broker: a store (which a restore swaps), three Keepers, a manager. */
    async function broker() {
      let backing: RootKeyStore = new MemoryRootKeyStore();
      const store: RootKeyStore = {
        read: () => backing.read(),
        tryInitialise: (request) => backing.tryInitialise(request),
        tryTakeOver: (request, now) => backing.tryTakeOver(request, now),
        allocateGeneration: () => backing.allocateGeneration(),
        commitGeneration: (generation, owner, sealed) =>
          backing.commitGeneration(generation, owner, sealed),
        commitRotation: (rotation) => backing.commitRotation(rotation),
        replaceSealedKeyring: (expected, next) => backing.replaceSealedKeyring(expected, next),
        close: () => backing.close(),
      };
      const keepers = [keeper('k1'), keeper('k2'), keeper('k3')];
      for (const k of keepers) k.state.isUp = true;
      const rootKey = new RootKey();
      const manager = new RootKeyManager({
        store,
        keepers: keepers.map((k) => k.link),
        threshold: 2,
        rootKey,
        logger,
        checkIntervalMs: 60_000,
        recoveryMaxIntervalMs: 1000,
      });
      await manager.step();
      assert.ok(rootKey.isReady);
      return {
        manager,
        rootKey,
        store,
        swapTo: (other: RootKeyStore) => {
          backing = other;
        },
        backing: () => backing,
      };
    }
    const a = await broker();
    const b = await broker();
    const ownRecord = await a.store.read();
    assert.ok(ownRecord !== undefined);
    let replaced = 0;
    assert.deepEqual(
      await a.manager.replaceStore(ownRecord, false, async () => {
        replaced++;
      }),
      { sameKey: true },
    );
    assert.equal(replaced, 1);
    assert.equal(a.rootKey.isReady, true, 'the same key: still ready');

    const otherRecord = await b.store.read();
    assert.ok(otherRecord !== undefined);
    await assert.rejects(
      a.manager.replaceStore(otherRecord, false, async () => {
        replaced++;
      }),
      ConflictError,
    );
    assert.equal(replaced, 1, 'refused before anything was replaced');
    assert.equal(a.rootKey.isReady, true);

    const split = (await b.manager.recoveryShards()).map(formatShardText);
    await a.manager.replaceStore(otherRecord, true, async () => {
      assert.equal(a.rootKey.isReady, false, 'sealed before the rows change');
      a.swapTo(b.backing());
    });
    assert.equal(a.rootKey.isReady, false);
    // A's Keepers hold A's key, which does not open B's keyring.
    await a.manager.step();
    assert.equal(a.rootKey.isReady, false);
    await a.manager.restore(parseShardText(split[0] as string));
    const done = await a.manager.restore(parseShardText(split[2] as string));
    assert.equal(done.restored, true);
    assert.ok(
      constantTimeEqual(
        a.rootKey.withKey((k) => k.slice()),
        b.rootKey.withKey((k) => k.slice()),
      ),
    );
    a.manager.stop();
    b.manager.stop();
  });
});
