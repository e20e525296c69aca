import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { combine } from 'shamir-secret-sharing';
import { encodeBase64, encodeBase64Url } from './base64.ts';
import { randomBytes } from './bytes.ts';
import { combineShards, findShardProblem, splitRootKey, xCoordinateOf } from './shamir.ts';
import { MAX_GENERATION, MAX_SHARES, SHARD_VALUE_BYTES, type Shard } from './shard.ts';

function assertCode(code: string) {
  return (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, code);
    return true;
  };
}

const invalid = assertCode('ERR_SHAMIR_INVALID_SHARDS');
const notEnough = assertCode('ERR_SHAMIR_NOT_ENOUGH_SHARDS');

function corrupt(shard: Shard, byteIndex = 0): Shard {
  const value = Uint8Array.from(shard.value);
  value[byteIndex] = (value[byteIndex] as number) ^ 0x01;
  return { ...shard, value };
}

describe('splitRootKey()', () => {
  test('makes `shares` shards indexed 1..shares that carry generation and threshold', async () => {
    const shards = await splitRootKey(randomBytes(32), { shares: 5, threshold: 3, generation: 7 });
    assert.deepEqual(
      shards.map((s) => s.index),
      [1, 2, 3, 4, 5],
    );
    for (const shard of shards) {
      assert.equal(shard.generation, 7);
      assert.equal(shard.threshold, 3);
      assert.equal(shard.value.length, SHARD_VALUE_BYTES);
      assert.equal(findShardProblem(shard), undefined);
    }
    assert.equal(new Set(shards.map(xCoordinateOf)).size, 5);
  });

  test('any threshold-sized subset recombines the key', async () => {
    const key = randomBytes(32);
    const shards = await splitRootKey(key, { shares: 5, threshold: 3, generation: 1 });
    for (let a = 0; a < 5; a++) {
      for (let b = a + 1; b < 5; b++) {
        for (let c = b + 1; c < 5; c++) {
          const subset = [shards[a], shards[b], shards[c]] as Shard[];
          assert.deepEqual(await combineShards(subset), key, `shards ${a} ${b} ${c}`);
        }
      }
    }
  });

  test('two splits of the same key give unrelated shards', async () => {
    const key = randomBytes(32);
    const one = await splitRootKey(key, { shares: 3, threshold: 2, generation: 1 });
    const two = await splitRootKey(key, { shares: 3, threshold: 2, generation: 2 });
    assert.notDeepEqual(
      one.map((s) => s.value),
      two.map((s) => s.value),
    );
  });

  test('leaves the key it was given intact', async () => {
    const key = randomBytes(32);
    const copy = Uint8Array.from(key);
    await splitRootKey(key, { shares: 3, threshold: 2, generation: 1 });
    assert.deepEqual(key, copy);
  });

  test('refuses a threshold of 1, which would make every shard the key', async () => {
    await assert.rejects(
      splitRootKey(randomBytes(32), { shares: 3, threshold: 1, generation: 1 }),
      RangeError,
    );
  });

  test('refuses threshold above shares, too many shares and non-integers', async () => {
    const key = randomBytes(32);
    for (const [shares, threshold] of [
      [2, 3],
      [MAX_SHARES + 1, 2],
      [3.5, 2],
      [3, 2.5],
      [Number.NaN, 2],
    ] as const) {
      await assert.rejects(splitRootKey(key, { shares, threshold, generation: 1 }), RangeError);
    }
  });

  test('refuses a generation outside 1..MAX_GENERATION', async () => {
    for (const generation of [0, -1, 1.5, MAX_GENERATION + 1]) {
      await assert.rejects(
        splitRootKey(randomBytes(32), { shares: 3, threshold: 2, generation }),
        RangeError,
      );
    }
  });

  test('refuses a key that is not 32 bytes', async () => {
    const options = { shares: 3, threshold: 2, generation: 1 };
    await assert.rejects(splitRootKey(randomBytes(16), options), RangeError);
    await assert.rejects(splitRootKey('key' as never, options), TypeError);
  });
});

describe('combineShards()', () => {
  test('combines exactly the first `threshold` shards', async () => {
    const key = randomBytes(32);
    const shards = await splitRootKey(key, { shares: 3, threshold: 2, generation: 1 });
    const [one, two, three] = shards as [Shard, Shard, Shard];
    // A corrupted shard after the first two is not used.
    assert.deepEqual(await combineShards([one, two, corrupt(three)]), key);
    assert.notDeepEqual(await combineShards([corrupt(one), two, three]), key);
  });

  test('refuses fewer shards than the threshold', async () => {
    const shards = await splitRootKey(randomBytes(32), { shares: 5, threshold: 3, generation: 1 });
    await assert.rejects(combineShards(shards.slice(0, 2)), notEnough);
    await assert.rejects(combineShards([]), notEnough);
  });

  test('refuses shards of different generations', async () => {
    const key = randomBytes(32);
    const g1 = await splitRootKey(key, { shares: 3, threshold: 2, generation: 1 });
    const g2 = await splitRootKey(key, { shares: 3, threshold: 2, generation: 2 });
    await assert.rejects(combineShards([g1[0] as Shard, g2[1] as Shard]), invalid);
  });

  test('refuses shards that disagree on the threshold', async () => {
    const shards = await splitRootKey(randomBytes(32), { shares: 3, threshold: 2, generation: 1 });
    const [one, two] = shards as [Shard, Shard];
    await assert.rejects(combineShards([one, { ...two, threshold: 3 }]), invalid);
  });

  test('refuses a duplicate index', async () => {
    const shards = await splitRootKey(randomBytes(32), { shares: 3, threshold: 2, generation: 1 });
    const [one, two] = shards as [Shard, Shard];
    await assert.rejects(combineShards([one, { ...two, index: 1 }]), invalid);
    await assert.rejects(combineShards([one, one]), invalid);
  });

  test('refuses a duplicate x coordinate (the last byte of the value)', async () => {
    const shards = await splitRootKey(randomBytes(32), { shares: 3, threshold: 2, generation: 1 });
    const [one, two] = shards as [Shard, Shard];
    const value = Uint8Array.from(two.value);
    value[value.length - 1] = xCoordinateOf(one);
    await assert.rejects(combineShards([one, { ...two, value }]), invalid);
  });

  test('refuses malformed shards: wrong value length, x of 0, bad numbers', async () => {
    const shards = await splitRootKey(randomBytes(32), { shares: 3, threshold: 2, generation: 1 });
    const [one, two] = shards as [Shard, Shard];
    const zeroX = Uint8Array.from(two.value);
    zeroX[zeroX.length - 1] = 0;
    for (const bad of [
      { ...two, value: two.value.subarray(0, 32) },
      { ...two, value: new Uint8Array(34) },
      { ...two, value: zeroX },
      { ...two, index: 0 },
      { ...two, index: 256 },
      { ...two, generation: 0, index: 2 },
      { ...two, threshold: 1 },
      { ...two, value: [...two.value] as never },
    ]) {
      await assert.rejects(combineShards([one, bad]), invalid);
    }
  });

  test('error messages never contain shard bytes', async () => {
    const shards = await splitRootKey(randomBytes(32), { shares: 3, threshold: 2, generation: 1 });
    const [one, two] = shards as [Shard, Shard];
    await assert.rejects(combineShards([one, { ...two, index: 1 }]), (err: unknown) => {
      const text = (err as Error).message;
      assert.ok(!text.includes(one.value.join(',')));
      assert.ok(!text.includes(encodeBase64(one.value).slice(0, 8)));
      assert.ok(!text.includes(encodeBase64Url(two.value).slice(0, 8)));
      return true;
    });
  });

  test('does not modify the shards it is given', async () => {
    const shards = await splitRootKey(randomBytes(32), { shares: 3, threshold: 2, generation: 1 });
    const before = shards.map((s) => Uint8Array.from(s.value));
    await combineShards(shards);
    assert.deepEqual(
      shards.map((s) => s.value),
      before,
    );
  });
});

/*
 * What shamir-secret-sharing itself does with bad input. These pin the
 * library's behaviour (0.0.4): where it returns wrong bytes instead of
 * throwing, only verification of the result can catch the problem, which is
 * why recovery checks every candidate against the sealed keyring.
 */
describe('shamir-secret-sharing behaviour we rely on', () => {
  test('threshold - 1 shares of a 3-of-5 split combine without error into wrong bytes', async () => {
    const key = randomBytes(32);
    const shards = await splitRootKey(key, { shares: 5, threshold: 3, generation: 1 });
    const result = await combine(shards.slice(0, 2).map((s) => s.value));
    assert.equal(result.length, 32);
    assert.notDeepEqual(result, key);
  });

  test('threshold - 1 shares of a 2-of-3 split is a single share, which the library refuses', async () => {
    const shards = await splitRootKey(randomBytes(32), { shares: 3, threshold: 2, generation: 1 });
    await assert.rejects(combine([(shards[0] as Shard).value]), RangeError);
  });

  test('a corrupted share combines without error into wrong bytes', async () => {
    const key = randomBytes(32);
    const shards = await splitRootKey(key, { shares: 3, threshold: 2, generation: 1 });
    const [one, two] = shards as [Shard, Shard];
    const result = await combine([corrupt(one, 5).value, two.value]);
    assert.equal(result.length, 32);
    assert.notDeepEqual(result, key);
    // Only the corrupted byte position is wrong: the damage is silent and local.
    assert.deepEqual(result.subarray(0, 5), key.subarray(0, 5));
    assert.notEqual(result[5], key[5]);
    assert.deepEqual(result.subarray(6), key.subarray(6));
  });

  test('a share with a changed x coordinate combines without error into wrong bytes', async () => {
    const key = randomBytes(32);
    const shards = await splitRootKey(key, { shares: 3, threshold: 2, generation: 1 });
    const [one, two] = shards as [Shard, Shard];
    const used = new Set(shards.map(xCoordinateOf));
    let x = 1;
    while (used.has(x)) x++;
    const moved = Uint8Array.from(one.value);
    moved[moved.length - 1] = x;
    assert.notDeepEqual(await combine([moved, two.value]), key);
  });

  test('more shares than the threshold still combine into the key', async () => {
    const key = randomBytes(32);
    const shards = await splitRootKey(key, { shares: 5, threshold: 3, generation: 1 });
    assert.deepEqual(await combine(shards.map((s) => s.value)), key);
  });

  test('shares of two different splits of the same key combine into wrong bytes', async () => {
    const key = randomBytes(32);
    const g1 = await splitRootKey(key, { shares: 3, threshold: 2, generation: 1 });
    const g2 = await splitRootKey(key, { shares: 3, threshold: 2, generation: 2 });
    const one = (g1[0] as Shard).value;
    const other = g2.find((s) => xCoordinateOf(s) !== one[32]) as Shard;
    assert.notDeepEqual(await combine([one, other.value]), key);
  });

  test('duplicate x coordinates are the one problem the library detects itself', async () => {
    const shards = await splitRootKey(randomBytes(32), { shares: 3, threshold: 2, generation: 1 });
    const value = (shards[0] as Shard).value;
    await assert.rejects(combine([value, Uint8Array.from(value)]), /duplicate/);
  });
});
