/** Nexus's HTTP app: requirePeer first, then health, status and operator routes. */
import type { Hono } from 'hono';
import { createBaseApp } from '../shared/http/app.ts';
import { limitBody } from '../shared/http/body_limit.ts';
import { createHealthRoutes } from '../shared/http/health.ts';
import type { GetPeer, PeerEnv } from '../shared/http/peer.ts';
import type { Logger } from '../shared/log/logger.ts';
import type { TrustDomain } from '../shared/spiffe/spiffe_id.ts';
import type { RootKey } from './root_key/root_key.ts';
import type { RootKeyManager } from './root_key/root_key_manager.ts';
import { createOperatorRoutes } from './routes/operator.ts';
import { createStatusRoutes } from './routes/status.ts';

/** Operator bodies are one shard of text; secrets routes will set their own limit. */
const BODY_LIMIT_BYTES = 64 * 1024;

export interface NexusAppDeps {
  readonly getPeer: GetPeer;
  readonly logger: Logger;
  readonly trustDomain: TrustDomain;
  readonly rootKey: RootKey;
  readonly manager: RootKeyManager;
}

export function createApp(deps: NexusAppDeps): Hono<PeerEnv> {
  const app = createBaseApp(deps.getPeer, deps.logger);
  app.use(limitBody(BODY_LIMIT_BYTES));
  app.route('/', createHealthRoutes('nexus'));
  app.route(
    '/',
    createStatusRoutes({
      trustDomain: deps.trustDomain,
      rootKey: deps.rootKey,
      keeperStatus: () => deps.manager.keeperStatus(),
      logger: deps.logger,
    }),
  );
  app.route('/', createOperatorRoutes(deps));
  return app;
}
