/**
 * One re-split of the root key: a new generation number from the store, a
 * fresh Shamir split, one shard to each Keeper, and, once at least the
 * threshold of Keepers hold the new generation, its commit in the store and
 * the pruning of older generations on the Keepers that hold the new one.
 *
 * Invariant kept: a Keeper only drops a generation after it holds a newer one
 * that at least `threshold` Keepers hold, so some generation is always held by
 * at least `threshold` Keepers unless Keepers themselves lose their memory.
 */
import { splitRootKey } from '../../shared/crypto/shamir.ts';
import type { Logger } from '../../shared/log/logger.ts';
import type { RootKeyStore } from '../store/root_key_store.ts';
import type { KeeperLink } from './keeper_link.ts';

export interface DistributeOptions {
  readonly store: RootKeyStore;
  readonly keepers: readonly KeeperLink[];
  readonly threshold: number;
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
  const { store, keepers, threshold, logger } = options;
  const generation = options.generation ?? (await store.allocateGeneration());
  const shards = await splitRootKey(rootKey, { shares: keepers.length, threshold, generation });
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
  const names = stored.map((keeper) => keeper.name);
  if (stored.length < threshold) {
    logger.warn('Too few Keepers hold the new generation to commit it', {
      generation,
      stored: stored.length,
      threshold,
    });
    return { generation, stored: names, committed: false };
  }
  const committed = await store.commitGeneration(generation, options.owner);
  if (!committed) {
    logger.warn('The store refused the commit: another Nexus took over', { generation });
    return { generation, stored: names, committed: false };
  }
  // Only now may older generations go, and only on Keepers holding this one.
  await Promise.allSettled(stored.map((keeper) => keeper.prune(generation)));
  logger.info('Shards distributed', {
    generation,
    keepers: names,
    threshold,
  });
  return { generation, stored: names, committed: true };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
