/** The Keeper's HTTP app. Shard routes arrive with the root-key work. */
import type { Hono } from 'hono';
import { createBaseApp } from '../shared/http/app.ts';
import { createHealthRoutes } from '../shared/http/health.ts';
import type { GetPeer, PeerEnv } from '../shared/http/peer.ts';
import type { Logger } from '../shared/log/logger.ts';

export interface KeeperAppDeps {
  readonly getPeer: GetPeer;
  readonly logger: Logger;
}

export function createApp(deps: KeeperAppDeps): Hono<PeerEnv> {
  const app = createBaseApp(deps.getPeer, deps.logger);
  app.route('/', createHealthRoutes('keeper'));
  return app;
}
