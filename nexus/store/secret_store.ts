/**
 * The secret store: KV v2 semantics (versions, check-and-set, soft delete,
 * undelete, destroy, metadata) over encrypted rows. Implementations encrypt
 * and decrypt inside the store: callers see plaintext maps only, and only
 * while Nexus is unsealed. Paths arrive parsed (`SecretPath`).
 */
import type { SecretPath } from '../../shared/api/secret_path.ts';

/**
 * Lends a data key and its keyring term to `use` while Nexus is unsealed:
 * the active term's when `term` is omitted (to seal a row, which records the
 * term), else that term's (to open a row sealed under it). Throws
 * NotReadyError while sealed or for a term not held yet.
 * `rootKey.withKeyring.bind(rootKey)` in production. The stores take it so
 * that they encrypt and decrypt inside, never holding the key.
 */
export type KeyringAccess = <T>(use: (key: Uint8Array, term: number) => T, term?: number) => T;

/** A secret version's data: string keys to string values. */
export type SecretData = Readonly<Record<string, string>>;

export interface VersionInfo {
  readonly version: number;
  readonly createdAt: Date;
  /** Set by a soft delete, cleared by undelete. */
  readonly deletedAt: Date | null;
  /** Data irreversibly removed; the version number stays in the history. */
  readonly destroyed: boolean;
}

export interface SecretMetadata {
  readonly path: SecretPath;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  /** The newest version (0 only if every version was removed by the cap, never here). */
  readonly currentVersion: number;
  /** The oldest version still kept (older ones were removed by the cap). */
  readonly oldestVersion: number;
  /** The cap in force: the path's own, or the default. */
  readonly maxVersions: number;
  /** The path's own cap, if set. */
  readonly maxVersionsOverride: number | null;
  /** Every kept version, oldest first. */
  readonly versions: readonly VersionInfo[];
  /** Small string map set by users; encrypted at rest. */
  readonly customMetadata: Readonly<Record<string, string>>;
}

export interface SecretVersion {
  readonly path: SecretPath;
  readonly version: number;
  /**
   * The data as the JSON object it was sealed as (keys in code-unit order),
   * checked to hold only strings: what a read answers.
   */
  readonly dataJson: string;
  /** The same data as a map, parsed from `dataJson` on each access. */
  readonly data: SecretData;
  readonly createdAt: Date;
}

export interface PutOptions {
  /**
   * Check-and-set: the version the write expects to replace (0 = the path
   * must not exist). A mismatch throws ConflictError and writes nothing.
   */
  readonly cas?: number;
}

export interface ListOptions {
  /** At most this many paths (1..MAX_LIST_LIMIT of `shared/api/secrets.ts`). */
  readonly limit: number;
  /** Continue after this path (the `next` of the previous page). */
  readonly after?: SecretPath;
}

export interface ListPage {
  /** Paths that exist under the prefix, in byte order. */
  readonly paths: readonly SecretPath[];
  /** Pass as `after` for the next page; absent on the last page. */
  readonly next?: SecretPath;
}

export interface MetadataUpdate {
  /** A cap for this path; null removes the override. Lowering it prunes at once. */
  readonly maxVersions?: number | null;
  /** Replaces the custom metadata. */
  readonly customMetadata?: Readonly<Record<string, string>>;
}

/**
 * Every method throws: NotReadyError while sealed; NotFoundError for a
 * missing path or version (a deleted or destroyed version reads as not found,
 * with a message that says which); ConflictError on a failed check-and-set;
 * DecryptionFailedError when stored data fails authentication.
 */
export interface SecretStore {
  /** Writes a new version; returns it and the path's metadata. One transaction. */
  put(path: SecretPath, data: SecretData, options?: PutOptions): Promise<SecretMetadata>;
  /** The current version, or a given one. */
  get(path: SecretPath, version?: number): Promise<SecretVersion>;
  /**
   * The version a read of the current one would answer, found as `get()`
   * finds it but never opened: 0 when the path does not exist or its
   * current version is deleted or destroyed. What a long-poll read compares
   * (nexus/routes/secret_watch.ts), so waking costs no decryption.
   */
  currentVersion(path: SecretPath): Promise<number>;
  /** Paths under a prefix (`app/` lists `app/x` and `app/y/z`; empty lists all). */
  list(prefix: string, options: ListOptions): Promise<ListPage>;
  /**
   * Which of `paths` exist, in byte order, each once: a lookup of each
   * (at most MAX_LIST_LIMIT at once), so a listing of a few known paths
   * reads those rows only.
   */
  listExisting(paths: readonly SecretPath[]): Promise<readonly SecretPath[]>;
  /** Soft-deletes versions (default: the current one). */
  softDelete(path: SecretPath, versions?: readonly number[]): Promise<SecretMetadata>;
  /** Undoes soft deletes (default: the current version). */
  undelete(path: SecretPath, versions?: readonly number[]): Promise<SecretMetadata>;
  /** Irreversibly removes the data of versions. */
  destroy(path: SecretPath, versions: readonly number[]): Promise<SecretMetadata>;
  /**
   * Removes the path: every version and its metadata. With `onlyDeleted`,
   * only when every version is deleted or destroyed, checked in the same
   * transaction (else `ConflictError`), so a version written or undeleted
   * after a caller looked is never removed with it.
   */
  deletePath(path: SecretPath, options?: DeletePathOptions): Promise<void>;
  readMetadata(path: SecretPath): Promise<SecretMetadata>;
  writeMetadata(path: SecretPath, update: MetadataUpdate): Promise<SecretMetadata>;
}

export interface DeletePathOptions {
  readonly onlyDeleted?: boolean;
}
