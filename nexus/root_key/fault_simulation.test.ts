/**
 * Randomised fault test of the root-key protocol: many seeded schedules of
 * Nexus crashes, Keeper restarts, Keeper outages, corrupted shards and
 * re-splits, run in process against real ShardHolders and the in-memory
 * store. After every crash it asserts that the new Nexus recovers the key
 * exactly when at least the threshold of reachable Keepers hold honest shards
 * of one generation, and that it never accepts a wrong key. A failing
 * schedule prints its seed; set FAULT_SEED to replay one.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ShardHolder } from '../../keeper/shard_holder.ts';
import { constantTimeEqual } from '../../shared/crypto/bytes.ts';
import { combineShards } from '../../shared/crypto/shamir.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { seededRandom } from '../../test/harness/seeded_random.ts';
import { MemoryRootKeyStore } from '../store/testing/memory_root_key_store.ts';
import type { KeeperLink } from './keeper_link.ts';
import { verifyRootKey } from './keyring.ts';
import { RootKey } from './root_key.ts';
import { RootKeyManager } from './root_key_manager.ts';

const SCHEDULES = Number(process.env.FAULT_SCHEDULES ?? 150);
const STEPS = 40;
const logger = createLogger({ component: 'sim', sink: createMemorySink(), level: 'error' });

class SimKeeper implements KeeperLink {
  readonly name: string;
  holder = new ShardHolder({ logger });
  isUp = true;
  /** Answers reads with flipped bytes (a faulty or malicious Keeper). */
  isCorrupt = false;

  constructor(name: string) {
    this.name = name;
  }

  restart(): void {
    this.holder = new ShardHolder({ logger });
    this.isCorrupt = false;
  }

  #reachable(): void {
    if (!this.isUp) {
      throw new Error(`${this.name} is down`);
    }
  }

  async putShard(shard: Shard): Promise<void> {
    this.#reachable();
    this.holder.store(shard);
  }

  async listShards(): Promise<Shard[]> {
    this.#reachable();
    const shards = this.holder.list();
    if (!this.isCorrupt) {
      return shards;
    }
    return shards.map((shard) => {
      // A different byte per index: equal damage on two shards could cancel out.
      const value = shard.value.slice();
      const at = (shard.index - 1) % (value.length - 1);
      value[at] = (value[at] ?? 0) ^ 0xff;
      return { ...shard, value };
    });
  }

  async generations(): Promise<number[]> {
    this.#reachable();
    return this.holder.generations();
  }

  async prune(keepFrom: number): Promise<void> {
    this.#reachable();
    this.holder.prune(keepFrom);
  }
}

/**
 * Ground truth: can the Keepers rebuild `key` from one generation? By default
 * only honest, reachable Keepers count (what a recovery can use now); with
 * `everyKeeper`, what the Keepers' memories hold at all, reachable or not.
 */
async function isRecoverable(
  keepers: readonly SimKeeper[],
  key: Uint8Array,
  everyKeeper = false,
): Promise<boolean> {
  const byGeneration = new Map<number, Shard[]>();
  for (const keeper of keepers) {
    if (!everyKeeper && (!keeper.isUp || keeper.isCorrupt)) continue;
    for (const shard of keeper.holder.list()) {
      byGeneration.set(shard.generation, [...(byGeneration.get(shard.generation) ?? []), shard]);
    }
  }
  for (const shards of byGeneration.values()) {
    const threshold = shards[0]?.threshold ?? Number.POSITIVE_INFINITY;
    if (shards.length >= threshold && constantTimeEqual(await combineShards(shards), key)) {
      return true;
    }
  }
  return false;
}

function keyOf(rootKey: RootKey): Uint8Array {
  return rootKey.withKey((key) => key.slice());
}

async function runSchedule(
  seed: number,
  shares: number,
  threshold: number,
  trace: string[],
): Promise<void> {
  const random = seededRandom(seed);
  const pick = (n: number) => Math.floor(random() * n);
  const store = new MemoryRootKeyStore();
  const keepers = Array.from({ length: shares }, (_, i) => new SimKeeper(`keeper-${i + 1}`));
  const newNexus = () => {
    const rootKey = new RootKey();
    const manager = new RootKeyManager({
      store,
      keepers,
      threshold,
      rootKey,
      logger,
      checkIntervalMs: 1000,
      recoveryMaxIntervalMs: 1000,
    });
    return { rootKey, manager };
  };

  // First start: an empty store is initialised.
  let nexus = newNexus();
  await nexus.manager.step();
  assert.ok(nexus.rootKey.isReady, 'the first Nexus initialises the store');
  // The key that opens the stored keyring: a rotation replaces it.
  let key = keyOf(nexus.rootKey);
  trace.push('init');

  for (let step = 0; step < STEPS; step++) {
    const action = pick(7);
    const i = pick(shares);
    const keeper = keepers[i] as SimKeeper;
    switch (action) {
      case 0: {
        keeper.restart();
        trace.push(`restart ${keeper.name}`);
        break;
      }
      case 1: {
        keeper.isUp = !keeper.isUp;
        trace.push(`${keeper.isUp ? 'up' : 'down'} ${keeper.name}`);
        break;
      }
      case 2: {
        keeper.isCorrupt = random() < 0.3;
        trace.push(`${keeper.isCorrupt ? 'corrupt' : 'honest'} ${keeper.name}`);
        break;
      }
      case 3:
      case 4: {
        // A check while ready: re-supplies Keepers that lack the committed split.
        const heldBefore = await isRecoverable(keepers, key, true);
        await nexus.manager.step();
        trace.push('check');
        if (heldBefore) {
          assert.ok(
            await isRecoverable(keepers, key, true),
            'the protocol never leaves fewer than threshold Keepers holding one generation',
          );
        }
        break;
      }
      case 5: {
        // A rotation, sometimes to another shape: it commits or changes nothing.
        const shares = threshold + pick(keepers.length - threshold + 1);
        const shape = random() < 0.5 ? {} : { shares, threshold: 2 + pick(shares - 1) };
        const heldBefore = await isRecoverable(keepers, key, true);
        const before = key;
        try {
          const rotated = await nexus.manager.rotateRootKey(shape);
          key = keyOf(nexus.rootKey);
          trace.push(`rotate ${rotated.threshold}/${rotated.shares} g${rotated.generation}`);
          assert.ok(
            await isRecoverable(keepers, key, true),
            'a committed rotation is held by its threshold of Keepers',
          );
        } catch (err) {
          trace.push(`rotate refused (${(err as { code?: string }).code})`);
          assert.ok(
            constantTimeEqual(keyOf(nexus.rootKey), before),
            'a refused rotation changes nothing',
          );
          if (heldBefore) {
            assert.ok(await isRecoverable(keepers, key, true), 'a refused rotation loses nothing');
          }
        }
        break;
      }
      default: {
        const expected = await isRecoverable(keepers, key);
        const heldBefore = await isRecoverable(keepers, key, true);
        nexus.manager.stop();
        nexus.rootKey.seal();
        nexus = newNexus();
        await nexus.manager.step();
        trace.push(`crash nexus (recoverable: ${expected})`);
        if (heldBefore) {
          assert.ok(
            await isRecoverable(keepers, key, true),
            'recovery and its re-split never lose what the Keepers held',
          );
        }
        if (expected) {
          assert.ok(nexus.rootKey.isReady, 'the key is recovered whenever it can be');
        }
        if (nexus.rootKey.isReady) {
          assert.ok(constantTimeEqual(keyOf(nexus.rootKey), key), 'never a wrong key');
        } else {
          assert.equal(expected, false);
          // Sealed for good unless an operator restores: give it the key back
          // the way an operator would, so the schedule can go on.
          const shards = (await nexus.manager.recoveryShards().catch(() => undefined)) ?? [];
          assert.equal(shards.length, 0, 'a sealed Nexus hands out no shards');
          nexus.rootKey.unseal(key, new Uint8Array(32), 0);
          trace.push('operator restore');
          // Keep the run meaningful: restart from a fresh, fully supplied state.
          for (const k of keepers) {
            k.isUp = true;
            k.isCorrupt = false;
          }
          nexus.manager.stop();
          nexus = newNexus();
          nexus.rootKey.unseal(key, new Uint8Array(32), 0);
          await nexus.manager.step();
        }
      }
    }
    // A ready Nexus never holds any key but the one that opens the stored keyring.
    const record = await store.read();
    assert.ok(record !== undefined && verifyRootKey(key, record.sealedKeyring));
    if (nexus.rootKey.isReady) {
      assert.ok(constantTimeEqual(keyOf(nexus.rootKey), key));
    }
  }
  nexus.manager.stop();
}

describe('root key protocol under random faults', () => {
  const base = process.env.FAULT_SEED === undefined ? 1 : Number(process.env.FAULT_SEED);
  const count = process.env.FAULT_SEED === undefined ? SCHEDULES : 1;
  for (const [shares, threshold] of [
    [3, 2],
    [5, 3],
  ] as const) {
    test(`${count} seeded schedules with ${shares} Keepers and threshold ${threshold}`, async () => {
      for (let seed = base; seed < base + count; seed++) {
        const trace: string[] = [];
        try {
          await runSchedule(seed, shares, threshold, trace);
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          assert.fail(
            `Schedule failed with FAULT_SEED=${seed} (${shares}/${threshold}): ${message}\n  after: ${trace.join(', ')}`,
          );
        }
      }
    });
  }
});
