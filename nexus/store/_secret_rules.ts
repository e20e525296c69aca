/**
 * The dialect-free half of the SQL secret stores (`sqlite/secret_store.ts` and
 * `postgres/secret_store.ts`): argument checks, the KV v2 rules that
 * do not need the database (which versions a change touches, what the cap
 * keeps, which paths a prefix covers), the error messages, and the mapping of
 * rows back to `SecretMetadata` (which opens the sealed custom metadata). Both
 * stores call these, so both refuse the same requests the same way and return
 * identical values for identical rows. No drizzle, no driver: pure.
 */
import {
  parseSecretPath,
  parseSecretPrefix,
  type SecretPath,
} from '../../shared/api/secret_path.ts';
import { MAX_LIST_LIMIT, MAX_VERSIONS_PER_REQUEST } from '../../shared/api/secrets.ts';
import {
  ConflictError,
  InternalError,
  InvalidRequestError,
  NotFoundError,
} from '../../shared/errors/errors.ts';
import type { SecretChanges } from './secret_changes.ts';
import {
  openCustomMetadata,
  openSecretJson,
  parseStringMap,
  sealCustomMetadata,
} from './secret_cipher.ts';
import { checkCustomMetadata, checkMaxVersions } from './secret_limits.ts';
import { checkQuotas, type SecretQuotas } from './secret_quotas.ts';
import type {
  KeyringAccess,
  ListOptions,
  ListPage,
  MetadataUpdate,
  SecretMetadata,
  SecretVersion,
  VersionInfo,
} from './secret_store.ts';

/** What both SQL secret stores are built from; `Database` is the dialect's handle. */
export interface SqlSecretStoreOptions<Database> {
  readonly database: Database;
  readonly keyring: KeyringAccess;
  /** The cap on kept versions of paths without their own (1..MAX_KEPT_VERSIONS). */
  readonly maxVersionsDefault: number;
  /** Storage quotas per namespace. Default `DEFAULT_SECRET_QUOTAS`. */
  readonly quotas?: SecretQuotas;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  readonly now?: () => number;
  /**
   * Whether `close()` closes the database too. Default false: the database
   * is usually shared with other stores, and its opener closes it.
   */
  readonly ownsDatabase?: boolean;
  /**
   * Told of each path a write of this store changed, once it has committed
   * (`secret_changes.ts`): long-poll reads wait there. Default: a private one
   * nobody waits on.
   */
  readonly changes?: SecretChanges;
}

/** Checks the options a store is built from, before it is used at all. */
export function checkStoreOptions(options: {
  readonly keyring: unknown;
  readonly maxVersionsDefault: unknown;
  readonly quotas?: unknown;
}): void {
  if (typeof options.keyring !== 'function') {
    throw new TypeError('The keyring option must be a function lending the data key');
  }
  checkMaxVersions(options.maxVersionsDefault, 'maxVersionsDefault');
  if (options.quotas !== undefined) checkQuotas(options.quotas);
}

/** A path's metadata row, as either dialect reads it. */
export interface MetadataRow {
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
  readonly currentVersion: number;
  readonly oldestVersion: number;
  readonly maxVersions: number | null;
  readonly customMetadata: Uint8Array | null;
  /** The keyring term that sealed `customMetadata`. */
  readonly metadataKeyTerm: number;
}

/** The columns of a version row that are not its data. */
export interface VersionRow {
  readonly version: number;
  readonly createdAtMs: number;
  readonly deletedAtMs: number | null;
  readonly destroyed: boolean;
}

/** A version row as stored: its data sealed (null once destroyed) and the term that sealed it. */
export interface SealedVersionRow extends VersionRow {
  readonly ciphertext: Uint8Array | null;
  readonly keyTerm: number;
}

export type VersionChange = 'delete' | 'undelete' | 'destroy';

/** Whether `change` would alter the version `row`. */
function isChanged(row: VersionRow, change: VersionChange): boolean {
  switch (change) {
    case 'delete':
      return row.deletedAtMs === null;
    case 'undelete':
      // Destroyed versions were refused before (versionsToChange).
      return row.deletedAtMs !== null;
    case 'destroy':
      return !row.destroyed;
  }
}

/**
 * The versions a delete, undelete or destroy changes: those it names (0 and
 * the default mean the current one), deduplicated, less those already in the
 * wanted state. NotFoundError when a named version is not kept; for an
 * undelete, ConflictError when a named version is destroyed, since its data
 * cannot come back (Vault skips such a version silently, which tells the
 * caller that the undelete worked). Either error comes before any write, so
 * nothing changes.
 */
export function versionsToChange(
  path: SecretPath,
  requested: readonly number[] | undefined,
  change: VersionChange,
  state: { readonly row: MetadataRow; readonly versions: readonly VersionRow[] },
  maxVersionsDefault: number,
): number[] {
  const current = state.row.currentVersion;
  const targets = [...new Set((requested ?? [current]).map((v) => (v === 0 ? current : v)))];
  const byNumber = new Map(state.versions.map((row) => [row.version, row]));
  return targets.filter((version) => {
    const row = byNumber.get(version);
    if (row === undefined) {
      throw missingVersion(path, version, state.row, maxVersionsDefault);
    }
    if (change === 'undelete' && row.destroyed) {
      throw new ConflictError(
        `Version ${version} of "${path}" is destroyed: its data is gone and cannot be undeleted`,
      );
    }
    return isChanged(row, change);
  });
}

/** The lowest version the cap keeps, given the metadata row. */
export function keptFrom(row: MetadataRow, maxVersionsDefault: number): number {
  return row.currentVersion - (row.maxVersions ?? maxVersionsDefault) + 1;
}

/** A row back into SecretMetadata; opens the sealed custom metadata. */
export function toMetadata(
  path: SecretPath,
  row: MetadataRow | undefined,
  versionRows: readonly VersionRow[],
  options: { readonly keyring: KeyringAccess; readonly maxVersionsDefault: number },
): SecretMetadata {
  if (row === undefined) {
    throw new InternalError(`The metadata of "${path}" vanished inside a transaction`);
  }
  const sealed = row.customMetadata;
  const customMetadata =
    sealed === null
      ? Object.freeze({})
      : options.keyring((key) => openCustomMetadata(key, path, sealed), row.metadataKeyTerm);
  const versions: VersionInfo[] = versionRows.map((version) =>
    Object.freeze({
      version: version.version,
      createdAt: new Date(version.createdAtMs),
      deletedAt: version.deletedAtMs === null ? null : new Date(version.deletedAtMs),
      destroyed: version.destroyed,
    }),
  );
  return Object.freeze({
    path,
    createdAt: new Date(row.createdAtMs),
    updatedAt: new Date(row.updatedAtMs),
    currentVersion: row.currentVersion,
    oldestVersion: row.oldestVersion,
    maxVersions: row.maxVersions ?? options.maxVersionsDefault,
    maxVersionsOverride: row.maxVersions,
    versions: Object.freeze(versions),
    customMetadata,
  });
}

/**
 * The version `get` found, decrypted; NotFoundError saying why when it is
 * destroyed or deleted.
 */
export function openVersion(
  path: SecretPath,
  version: number,
  row: SealedVersionRow,
  keyring: KeyringAccess,
): SecretVersion {
  const sealed = row.ciphertext;
  if (row.destroyed || sealed === null) {
    throw new NotFoundError(`Version ${version} of "${path}" is destroyed`);
  }
  if (row.deletedAtMs !== null) {
    throw new NotFoundError(`Version ${version} of "${path}" is deleted`);
  }
  const dataJson = keyring((key) => openSecretJson(key, path, version, sealed), row.keyTerm);
  return Object.freeze({
    path,
    version,
    dataJson,
    get data() {
      return parseStringMap(dataJson);
    },
    createdAt: new Date(row.createdAtMs),
  });
}

/**
 * The version a read of the current one answers, from what it found (the
 * path's metadata and the current version's row): 0 for none, deleted or
 * destroyed, as `openVersion` would refuse it.
 */
export function liveVersionOf(
  found:
    | {
        readonly metadata: MetadataRow;
        readonly row: SealedVersionRow | undefined;
      }
    | undefined,
): number {
  const row = found?.row;
  if (found === undefined || row === undefined) return 0;
  if (row.destroyed || row.ciphertext === null || row.deletedAtMs !== null) return 0;
  return found.metadata.currentVersion;
}

export function missingVersion(
  path: SecretPath,
  version: number,
  row: MetadataRow,
  maxVersionsDefault: number,
): NotFoundError {
  if (version < row.oldestVersion) {
    return new NotFoundError(
      `Version ${version} of "${path}" was removed: only the newest ${row.maxVersions ?? maxVersionsDefault} versions are kept`,
    );
  }
  return new NotFoundError(`Version ${version} of "${path}" does not exist`);
}

/** `deletePath(path, { onlyDeleted: true })` found a version that is neither deleted nor destroyed. */
export function liveVersionConflict(path: SecretPath): ConflictError {
  return new ConflictError(
    `Secret "${path}" has a version that is neither deleted nor destroyed: the path was kept`,
  );
}

export function missingPath(path: SecretPath): NotFoundError {
  return new NotFoundError(`No secret at "${path}"`);
}

export function casConflict(cas: number, current: number): ConflictError {
  return new ConflictError(
    cas === 0
      ? `Check-and-set failed: "cas: 0" requires that the secret does not exist, and it is at version ${current}`
      : current === 0
        ? `Check-and-set failed: expected version ${cas}, but the secret does not exist`
        : `Check-and-set failed: expected version ${cas}, but the current version is ${current}`,
  );
}

/**
 * The paths under a checked prefix, by segments: `app/` covers `app/x` and
 * `app/y/z`; `app` covers `app` itself too, never `apple`. As byte ranges
 * (`'/' + 1` is `'0'`), so no LIKE pattern needs escaping: paths `p` with
 * `from <= p < below`, or `p = exact`. Undefined for the empty prefix (all).
 * A query reads one index range, from `exact` (or `from`) up to `below`,
 * and filters out the siblings in it (`app-b` and `app.c` sort between `app`
 * and `app/`): an `OR` of the two would make the database read the index
 * from its start.
 */
export function prefixRange(
  prefix: string,
): { readonly exact?: string; readonly from: string; readonly below: string } | undefined {
  if (prefix === '') return undefined;
  const isDirectory = prefix.endsWith('/');
  const base = isDirectory ? prefix.slice(0, -1) : prefix;
  const range = { from: `${base}/`, below: `${base}0` };
  return isDirectory ? range : { ...range, exact: base };
}

export function checkPath(path: unknown): asserts path is SecretPath {
  // Typed callers pass parsed paths; re-checking is cheap and keeps a cast
  // string from reaching the database or an AAD.
  parseSecretPath(path);
}

/** The checked arguments of `list`: the prefix, the page size, where to continue. */
export function checkListArguments(
  prefix: string,
  options: ListOptions,
): { readonly prefix: string; readonly limit: number; readonly after?: SecretPath } {
  const checkedPrefix = parseSecretPrefix(prefix);
  const { limit, after } = options;
  checkListLimit(limit);
  if (after === undefined) return { prefix: checkedPrefix, limit };
  checkPath(after);
  return { prefix: checkedPrefix, limit, after };
}

/**
 * The checked argument of `listExisting`: an array of at most
 * MAX_LIST_LIMIT paths, each well-formed, returned without duplicates.
 */
export function checkListedPaths(paths: readonly SecretPath[]): SecretPath[] {
  if (!Array.isArray(paths)) {
    throw new InvalidRequestError('The paths to look up must be an array of paths');
  }
  if (paths.length > MAX_LIST_LIMIT) {
    throw new InvalidRequestError(
      `At most ${MAX_LIST_LIMIT} paths may be looked up at once (got ${paths.length})`,
    );
  }
  for (const path of paths) checkPath(path);
  return [...new Set(paths)];
}

/** The answer of `listExisting` from the rows found, already in byte order. */
export function toListedPaths(rows: readonly { readonly path: string }[]): readonly SecretPath[] {
  return Object.freeze(rows.map((row) => row.path as SecretPath));
}

/** A page of `list` from rows read with `limit + 1`: one more row means a next page. */
export function toListPage(rows: readonly { readonly path: string }[], limit: number): ListPage {
  const paths = rows.slice(0, limit).map((row) => row.path as SecretPath);
  const last = paths[paths.length - 1];
  return rows.length > limit && last !== undefined
    ? Object.freeze({ paths: Object.freeze(paths), next: last })
    : Object.freeze({ paths: Object.freeze(paths) });
}

function checkListLimit(limit: unknown): asserts limit is number {
  if (
    typeof limit !== 'number' ||
    !Number.isSafeInteger(limit) ||
    limit < 1 ||
    limit > MAX_LIST_LIMIT
  ) {
    throw new InvalidRequestError(
      `A list limit must be an integer from 1 to ${MAX_LIST_LIMIT} (got ${String(limit)})`,
    );
  }
}

/** A version number argument: an integer >= 0 (0 means the current version). */
export function checkVersionNumber(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidRequestError(`${name} must be an integer >= 0 (got ${String(value)})`);
  }
}

/**
 * The versions of a delete, undelete or destroy: undefined or empty means the
 * current one, except for destroy, which must name its versions.
 */
export function checkVersionList(
  versions: readonly number[] | undefined,
  isRequired: boolean,
): readonly number[] | undefined {
  if (versions === undefined || (Array.isArray(versions) && versions.length === 0)) {
    if (isRequired) {
      throw new InvalidRequestError('Name the versions to destroy');
    }
    return undefined;
  }
  if (!Array.isArray(versions)) {
    throw new InvalidRequestError('versions must be an array of version numbers');
  }
  if (versions.length > MAX_VERSIONS_PER_REQUEST) {
    throw new InvalidRequestError(
      `At most ${MAX_VERSIONS_PER_REQUEST} versions may be named at once (got ${versions.length})`,
    );
  }
  for (const version of versions) checkVersionNumber(version, 'A version');
  return versions;
}

/** A metadata update, checked: an object whose fields are within the limits. */
export function checkMetadataUpdate(update: MetadataUpdate): void {
  if (typeof update !== 'object' || update === null) {
    throw new InvalidRequestError('A metadata update must be an object');
  }
  const { maxVersions, customMetadata } = update;
  if (maxVersions !== undefined && maxVersions !== null) checkMaxVersions(maxVersions);
  if (customMetadata !== undefined) checkCustomMetadata(customMetadata);
}

/**
 * The `secret_metadata` columns a checked update writes, custom metadata
 * sealed (an empty map is stored as null). PostgreSQL calls it before its
 * transaction, so that no row lock waits on encryption; SQLite inside its
 * write, which never yields (ADR 0019).
 */
export function metadataChanges(
  path: SecretPath,
  update: MetadataUpdate,
  updatedAtMs: number,
  keyring: KeyringAccess,
): {
  readonly updatedAtMs: number;
  readonly maxVersions?: number | null;
  readonly customMetadata?: Uint8Array | null;
  /** The term that sealed `customMetadata` (the active one), when it is set. */
  readonly metadataKeyTerm?: number;
} {
  const { maxVersions, customMetadata } = update;
  const sealed =
    customMetadata === undefined || Object.keys(customMetadata).length === 0
      ? null
      : keyring((key, term) => ({ bytes: sealCustomMetadata(key, path, customMetadata), term }));
  return {
    updatedAtMs,
    ...(maxVersions === undefined ? {} : { maxVersions }),
    ...(customMetadata === undefined
      ? {}
      : { customMetadata: sealed?.bytes ?? null, metadataKeyTerm: sealed?.term ?? 1 }),
  };
}

/** The store's clock, checked: integer milliseconds since the epoch. */
export function checkedNow(now: () => number): number {
  const nowMs = now();
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) {
    throw new InternalError(`The clock returned an invalid time: ${String(nowMs)}`);
  }
  return nowMs;
}

/** Throws NotReadyError while sealed, before anything is read or written. */
export function requireUnsealed(keyring: KeyringAccess): void {
  keyring(() => undefined);
}
