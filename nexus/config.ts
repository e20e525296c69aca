/**
 * Nexus configuration: where it listens, its Keepers (address and SPIFFE ID
 * of each) and Shamir parameters,
 * where its database lives, and the identity settings every program reads.
 */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { DEFAULT_NEXUS_PORT } from '../shared/api/nexus_address.ts';
import { MAX_KEPT_VERSIONS } from '../shared/api/secrets.ts';
import { readAuditKey } from '../shared/config/audit_key_file.ts';
import {
  type IdentityConfig,
  type ListenConfig,
  readIdentityConfig,
  readListenConfig,
  readOpsAddress,
} from '../shared/config/common.ts';
import { type Env, EnvReader } from '../shared/config/env.ts';
import { redactUrl } from '../shared/config/redact_url.ts';
import { MAX_SHARES } from '../shared/crypto/shard.ts';
import { DEFAULT_SERVER_LIMITS, type ServerLimits } from '../shared/http/serve.ts';
import { isKeeper, keeperId } from '../shared/spiffe/identities.ts';
import { parseSpiffeId, type SpiffeId, type TrustDomain } from '../shared/spiffe/spiffe_id.ts';
import { DEFAULT_WATCH_LIMITS, type WatchLimits } from './routes/secret_watch.ts';
import { DEFAULT_CACHE_LIMITS, type SealedRowCacheLimits } from './store/sealed_row_cache.ts';
import {
  DEFAULT_QUOTA_BYTES,
  DEFAULT_QUOTA_PATHS,
  type SecretQuota,
  type SecretQuotas,
} from './store/secret_quotas.ts';
import { SQLITE_SYNCHRONOUS, type SqliteSynchronous } from './store/sqlite/db.ts';

export const ENV_NEXUS_TLS_HOST = 'SPIKE_NEXUS_TLS_HOST';
export const ENV_NEXUS_TLS_PORT = 'SPIKE_NEXUS_TLS_PORT';
export const ENV_NEXUS_KEEPER_PEERS = 'SPIKE_NEXUS_KEEPER_PEERS';
export const ENV_NEXUS_KEEPER_IDS = 'SPIKE_NEXUS_KEEPER_IDS';
export const ENV_NEXUS_SHAMIR_SHARES = 'SPIKE_NEXUS_SHAMIR_SHARES';
export const ENV_NEXUS_SHAMIR_THRESHOLD = 'SPIKE_NEXUS_SHAMIR_THRESHOLD';
export const ENV_NEXUS_DATA_DIR = 'SPIKE_NEXUS_DATA_DIR';
export const ENV_NEXUS_KEEPER_UPDATE_INTERVAL = 'SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL';
export const ENV_NEXUS_KEYRING_SWEEP_PAUSE = 'SPIKE_NEXUS_KEYRING_SWEEP_PAUSE';
export const ENV_NEXUS_RECOVERY_MAX_INTERVAL = 'SPIKE_NEXUS_RECOVERY_MAX_INTERVAL';
export const ENV_NEXUS_KEEPER_TIMEOUT = 'SPIKE_NEXUS_KEEPER_TIMEOUT';
export const ENV_NEXUS_BACKEND_STORE = 'SPIKE_NEXUS_BACKEND_STORE';
export const ENV_NEXUS_DATABASE_URL = 'SPIKE_NEXUS_DATABASE_URL';
export const ENV_NEXUS_SQLITE_SYNCHRONOUS = 'SPIKE_NEXUS_SQLITE_SYNCHRONOUS';
export const ENV_NEXUS_MAX_SECRET_VERSIONS = 'SPIKE_NEXUS_MAX_SECRET_VERSIONS';
export const ENV_NEXUS_MAX_BODY_BYTES = 'SPIKE_NEXUS_MAX_BODY_BYTES';
export const ENV_NEXUS_AUDIT_LOG = 'SPIKE_NEXUS_AUDIT_LOG';
export const ENV_NEXUS_AUDIT_KEY_FILE = 'SPIKE_NEXUS_AUDIT_KEY_FILE';
export const ENV_NEXUS_AUDIT_FAIL_CLOSED = 'SPIKE_NEXUS_AUDIT_FAIL_CLOSED';
export const ENV_NEXUS_HANDSHAKE_TIMEOUT = 'SPIKE_NEXUS_HANDSHAKE_TIMEOUT';
export const ENV_NEXUS_HEADERS_TIMEOUT = 'SPIKE_NEXUS_HEADERS_TIMEOUT';
export const ENV_NEXUS_REQUEST_TIMEOUT = 'SPIKE_NEXUS_REQUEST_TIMEOUT';
export const ENV_NEXUS_KEEP_ALIVE_TIMEOUT = 'SPIKE_NEXUS_KEEP_ALIVE_TIMEOUT';
export const ENV_NEXUS_MAX_CONNECTIONS = 'SPIKE_NEXUS_MAX_CONNECTIONS';
export const ENV_NEXUS_MAX_CONNECTIONS_PER_ADDRESS = 'SPIKE_NEXUS_MAX_CONNECTIONS_PER_ADDRESS';
export const ENV_NEXUS_MAX_CONNECTIONS_PER_IDENTITY = 'SPIKE_NEXUS_MAX_CONNECTIONS_PER_IDENTITY';
export const ENV_NEXUS_RATE_LIMIT_PER_SECOND = 'SPIKE_NEXUS_RATE_LIMIT_PER_SECOND';
export const ENV_NEXUS_RATE_LIMIT_BURST = 'SPIKE_NEXUS_RATE_LIMIT_BURST';
export const ENV_NEXUS_QUOTA_PATHS = 'SPIKE_NEXUS_QUOTA_PATHS';
export const ENV_NEXUS_QUOTA_BYTES = 'SPIKE_NEXUS_QUOTA_BYTES';
export const ENV_NEXUS_QUOTA_OVERRIDES = 'SPIKE_NEXUS_QUOTA_OVERRIDES';
export const ENV_NEXUS_CACHE_ENTRIES = 'SPIKE_NEXUS_CACHE_ENTRIES';
export const ENV_NEXUS_CACHE_BYTES = 'SPIKE_NEXUS_CACHE_BYTES';
export const ENV_NEXUS_OPS_ADDR = 'SPIKE_NEXUS_OPS_ADDR';
export const ENV_NEXUS_MAX_WATCHES = 'SPIKE_NEXUS_MAX_WATCHES';
export const ENV_NEXUS_MAX_WATCHES_PER_IDENTITY = 'SPIKE_NEXUS_MAX_WATCHES_PER_IDENTITY';

/**
 * `sqlite`: a file in the data dir; `postgres`: a PostgreSQL server at
 * `SPIKE_NEXUS_DATABASE_URL`, which several Nexus processes may share;
 * `memory`: gone at exit (tests, throw-away dev).
 */
export const BACKEND_STORES = ['sqlite', 'postgres', 'memory'] as const;
export type BackendStore = (typeof BACKEND_STORES)[number];
export const DEFAULT_MAX_SECRET_VERSIONS = 10;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

export const DEFAULT_SHAMIR_SHARES = 3;
export const DEFAULT_SHAMIR_THRESHOLD = 2;
export const DEFAULT_KEEPER_UPDATE_INTERVAL_MS = 2_000;
/** Between two steps of 256 rows of the keyring sweep: about 2–4 ms of work each. */
export const DEFAULT_KEYRING_SWEEP_PAUSE_MS = 2;
export const DEFAULT_RECOVERY_MAX_INTERVAL_MS = 5_000;
export const DEFAULT_KEEPER_TIMEOUT_MS = 5_000;
/**
 * Per SPIFFE ID: far above what one workload needs, low enough that no
 * single identity can keep Nexus busy on its own. Operators tune it.
 */
export const DEFAULT_RATE_LIMIT_PER_SECOND = 500;
export const DEFAULT_RATE_LIMIT_BURST = 1000;
/** Caps of the connection limits (and of the rate), well inside what a process can hold. */
const MAX_CONNECTION_LIMIT = 1_000_000;
const MAX_SERVER_TIMEOUT_MS = 10 * 60_000;

/** Requests per verified SPIFFE ID: a token bucket (see shared/http/rate_limit.ts). */
export interface NexusRateLimit {
  /** Sustained requests per second per identity; 0 turns the limit off. */
  readonly ratePerSecond: number;
  readonly burst: number;
}

/** One Keeper: where it listens, and the only SPIFFE ID it may answer with. */
export interface KeeperPeer {
  readonly url: URL;
  readonly id: SpiffeId;
}

export interface NexusConfig {
  readonly identity: IdentityConfig;
  readonly listen: ListenConfig;
  /**
   * One per Keeper; shard i goes to Keeper i, and only if the server at its
   * URL presents its ID (by default `.../spike/keeper/<i>`, 1-based).
   */
  readonly keeperPeers: readonly KeeperPeer[];
  readonly shamirShares: number;
  readonly shamirThreshold: number;
  /** Holds the database (`spike.db`). Absolute. */
  readonly dataDir: string;
  readonly keeperUpdateIntervalMs: number;
  /** The wait between two steps of the keyring sweep: how gently it runs. */
  readonly keyringSweepPauseMs: number;
  readonly recoveryMaxIntervalMs: number;
  readonly keeperTimeoutMs: number;
  readonly backendStore: BackendStore;
  /**
   * The PostgreSQL URL when `backendStore` is `postgres`, else undefined. It
   * may hold a password: log it only through `redactUrl`.
   */
  readonly databaseUrl: string | undefined;
  /** SQLite's sync on commit: `full` (durable through power loss) or `normal`. */
  readonly sqliteSynchronous: SqliteSynchronous;
  readonly maxSecretVersions: number;
  readonly maxBodyBytes: number;
  /** A JSON-lines file for the audit trail, or `-` for stdout. */
  readonly auditLog: string;
  /** The key the audit trail is chained under (ADR 0027); undefined when no key file is set. */
  readonly auditKey: Uint8Array | undefined;
  /** Refuse requests (503) while the audit trail cannot be written; true unless set to `false`. */
  readonly auditFailClosed: boolean;
  /** Timeouts and connection caps of the mTLS server. */
  readonly limits: ServerLimits;
  readonly rateLimit: NexusRateLimit;
  /** Storage quotas per secret namespace (a path's first segment); see store/secret_quotas.ts. */
  readonly secretQuotas: SecretQuotas;
  /** The limits of the cache of sealed rows (store/sealed_row_cache.ts); 0 for either disables it. */
  readonly cache: SealedRowCacheLimits;
  /** The operations listener (probes, metrics; plain HTTP), or undefined when off. */
  readonly opsAddress: ListenConfig | undefined;
  /** How many long-poll reads may wait at once, in all and per SPIFFE ID (routes/secret_watch.ts). */
  readonly watches: WatchLimits;
}

export function loadNexusConfig(env: Env): NexusConfig {
  const reader = new EnvReader(env);
  const identity = readIdentityConfig(reader);
  const listen = readListenConfig(
    reader,
    { host: ENV_NEXUS_TLS_HOST, port: ENV_NEXUS_TLS_PORT },
    DEFAULT_NEXUS_PORT,
  );
  const shamirShares = reader.int(ENV_NEXUS_SHAMIR_SHARES, DEFAULT_SHAMIR_SHARES, {
    min: 2,
    max: MAX_SHARES,
  });
  const shamirThreshold = reader.int(ENV_NEXUS_SHAMIR_THRESHOLD, DEFAULT_SHAMIR_THRESHOLD, {
    min: 2,
    max: MAX_SHARES,
  });
  if (shamirThreshold > shamirShares) {
    reader.problem(
      ENV_NEXUS_SHAMIR_THRESHOLD,
      String(shamirThreshold),
      `must not exceed ${ENV_NEXUS_SHAMIR_SHARES} (${shamirShares})`,
    );
  }
  const keeperUrls = readKeeperUrls(reader, shamirShares);
  const keeperPeers = withKeeperIds(reader, keeperUrls, identity.trustDomain);
  const dataDir = readDataDir(reader, env);
  const keeperUpdateIntervalMs = reader.durationMs(
    ENV_NEXUS_KEEPER_UPDATE_INTERVAL,
    DEFAULT_KEEPER_UPDATE_INTERVAL_MS,
    { min: 100 },
  );
  const keyringSweepPauseMs = reader.durationMs(
    ENV_NEXUS_KEYRING_SWEEP_PAUSE,
    DEFAULT_KEYRING_SWEEP_PAUSE_MS,
    { min: 0, max: 60_000 },
  );
  const recoveryMaxIntervalMs = reader.durationMs(
    ENV_NEXUS_RECOVERY_MAX_INTERVAL,
    DEFAULT_RECOVERY_MAX_INTERVAL_MS,
    { min: 100 },
  );
  const keeperTimeoutMs = reader.durationMs(ENV_NEXUS_KEEPER_TIMEOUT, DEFAULT_KEEPER_TIMEOUT_MS, {
    min: 100,
  });
  const backendStore = reader.oneOf(ENV_NEXUS_BACKEND_STORE, BACKEND_STORES, 'sqlite');
  const databaseUrl = readDatabaseUrl(reader, backendStore);
  const sqliteSynchronous = reader.oneOf(ENV_NEXUS_SQLITE_SYNCHRONOUS, SQLITE_SYNCHRONOUS, 'full');
  const maxSecretVersions = reader.int(ENV_NEXUS_MAX_SECRET_VERSIONS, DEFAULT_MAX_SECRET_VERSIONS, {
    min: 1,
    max: MAX_KEPT_VERSIONS,
  });
  const maxBodyBytes = reader.int(ENV_NEXUS_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, {
    min: 1024,
    max: 64 * 1024 * 1024,
  });
  const auditLog = reader.str(ENV_NEXUS_AUDIT_LOG, '-');
  if (auditLog !== '-' && !isAbsolute(auditLog)) {
    reader.problem(ENV_NEXUS_AUDIT_LOG, auditLog, 'must be "-" (stdout) or an absolute file path');
  }
  const auditKey = readAuditKey(reader, ENV_NEXUS_AUDIT_KEY_FILE);
  const auditFailClosed =
    reader.oneOf(ENV_NEXUS_AUDIT_FAIL_CLOSED, ['true', 'false'], 'true') === 'true';
  const limits = readServerLimits(reader);
  const rateLimit = {
    ratePerSecond: reader.int(ENV_NEXUS_RATE_LIMIT_PER_SECOND, DEFAULT_RATE_LIMIT_PER_SECOND, {
      min: 0,
      max: MAX_CONNECTION_LIMIT,
    }),
    burst: reader.int(ENV_NEXUS_RATE_LIMIT_BURST, DEFAULT_RATE_LIMIT_BURST, {
      min: 1,
      max: MAX_CONNECTION_LIMIT,
    }),
  };
  const secretQuotas = readSecretQuotas(reader);
  const cache = readCacheLimits(reader);
  const watches = Object.freeze({
    maxWatches: reader.int(ENV_NEXUS_MAX_WATCHES, DEFAULT_WATCH_LIMITS.maxWatches, {
      min: 0,
      max: MAX_CONNECTION_LIMIT,
    }),
    maxWatchesPerIdentity: reader.int(
      ENV_NEXUS_MAX_WATCHES_PER_IDENTITY,
      DEFAULT_WATCH_LIMITS.maxWatchesPerIdentity,
      { min: 0, max: MAX_CONNECTION_LIMIT },
    ),
  });
  return reader.finish({
    opsAddress: readOpsAddress(reader, ENV_NEXUS_OPS_ADDR),
    cache,
    watches,
    limits: Object.freeze(limits),
    rateLimit: Object.freeze(rateLimit),
    secretQuotas,
    backendStore,
    databaseUrl,
    sqliteSynchronous,
    maxSecretVersions,
    maxBodyBytes,
    auditLog,
    auditKey,
    auditFailClosed,
    identity,
    listen,
    keeperPeers,
    shamirShares,
    shamirThreshold,
    dataDir,
    keeperUpdateIntervalMs,
    keyringSweepPauseMs,
    recoveryMaxIntervalMs,
    keeperTimeoutMs,
  });
}

/** A quota limit: `unlimited`, or a whole number, for bytes with an optional binary unit. */
const QUOTA_LIMIT_REGEXP = /^(\d+)(KiB|MiB|GiB|TiB)?$/;
const QUOTA_UNITS = { KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 } as const;
const PATHS_LIMIT_RULE = '"unlimited" or a whole number >= 1';
const BYTES_LIMIT_RULE =
  '"unlimited" or a number of bytes >= 1, optionally with a unit KiB, MiB, GiB or TiB (e.g. 256MiB)';
/** A namespace is one secret path segment. */
const NAMESPACE_REGEXP = /^[A-Za-z0-9._-]+$/;
/** One entry of `SPIKE_NEXUS_QUOTA_OVERRIDES`: `namespace=paths:bytes`. */
const OVERRIDE_REGEXP = /^([^=:]*)=([^=:]*):([^=:]*)$/;

/**
 * The default quota (`SPIKE_NEXUS_QUOTA_PATHS`, `SPIKE_NEXUS_QUOTA_BYTES`)
 * and the namespaces with their own (`SPIKE_NEXUS_QUOTA_OVERRIDES`, entries
 * `namespace=paths:bytes`). 0 is refused rather than read as "no limit" or
 * as "no writes", so that neither meaning surprises anyone.
 */
function readSecretQuotas(reader: EnvReader): SecretQuotas {
  const fallback = (name: string, byDefault: number, isBytes: boolean): number | null => {
    const text = reader.raw(name);
    if (text === undefined) return byDefault;
    const value = parseQuotaLimit(text, isBytes);
    if (value === undefined) {
      reader.problem(name, text, `must be ${isBytes ? BYTES_LIMIT_RULE : PATHS_LIMIT_RULE}`);
      return byDefault;
    }
    return value;
  };
  const byDefault: SecretQuota = Object.freeze({
    paths: fallback(ENV_NEXUS_QUOTA_PATHS, DEFAULT_QUOTA_PATHS, false),
    bytes: fallback(ENV_NEXUS_QUOTA_BYTES, DEFAULT_QUOTA_BYTES, true),
  });
  const namespaces = new Map<string, SecretQuota>();
  const raw = reader.raw(ENV_NEXUS_QUOTA_OVERRIDES);
  for (const entry of reader.list(ENV_NEXUS_QUOTA_OVERRIDES, [])) {
    const [, namespace = '', pathsText = '', bytesText = ''] = (
      OVERRIDE_REGEXP.exec(entry) ?? []
    ).map((part) => part.trim());
    const paths = parseQuotaLimit(pathsText, false);
    const bytes = parseQuotaLimit(bytesText, true);
    if (!NAMESPACE_REGEXP.test(namespace) || namespace === '.' || namespace === '..') {
      reader.problem(
        ENV_NEXUS_QUOTA_OVERRIDES,
        raw,
        `entries must be namespace=paths:bytes, the namespace one path segment (e.g. ci=50000:1GiB), got "${entry}"`,
      );
    } else if (paths === undefined || bytes === undefined) {
      reader.problem(
        ENV_NEXUS_QUOTA_OVERRIDES,
        raw,
        `has the entry "${entry}": paths must be ${PATHS_LIMIT_RULE}, bytes ${BYTES_LIMIT_RULE}`,
      );
    } else if (namespaces.has(namespace)) {
      reader.problem(ENV_NEXUS_QUOTA_OVERRIDES, raw, `names the namespace "${namespace}" twice`);
    } else {
      namespaces.set(namespace, Object.freeze({ paths, bytes }));
    }
  }
  return Object.freeze({ default: byDefault, namespaces });
}

/** Largest cache sizes accepted: far beyond any sensible one, and safe integers. */
const MAX_CACHE_ENTRIES = 100_000_000;
const MAX_CACHE_BYTES = 2 ** 40;

/** `SPIKE_NEXUS_CACHE_ENTRIES` (paths) and `SPIKE_NEXUS_CACHE_BYTES` (optionally with a unit); 0 disables. */
function readCacheLimits(reader: EnvReader): SealedRowCacheLimits {
  const maxEntries = reader.int(ENV_NEXUS_CACHE_ENTRIES, DEFAULT_CACHE_LIMITS.maxEntries, {
    min: 0,
    max: MAX_CACHE_ENTRIES,
  });
  let maxBytes = DEFAULT_CACHE_LIMITS.maxBytes;
  const text = reader.raw(ENV_NEXUS_CACHE_BYTES);
  if (text !== undefined) {
    const value = text === '0' ? 0 : parseQuotaLimit(text, true);
    if (typeof value === 'number' && value <= MAX_CACHE_BYTES) {
      maxBytes = value;
    } else {
      reader.problem(
        ENV_NEXUS_CACHE_BYTES,
        text,
        'must be 0 (no cache) or a number of bytes up to 1TiB, optionally with a unit KiB, MiB, GiB or TiB (e.g. 64MiB)',
      );
    }
  }
  return Object.freeze({ maxEntries, maxBytes });
}

/** A quota limit (null: `unlimited`), or undefined when `text` is not one. */
function parseQuotaLimit(text: string, isBytes: boolean): number | null | undefined {
  if (text === 'unlimited') return null;
  const match = QUOTA_LIMIT_REGEXP.exec(text);
  const unit = match?.[2] as keyof typeof QUOTA_UNITS | undefined;
  if (match === null || (unit !== undefined && !isBytes)) return undefined;
  const value = Number(match[1]) * (unit === undefined ? 1 : QUOTA_UNITS[unit]);
  return Number.isSafeInteger(value) && value >= 1 ? value : undefined;
}

/** The server's timeouts (at least 100 ms, at most 10 min) and connection caps (0: none). */
function readServerLimits(reader: EnvReader): ServerLimits {
  const timeout = (name: string, fallbackMs: number) =>
    reader.durationMs(name, fallbackMs, { min: 100, max: MAX_SERVER_TIMEOUT_MS });
  const cap = (name: string, fallback: number) =>
    reader.int(name, fallback, { min: 0, max: MAX_CONNECTION_LIMIT });
  const limits: ServerLimits = {
    handshakeTimeoutMs: timeout(
      ENV_NEXUS_HANDSHAKE_TIMEOUT,
      DEFAULT_SERVER_LIMITS.handshakeTimeoutMs,
    ),
    headersTimeoutMs: timeout(ENV_NEXUS_HEADERS_TIMEOUT, DEFAULT_SERVER_LIMITS.headersTimeoutMs),
    requestTimeoutMs: timeout(ENV_NEXUS_REQUEST_TIMEOUT, DEFAULT_SERVER_LIMITS.requestTimeoutMs),
    keepAliveTimeoutMs: timeout(
      ENV_NEXUS_KEEP_ALIVE_TIMEOUT,
      DEFAULT_SERVER_LIMITS.keepAliveTimeoutMs,
    ),
    maxConnections: cap(ENV_NEXUS_MAX_CONNECTIONS, DEFAULT_SERVER_LIMITS.maxConnections),
    maxConnectionsPerAddress: cap(
      ENV_NEXUS_MAX_CONNECTIONS_PER_ADDRESS,
      DEFAULT_SERVER_LIMITS.maxConnectionsPerAddress,
    ),
    maxConnectionsPerIdentity: cap(
      ENV_NEXUS_MAX_CONNECTIONS_PER_IDENTITY,
      DEFAULT_SERVER_LIMITS.maxConnectionsPerIdentity,
    ),
  };
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    reader.problem(
      ENV_NEXUS_HEADERS_TIMEOUT,
      reader.raw(ENV_NEXUS_HEADERS_TIMEOUT),
      `must not exceed ${ENV_NEXUS_REQUEST_TIMEOUT} (${limits.requestTimeoutMs}ms): the request timeout covers the headers too`,
    );
  }
  return limits;
}

/** Comma-separated https URLs, unique, exactly one per shard (SPIKE's rule). */
function readKeeperUrls(reader: EnvReader, shares: number): URL[] {
  const raw = reader.raw(ENV_NEXUS_KEEPER_PEERS);
  if (raw === undefined) {
    reader.problem(
      ENV_NEXUS_KEEPER_PEERS,
      undefined,
      'is required: one https URL per Keeper, comma-separated (e.g. https://127.0.0.1:8443,https://127.0.0.1:8444)',
    );
    return [];
  }
  const urls: URL[] = [];
  for (const entry of reader.list(ENV_NEXUS_KEEPER_PEERS, [])) {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      reader.problem(ENV_NEXUS_KEEPER_PEERS, raw, `has an entry that is not a URL: "${entry}"`);
      continue;
    }
    if (url.protocol !== 'https:') {
      reader.problem(ENV_NEXUS_KEEPER_PEERS, raw, `has a non-https entry: "${entry}"`);
    } else if (
      url.username !== '' ||
      url.password !== '' ||
      url.search !== '' ||
      url.hash !== '' ||
      (url.pathname !== '/' && url.pathname !== '')
    ) {
      reader.problem(
        ENV_NEXUS_KEEPER_PEERS,
        raw,
        `entries must be https://host:port with nothing else, got "${entry}"`,
      );
    } else if (urls.some((known) => known.origin === url.origin)) {
      reader.problem(ENV_NEXUS_KEEPER_PEERS, raw, `lists the Keeper "${url.origin}" twice`);
    } else {
      urls.push(url);
    }
  }
  if (urls.length > 0 && urls.length !== shares) {
    reader.problem(
      ENV_NEXUS_KEEPER_PEERS,
      raw,
      `must list exactly ${ENV_NEXUS_SHAMIR_SHARES} (${shares}) Keepers, one per shard; it lists ${urls.length}`,
    );
  }
  return urls;
}

/**
 * The SPIFFE ID each Keeper must present. By default the i-th URL belongs to
 * `.../spike/keeper/<i>` (what the launcher, the embedded agent and the docs
 * register); `SPIKE_NEXUS_KEEPER_IDS` names them instead, in the same order:
 * Keeper IDs of our trust domain (a Keeper refuses to start with any other),
 * unique, one per URL.
 */
function withKeeperIds(
  reader: EnvReader,
  urls: readonly URL[],
  trustDomain: TrustDomain | undefined,
): KeeperPeer[] {
  if (trustDomain === undefined) {
    return [];
  }
  const raw = reader.raw(ENV_NEXUS_KEEPER_IDS);
  if (raw === undefined) {
    return urls.map((url, i) => ({ url, id: keeperId(trustDomain, String(i + 1)) }));
  }
  const ids: SpiffeId[] = [];
  const isKeeperId = isKeeper(trustDomain);
  const entries = reader.list(ENV_NEXUS_KEEPER_IDS, []);
  for (const entry of entries) {
    let id: SpiffeId;
    try {
      id = parseSpiffeId(entry);
    } catch (err) {
      reader.problem(
        ENV_NEXUS_KEEPER_IDS,
        raw,
        `has an entry that is not a SPIFFE ID: "${entry}" (${err instanceof Error ? err.message : String(err)})`,
      );
      continue;
    }
    if (!isKeeperId(id)) {
      reader.problem(
        ENV_NEXUS_KEEPER_IDS,
        raw,
        `entries must be Keeper IDs of "${trustDomain.name}" (${isKeeperId.description}), got "${entry}"`,
      );
    } else if (!ids.some((known) => known.equals(id))) {
      // IDs parse strictly, so a repeated one is a repeated entry, which
      // list() has already reported.
      ids.push(id);
    }
  }
  if (urls.length > 0 && entries.length !== urls.length) {
    reader.problem(
      ENV_NEXUS_KEEPER_IDS,
      raw,
      `must list exactly one SPIFFE ID per entry of ${ENV_NEXUS_KEEPER_PEERS} (${urls.length}), in the same order; it lists ${entries.length}`,
    );
  }
  return urls.flatMap((url, i) => {
    const id = ids[i];
    return id === undefined ? [] : [{ url, id }];
  });
}

/**
 * `postgres://` or `postgresql://` with a host, required (and only read) for
 * the postgres backend. Problems show the value with its password masked.
 */
function readDatabaseUrl(reader: EnvReader, backendStore: BackendStore): string | undefined {
  if (backendStore !== 'postgres') return undefined;
  const value = reader.raw(ENV_NEXUS_DATABASE_URL);
  if (value === undefined) {
    reader.problem(
      ENV_NEXUS_DATABASE_URL,
      undefined,
      `is required when ${ENV_NEXUS_BACKEND_STORE} is "postgres" (e.g. postgres://spike:<password>@db.example:5432/spike)`,
    );
    return undefined;
  }
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (
    url === undefined ||
    !['postgres:', 'postgresql:'].includes(url.protocol) ||
    url.host === ''
  ) {
    reader.problem(
      ENV_NEXUS_DATABASE_URL,
      redactUrl(value),
      'must be a postgres://user:password@host:port/database URL',
    );
  }
  return value;
}

function readDataDir(reader: EnvReader, env: Env): string {
  const value = reader.raw(ENV_NEXUS_DATA_DIR);
  if (value !== undefined) {
    if (!isAbsolute(value)) {
      reader.problem(ENV_NEXUS_DATA_DIR, value, 'must be an absolute path');
    }
    return value;
  }
  const home = env.HOME ?? homedir();
  return join(home, '.spike', 'nexus');
}
