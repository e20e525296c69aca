/** Every route path of the wire contract, defined once. */
export const PATHS = {
  /** Liveness of Nexus or a Keeper: answers while the process serves. */
  health: '/v1/health',
  /** Keeper: PUT stores a shard, GET lists every shard held (Nexus only). */
  keeperShards: '/v1/shards',
  /** Keeper: the generations held, without shard bytes. */
  keeperGenerations: '/v1/shards/generations',
  /** Keeper: drop generations older than a committed one. */
  keeperPrune: '/v1/shards/prune',
  /** Nexus: ready or sealed, and the Keepers' state. */
  status: '/v1/status',
  /** Nexus, break-glass: a full set of shards (recover role only). */
  operatorRecover: '/v1/operator/recover',
  /** Nexus, break-glass: submit one shard (restore role only). */
  operatorRestore: '/v1/operator/restore',
} as const;
