import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { constantTimeEqual, randomBytes } from '../../shared/crypto/bytes.ts';
import { splitRootKey, xCoordinateOf } from '../../shared/crypto/shamir.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import { seededRandom } from '../../test/harness/seeded_random.ts';
import { sealKeyring, verifyRootKey } from './keyring.ts';
import { type RecoveredKey, recoverRootKey } from './recover.ts';

/** A root key, its sealed keyring, and a verifier that counts and keeps its candidates. */
function setup() {
  const key = randomBytes(32);
  const sealed = sealKeyring(key, randomBytes(32));
  const candidates: Uint8Array[] = [];
  const verify = (candidate: Uint8Array) => {
    candidates.push(candidate);
    return verifyRootKey(candidate, sealed);
  };
  return { key, sealed, candidates, verify };
}

function split(key: Uint8Array, shares: number, threshold: number, generation: number) {
  return splitRootKey(key, { shares, threshold, generation });
}

/**
 * Damages one byte of a shard, at a position that depends on its index: two
 * shards damaged at the same position could cancel out in the interpolation
 * (equal Lagrange weights) and still rebuild the right key.
 */
function corrupt(shard: Shard): Shard {
  const value = Uint8Array.from(shard.value);
  const at = (shard.index - 1) % (value.length - 1);
  value[at] = (value[at] as number) ^ 0xff;
  return { ...shard, value };
}

function assertRecovered(
  result: RecoveredKey | undefined,
  key: Uint8Array,
  generation: number,
  message?: string,
) {
  assert.ok(result !== undefined, message ?? 'expected the key to be recovered');
  assert.ok(constantTimeEqual(result.key, key), message ?? 'recovered a wrong key');
  assert.equal(result.generation, generation, message);
}

describe('recoverRootKey()', () => {
  test('recovers the key from exactly threshold shards', async () => {
    const { key, verify } = setup();
    const shards = await split(key, 5, 3, 1);
    assertRecovered(await recoverRootKey(shards.slice(2), verify), key, 1);
  });

  test('returns undefined with threshold - 1 shards, without calling verify', async () => {
    const { key, verify, candidates } = setup();
    const shards = await split(key, 5, 3, 1);
    assert.equal(await recoverRootKey(shards.slice(0, 2), verify), undefined);
    assert.equal(await recoverRootKey([], verify), undefined);
    assert.equal(candidates.length, 0);
  });

  test('never returns a wrong key when one of exactly threshold shards is corrupted', async () => {
    const { key, verify, candidates } = setup();
    const [one, two] = (await split(key, 3, 2, 1)) as [Shard, Shard, Shard];
    assert.equal(await recoverRootKey([corrupt(one), two], verify), undefined);
    assert.equal(candidates.length, 1, 'the one combination was tried and rejected');
  });

  test('recovers despite a corrupted shard among threshold + 1', async () => {
    const { key, verify } = setup();
    const shards = await split(key, 5, 3, 4);
    const held = [corrupt(shards[0] as Shard), ...shards.slice(1, 4)];
    assertRecovered(await recoverRootKey(held, verify), key, 4);
  });

  test('wipes every candidate verify rejected and keeps the one it accepted', async () => {
    const { key, verify, candidates } = setup();
    const shards = await split(key, 5, 3, 1);
    const held = [corrupt(shards[0] as Shard), corrupt(shards[1] as Shard), ...shards.slice(2)];
    const result = await recoverRootKey(held, verify);
    assertRecovered(result, key, 1);
    const rejected = candidates.filter((c) => c !== result?.key);
    assert.ok(rejected.length > 0);
    for (const candidate of rejected) {
      assert.deepEqual(candidate, new Uint8Array(32));
    }
    assert.ok(candidates.includes(result?.key as Uint8Array));
  });

  test('never mixes generations: two halves of different splits recover nothing', async () => {
    const { key, verify, candidates } = setup();
    const g1 = await split(key, 5, 3, 1);
    const g2 = await split(key, 5, 3, 2);
    // Two of each: four shards in all, above the threshold together, below it alone.
    const held = [g1[0], g1[1], g2[2], g2[3]] as Shard[];
    assert.equal(await recoverRootKey(held, verify), undefined);
    assert.equal(candidates.length, 0);
  });

  test('the newest recoverable generation wins', async () => {
    const { key, verify } = setup();
    const g1 = await split(key, 3, 2, 1);
    const g2 = await split(key, 3, 2, 2);
    assertRecovered(await recoverRootKey([...g1, ...g2], verify), key, 2);
    assertRecovered(await recoverRootKey([...g2, ...g1].reverse(), verify), key, 2);
  });

  test('an older generation is used when the newest cannot be recovered', async () => {
    const { key, verify } = setup();
    const g1 = await split(key, 3, 2, 1);
    const g2 = await split(key, 3, 2, 2);
    // Generation 2 reached only one Keeper before a crash.
    assertRecovered(await recoverRootKey([g2[0] as Shard, ...g1], verify), key, 1);
    // Generation 2 is complete but corrupted.
    assertRecovered(await recoverRootKey([...g2.map(corrupt), ...g1], verify), key, 1);
  });

  test('a newer generation of another key (never committed) does not hide the real one', async () => {
    const { key, verify } = setup();
    const stale = await split(randomBytes(32), 3, 2, 9);
    const current = await split(key, 3, 2, 8);
    assertRecovered(await recoverRootKey([...stale, ...current], verify), key, 8);
  });

  test('ignores identical copies of a shard', async () => {
    const { key, verify, candidates } = setup();
    const [one, two] = (await split(key, 3, 2, 1)) as [Shard, Shard, Shard];
    const copy = { ...one, value: Uint8Array.from(one.value) };
    assert.equal(await recoverRootKey([one, copy, one], verify), undefined);
    assert.equal(candidates.length, 0);
    assertRecovered(await recoverRootKey([one, copy, two], verify), key, 1);
  });

  test('a shard with a wrong index label is never combined with the one it collides with', async () => {
    const { key, verify, candidates } = setup();
    const [one, two, three] = (await split(key, 3, 2, 1)) as [Shard, Shard, Shard];
    // Shard 3 claims slot 1: one of the two is mislabelled, so they never go together...
    const relabelled = { ...three, index: 1 };
    assert.equal(await recoverRootKey([one, relabelled], verify), undefined);
    assert.equal(candidates.length, 0);
    // ...but each still combines with the other shards.
    assertRecovered(await recoverRootKey([relabelled, one, two], verify), key, 1);
    assertRecovered(await recoverRootKey([relabelled, two], verify), key, 1);
  });

  test('a forged shard with a duplicate x coordinate does not block recovery', async () => {
    const { key, verify } = setup();
    const [, two, three] = (await split(key, 3, 2, 1)) as [Shard, Shard, Shard];
    const value = randomBytes(33);
    value[32] = xCoordinateOf(two);
    const forged: Shard = { generation: 1, index: 1, threshold: 2, value };
    assertRecovered(await recoverRootKey([forged, two, three], verify), key, 1);
    assert.equal(await recoverRootKey([forged, two], setup().verify), undefined);
  });

  test('a shard claiming another threshold is kept apart from its generation', async () => {
    const { key, verify } = setup();
    const shards = await split(key, 5, 3, 1);
    const odd = { ...(shards[0] as Shard), threshold: 2 };
    assertRecovered(await recoverRootKey([odd, ...shards.slice(1, 4)], verify), key, 1);
    // The odd shard with one other: a 2-of-? claim never verifies.
    assert.equal(
      await recoverRootKey([odd, { ...(shards[1] as Shard), threshold: 2 }], verify),
      undefined,
    );
  });

  test('ignores malformed shards', async () => {
    const { key, verify } = setup();
    const shards = await split(key, 3, 2, 1);
    const malformed = [
      { ...(shards[0] as Shard), value: new Uint8Array(32) },
      { ...(shards[0] as Shard), generation: 0 },
      { ...(shards[0] as Shard), threshold: 1 },
      null as unknown as Shard,
    ];
    assertRecovered(await recoverRootKey([...malformed, ...shards.slice(1)], verify), key, 1);
    assert.equal(await recoverRootKey([...malformed, shards[1] as Shard], verify), undefined);
  });

  test('maxAttempts bounds the combinations tried per generation', async () => {
    const { key, verify, candidates } = setup();
    const shards = await split(key, 5, 3, 1);
    const held = [corrupt(shards[0] as Shard), ...shards.slice(1)];
    assert.equal(await recoverRootKey(held, verify, { maxAttempts: 2 }), undefined);
    assert.equal(candidates.length, 2);
    assertRecovered(await recoverRootKey(held, verify, { maxAttempts: 7 }), key, 1);
    await assert.rejects(recoverRootKey(held, verify, { maxAttempts: 0 }), RangeError);
    await assert.rejects(recoverRootKey(held, verify, { maxAttempts: 1.5 }), RangeError);
  });

  test('accepts an async verifier and only an exact true', async () => {
    const { key, sealed } = setup();
    const shards = await split(key, 3, 2, 1);
    const asyncVerify = async (candidate: Uint8Array) => verifyRootKey(candidate, sealed);
    assertRecovered(await recoverRootKey(shards, asyncVerify), key, 1);
    const truthy = (() => 1) as unknown as () => boolean;
    assert.equal(await recoverRootKey(shards, truthy), undefined);
  });

  test('a verifier that throws stops recovery and its candidate is wiped', async () => {
    const { key } = setup();
    const shards = await split(key, 3, 2, 1);
    let seen: Uint8Array | undefined;
    const failing = (candidate: Uint8Array): boolean => {
      seen = candidate;
      throw new Error('store unavailable');
    };
    await assert.rejects(recoverRootKey(shards, failing), /store unavailable/);
    assert.deepEqual(seen, new Uint8Array(32));
  });
});

/** A small seeded generator (mulberry32), so a failing schedule can be replayed from its seed. */

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/**
 * Which shards of one split survive: each is lost, corrupted or kept at
 * random. Returns the survivors and how many of them are intact.
 */
function survivors(shards: Shard[], random: () => number): { held: Shard[]; intact: number } {
  const held: Shard[] = [];
  let intact = 0;
  for (const shard of shards) {
    const roll = random();
    if (roll < 0.3) continue;
    if (roll < 0.45) {
      held.push(corrupt(shard));
    } else {
      held.push(shard);
      intact++;
    }
  }
  return { held, intact };
}

describe('recoverRootKey() over random schedules', () => {
  for (const [shares, threshold] of [
    [3, 2],
    [5, 3],
  ] as const) {
    test(`recovers exactly when one generation has ${threshold} intact shards of ${shares} (seeded)`, async () => {
      for (let seed = 1; seed <= 150; seed++) {
        const random = seededRandom(seed * 7919 + shares);
        const { key, verify } = setup();
        const label = `seed ${seed} (${threshold}-of-${shares})`;
        const older = survivors(await split(key, shares, threshold, 1), random);
        const newer = survivors(await split(key, shares, threshold, 2), random);
        // A split of a key that never became the root key (an abandoned start-up).
        const abandoned = survivors(await split(randomBytes(32), shares, threshold, 3), random);
        const held = shuffle([...older.held, ...newer.held, ...abandoned.held], random);

        const result = await recoverRootKey(held, verify);

        if (result !== undefined) {
          assert.ok(constantTimeEqual(result.key, key), `${label}: a wrong key was accepted`);
        }
        if (newer.intact >= threshold) {
          assertRecovered(result, key, 2, label);
        } else if (older.intact >= threshold) {
          assertRecovered(result, key, 1, label);
        } else {
          assert.equal(result, undefined, `${label}: recovered without enough intact shards`);
        }
      }
    });
  }
});
