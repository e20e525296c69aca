/**
 * The recovery decision: given every shard Nexus could collect (from Keepers
 * or an operator), find the root key, or decide that it cannot be found yet.
 *
 * Invariants:
 * - Only shards of one generation, claiming one threshold, are ever combined.
 * - A candidate is returned only if `verify` accepted it; a rejected one is
 *   wiped at once. Combining too few or corrupted shards yields wrong bytes,
 *   never an error, so verification is what makes a wrong key impossible.
 * - Newer generations are tried first; an older one is used only when no
 *   newer one recovers (its Keepers may still hold it during a re-split).
 * - One bad shard among more than the threshold does not block recovery:
 *   other subsets are tried, up to `maxAttempts` combinations per group.
 */
import { constantTimeEqual, zeroize } from '../../shared/crypto/bytes.ts';
import { combineShards, findShardProblem, xCoordinateOf } from '../../shared/crypto/shamir.ts';
import type { Shard } from '../../shared/crypto/shard.ts';

export interface RecoveredKey {
  readonly key: Uint8Array;
  readonly generation: number;
}

export interface RecoverOptions {
  /** Combinations tried per generation (and claimed threshold); default 64. */
  readonly maxAttempts?: number;
}

/** Says whether a candidate is the root key (for example: it opens the sealed keyring). */
export type VerifyRootKey = (candidate: Uint8Array) => Promise<boolean> | boolean;

export const DEFAULT_MAX_ATTEMPTS = 64;

/** Shards of one generation that claim the same threshold. */
interface ShardGroup {
  readonly generation: number;
  readonly threshold: number;
  readonly shards: Shard[];
}

/**
 * Recovers the root key from `shards`, or returns undefined when no
 * generation has enough shards that combine into a key `verify` accepts.
 * Malformed shards are ignored. The caller owns (and must wipe) the key.
 */
export async function recoverRootKey(
  shards: readonly Shard[],
  verify: VerifyRootKey,
  options: RecoverOptions = {},
): Promise<RecoveredKey | undefined> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(`maxAttempts must be a positive integer, got ${String(maxAttempts)}`);
  }
  for (const group of groupShards(shards)) {
    const key = await recoverFromGroup(group, verify, maxAttempts);
    if (key !== undefined) {
      return { key, generation: group.generation };
    }
  }
  return undefined;
}

/**
 * Well-formed, distinct shards grouped by generation (newest first) and,
 * within a generation, by claimed threshold: the threshold most shards agree
 * on first, so an odd shard does not hide its siblings.
 */
function groupShards(shards: readonly Shard[]): ShardGroup[] {
  const groups = new Map<string, ShardGroup>();
  for (const shard of shards) {
    if (findShardProblem(shard) !== undefined) {
      continue;
    }
    const id = `${shard.generation}/${shard.threshold}`;
    let group = groups.get(id);
    if (group === undefined) {
      group = { generation: shard.generation, threshold: shard.threshold, shards: [] };
      groups.set(id, group);
    }
    if (!group.shards.some((held) => isSameShard(held, shard))) {
      group.shards.push(shard);
    }
  }
  for (const group of groups.values()) {
    // Stable: equal indexes keep the order they were collected in.
    group.shards.sort((a, b) => a.index - b.index);
  }
  return [...groups.values()].sort(
    (a, b) =>
      b.generation - a.generation || b.shards.length - a.shards.length || b.threshold - a.threshold,
  );
}

async function recoverFromGroup(
  group: ShardGroup,
  verify: VerifyRootKey,
  maxAttempts: number,
): Promise<Uint8Array | undefined> {
  const indexes = new Set(group.shards.map((shard) => shard.index));
  const xs = new Set(group.shards.map(xCoordinateOf));
  if (indexes.size < group.threshold || xs.size < group.threshold) {
    return undefined;
  }
  let attempts = 0;
  for (const subset of combinations(group.shards, group.threshold)) {
    if (attempts >= maxAttempts) {
      return undefined;
    }
    attempts++;
    let candidate: Uint8Array | undefined;
    try {
      candidate = await combineShards(subset);
      if ((await verify(candidate)) === true) {
        const key = candidate;
        candidate = undefined;
        return key;
      }
    } finally {
      zeroize(candidate);
    }
  }
  return undefined;
}

/**
 * Every `size`-element subset of `shards` (in lexicographic order of
 * positions) whose shards have pairwise distinct indexes and x coordinates,
 * so the first one yielded is the first `size` usable shards.
 */
function* combinations(shards: readonly Shard[], size: number): Generator<Shard[]> {
  const chosen: Shard[] = [];
  function* extend(from: number): Generator<Shard[]> {
    if (chosen.length === size) {
      yield [...chosen];
      return;
    }
    for (let i = from; i <= shards.length - (size - chosen.length); i++) {
      const shard = shards[i] as Shard;
      if (chosen.some((other) => conflicts(other, shard))) {
        continue;
      }
      chosen.push(shard);
      yield* extend(i + 1);
      chosen.pop();
    }
  }
  yield* extend(0);
}

function conflicts(a: Shard, b: Shard): boolean {
  return a.index === b.index || xCoordinateOf(a) === xCoordinateOf(b);
}

function isSameShard(a: Shard, b: Shard): boolean {
  return (
    a.generation === b.generation &&
    a.index === b.index &&
    a.threshold === b.threshold &&
    constantTimeEqual(a.value, b.value)
  );
}
