import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ShardHolder } from '../../keeper/shard_holder.ts';
import { constantTimeEqual } from '../../shared/crypto/bytes.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { MemoryRootKeyStore } from '../store/testing/memory_root_key_store.ts';
import type { KeeperLink } from './keeper_link.ts';
import { RootKey } from './root_key.ts';
import { RootKeyManager } from './root_key_manager.ts';

const logger = createLogger({ component: 'test', sink: createMemorySink(), level: 'error' });

/** An in-process Keeper that can be down. */
function keeper(name: string) {
  const holder = new ShardHolder({ logger });
  const state = { isUp: false };
  const reachable = () => {
    if (!state.isUp) throw new Error(`${name} is down`);
  };
  const link: KeeperLink = {
    name,
    async putShard(shard: Shard) {
      reachable();
      holder.store(shard);
    },
    async listShards() {
      reachable();
      return holder.list();
    },
    async generations() {
      reachable();
      return holder.generations();
    },
    async prune(keepFrom: number) {
      reachable();
      holder.prune(keepFrom);
    },
  };
  return { link, state };
}

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
});
