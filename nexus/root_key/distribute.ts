/**
 * One re-split of the root key: a new generation number from the store, a
 * fresh Shamir split, one shard to each Keeper of the split, and, once at
 * least the threshold of Keepers hold the new generation, its commit in the
 * store and the pruning of older generations on the Keepers that hold the
 * new one. A root-key rotation (`root_key_manager.ts`) uses the same placing
 * and pruning around its own commit.
 *
 * Invariants kept:
 * - a Keeper only drops a generation after it holds a newer one that at
 *   least `threshold` Keepers hold, so some generation is always held by at
 *   least `threshold` Keepers unless Keepers themselves lose their memory;
 * - the commit (and so the pruning) happens only while the store still holds
 *   the sealed keyring the key was verified against, so a Nexus whose root
 *   key was rotated away by another can never make Keepers drop the new key.
 */
import { splitRootKey } from '../../shared/crypto/shamir.ts';
import type { Logger } from '../../shared/log/logger.ts';
import type { RootKeyStore } from '../store/root_key_store.ts';
import type { KeeperLink } from './keeper_link.ts';

/** How a key is split: the first `shares` Keepers get a shard; `threshold` rebuild it. */
export interface SplitShape {
  readonly shares: number;
  readonly threshold: number;
}

export interface DistributeOptions {
  readonly store: RootKeyStore;
  readonly keepers: readonly KeeperLink[];
  readonly shape: SplitShape;
  /** The sealed keyring the key was verified against (it opens it): the commit's guard. */
  readonly sealedKeyring: Uint8Array;
  /** Who commits (the initialising Nexus must be the owner of an unfinished initialisation). */
  readonly owner: string;
  readonly logger: Logger;
  /** Use this generation instead of allocating one (the first split of a new key). */
  readonly generation?: number;
}

export interface DistributeResult {
  readonly generation: number;
  /** Names of the Keepers that stored their shard. */
  readonly stored: readonly string[];
  /** Whether the generation is now committed in the store. */
  readonly committed: boolean;
}

export async function distributeRootKey(
  rootKey: Uint8Array,
  options: DistributeOptions,
): Promise<DistributeResult> {
  const { store, keepers, shape, logger } = options;
  const generation = options.generation ?? (await store.allocateGeneration());
  const stored = await placeShards(rootKey, { keepers, shape, generation, logger });
  const names = stored.map((keeper) => keeper.name);
  if (stored.length < shape.threshold) {
    logger.warn('Too few Keepers hold the new generation to commit it', {
      generation,
      stored: stored.length,
      threshold: shape.threshold,
    });
    return { generation, stored: names, committed: false };
  }
  const committed = await store.commitGeneration(generation, options.owner, options.sealedKeyring);
  if (!committed) {
    logger.warn(
      'The store refused the commit: another Nexus took over or changed the sealed keyring',
      { generation },
    );
    return { generation, stored: names, committed: false };
  }
  // Only now may older generations go, and only on Keepers holding this one.
  await pruneOlder(stored, generation);
  logger.info('Shards distributed', {
    generation,
    keepers: names,
    threshold: shape.threshold,
  });
  return { generation, stored: names, committed: true };
}

/**
 * Splits `rootKey` into `shape.shares` shards of `generation` and gives shard
 * `i` to Keeper `i` (Keepers beyond the shape get none), all in parallel.
 * Nothing is committed or pruned. Returns the Keepers that stored theirs.
 */
export async function placeShards(
  rootKey: Uint8Array,
  options: {
    readonly keepers: readonly KeeperLink[];
    readonly shape: SplitShape;
    readonly generation: number;
    readonly logger: Logger;
  },
): Promise<KeeperLink[]> {
  const { shape, generation, logger } = options;
  const keepers = options.keepers.slice(0, shape.shares);
  if (keepers.length < shape.shares) {
    throw new RangeError(
      `A split into ${shape.shares} shards needs as many Keepers; ${keepers.length} are configured`,
    );
  }
  const shards = await splitRootKey(rootKey, {
    shares: shape.shares,
    threshold: shape.threshold,
    generation,
  });
  let results: PromiseSettledResult<void>[];
  try {
    results = await Promise.allSettled(
      keepers.map((keeper, i) => keeper.putShard(shards[i] as (typeof shards)[number])),
    );
  } finally {
    for (const shard of shards) {
      shard.value.fill(0);
    }
  }
  const stored: KeeperLink[] = [];
  results.forEach((result, i) => {
    const keeper = keepers[i] as KeeperLink;
    if (result.status === 'fulfilled') {
      stored.push(keeper);
    } else {
      logger.warn('A Keeper did not take its shard', {
        keeper: keeper.name,
        generation,
        index: i + 1,
        error: describe(result.reason),
      });
    }
  });
  return stored;
}

/** Tells the Keepers that hold `generation` to drop older ones (after its commit only). */
export async function pruneOlder(
  keepers: readonly KeeperLink[],
  generation: number,
): Promise<void> {
  await Promise.allSettled(keepers.map((keeper) => keeper.prune(generation)));
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
