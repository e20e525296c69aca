/**
 * Wire contract of the secret routes (KV v2 shapes users know from Vault):
 *
 * | Route | Permission | What |
 * |---|---|---|
 * | `GET /v1/secrets/data/{path}?version=N` | read | current or given version |
 * | `GET /v1/secrets/data/{path}?newerThan=N&wait=30s` | read | long-poll: the current version once it is not N (304 if the wait ends first) |
 * | `PUT /v1/secrets/data/{path}` | write | new version (`cas` optional) |
 * | `DELETE /v1/secrets/data/{path}?versions=1,2` | delete | soft delete (default: current) |
 * | `POST /v1/secrets/undelete/{path}` | write | undo soft deletes (default: current) |
 * | `POST /v1/secrets/destroy/{path}` | delete | remove version data for good |
 * | `GET /v1/secrets/metadata/{path}` | read | metadata and version history |
 * | `PUT /v1/secrets/metadata/{path}` | write | max versions, custom metadata |
 * | `DELETE /v1/secrets/metadata/{path}` | delete | the path, every version |
 * | `GET /v1/secrets/list?prefix=&limit=&after=` | list | paths the caller may list |
 * | `POST /v1/secrets/watch` | read, on each path | long-poll over several paths: their versions once one is not what the caller has (304 if the wait ends first) |
 *
 * Parsers are strict: unknown fields, wrong types and out-of-range numbers
 * are refused with InvalidRequestError naming the field; values are never
 * echoed in a message, and neither are the keys of a secret's data (they
 * can be secret too: `{"aws-AKIA…": "…"}`), nor a field we do not know (it
 * may be such a key sent without its `data` wrapper). Those are named by
 * their position and length.
 */
import { InvalidRequestError } from '../errors/errors.ts';
import { parseSecretPath, type SecretPath } from './secret_path.ts';

// The one table of secret limits: the route parsers below, the secret store
// (`nexus/store/secret_limits.ts`, which checks them again below the wire)
// and Pilot all take their numbers from here, so a client and the server
// never disagree on a bound.

/** Keys in one secret version's data. */
export const MAX_DATA_KEYS = 256;
/** Characters in a data key (at least 1). Custom metadata keys: MAX_CUSTOM_METADATA_KEY_LENGTH. */
export const MAX_KEY_LENGTH = 256;
/** Bytes of a version's data serialised as JSON (what is encrypted). */
export const MAX_SECRET_DATA_BYTES = 1024 * 1024;
/** The largest version number. */
export const MAX_VERSION = 2 ** 31 - 1;
/** Version numbers in one delete, undelete or destroy request. */
export const MAX_VERSIONS_PER_REQUEST = 100;
/** The largest cap on kept versions: a path's `maxVersions`, and the server default. */
export const MAX_KEPT_VERSIONS = 1000;
/** Paths in one page of a list. */
export const MAX_LIST_LIMIT = 1000;
export const DEFAULT_LIST_LIMIT = 100;
/** Entries in a path's custom metadata (OpenBao's limit). */
export const MAX_CUSTOM_METADATA_KEYS = 64;
/** Characters in a custom metadata key (at least 1). */
export const MAX_CUSTOM_METADATA_KEY_LENGTH = 128;
/** Characters in a custom metadata value (may be empty). */
export const MAX_CUSTOM_METADATA_VALUE_LENGTH = 512;
/** The longest a long-poll read (`?newerThan=`) may wait, in milliseconds. */
export const MAX_WATCH_WAIT_MS = 60_000;
/** How long a long-poll read waits when it names no `wait`. */
export const DEFAULT_WATCH_WAIT_MS = 30_000;
/**
 * Paths in one long-poll over several (`POST /v1/secrets/watch`). It bounds
 * its first look and a look after a gap (every path), and the length of its
 * audit line (every path is named there).
 */
export const MAX_WATCH_PATHS = 100;

export interface PutSecretRequest {
  readonly data: Readonly<Record<string, string>>;
  readonly cas?: number;
}

export interface VersionsRequest {
  readonly versions?: readonly number[];
}

export interface PutMetadataRequest {
  readonly maxVersions?: number | null;
  readonly customMetadata?: Readonly<Record<string, string>>;
}

export interface SecretResponse {
  readonly path: string;
  readonly version: number;
  readonly data: Readonly<Record<string, string>>;
  readonly createdAt: string;
}

export interface VersionInfoWire {
  readonly version: number;
  readonly createdAt: string;
  readonly deletedAt: string | null;
  readonly destroyed: boolean;
}

export interface MetadataResponse {
  readonly path: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly currentVersion: number;
  readonly oldestVersion: number;
  readonly maxVersions: number;
  readonly maxVersionsOverride: number | null;
  readonly versions: readonly VersionInfoWire[];
  readonly customMetadata: Readonly<Record<string, string>>;
}

export interface ListResponse {
  readonly paths: readonly string[];
  readonly next?: string;
}

function objectOf(body: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError('The body must be a JSON object');
  }
  for (const [index, key] of Object.keys(body).entries()) {
    if (!allowed.includes(key)) {
      throw new InvalidRequestError(
        `Unknown field: ${describeKey(index, key)} of the body; the fields are ${allowed.map((name) => `"${name}"`).join(', ')}`,
      );
    }
  }
  return body as Record<string, unknown>;
}

/** A key named without its text: its position (from 1) and its length. */
function describeKey(index: number, key: string): string {
  return `key ${index + 1} (${key.length} characters)`;
}

export interface StringMapLimits {
  /** The field's name in messages. */
  readonly field: string;
  readonly maxKeys: number;
  /** Characters in a key (at least 1). */
  readonly maxKeyLength: number;
  /** Characters in a value; unbounded here when unset (a total bounds it elsewhere). */
  readonly maxValueLength?: number;
}

/** A map of string keys to string values, bounded. Neither keys nor values are echoed. */
export function parseStringMap(value: unknown, limits: StringMapLimits): Record<string, string> {
  const { field, maxKeys, maxKeyLength, maxValueLength } = limits;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRequestError(`Field "${field}" must be an object of string values`);
  }
  const entries = Object.entries(value);
  if (entries.length > maxKeys) {
    throw new InvalidRequestError(`Field "${field}" has more than ${maxKeys} keys`);
  }
  const out: Record<string, string> = {};
  for (const [index, [key, item]] of entries.entries()) {
    if (key.length === 0 || key.length > maxKeyLength) {
      throw new InvalidRequestError(
        `Field "${field}" has a key that is empty or longer than ${maxKeyLength} characters: ${describeKey(index, key)}`,
      );
    }
    if (typeof item !== 'string') {
      throw new InvalidRequestError(
        `Field "${field}" must map keys to strings; the value of ${describeKey(index, key)} is not one`,
      );
    }
    if (maxValueLength !== undefined && item.length > maxValueLength) {
      throw new InvalidRequestError(
        `Field "${field}" has a value longer than ${maxValueLength} characters: the value of ${describeKey(index, key)}`,
      );
    }
    // Defined, not assigned: `out["__proto__"] = item` would hit the
    // prototype setter and silently drop that key.
    Object.defineProperty(out, key, {
      value: item,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

export function parseVersionNumber(value: unknown, field: string, min = 1): number {
  if (
    typeof value !== 'number' ||
    !Number.isSafeInteger(value) ||
    value < min ||
    value > MAX_VERSION
  ) {
    throw new InvalidRequestError(
      `Field "${field}" must be an integer from ${min} to ${MAX_VERSION}`,
    );
  }
  return value;
}

/** A version from a query string (`?version=3`). */
export function parseVersionQuery(value: string | undefined, field: string): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (!/^[1-9][0-9]{0,9}$/.test(value)) {
    throw new InvalidRequestError(`Query "${field}" must be a positive integer`);
  }
  return parseVersionNumber(Number(value), field);
}

/**
 * `?onlyDeleted=true` of a path delete: remove the path only if every
 * version is deleted or destroyed (what `spike secret purge` needs, checked
 * by Nexus in the same transaction as the delete).
 */
export function parseOnlyDeletedQuery(value: string | undefined): boolean {
  if (value === undefined || value === 'false') {
    return false;
  }
  if (value === 'true') {
    return true;
  }
  throw new InvalidRequestError('Query "onlyDeleted" must be "true" or "false"');
}

/** Versions from a query string (`?versions=1,2`). */
export function parseVersionsQuery(value: string | undefined): number[] | undefined {
  if (value === undefined) {
    return undefined;
  }
  const parts = value.split(',');
  if (parts.length > MAX_VERSIONS_PER_REQUEST) {
    throw new InvalidRequestError(
      `Query "versions" lists more than ${MAX_VERSIONS_PER_REQUEST} versions`,
    );
  }
  return uniqueVersions(parts.map((part) => parseVersionQuery(part, 'versions') as number));
}

function uniqueVersions(versions: number[]): number[] {
  return [...new Set(versions)].sort((a, b) => a - b);
}

export function parsePutSecretRequest(body: unknown): PutSecretRequest {
  const input = objectOf(body, ['data', 'cas']);
  const data = parseStringMap(input.data, {
    field: 'data',
    maxKeys: MAX_DATA_KEYS,
    maxKeyLength: MAX_KEY_LENGTH,
  });
  if (input.cas === undefined) {
    return { data };
  }
  return { data, cas: parseVersionNumber(input.cas, 'cas', 0) };
}

export function parseVersionsRequest(body: unknown, required: boolean): VersionsRequest {
  const input = objectOf(body, ['versions']);
  if (input.versions === undefined) {
    if (required) {
      throw new InvalidRequestError('Field "versions" is required');
    }
    return {};
  }
  if (!Array.isArray(input.versions) || input.versions.length === 0) {
    throw new InvalidRequestError('Field "versions" must be a non-empty array of versions');
  }
  if (input.versions.length > MAX_VERSIONS_PER_REQUEST) {
    throw new InvalidRequestError(
      `Field "versions" has more than ${MAX_VERSIONS_PER_REQUEST} entries`,
    );
  }
  return { versions: uniqueVersions(input.versions.map((v) => parseVersionNumber(v, 'versions'))) };
}

export function parsePutMetadataRequest(body: unknown): PutMetadataRequest {
  const input = objectOf(body, ['maxVersions', 'customMetadata']);
  const out: { maxVersions?: number | null; customMetadata?: Record<string, string> } = {};
  if (input.maxVersions !== undefined) {
    out.maxVersions =
      input.maxVersions === null ? null : parseVersionNumber(input.maxVersions, 'maxVersions');
  }
  if (input.customMetadata !== undefined) {
    out.customMetadata = parseStringMap(input.customMetadata, {
      field: 'customMetadata',
      maxKeys: MAX_CUSTOM_METADATA_KEYS,
      maxKeyLength: MAX_CUSTOM_METADATA_KEY_LENGTH,
      maxValueLength: MAX_CUSTOM_METADATA_VALUE_LENGTH,
    });
  }
  return out;
}

export function parseListLimit(value: string | undefined): number {
  if (value === undefined) {
    return DEFAULT_LIST_LIMIT;
  }
  if (!/^[1-9][0-9]{0,3}$/.test(value) || Number(value) > MAX_LIST_LIMIT) {
    throw new InvalidRequestError(`Query "limit" must be an integer from 1 to ${MAX_LIST_LIMIT}`);
  }
  return Number(value);
}

/**
 * A long-poll read (`?newerThan=N&wait=30s`): answer like a read as soon as
 * the read would answer anything but version `newerThan` (0: nothing), or
 * 304 once `waitMs` has passed without that.
 */
export interface WatchQuery {
  readonly newerThan: number;
  readonly waitMs: number;
}

/** `wait`: a whole number of seconds or milliseconds with its unit (`30s`, `500ms`). */
const WAIT_REGEXP = /^([1-9][0-9]{0,5})(ms|s)$/;

/**
 * The queries of a long-poll read, given `newerThan` (which makes a read a
 * long-poll), `wait` and `version` as the URL has them (`version` must be
 * absent: a long-poll waits for the current version). Values are never echoed.
 */
export function parseWatchQuery(
  newerThan: string | undefined,
  wait: string | undefined,
  version: string | undefined,
): WatchQuery {
  if (newerThan === undefined) {
    throw new InvalidRequestError('Query "wait" needs "newerThan", the version the caller has');
  }
  if (version !== undefined) {
    throw new InvalidRequestError(
      'Query "version" cannot be combined with "newerThan": a long-poll waits for the current version',
    );
  }
  if (!/^(?:0|[1-9][0-9]{0,9})$/.test(newerThan) || Number(newerThan) > MAX_VERSION) {
    throw new InvalidRequestError(`Query "newerThan" must be an integer from 0 to ${MAX_VERSION}`);
  }
  return { newerThan: Number(newerThan), waitMs: parseWait(wait) };
}

/** `wait` of a long-poll, from its query or its body (`what` names which in messages). */
function parseWait(wait: unknown, what = 'Query "wait"'): number {
  if (wait === undefined) {
    return DEFAULT_WATCH_WAIT_MS;
  }
  const match = typeof wait === 'string' ? WAIT_REGEXP.exec(wait) : null;
  const ms = match === null ? Number.NaN : Number(match[1]) * (match[2] === 's' ? 1000 : 1);
  if (!(ms <= MAX_WATCH_WAIT_MS)) {
    throw new InvalidRequestError(
      `${what} must be a duration from 1ms to ${MAX_WATCH_WAIT_MS / 1000}s, in whole seconds or milliseconds with the unit (e.g. 30s, 500ms)`,
    );
  }
  return ms;
}

/**
 * A long-poll over several paths (`POST /v1/secrets/watch`,
 * `{"versions": {"app/db": 3, "app/api": 0}, "wait": "30s"}`): answered as
 * soon as a read of the current version of one of them would answer
 * anything but the version the caller has (0: nothing), with every such
 * path's current version (`WatchResponse`), or 304 once `waitMs` has passed.
 */
export interface WatchRequest {
  /** Path → the version the caller has (0: none), in the order sent. */
  readonly versions: ReadonlyMap<SecretPath, number>;
  readonly waitMs: number;
}

/** The paths of a `WatchRequest` whose current version is not the caller's: path → that version (0: none). */
export interface WatchResponse {
  readonly versions: Readonly<Record<string, number>>;
}

export function parseWatchRequest(body: unknown): WatchRequest {
  const input = objectOf(body, ['versions', 'wait']);
  const raw = input.versions;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidRequestError(
      'Field "versions" must be an object of secret paths to the versions the caller has',
    );
  }
  const entries = Object.entries(raw);
  if (entries.length === 0 || entries.length > MAX_WATCH_PATHS) {
    throw new InvalidRequestError(
      `Field "versions" must name from 1 to ${MAX_WATCH_PATHS} secret paths (got ${entries.length})`,
    );
  }
  const versions = new Map<SecretPath, number>();
  for (const [path, version] of entries) {
    versions.set(parseSecretPath(path), parseVersionNumber(version, 'versions', 0));
  }
  return { versions, waitMs: parseWait(input.wait, 'Field "wait"') };
}

/** `wait` as a long-poll read sends it: whole milliseconds, 1ms to MAX_WATCH_WAIT_MS. */
export function formatWaitQuery(waitMs: number): string {
  if (!Number.isSafeInteger(waitMs) || waitMs < 1 || waitMs > MAX_WATCH_WAIT_MS) {
    throw new InvalidRequestError(
      `The wait must be a whole number of milliseconds from 1 to ${MAX_WATCH_WAIT_MS}`,
    );
  }
  return `${waitMs}ms`;
}
