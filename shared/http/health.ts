/** The liveness route shared by Nexus and Keepers: no data, just "serving". */
import { Hono } from 'hono';
import { PATHS } from '../api/paths.ts';

export function createHealthRoutes(component: string): Hono {
  const routes = new Hono();
  routes.get(PATHS.health, (c) => c.json({ status: 'ok', component }));
  return routes;
}
