/**
 * Nexus's HTTP app: the base app (the audit trail, then the edge checks:
 * no-store, the verified peer, the path, the per-identity rate limit keyed by
 * that peer and the body limit; see shared/http/app.ts), then health, status,
 * secrets, policies and the break-glass operator routes; one error handler.
 */
import type { Hono } from 'hono';
import { createBaseApp } from '../shared/http/app.ts';
import { createHealthRoutes } from '../shared/http/health.ts';
import type { GetPeer, PeerEnv } from '../shared/http/peer.ts';
import type { RateLimitOptions } from '../shared/http/rate_limit.ts';
import type { RequestCount } from '../shared/http/request_count.ts';
import type { AuditSink } from '../shared/log/audit_log.ts';
import type { Logger } from '../shared/log/logger.ts';
import { matchMemberOf } from '../shared/spiffe/match.ts';
import type { TrustDomain } from '../shared/spiffe/spiffe_id.ts';
import type { AccessChecker } from './access/check_access.ts';
import type { PolicyCache } from './access/policy_cache.ts';
import type { RootKey } from './root_key/root_key.ts';
import type { RootKeyManager } from './root_key/root_key_manager.ts';
import { createOperatorRoutes } from './routes/operator.ts';
import { createPolicyRoutes } from './routes/policies.ts';
import type { SecretWatches } from './routes/secret_watch.ts';
import { createSecretRoutes } from './routes/secrets.ts';
import { createStatusRoutes, type StatusRoutesDeps } from './routes/status.ts';
import type { PolicyStore } from './store/policy_store.ts';
import type { SecretStore } from './store/secret_store.ts';

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
  readonly policyCache: PolicyCache;
  readonly access: AccessChecker;
  /** Our X509 source, for the status route. */
  readonly identity: StatusRoutesDeps['identity'];
  /** The server's PeerVerifier, whose refusal count the status route reports. */
  readonly refusals: StatusRoutesDeps['refusals'];
  /** Counted by the audit trail (with `auditSink`), reported by the status route. */
  readonly deniedRequests: RequestCount;
  readonly maxBodyBytes: number;
  /** Requests per verified SPIFFE ID; without it (route tests) there is no limit. */
  readonly rateLimit?: RateLimitOptions;
  readonly auditSink?: AuditSink;
}

export function createApp(deps: NexusAppDeps): Hono<PeerEnv> {
  const { trustDomain, logger } = deps;
  const app = createBaseApp(deps.getPeer, logger, {
    maxBodyBytes: deps.maxBodyBytes,
    ...(deps.rateLimit === undefined ? {} : { rateLimit: deps.rateLimit }),
    ...(deps.auditSink === undefined
      ? {}
      : {
          audit: {
            sink: deps.auditSink,
            component: 'nexus',
            deniedRequests: deps.deniedRequests,
          },
        }),
  });
  app.route('/', createHealthRoutes('nexus', matchMemberOf(trustDomain), logger));
  app.route(
    '/',
    createStatusRoutes({
      trustDomain,
      rootKey: deps.rootKey,
      keeperStatus: () => deps.manager.keeperStatus(),
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
  app.route('/', createOperatorRoutes({ trustDomain, manager: deps.manager, logger }));
  return app;
}
