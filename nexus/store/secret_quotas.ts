/**
 * Storage quotas of the secret store (ADR 0015): each namespace, the first
 * segment of a path (`app` of `app/db/creds`), may hold at most so many
 * secret paths and so many bytes. What a namespace is charged is what its
 * writers put in the tables, row by row (`rowCharge`):
 * - for each path (its `secret_metadata` row): the row, plus its sealed
 *   custom metadata;
 * - for each kept version (its `secrets` row): the row, plus its sealed data
 *   (a destroyed version keeps its row, so only the row).
 * Sealed sizes, not plaintext ones: they are what the database holds, and a
 * migration can count them without the key, from a sealed Nexus.
 *
 * Both SQL stores keep the sum in a counter row per namespace
 * (`secret_quota_usage`), changed in the same transaction as the rows it
 * counts. A write that would raise a count beyond its quota throws
 * QuotaExceededError and changes nothing; a write that does not raise it
 * (deletes, destroys, a put whose pruning frees as much as it adds) is never
 * refused, even in a namespace over a quota lowered since.
 */
import type { SecretPath } from '../../shared/api/secret_path.ts';
import { QuotaExceededError } from '../../shared/errors/errors.ts';

/** One namespace's limits; null means no limit. */
export interface SecretQuota {
  /** Secret paths (that have metadata, whatever the state of their versions). */
  readonly paths: number | null;
  /** Bytes charged, as the file comment says. */
  readonly bytes: number | null;
}

export interface SecretQuotas {
  /** The quota of every namespace without its own. */
  readonly default: SecretQuota;
  /** Namespaces with their own quota, by name. */
  readonly namespaces: ReadonlyMap<string, SecretQuota>;
}

/** What a namespace holds, as its counter row says. */
export interface QuotaUsage {
  readonly paths: number;
  readonly bytes: number;
}

/**
 * Far above what one application keeps (hundreds of paths, kilobytes each),
 * low enough that one namespace cannot fill the disk: 256 MiB is 25 paths at
 * the largest data (1 MiB) and the default cap (10 versions), or 10,000 paths
 * of 2.6 KiB per kept version.
 */
export const DEFAULT_QUOTA_PATHS = 10_000;
export const DEFAULT_QUOTA_BYTES = 256 * 1024 * 1024;

export const DEFAULT_SECRET_QUOTAS: SecretQuotas = Object.freeze({
  default: Object.freeze({ paths: DEFAULT_QUOTA_PATHS, bytes: DEFAULT_QUOTA_BYTES }),
  namespaces: new Map(),
});

/** The namespace of a path: its first segment. */
export function namespaceOf(path: SecretPath): string {
  const slash = path.indexOf('/');
  return slash === -1 ? path : path.slice(0, slash);
}

/** The quota in force for a namespace. */
export function quotaOf(quotas: SecretQuotas, namespace: string): SecretQuota {
  return quotas.namespaces.get(namespace) ?? quotas.default;
}

/**
 * What every row is charged besides its path and sealed content: roughly
 * what the database spends on its other columns, its index entry and page
 * slack, so that rows with little data in them (many versions of `{}`, or
 * destroyed ones) still fill a quota. The backfill migrations repeat it.
 */
export const ROW_CHARGE_BYTES = 64;

/**
 * The bytes a row of `path` is charged besides its sealed content. Paths are
 * ASCII (`parseSecretPath`), so characters are bytes, as SQL counts them.
 */
export function rowCharge(path: SecretPath): number {
  return ROW_CHARGE_BYTES + path.length;
}

/** Checks quotas given to a store: limits are null or integers >= 1. */
export function checkQuotas(quotas: unknown): asserts quotas is SecretQuotas {
  const given = quotas as Partial<SecretQuotas> | null | undefined;
  if (typeof given !== 'object' || given === null || !(given.namespaces instanceof Map)) {
    throw new TypeError('The quotas option must have a default quota and a map of namespaces');
  }
  checkQuota(given.default, 'The default quota');
  for (const [namespace, quota] of given.namespaces) {
    checkQuota(quota, `The quota of "${String(namespace)}"`);
  }
}

function checkQuota(quota: unknown, what: string): void {
  const given = quota as Partial<SecretQuota> | null | undefined;
  for (const limit of [given?.paths, given?.bytes]) {
    if (limit !== null && (!Number.isSafeInteger(limit) || (limit as number) < 1)) {
      throw new TypeError(`${what} must set paths and bytes to null or an integer >= 1`);
    }
  }
}

/** The error of a write refused by the quota of `namespace`; `limit` says which one. */
export function quotaExceeded(
  namespace: string,
  limit: 'paths' | 'bytes',
  quota: SecretQuota,
): QuotaExceededError {
  const what =
    limit === 'paths'
      ? `${quota.paths} secret paths`
      : `${quota.bytes} bytes of secrets (sealed data and custom metadata, and their rows)`;
  return new QuotaExceededError(
    `The namespace "${namespace}" is full: it may hold at most ${what}; destroy versions or delete paths to make room`,
  );
}

/**
 * Which limit a refused change of (`paths`, `bytes`) went beyond, given the
 * usage before it: the path count when it grew past its limit, else the bytes.
 */
export function exceededLimit(
  usage: QuotaUsage,
  change: QuotaUsage,
  quota: SecretQuota,
): 'paths' | 'bytes' {
  return change.paths > 0 && quota.paths !== null && usage.paths + change.paths > quota.paths
    ? 'paths'
    : 'bytes';
}
