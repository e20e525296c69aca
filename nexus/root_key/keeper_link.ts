/**
 * How Nexus talks to one Keeper. The production link goes over SPIFFE mTLS
 * (`createHttpsKeeperLink`); the fault simulation uses in-process Keepers.
 */
import type { Shard } from '../../shared/crypto/shard.ts';

export interface KeeperLink {
  /** For logs: the Keeper's URL or name. Never a shard. */
  readonly name: string;
  /** Stores a shard; a Keeper keeps older generations until told to prune. */
  putShard(shard: Shard): Promise<void>;
  /** Every shard the Keeper holds, all generations. */
  listShards(): Promise<Shard[]>;
  /** The generations the Keeper holds (no shard bytes). */
  generations(): Promise<number[]>;
  /** Drops generations older than `keepFrom`, if the Keeper holds `keepFrom`. */
  prune(keepFrom: number): Promise<void>;
}
