/**
 * Nexus's HTTP app: the base app (the request metrics, the audit trail, then
 * the edge checks: no-store, the verified peer, the path, the per-identity
 * rate limit keyed by that peer and the body limit; see shared/http/app.ts),
 * then health (503 while sealed), status, secrets, policies, named keys,
 * the break-glass operator routes and snapshots; one error handler.
 */
import type { Hono } from 'hono';
import { PATHS } from '../shared/api/paths.ts';
import { MAX_SNAPSHOT_FILE_BYTES } from '../shared/api/snapshot.ts';
import { createBaseApp } from '../shared/http/app.ts';
import type { AuditOptions } from '../shared/http/audit.ts';
import { createHealthRoutes } from '../shared/http/health.ts';
import type { GetPeer, PeerEnv } from '../shared/http/peer.ts';
import type { TokenBuckets } from '../shared/http/rate_limit.ts';
import type { RequestCount } from '../shared/http/request_count.ts';
import type { RequestShortcut } from '../shared/http/serve.ts';
import type { AuditSink } from '../shared/log/audit_log.ts';
import type { Logger } from '../shared/log/logger.ts';
import type { RequestRecorder } from '../shared/ops/metrics.ts';
import { matchMemberOf } from '../shared/spiffe/match.ts';
import type { TrustDomain } from '../shared/spiffe/spiffe_id.ts';
import type { AccessChecker } from './access/check_access.ts';
import type { PolicyCache } from './access/policy_cache.ts';
import type { DataKey } from './keyring/data_key.ts';
import type { RootKey } from './root_key/root_key.ts';
import type { RootKeyManager } from './root_key/root_key_manager.ts';
import { createKeyringRoutes } from './routes/keyring.ts';
import { createOperatorRoutes } from './routes/operator.ts';
import { createPolicyRoutes } from './routes/policies.ts';
import { createSecretReadShortcut, type SecretReadDeps } from './routes/secret_read.ts';
import type { SecretWatches } from './routes/secret_watch.ts';
import { createSecretRoutes } from './routes/secrets.ts';
import { createSnapshotRoutes } from './routes/snapshot.ts';
import { createStatusRoutes, type StatusRoutesDeps } from './routes/status.ts';
import { createTransitRoutes } from './routes/transit.ts';
import type { PolicyStore } from './store/policy_store.ts';
import type { SecretStore } from './store/secret_store.ts';
import type { SnapshotStore } from './store/snapshot_store.ts';
import type { TransitKeyStore } from './store/transit_key_store.ts';

export interface NexusAppDeps {
  readonly getPeer: GetPeer;
  readonly logger: Logger;
  readonly trustDomain: TrustDomain;
  readonly rootKey: RootKey;
  readonly manager: RootKeyManager;
  readonly secrets: SecretStore;
  /** Where long-poll reads of secrets wait (over `secrets` and its changes). */
  readonly watches: SecretWatches;
  readonly policies: PolicyStore;
  /** Named encryption keys (encryption as a service). */
  readonly transitKeys: TransitKeyStore;
  readonly policyCache: PolicyCache;
  /** Snapshots of the database; undefined on a backend without them. */
  readonly snapshots?: SnapshotStore | undefined;
  readonly access: AccessChecker;
  /** Our X509 source, for the status route. */
  readonly identity: StatusRoutesDeps['identity'];
  /** The server's PeerVerifier, whose refusal count the status route reports. */
  readonly refusals: StatusRoutesDeps['refusals'];
  /** The data key's rotation and status; without it (route tests) its routes are absent. */
  readonly dataKey?: DataKey;
  /** Counted by the audit trail (with `auditSink`), reported by the status route. */
  readonly deniedRequests: RequestCount;
  readonly maxBodyBytes: number;
  /** The per-identity rate limit's buckets (`createTokenBuckets`), shared with the read shortcut; without them (route tests) there is no limit. */
  readonly rateLimit?: TokenBuckets | undefined;
  readonly auditSink?: AuditSink;
  /** Where each answered request is counted (the program's metrics); without it none are. */
  readonly metrics?: RequestRecorder;
}

export function createApp(deps: NexusAppDeps): Hono<PeerEnv> {
  const { trustDomain, logger } = deps;
  const audit = auditOptionsOf(deps);
  const app = createBaseApp(deps.getPeer, logger, {
    maxBodyBytes: deps.maxBodyBytes,
    rateLimit: deps.rateLimit,
    largeBodies: new Map([[PATHS.operatorSnapshot, MAX_SNAPSHOT_FILE_BYTES]]),
    ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }),
    ...(audit === undefined ? {} : { audit }),
  });
  app.route(
    '/',
    createHealthRoutes('nexus', matchMemberOf(trustDomain), logger, () => !deps.rootKey.isReady),
  );
  app.route(
    '/',
    createStatusRoutes({
      trustDomain,
      rootKey: deps.rootKey,
      keeperStatus: () => deps.manager.keeperStatus(),
      rootKeyStatus: () => deps.manager.rootKeyStatus(),
      identity: deps.identity,
      refusals: deps.refusals,
      deniedRequests: deps.deniedRequests,
      logger,
    }),
  );
  app.route(
    '/',
    createSecretRoutes({
      store: deps.secrets,
      access: deps.access,
      logger,
      watches: deps.watches,
    }),
  );
  app.route(
    '/',
    createPolicyRoutes({
      trustDomain,
      checker: deps.access,
      cache: deps.policyCache,
      store: deps.policies,
      logger,
    }),
  );
  app.route('/', createTransitRoutes({ store: deps.transitKeys, access: deps.access, logger }));
  app.route('/', createOperatorRoutes({ trustDomain, manager: deps.manager, logger }));
  if (deps.dataKey !== undefined) {
    app.route('/', createKeyringRoutes({ trustDomain, dataKey: deps.dataKey, logger }));
  }
  app.route(
    '/',
    createSnapshotRoutes({
      trustDomain,
      snapshots: deps.snapshots,
      manager: deps.manager,
      rootKey: deps.rootKey,
      policyCache: deps.policyCache,
      logger,
    }),
  );
  return app;
}

/**
 * The secret reads answered before the app (nexus/routes/secret_read.ts),
 * with the app's store, checker, rate limit and audit trail.
 */
export function createReadShortcut(
  deps: NexusAppDeps,
  peerOf: SecretReadDeps['peerOf'],
): RequestShortcut {
  return createSecretReadShortcut({
    store: deps.secrets,
    access: deps.access,
    logger: deps.logger,
    peerOf,
    rateLimit: deps.rateLimit,
    audit: auditOptionsOf(deps),
    metrics: deps.metrics,
    watches: deps.watches,
  });
}

function auditOptionsOf(deps: NexusAppDeps): AuditOptions | undefined {
  return deps.auditSink === undefined
    ? undefined
    : { sink: deps.auditSink, component: 'nexus', deniedRequests: deps.deniedRequests };
}
