/**
 * The whole Nexus app (`createApp`) for the route tests, with every
 * dependency real or in memory and an injected peer, so that each test file
 * says only what it changes: its policies, its seeded secrets, a wrapped
 * store, a real root key manager, a data key, limits, its own audit sink…
 *
 * By default the root key is unsealed with random bytes; the secret store
 * (SqliteSecretStore) and the named-key store (SqliteTransitKeyStore) share
 * one in-memory SQLite database, as they share one file in Nexus; the
 * policies come from a MemoryPolicyStore through the policy cache; the root
 * key manager is a stand-in that records (and refuses) every call but the
 * status route's reads; the peer is whoever `actAs` or `send` named last.
 * `close()` closes what the fixture opened, and only that.
 */
import type { Hono } from 'hono';
import { createAccessChecker } from '../../nexus/access/check_access.ts';
import { loadPolicyCache } from '../../nexus/access/policy_cache.ts';
import { createApp, type NexusAppDeps } from '../../nexus/app.ts';
import type { DataKey } from '../../nexus/keyring/data_key.ts';
import { RootKey } from '../../nexus/root_key/root_key.ts';
import { RootKeyManager } from '../../nexus/root_key/root_key_manager.ts';
import { SecretWatches, type WatchLimits } from '../../nexus/routes/secret_watch.ts';
import { SecretChanges } from '../../nexus/store/secret_changes.ts';
import type { SecretQuotas } from '../../nexus/store/secret_quotas.ts';
import type { SecretData, SecretStore } from '../../nexus/store/secret_store.ts';
import { openMemoryDatabase } from '../../nexus/store/sqlite/db.ts';
import { SqliteSecretStore } from '../../nexus/store/sqlite/secret_store.ts';
import { SqliteTransitKeyStore } from '../../nexus/store/sqlite/transit_key_store.ts';
import { MemoryPolicyStore } from '../../nexus/store/testing/memory_policy_store.ts';
import { MemoryRootKeyStore } from '../../nexus/store/testing/memory_root_key_store.ts';
import type { TransitKeyStore } from '../../nexus/store/transit_key_store.ts';
import type { PolicyDocument } from '../../shared/api/policies.ts';
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import type { GetPeer, PeerEnv } from '../../shared/http/peer.ts';
import type { TokenBuckets } from '../../shared/http/rate_limit.ts';
import { RequestCount } from '../../shared/http/request_count.ts';
import {
  type AuditEvent,
  type AuditSink,
  createMemoryAuditSink,
} from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink, type Logger } from '../../shared/log/logger.ts';
import type { RequestRecorder } from '../../shared/ops/metrics.ts';
import { pilotSuperuserId } from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import type { VerifiedSvid } from '../../shared/spiffe/x509_svid.ts';
import { inProcessKeeper } from './in_process_keeper.ts';

const HOUR_MS = 3_600_000;
/** The route tests' policies and peers all name this trust domain. */
const TRUST_DOMAIN = parseTrustDomain('nexus.test');

/** A logger at debug level and the sink that keeps its lines, for leak checks. */
export interface TestLog {
  readonly logger: Logger;
  readonly logSink: ReturnType<typeof createMemorySink>;
}

function testLog(): TestLog {
  const logSink = createMemorySink();
  return { logger: createLogger({ component: 'nexus', level: 'debug', sink: logSink }), logSink };
}

/** What `dataKey` gets to build the data key from. */
export interface DataKeyParts {
  readonly rootKey: RootKey;
  readonly manager: RootKeyManager;
  /** The real secret store, past any wrapper. */
  readonly secrets: SqliteSecretStore;
  readonly logger: Logger;
}

export interface NexusAppOptions {
  /** Default: a fresh `testLog()`; pass one to share its sink with other parts. */
  readonly log?: TestLog;
  /**
   * The root key (and its manager), made and stopped by the caller. Default:
   * a root key unsealed with random bytes; the stand-in manager.
   */
  readonly rootKey?: { readonly rootKey: RootKey; readonly manager?: RootKeyManager };
  /**
   * A real RootKeyManager over a MemoryRootKeyStore and three in-process
   * Keepers (threshold 2), stepped once so that it unseals the root key;
   * `close()` stops it. For the routes that rotate or split the real key
   * (ignored when `rootKey` is given).
   */
  readonly keepers?: boolean;
  /** Written before the app starts, straight into the store (nothing audited). */
  readonly policies?: readonly PolicyDocument[];
  /** Secrets written in this order before the app starts, straight into the store. */
  readonly seed?: ReadonlyArray<readonly [string, SecretData]>;
  readonly maxVersionsDefault?: number;
  readonly quotas?: SecretQuotas;
  /**
   * A secret store the caller opened (and closes), instead of a fresh one;
   * its writes do not reach the fixture's `changes`. For apps over one store.
   */
  readonly secretStore?: SqliteSecretStore;
  /** What the routes and the watches get instead of the store: a counting proxy, a store that must not be touched… */
  readonly wrapSecrets?: (store: SecretStore) => SecretStore;
  readonly watchLimits?: WatchLimits;
  /** The keyring routes exist only with a data key. */
  readonly dataKey?: (parts: DataKeyParts) => DataKey;
  /** Default: the peer `actAs` or `send` named, with a certificate valid for an hour either side. */
  readonly getPeer?: GetPeer;
  readonly identity?: NexusAppDeps['identity'];
  readonly refusals?: NexusAppDeps['refusals'];
  readonly deniedRequests?: RequestCount;
  /** Default: 8192, small enough for the body-limit tests to reach. */
  readonly maxBodyBytes?: number;
  /** Default: no rate limit, as `createTokenBuckets` gives without options. */
  readonly rateLimit?: TokenBuckets | undefined;
  /** Default: a memory sink, whose events are `audit.events`. */
  readonly auditSink?: AuditSink;
  readonly metrics?: RequestRecorder;
}

/** An answer, read whole. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: unknown;
}

/** A request the fixture sent, with the text of its answer (for leak checks). */
interface Sent {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  readonly text: string;
}

export type NexusApp = Awaited<ReturnType<typeof nexusApp>>;

export async function nexusApp(options: NexusAppOptions = {}) {
  const { logger, logSink } = options.log ?? testLog();
  const toClose: (() => unknown)[] = [];
  async function close(): Promise<void> {
    // Last opened, first closed: the stores before their database.
    for (const closeOne of toClose.splice(0).reverse()) await closeOne();
  }
  try {
    const { rootKey, manager, unsealAgain } = await rootKeyOf(options, logger, toClose);
    const database = await openMemoryDatabase();
    toClose.push(() => database.close());
    const changes = new SecretChanges();
    let real = options.secretStore;
    if (real === undefined) {
      const store = new SqliteSecretStore({
        database,
        keyring: rootKey.withKeyring.bind(rootKey),
        maxVersionsDefault: options.maxVersionsDefault ?? 10,
        changes,
        ...(options.quotas === undefined ? {} : { quotas: options.quotas }),
      });
      toClose.push(() => store.close());
      real = store;
    }
    for (const [path, data] of options.seed ?? []) await real.put(parseSecretPath(path), data);
    const transitKeys = new SqliteTransitKeyStore({
      database,
      keyring: rootKey.withKeyring.bind(rootKey),
    });
    const policies = new MemoryPolicyStore();
    for (const policy of options.policies ?? []) await policies.upsert(policy);
    const policyCache = await loadPolicyCache({ store: policies, logger });
    const access = createAccessChecker({
      trustDomain: TRUST_DOMAIN,
      policies: () => policyCache.policies(),
    });

    const wrapped = options.wrapSecrets?.(real) ?? real;
    const secrets = recording(wrapped);
    const transit = recording<TransitKeyStore>(transitKeys);
    const watches = new SecretWatches({
      store: secrets.proxy,
      changes,
      ...(options.watchLimits === undefined ? {} : { limits: options.watchLimits }),
    });
    const audit = createMemoryAuditSink();
    let peer: SpiffeId | undefined = pilotSuperuserId(TRUST_DOMAIN);
    const dataKey = options.dataKey?.({ rootKey, manager: manager.real, secrets: real, logger });
    const deps: NexusAppDeps = {
      getPeer: options.getPeer ?? (() => (peer === undefined ? undefined : validSvid(peer))),
      logger,
      trustDomain: TRUST_DOMAIN,
      rootKey,
      manager: manager.proxy,
      secrets: secrets.proxy,
      watches,
      policies,
      transitKeys: transit.proxy,
      policyCache,
      access,
      identity: options.identity ?? {
        getX509Svid: () => ({
          id: parseSpiffeId(`spiffe://${TRUST_DOMAIN}/spike/nexus`),
          notAfter: new Date(Date.now() + HOUR_MS),
        }),
      },
      refusals: options.refusals ?? { refusedCount: 0 },
      deniedRequests: options.deniedRequests ?? new RequestCount(),
      maxBodyBytes: options.maxBodyBytes ?? 8192,
      auditSink: options.auditSink ?? audit,
      ...(dataKey === undefined ? {} : { dataKey }),
      rateLimit: options.rateLimit,
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    };
    const app: Hono<PeerEnv> = createApp(deps);
    const sent: Sent[] = [];

    async function request(url: string, init: RequestInit = {}): Promise<Answer> {
      const res = await app.request(url, init);
      const text = await res.text();
      sent.push({ method: init.method ?? 'GET', url, status: res.status, text });
      const body = text === '' ? undefined : (JSON.parse(text) as unknown);
      return { status: res.status, headers: res.headers, text, body };
    }

    return {
      app,
      deps,
      rootKey,
      logSink,
      /** The events of the default audit sink (none if `auditSink` replaced it). */
      audit,
      /** The stores past the routes: reading them records no call. */
      secrets: real,
      transitKeys,
      policies,
      policyCache,
      changes,
      watches,
      /** Calls the routes (and watches) made on the secret store, by method name. */
      secretCalls: secrets.calls,
      /** Calls the routes made on the named-key store, by method name. */
      transitCalls: transit.calls,
      /** Calls the routes made on the root key manager, by method name (the stand-in's: every one but the status reads). */
      managerCalls: manager.calls,
      /** Every request `request` and `send` sent, in order. */
      sent,
      /** Unseals the default root key again with its first bytes (throws for any other). */
      unsealAgain,
      /** The next requests come from `id` (undefined: no verified peer). */
      actAs(id: SpiffeId | undefined): void {
        peer = id;
      },
      request,
      /** Sends a request as `as`, with `body` as JSON; the answer's fields are read one by one. */
      async send(as: SpiffeId, method: string, url: string, body?: unknown) {
        peer = as;
        const answer = await request(url, {
          method,
          ...(body === undefined
            ? {}
            : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
        });
        // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field, and the assertions check each
        return { status: answer.status, body: answer.body as any };
      },
      /** Audit events so far, and a fresh start for the next request. */
      takeAudit(): AuditEvent[] {
        return audit.events.splice(0);
      },
      /** Every path stored, with its metadata and the data of each readable version, read past the routes. */
      async storedSecrets(): Promise<unknown[]> {
        const { paths } = await real.list('', { limit: 1000 });
        const state: unknown[] = [];
        for (const path of paths) {
          const metadata = await real.readMetadata(path);
          const data: unknown[] = [];
          for (const version of metadata.versions) {
            if (version.deletedAt === null && !version.destroyed) {
              data.push((await real.get(path, version.version)).data);
            }
          }
          state.push({ metadata, data });
        }
        return state;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The peer certificate of `id`, valid from an hour ago to an hour from now. */
export function validSvid(id: SpiffeId): VerifiedSvid {
  return {
    id,
    notBefore: new Date(Date.now() - HOUR_MS),
    notAfter: new Date(Date.now() + HOUR_MS),
    serialNumber: '01',
  };
}

/** Methods of `target`, each call recorded by name before it runs. */
function recording<T extends object>(target: T): { proxy: T; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy(target, {
    get(object, property) {
      const value: unknown = Reflect.get(object, property, object);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(property));
        return Reflect.apply(value, object, args);
      };
    },
  });
  return { proxy, calls };
}

interface RootKeyParts {
  readonly rootKey: RootKey;
  readonly manager: { proxy: RootKeyManager; real: RootKeyManager; calls: string[] };
  readonly unsealAgain: () => void;
}

async function rootKeyOf(
  options: NexusAppOptions,
  logger: Logger,
  toClose: (() => unknown)[],
): Promise<RootKeyParts> {
  if (options.rootKey !== undefined) {
    const { rootKey, manager } = options.rootKey;
    if (manager === undefined) {
      const standIn = standInManager();
      return { rootKey, manager: { ...standIn, real: standIn.proxy }, unsealAgain: noUnseal };
    }
    return { rootKey, manager: { ...recording(manager), real: manager }, unsealAgain: noUnseal };
  }
  const rootKey = new RootKey();
  if (options.keepers === true) {
    const manager = new RootKeyManager({
      store: new MemoryRootKeyStore(),
      keepers: ['k1', 'k2', 'k3'].map((name) => inProcessKeeper(name).link),
      threshold: 2,
      rootKey,
      logger,
      checkIntervalMs: 60_000,
      recoveryMaxIntervalMs: 1000,
    });
    toClose.push(() => manager.stop());
    await manager.step();
    if (!rootKey.isReady) throw new Error('the in-process Keepers did not unseal the root key');
    return { rootKey, manager: { ...recording(manager), real: manager }, unsealAgain: noUnseal };
  }
  const key = randomBytes(32);
  const keyring = randomBytes(32);
  rootKey.unseal(key, keyring, 1);
  const manager = standInManager();
  return {
    rootKey,
    manager: { ...manager, real: manager.proxy },
    unsealAgain: () => rootKey.unseal(key, keyring, 1),
  };
}

function noUnseal(): void {
  throw new Error('unsealAgain needs the default root key, whose bytes the fixture keeps');
}

/**
 * A manager for apps whose tests do not call the operator routes: the status
 * route's reads answer (no Keeper, a 2-of-3 split), and any other call is
 * recorded and fails, so a request that reaches it is seen.
 */
function standInManager(): { proxy: RootKeyManager; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy({} as RootKeyManager, {
    get(_target, property) {
      if (property === 'keeperStatus') return () => [];
      if (property === 'rootKeyStatus') {
        return () => ({
          shares: 3,
          threshold: 2,
          lastRotation: undefined,
          lastRecoveryExport: undefined,
        });
      }
      return () => {
        calls.push(String(property));
        return Promise.reject(new Error(`the root key manager was called: ${String(property)}`));
      };
    },
  });
  return { proxy, calls };
}
