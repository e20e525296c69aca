/**
 * The PostgreSQL tables of Nexus (drizzle): the twin of `sqlite/schema.ts`,
 * with the same table, column and constraint names, so both backends keep the
 * same layout and the shared row mapping (`_secret_rules.ts`,
 * `_policy_rows.ts`, `_root_key_rows.ts`) reads either. Only table definitions live here;
 * `npm run db:generate` turns them into the committed SQL under
 * `migrations/`, which `db.ts` applies at start-up.
 *
 * Differences from SQLite, all of type only: times are `bigint` milliseconds
 * since the epoch read as JS numbers (safe until the year 287396), bytes are
 * `bytea`, and `destroyed` is a real `boolean`.
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  customType,
  foreignKey,
  index,
  integer,
  pgTable,
  primaryKey,
  text,
} from 'drizzle-orm/pg-core';

/**
 * A BYTEA column read and written as `Uint8Array`. pg hands BYTEA back as a
 * Buffer (a view into a shared pool); callers get a fresh `Uint8Array` that
 * shares memory with nothing else.
 */
const bytes = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType() {
    return 'bytea';
  },
  toDriver(value) {
    // pg sends a Buffer as binary; a plain Uint8Array would go out as text.
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  },
  fromDriver(value: unknown) {
    if (ArrayBuffer.isView(value)) {
      return new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice();
    }
    throw new TypeError(`Expected a BYTEA from the database, got ${typeof value}`);
  },
});

/** Milliseconds since the epoch, as a JS number. */
function millis(name: string) {
  return bigint(name, { mode: 'number' });
}

/** The single root-key row; see `schema.ts` for the meaning of each column. */
export const rootKey = pgTable(
  'root_key',
  {
    id: integer('id').primaryKey(),
    sealedKeyring: bytes('sealed_keyring').notNull(),
    lastGeneration: integer('last_generation').notNull(),
    committedGeneration: integer('committed_generation'),
    /**
     * The shape of the committed split: how many Keepers hold a shard and how
     * many shards rebuild the key. Null on records made before it was kept
     * (the configured shape applies); set by each root-key rotation.
     */
    splitShares: integer('split_shares'),
    splitThreshold: integer('split_threshold'),
    initOwner: text('init_owner'),
    initDeadlineMs: millis('init_deadline_ms'),
    createdAtMs: millis('created_at_ms').notNull(),
    updatedAtMs: millis('updated_at_ms').notNull(),
  },
  (table) => [
    check('root_key_single_row', sql`${table.id} = 1`),
    check('root_key_generation_positive', sql`${table.lastGeneration} >= 1`),
    check(
      'root_key_committed_allocated',
      sql`${table.committedGeneration} IS NULL OR (${table.committedGeneration} >= 1 AND ${table.committedGeneration} <= ${table.lastGeneration})`,
    ),
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

/** One row per existing path; see `schema.ts`. */
export const secretMetadata = pgTable(
  'secret_metadata',
  {
    path: text('path').primaryKey(),
    createdAtMs: millis('created_at_ms').notNull(),
    updatedAtMs: millis('updated_at_ms').notNull(),
    currentVersion: integer('current_version').notNull(),
    oldestVersion: integer('oldest_version').notNull(),
    maxVersions: integer('max_versions'),
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
    // Listing selects and orders paths bytewise (COLLATE "C"), which the
    // primary key in the database's collation cannot serve: without this a
    // list of a few paths would read and sort the whole table. SQLite needs
    // no twin, its primary key is already in byte order.
    index('secret_metadata_path_bytewise').on(sql`${table.path} COLLATE "C"`),
  ],
);

/** One row per kept version of a secret; see `schema.ts`. */
export const secrets = pgTable(
  'secrets',
  {
    path: text('path').notNull(),
    version: integer('version').notNull(),
    createdAtMs: millis('created_at_ms').notNull(),
    deletedAtMs: millis('deleted_at_ms'),
    destroyed: boolean('destroyed').notNull().default(false),
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
    check('secrets_destroyed_no_data', sql`${table.destroyed} = (${table.ciphertext} IS NULL)`),
  ],
);

/** What each secret namespace holds, counted for its quota; see `schema.ts`. */
export const secretQuotaUsage = pgTable(
  'secret_quota_usage',
  {
    namespace: text('namespace').primaryKey(),
    paths: integer('paths').notNull(),
    bytes: bigint('bytes', { mode: 'number' }).notNull(),
  },
  (table) => [
    check('secret_quota_usage_paths_not_negative', sql`${table.paths} >= 0`),
    check('secret_quota_usage_bytes_not_negative', sql`${table.bytes} >= 0`),
  ],
);

/** Access policies, in clear; see `schema.ts`. */
export const policies = pgTable('policies', {
  name: text('name').primaryKey(),
  spiffeIdPattern: text('spiffe_id_pattern').notNull(),
  pathPattern: text('path_pattern').notNull(),
  /** A JSON array of permission names (text, as on SQLite). */
  permissions: text('permissions').notNull(),
  createdAtMs: millis('created_at_ms').notNull(),
  updatedAtMs: millis('updated_at_ms').notNull(),
});

/** Named encryption keys; see `schema.ts`. */
export const transitKeys = pgTable(
  'transit_keys',
  {
    name: text('name').primaryKey(),
    createdAtMs: millis('created_at_ms').notNull(),
    updatedAtMs: millis('updated_at_ms').notNull(),
    latestVersion: integer('latest_version').notNull(),
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

/** One row per version of a named key, its material sealed; see `schema.ts`. */
export const transitKeyVersions = pgTable(
  'transit_key_versions',
  {
    name: text('name').notNull(),
    version: integer('version').notNull(),
    createdAtMs: millis('created_at_ms').notNull(),
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

export type RootKeyRow = typeof rootKey.$inferSelect;
export type SecretMetadataRow = typeof secretMetadata.$inferSelect;
export type SecretRow = typeof secrets.$inferSelect;
export type PolicyRow = typeof policies.$inferSelect;
export type SecretQuotaUsageRow = typeof secretQuotaUsage.$inferSelect;
export type TransitKeyRow = typeof transitKeys.$inferSelect;
export type TransitKeyVersionRow = typeof transitKeyVersions.$inferSelect;
