/**
 * The SQLite tables of Nexus (drizzle). Only table definitions live here;
 * `drizzle-kit generate` turns them into the committed SQL under
 * `migrations/`, which `db.ts` applies at start-up.
 *
 * Names are chosen so that the PostgreSQL twin (`postgres/schema.ts`) uses
 * the same table and column names: snake_case, times as integer milliseconds
 * since the epoch (`*_ms`, `bigint` there), bytes as `blob` here and `bytea`
 * there. Constraint names are explicit for the same reason.
 */
import { sql } from 'drizzle-orm';
import {
  check,
  customType,
  foreignKey,
  integer,
  primaryKey,
  sqliteTable,
  text,
} from 'drizzle-orm/sqlite-core';

/**
 * A BLOB column read and written as `Uint8Array`. The driver hands BLOBs back
 * as `ArrayBuffer` (or `Buffer`); callers always get a fresh `Uint8Array` that
 * shares memory with nothing else.
 */
const bytes = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType() {
    return 'blob';
  },
  toDriver(value) {
    // A copy of exactly the view's bytes (a subarray or a Buffer slice
    // would otherwise bring its whole backing buffer along).
    return new Uint8Array(value);
  },
  fromDriver(value: unknown) {
    if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
    if (ArrayBuffer.isView(value)) {
      return new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice();
    }
    throw new TypeError(`Expected a BLOB from the database, got ${typeof value}`);
  },
});

/**
 * The root-key record: exactly one row (`id = 1`, enforced by the database),
 * so that of several Nexus processes initialising an empty store at once,
 * exactly one INSERT succeeds. It never holds the root key, only the keyring
 * sealed by it and the bookkeeping of shard generations.
 */
export const rootKey = sqliteTable(
  'root_key',
  {
    /** Always 1: the table has a single row. */
    id: integer('id').primaryKey(),
    /** The keyring sealed under the root key (AEAD); a wrong key fails to open it. */
    sealedKeyring: bytes('sealed_keyring').notNull(),
    /** The last generation number handed out; only ever increases. */
    lastGeneration: integer('last_generation').notNull(),
    /** The newest generation held by at least `threshold` Keepers; null until the first. */
    committedGeneration: integer('committed_generation'),
    /**
     * The shape of the committed split: how many Keepers hold a shard and how
     * many shards rebuild the key. Null on records made before it was kept
     * (the configured shape applies); set by each root-key rotation.
     */
    splitShares: integer('split_shares'),
    splitThreshold: integer('split_threshold'),
    /** The Nexus process finishing an initialisation; null once committed. */
    initOwner: text('init_owner'),
    /** Until when `init_owner` may finish; afterwards another Nexus may take over. */
    initDeadlineMs: integer('init_deadline_ms'),
    createdAtMs: integer('created_at_ms').notNull(),
    updatedAtMs: integer('updated_at_ms').notNull(),
  },
  (table) => [
    check('root_key_single_row', sql`${table.id} = 1`),
    check('root_key_generation_positive', sql`${table.lastGeneration} >= 1`),
    check(
      'root_key_committed_allocated',
      sql`${table.committedGeneration} IS NULL OR (${table.committedGeneration} >= 1 AND ${table.committedGeneration} <= ${table.lastGeneration})`,
    ),
    // An owner always comes with a deadline, and an initialisation is
    // pending (has an owner) exactly as long as nothing is committed.
    check(
      'root_key_init_owner_deadline',
      sql`(${table.initOwner} IS NULL) = (${table.initDeadlineMs} IS NULL)`,
    ),
    check(
      'root_key_init_until_commit',
      sql`(${table.committedGeneration} IS NULL) = (${table.initOwner} IS NOT NULL)`,
    ),
  ],
);

export type RootKeyRow = typeof rootKey.$inferSelect;

/**
 * One row per path that exists: its bookkeeping and custom metadata. A path
 * has this row exactly as long as it has version rows (`secrets`), which
 * reference it and go with it (ON DELETE CASCADE).
 */
export const secretMetadata = sqliteTable(
  'secret_metadata',
  {
    path: text('path').primaryKey(),
    createdAtMs: integer('created_at_ms').notNull(),
    updatedAtMs: integer('updated_at_ms').notNull(),
    /** The newest version written (the next put writes `current_version + 1`). */
    currentVersion: integer('current_version').notNull(),
    /** The oldest version still kept; older ones were removed by the cap. */
    oldestVersion: integer('oldest_version').notNull(),
    /** This path's own cap on kept versions; null uses the store's default. */
    maxVersions: integer('max_versions'),
    /** The custom metadata as JSON, sealed (AEAD, bound to the path); null when empty. */
    customMetadata: bytes('custom_metadata'),
    /** The keyring term that sealed `custom_metadata` (1 until the keyring rotates). */
    metadataKeyTerm: integer('metadata_key_term').notNull().default(1),
  },
  (table) => [
    check('secret_metadata_oldest_positive', sql`${table.oldestVersion} >= 1`),
    check(
      'secret_metadata_current_not_older',
      sql`${table.currentVersion} >= ${table.oldestVersion}`,
    ),
    check(
      'secret_metadata_max_versions_positive',
      sql`${table.maxVersions} IS NULL OR ${table.maxVersions} >= 1`,
    ),
  ],
);

/**
 * One row per kept version of a secret. The data is sealed (AEAD) and bound to
 * the path and version number, so a ciphertext copied to another row fails
 * to open. A destroyed version keeps its row (the number stays in the
 * history) but loses its ciphertext.
 */
export const secrets = sqliteTable(
  'secrets',
  {
    path: text('path').notNull(),
    version: integer('version').notNull(),
    createdAtMs: integer('created_at_ms').notNull(),
    /** Set by a soft delete, cleared by undelete. */
    deletedAtMs: integer('deleted_at_ms'),
    destroyed: integer('destroyed', { mode: 'boolean' }).notNull().default(false),
    /** The data as JSON, sealed; null exactly when destroyed. */
    ciphertext: bytes('ciphertext'),
    /** The keyring term that sealed `ciphertext` (1 until the keyring rotates). */
    keyTerm: integer('key_term').notNull().default(1),
  },
  (table) => [
    primaryKey({ name: 'secrets_pk', columns: [table.path, table.version] }),
    foreignKey({
      name: 'secrets_path_fk',
      columns: [table.path],
      foreignColumns: [secretMetadata.path],
    }).onDelete('cascade'),
    check('secrets_version_positive', sql`${table.version} >= 1`),
    check(
      'secrets_destroyed_no_data',
      sql`(${table.destroyed} = 1) = (${table.ciphertext} IS NULL)`,
    ),
  ],
);

/**
 * What each secret namespace (a path's first segment) holds, counted for its
 * quota (`secret_quotas.ts`): one row per namespace that ever had a path,
 * changed in the same transaction as the rows it counts, so it is exact
 * after any crash. The migration that made the table filled it from the
 * rows already there.
 */
export const secretQuotaUsage = sqliteTable(
  'secret_quota_usage',
  {
    namespace: text('namespace').primaryKey(),
    /** Paths with a `secret_metadata` row. */
    paths: integer('paths').notNull(),
    /** Bytes charged: each row's path, plus sealed data and custom metadata. */
    bytes: integer('bytes').notNull(),
  },
  (table) => [
    check('secret_quota_usage_paths_not_negative', sql`${table.paths} >= 0`),
    check('secret_quota_usage_bytes_not_negative', sql`${table.bytes} >= 0`),
  ],
);

/**
 * Access policies: who (a SPIFFE ID pattern) may do what (permissions) where
 * (a secret path pattern). Stored in clear: they are configuration, not
 * secrets, and must be readable to decide access.
 */
export const policies = sqliteTable('policies', {
  name: text('name').primaryKey(),
  spiffeIdPattern: text('spiffe_id_pattern').notNull(),
  pathPattern: text('path_pattern').notNull(),
  /** A JSON array of permission names. */
  permissions: text('permissions').notNull(),
  createdAtMs: integer('created_at_ms').notNull(),
  updatedAtMs: integer('updated_at_ms').notNull(),
});

/**
 * Named encryption keys (`transit_key_store.ts`): one row per key, with the
 * version that encrypts and the oldest that may still decrypt. Its versions
 * (`transit_key_versions`) go with it (ON DELETE CASCADE). No material here.
 */
export const transitKeys = sqliteTable(
  'transit_keys',
  {
    name: text('name').primaryKey(),
    createdAtMs: integer('created_at_ms').notNull(),
    updatedAtMs: integer('updated_at_ms').notNull(),
    /** The newest version: what encryption, rewrap, data keys and HMACs use. */
    latestVersion: integer('latest_version').notNull(),
    /** Ciphertext and HMACs of older versions are refused. */
    minDecryptionVersion: integer('min_decryption_version').notNull(),
  },
  (table) => [
    check('transit_keys_latest_positive', sql`${table.latestVersion} >= 1`),
    check(
      'transit_keys_min_decryption_in_range',
      sql`${table.minDecryptionVersion} >= 1 AND ${table.minDecryptionVersion} <= ${table.latestVersion}`,
    ),
  ],
);

/**
 * One row per version of a named key: its 32 random bytes, sealed (AEAD)
 * under the keyring and bound to the key's name and the version, so material
 * copied to another row fails to open. `keyring_term` records which keyring
 * sealed it, so that a later keyring rotation can find and rewrap each one.
 */
export const transitKeyVersions = sqliteTable(
  'transit_key_versions',
  {
    name: text('name').notNull(),
    version: integer('version').notNull(),
    createdAtMs: integer('created_at_ms').notNull(),
    /** The keyring term that sealed `sealed_material` (1 until the keyring rotates). */
    keyringTerm: integer('keyring_term').notNull(),
    sealedMaterial: bytes('sealed_material').notNull(),
  },
  (table) => [
    primaryKey({ name: 'transit_key_versions_pk', columns: [table.name, table.version] }),
    foreignKey({
      name: 'transit_key_versions_name_fk',
      columns: [table.name],
      foreignColumns: [transitKeys.name],
    }).onDelete('cascade'),
    check('transit_key_versions_version_positive', sql`${table.version} >= 1`),
    check('transit_key_versions_term_positive', sql`${table.keyringTerm} >= 1`),
  ],
);

export type SecretMetadataRow = typeof secretMetadata.$inferSelect;
export type SecretRow = typeof secrets.$inferSelect;
export type PolicyRow = typeof policies.$inferSelect;
export type SecretQuotaUsageRow = typeof secretQuotaUsage.$inferSelect;
export type TransitKeyRow = typeof transitKeys.$inferSelect;
export type TransitKeyVersionRow = typeof transitKeyVersions.$inferSelect;
