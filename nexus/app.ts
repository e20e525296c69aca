/** Nexus's HTTP app. Secret, policy and operator routes arrive with the store work. */
import type { Hono } from 'hono';
import { createBaseApp } from '../shared/http/app.ts';
import { createHealthRoutes } from '../shared/http/health.ts';
import type { GetPeer, PeerEnv } from '../shared/http/peer.ts';
import type { Logger } from '../shared/log/logger.ts';

export interface NexusAppDeps {
  readonly getPeer: GetPeer;
  readonly logger: Logger;
}

export function createApp(deps: NexusAppDeps): Hono<PeerEnv> {
  const app = createBaseApp(deps.getPeer, deps.logger);
  app.route('/', createHealthRoutes('nexus'));
  return app;
}
