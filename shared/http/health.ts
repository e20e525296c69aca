/**
 * The liveness route shared by Nexus and Keepers: no data, just "serving".
 * Guarded like every route: only peers the matcher admits (members of our
 * trust domain for Nexus, Nexus for a Keeper) get an answer.
 */
import { Hono } from 'hono';
import { PATHS } from '../api/paths.ts';
import type { Logger } from '../log/logger.ts';
import type { Matcher } from '../spiffe/match.ts';
import { authorize } from './authorize.ts';
import type { PeerEnv } from './peer.ts';

export function createHealthRoutes(
  component: string,
  who: Matcher,
  logger?: Logger,
): Hono<PeerEnv> {
  const routes = new Hono<PeerEnv>();
  routes.get(
    PATHS.health,
    authorize(who, { action: 'health.read', ...(logger === undefined ? {} : { logger }) }),
    (c) => c.json({ status: 'ok', component }),
  );
  return routes;
}
