/**
 * Break-glass: the operators' way around the Keepers (SPIKE's recover and
 * restore). Recover hands a recover-role operator a full split of the root
 * key for offline safekeeping; no Keeper receives it. Restore takes shards
 * one at a time from a restore-role operator while Nexus is sealed, and
 * unseals once the shards of one generation reach their threshold and
 * recombine into the key that opens the sealed keyring.
 *
 * The root key manager runs both in its queue, so they never interleave with
 * its own start-up steps, checks and re-splits; it also supplies the way to
 * become ready, which is the same as after a recovery from the Keepers.
 */
import { zeroize } from '../../shared/crypto/bytes.ts';
import { splitRootKey } from '../../shared/crypto/shamir.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import {
  AlreadyUnsealedError,
  InvalidRequestError,
  NotReadyError,
} from '../../shared/errors/errors.ts';
import type { Logger } from '../../shared/log/logger.ts';
import type { RootKeyRecord, RootKeyStore } from '../store/root_key_store.ts';
import { verifyRootKey } from './keyring.ts';
import { recoverRootKey } from './recover.ts';
import type { RootKey } from './root_key.ts';

/** Progress of an operator restore. */
export interface RestoreProgress {
  readonly generation: number;
  readonly collected: number;
  readonly threshold: number;
  readonly remaining: number;
  readonly restored: boolean;
}

export interface RecoverySplitOptions {
  readonly store: RootKeyStore;
  readonly rootKey: RootKey;
  /** How many shards to make: as many as there are Keepers. */
  readonly shares: number;
  readonly threshold: number;
  readonly logger: Logger;
}

/**
 * A full split of the ready root key under a newly allocated generation, for
 * an operator to keep offline (break-glass recover). The caller sends the
 * shards and wipes them.
 */
export async function makeRecoverySplit(options: RecoverySplitOptions): Promise<Shard[]> {
  const { store, rootKey, shares, threshold, logger } = options;
  if (!rootKey.isReady) {
    throw new NotReadyError('Nexus is sealed: recovery shards need the root key');
  }
  const generation = await store.allocateGeneration();
  const shards = await rootKey.withKey((key) =>
    splitRootKey(key, { shares, threshold, generation }),
  );
  logger.info('Made a recovery split for an operator', {
    generation,
    shares: shards.length,
    threshold,
  });
  return shards;
}

export interface ShardRestoreOptions {
  readonly store: RootKeyStore;
  readonly rootKey: RootKey;
  readonly logger: Logger;
  /**
   * Unseals Nexus with the recombined key, which it takes over (and wipes),
   * then supplies the Keepers as after any unseal.
   */
  readonly unseal: (key: Uint8Array, record: RootKeyRecord) => Promise<void>;
}

/**
 * Break-glass restore: holds copies of the shards an operator submitted, per
 * generation, until one generation unseals Nexus or the holder is discarded.
 */
export class ShardRestore {
  readonly #o: ShardRestoreOptions;
  readonly #buffer = new Map<number, Shard[]>();

  constructor(options: ShardRestoreOptions) {
    this.#o = options;
  }

  /**
   * Takes one shard (and wipes the caller's copy of its value). Unseals when
   * its generation reaches the threshold; shards that reach it but do not
   * recombine into this Nexus's key are discarded.
   */
  async accept(shard: Shard): Promise<RestoreProgress> {
    if (this.#o.rootKey.isReady) {
      zeroize(shard.value);
      throw new AlreadyUnsealedError();
    }
    const record = await this.#o.store.read();
    if (record === undefined) {
      zeroize(shard.value);
      throw new InvalidRequestError('This Nexus store was never initialised: nothing to restore');
    }
    const buffer = this.#buffer.get(shard.generation) ?? [];
    const duplicate = buffer.find((held) => held.index === shard.index);
    if (duplicate === undefined) {
      buffer.push({ ...shard, value: shard.value.slice() });
      this.#buffer.set(shard.generation, buffer);
    }
    zeroize(shard.value);
    const progress = (restored: boolean): RestoreProgress => ({
      generation: shard.generation,
      collected: restored ? shard.threshold : buffer.length,
      threshold: shard.threshold,
      remaining: restored ? 0 : Math.max(0, shard.threshold - buffer.length),
      restored,
    });
    this.#o.logger.info('Restore: received a shard', {
      generation: shard.generation,
      index: shard.index,
      collected: buffer.length,
      threshold: shard.threshold,
    });
    if (buffer.length < shard.threshold) {
      return progress(false);
    }
    const recovered = await recoverRootKey(buffer, (candidate) =>
      verifyRootKey(candidate, record.sealedKeyring),
    );
    if (recovered === undefined) {
      zeroize(...buffer.map((held) => held.value));
      this.#buffer.delete(shard.generation);
      throw new InvalidRequestError(
        `The shards of generation ${shard.generation} do not recombine into this Nexus's root key; they were discarded`,
      );
    }
    await this.#o.unseal(recovered.key, record);
    this.discard();
    return progress(true);
  }

  /** Wipes and forgets every shard held. */
  discard(): void {
    for (const shards of this.#buffer.values()) {
      zeroize(...shards.map((held) => held.value));
    }
    this.#buffer.clear();
  }
}
