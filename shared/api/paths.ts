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
  /** Nexus: a secret version (GET read, PUT write, DELETE soft delete); `/{path}` follows. */
  secretData: '/v1/secrets/data',
  /** Nexus: a secret's metadata (GET, PUT, DELETE removes the path); `/{path}` follows. */
  secretMetadata: '/v1/secrets/metadata',
  /** Nexus: undo soft deletes; `/{path}` follows. */
  secretUndelete: '/v1/secrets/undelete',
  /** Nexus: remove version data for good; `/{path}` follows. */
  secretDestroy: '/v1/secrets/destroy',
  /** Nexus: list the paths under a prefix that the caller may list. */
  secretList: '/v1/secrets/list',
  /** Nexus: one long-poll over several paths (POST), answered with the versions that changed. */
  secretWatch: '/v1/secrets/watch',
  /** Nexus, break-glass: submit one shard (restore role only). */
  operatorRestore: '/v1/operator/restore',
  /** Nexus: a new root key, split (optionally in a new shape) onto the Keepers (superuser only). */
  operatorRootKeyRotate: '/v1/operator/root-key/rotate',
  /** Nexus: GET saves a snapshot of the database, PUT restores one (superuser only). */
  operatorSnapshot: '/v1/operator/snapshot',
  /** Nexus: GET the keyring's terms and sweep (operators); `/rotate` (POST) rotates the data key (superuser). */
  operatorKeyring: '/v1/operator/keyring',
  operatorKeyringRotate: '/v1/operator/keyring/rotate',
  /** Nexus: GET lists every policy; `/{name}` follows for GET, PUT and DELETE of one. */
  policies: '/v1/policies',
  /** Nexus: GET lists the named encryption keys; `/{name}` follows for one (shared/api/transit.ts). */
  transitKeys: '/v1/transit/keys',
  /** Nexus: encrypt, decrypt, rewrap, data keys, HMAC and verify under a key; `/{name}` follows. */
  transitEncrypt: '/v1/transit/encrypt',
  transitDecrypt: '/v1/transit/decrypt',
  transitRewrap: '/v1/transit/rewrap',
  transitDataKey: '/v1/transit/datakey',
  transitHmac: '/v1/transit/hmac',
  transitVerify: '/v1/transit/verify',
} as const;
