/**
 * The health route shared by Nexus and Keepers: no data, just "serving"
 * (200), or for Nexus "sealed" (503, as Vault's health answers), since a
 * sealed Nexus answers every secret route 503. Guarded like every route:
 * only peers the matcher admits (members of our trust domain for Nexus,
 * Nexus for a Keeper) get an answer. Probes without an SVID use the
 * operations listener instead (shared/ops/ops_server.ts).
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
  /** Nexus: whether it has no root key yet; without it the route is always 200. */
  isSealed?: () => boolean,
): Hono<PeerEnv> {
  const routes = new Hono<PeerEnv>();
  routes.get(
    PATHS.health,
    authorize(who, { action: 'health.read', ...(logger === undefined ? {} : { logger }) }),
    (c) =>
      isSealed?.() === true
        ? c.json({ status: 'sealed', component }, 503)
        : c.json({ status: 'ok', component }),
  );
  return routes;
}
