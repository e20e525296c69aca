import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { constantTimeEqual, randomBytes } from '../../shared/crypto/bytes.ts';
import { combineShards, splitRootKey } from '../../shared/crypto/shamir.ts';
import { ROOT_KEY_BYTES, type Shard } from '../../shared/crypto/shard.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import type { RootKeyRecord } from '../store/root_key_store.ts';
import { MemoryRootKeyStore } from '../store/testing/memory_root_key_store.ts';
import { makeRecoverySplit, ShardRestore } from './break_glass.ts';
import { createKeyring, openKeyring, sealKeyring } from './keyring.ts';
import { RootKey } from './root_key.ts';

const logger = createLogger({ component: 'test', sink: createMemorySink(), level: 'error' });

/** A store initialised with a fresh root key, and that key. */
async function initialisedStore(): Promise<{ store: MemoryRootKeyStore; key: Uint8Array }> {
  const store = new MemoryRootKeyStore();
  const key = randomBytes(ROOT_KEY_BYTES);
  const created = await store.tryInitialise({
    sealedKeyring: sealKeyring(key, createKeyring()),
    owner: 'break_glass.test',
    deadline: new Date(Date.now() + 60_000),
  });
  assert.ok(created);
  return { store, key };
}

/** A restore whose unseal records the key it was given and unseals `rootKey`. */
function restoreInto(store: MemoryRootKeyStore, rootKey: RootKey) {
  const unsealedWith: Uint8Array[] = [];
  const restore = new ShardRestore({
    store,
    rootKey,
    logger,
    unseal: async (key: Uint8Array, record: RootKeyRecord) => {
      unsealedWith.push(key.slice());
      rootKey.unseal(key, openKeyring(key, record.sealedKeyring), 1);
    },
  });
  return { restore, unsealedWith };
}

function copyOf(shard: Shard): Shard {
  return { ...shard, value: shard.value.slice() };
}

describe('makeRecoverySplit()', () => {
  test('makeRecoverySplit() splits the ready key under a new generation', async () => {
    const { store, key } = await initialisedStore();
    const rootKey = new RootKey();
    rootKey.unseal(key.slice(), createKeyring(), 1);
    const before = await store.allocateGeneration();
    const shards = await makeRecoverySplit({ store, rootKey, shares: 3, threshold: 2, logger });
    assert.equal(shards.length, 3);
    assert.ok(shards.every((shard) => shard.threshold === 2 && shard.generation > before));
    assert.ok(constantTimeEqual(await combineShards(shards.slice(1)), key));
  });

  test('makeRecoverySplit() refuses while sealed', async () => {
    const { store } = await initialisedStore();
    await assert.rejects(
      makeRecoverySplit({ store, rootKey: new RootKey(), shares: 3, threshold: 2, logger }),
      { code: 'ERR_NOT_READY' },
    );
  });
});

describe('ShardRestore', () => {
  test('accept() counts shards, ignores a repeated index and unseals at the threshold', async () => {
    const { store, key } = await initialisedStore();
    const shards = await splitRootKey(key, { shares: 3, threshold: 2, generation: 5 });
    const rootKey = new RootKey();
    const { restore, unsealedWith } = restoreInto(store, rootKey);
    const first = shards[0] as Shard;
    const submitted = copyOf(first);
    assert.deepEqual(await restore.accept(submitted), {
      generation: 5,
      collected: 1,
      threshold: 2,
      remaining: 1,
      restored: false,
    });
    assert.ok(
      submitted.value.every((byte) => byte === 0),
      "the caller's copy is wiped",
    );
    assert.equal((await restore.accept(copyOf(first))).collected, 1, 'same index counted once');
    assert.deepEqual(await restore.accept(copyOf(shards[2] as Shard)), {
      generation: 5,
      collected: 2,
      threshold: 2,
      remaining: 0,
      restored: true,
    });
    assert.equal(unsealedWith.length, 1);
    assert.ok(constantTimeEqual(unsealedWith[0] as Uint8Array, key));
    assert.ok(rootKey.isReady);
    await assert.rejects(restore.accept(copyOf(first)), { code: 'ERR_ALREADY_UNSEALED' });
  });

  test('accept() discards shards of another key that reach the threshold', async () => {
    const { store } = await initialisedStore();
    const other = await splitRootKey(randomBytes(ROOT_KEY_BYTES), {
      shares: 3,
      threshold: 2,
      generation: 9,
    });
    const rootKey = new RootKey();
    const { restore, unsealedWith } = restoreInto(store, rootKey);
    await restore.accept(copyOf(other[0] as Shard));
    await assert.rejects(restore.accept(copyOf(other[1] as Shard)), {
      code: 'ERR_INVALID_REQUEST',
      message: /generation 9 do not recombine .* they were discarded/,
    });
    // Discarded: the next shard of that generation starts a new count.
    assert.equal((await restore.accept(copyOf(other[2] as Shard))).collected, 1);
    assert.equal(unsealedWith.length, 0);
    assert.equal(rootKey.isReady, false);
  });

  test('accept() refuses on a store that was never initialised', async () => {
    const { key } = await initialisedStore();
    const shards = await splitRootKey(key, { shares: 3, threshold: 2, generation: 1 });
    const { restore } = restoreInto(new MemoryRootKeyStore(), new RootKey());
    const submitted = copyOf(shards[0] as Shard);
    await assert.rejects(restore.accept(submitted), {
      code: 'ERR_INVALID_REQUEST',
      message: /never initialised/,
    });
    assert.ok(submitted.value.every((byte) => byte === 0));
  });

  test('discard() wipes the shards held, so the count starts again', async () => {
    const { store, key } = await initialisedStore();
    const shards = await splitRootKey(key, { shares: 3, threshold: 3, generation: 2 });
    const { restore } = restoreInto(store, new RootKey());
    await restore.accept(copyOf(shards[0] as Shard));
    await restore.accept(copyOf(shards[1] as Shard));
    restore.discard();
    assert.equal((await restore.accept(copyOf(shards[2] as Shard))).collected, 1);
  });
});
