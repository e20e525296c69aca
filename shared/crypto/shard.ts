/**
 * A Shamir shard of the root key, as it travels between Nexus, Keepers and
 * operators. It always carries the split it belongs to (`generation`), its
 * position in that split (`index`, 1-based) and the split's `threshold`, so
 * that shards of different splits are never combined.
 */
export interface Shard {
  /** The split this shard belongs to; every split of a root key has its own. */
  readonly generation: number;
  /** 1-based position of the shard in its split (the Keeper slot). */
  readonly index: number;
  /** How many shards of this split recombine the key. */
  readonly threshold: number;
  /**
   * The share bytes as produced by `shamir-secret-sharing` (secret length + 1;
   * the last byte is the share's x coordinate). Key material: never log it.
   */
  readonly value: Uint8Array;
}

/** Largest generation number accepted anywhere (fits every integer column). */
export const MAX_GENERATION = 2 ** 31 - 1;
/** shamir-secret-sharing allows at most 255 shares. */
export const MAX_SHARES = 255;
/** The root key is 32 bytes; a share is one byte longer. */
export const ROOT_KEY_BYTES = 32;
export const SHARD_VALUE_BYTES = ROOT_KEY_BYTES + 1;
