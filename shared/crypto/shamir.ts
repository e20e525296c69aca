/**
 * Splitting the root key into shards and combining them again, on top of
 * `shamir-secret-sharing`, with the checks that library leaves to its caller.
 *
 * The library combines whatever it is given: too few shares, or a share with
 * wrong bytes, yield wrong bytes rather than an error. So a combined key is
 * only a candidate until the caller verifies it (see nexus/root_key/).
 */
import { combine, split } from 'shamir-secret-sharing';
import { ShamirInvalidShardsError, ShamirNotEnoughShardsError } from '../errors/errors.ts';
import { zeroize } from './bytes.ts';
import {
  MAX_GENERATION,
  MAX_SHARES,
  ROOT_KEY_BYTES,
  SHARD_VALUE_BYTES,
  type Shard,
} from './shard.ts';

/** A threshold of 1 would make every shard equal to the key. */
export const MIN_THRESHOLD = 2;

export interface SplitOptions {
  /** How many shards to make, one per Keeper slot. */
  readonly shares: number;
  /** How many of them recombine the key. */
  readonly threshold: number;
  /** The number of this split; shards of different splits never combine. */
  readonly generation: number;
}

/**
 * Splits a root key into `shares` shards, any `threshold` of which recombine
 * it. The shards come back with indexes 1..shares, in order. Every call makes
 * new, unrelated shards, hence the generation on each.
 */
export async function splitRootKey(key: Uint8Array, options: SplitOptions): Promise<Shard[]> {
  if (!(key instanceof Uint8Array)) {
    throw new TypeError('The root key must be a Uint8Array');
  }
  if (key.length !== ROOT_KEY_BYTES) {
    throw new RangeError(`The root key must be ${ROOT_KEY_BYTES} bytes, got ${key.length}`);
  }
  const { shares, threshold, generation } = options;
  if (!isIntegerIn(threshold, MIN_THRESHOLD, MAX_SHARES)) {
    throw new RangeError(
      `The threshold must be an integer from ${MIN_THRESHOLD} to ${MAX_SHARES}, got ${String(threshold)}`,
    );
  }
  if (!isIntegerIn(shares, threshold, MAX_SHARES)) {
    throw new RangeError(
      `The number of shares must be an integer from the threshold (${threshold}) to ${MAX_SHARES}, got ${String(shares)}`,
    );
  }
  if (!isIntegerIn(generation, 1, MAX_GENERATION)) {
    throw new RangeError(
      `The generation must be an integer from 1 to ${MAX_GENERATION}, got ${String(generation)}`,
    );
  }
  // The library insists on a plain Uint8Array (not a subclass such as Buffer).
  const secret = Uint8Array.from(key);
  try {
    const values = await split(secret, shares, threshold);
    return values.map((value, i) => ({ generation, index: i + 1, threshold, value }));
  } finally {
    zeroize(secret);
  }
}

/**
 * Combines exactly `threshold` shards (the first ones given) into a key
 * candidate, after refusing any set that cannot be one split's shards:
 * malformed shards, mixed generations or thresholds, duplicate indexes or x
 * coordinates (`ShamirInvalidShardsError`), or fewer shards than the
 * threshold (`ShamirNotEnoughShardsError`). Callers that want another subset
 * pass it. The result is unverified: a corrupted shard yields wrong bytes.
 */
export async function combineShards(shards: readonly Shard[]): Promise<Uint8Array> {
  if (!Array.isArray(shards)) {
    throw new TypeError('combineShards() takes an array of shards');
  }
  const first = shards[0];
  if (first === undefined) {
    throw new ShamirNotEnoughShardsError('Cannot combine shards: none were given');
  }
  for (const [position, shard] of shards.entries()) {
    const problem = findShardProblem(shard);
    if (problem !== undefined) {
      throw new ShamirInvalidShardsError(
        `Cannot combine shards: shard ${position + 1} of ${shards.length} is malformed: ${problem}`,
      );
    }
  }
  const indexes = new Set<number>();
  const xs = new Set<number>();
  for (const shard of shards) {
    if (shard.generation !== first.generation) {
      throw new ShamirInvalidShardsError(
        'Cannot combine shards of different generations: they belong to different splits',
      );
    }
    if (shard.threshold !== first.threshold) {
      throw new ShamirInvalidShardsError(
        'Cannot combine shards that disagree on the threshold of their split',
      );
    }
    if (indexes.has(shard.index)) {
      throw new ShamirInvalidShardsError(
        `Cannot combine shards: index ${shard.index} appears more than once`,
      );
    }
    indexes.add(shard.index);
    const x = xCoordinateOf(shard);
    if (xs.has(x)) {
      throw new ShamirInvalidShardsError(
        'Cannot combine shards: two shards carry the same x coordinate',
      );
    }
    xs.add(x);
  }
  if (shards.length < first.threshold) {
    throw new ShamirNotEnoughShardsError(
      `Cannot combine shards: ${shards.length} given, the threshold is ${first.threshold}`,
    );
  }
  // Plain copies: the library refuses subclasses, and we wipe what we made.
  const values = shards.slice(0, first.threshold).map((shard) => Uint8Array.from(shard.value));
  try {
    return await combine(values);
  } finally {
    zeroize(...values);
  }
}

/**
 * What is wrong with a shard's shape, in words that never include its bytes,
 * or undefined when it is well formed (which says nothing about its bytes
 * being right).
 */
export function findShardProblem(shard: Shard): string | undefined {
  if (typeof shard !== 'object' || shard === null) {
    return 'not a shard object';
  }
  if (!isIntegerIn(shard.generation, 1, MAX_GENERATION)) {
    return `the generation must be an integer from 1 to ${MAX_GENERATION}`;
  }
  if (!isIntegerIn(shard.threshold, MIN_THRESHOLD, MAX_SHARES)) {
    return `the threshold must be an integer from ${MIN_THRESHOLD} to ${MAX_SHARES}`;
  }
  if (!isIntegerIn(shard.index, 1, MAX_SHARES)) {
    return `the index must be an integer from 1 to ${MAX_SHARES}`;
  }
  if (!(shard.value instanceof Uint8Array) || shard.value.length !== SHARD_VALUE_BYTES) {
    return `the value must be ${SHARD_VALUE_BYTES} bytes`;
  }
  if (xCoordinateOf(shard) === 0) {
    return 'the x coordinate (last byte of the value) must not be 0';
  }
  return undefined;
}

/** The share's x coordinate, which `shamir-secret-sharing` keeps in its last byte. */
export function xCoordinateOf(shard: Shard): number {
  return shard.value[shard.value.length - 1] ?? 0;
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max;
}
