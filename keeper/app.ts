/**
 * The Keeper's HTTP app: the base app (audit trail, then peer), a body
 * limit, the health route and the shard routes.
 */
import type { Hono } from 'hono';
import { createBaseApp } from '../shared/http/app.ts';
import { createHealthRoutes } from '../shared/http/health.ts';
import type { GetPeer, PeerEnv } from '../shared/http/peer.ts';
import type { AuditSink } from '../shared/log/audit_log.ts';
import type { Logger } from '../shared/log/logger.ts';
import type { RequestRecorder } from '../shared/ops/metrics.ts';
import { isNexus } from '../shared/spiffe/identities.ts';
import type { TrustDomain } from '../shared/spiffe/spiffe_id.ts';
import { createShardRoutes } from './routes/shards.ts';
import type { ShardHolder } from './shard_holder.ts';

/** A shard request is about 150 bytes; anything near this limit is not one. */
export const KEEPER_MAX_BODY_BYTES = 4096;

export interface KeeperAppDeps {
  readonly getPeer: GetPeer;
  readonly logger: Logger;
  readonly trustDomain: TrustDomain;
  readonly holder: ShardHolder;
  /** Where each request is audited; without it requests are not audited (tests). */
  readonly auditSink?: AuditSink;
  /** Where each answered request is counted (the program's metrics); without it none are. */
  readonly metrics?: RequestRecorder;
}

export function createApp(deps: KeeperAppDeps): Hono<PeerEnv> {
  const app = createBaseApp(deps.getPeer, deps.logger, {
    maxBodyBytes: KEEPER_MAX_BODY_BYTES,
    ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }),
    ...(deps.auditSink === undefined
      ? {}
      : { audit: { sink: deps.auditSink, component: 'keeper' } }),
  });
  app.route('/', createHealthRoutes('keeper', isNexus(deps.trustDomain), deps.logger));
  app.route(
    '/',
    createShardRoutes({ trustDomain: deps.trustDomain, holder: deps.holder, logger: deps.logger }),
  );
  return app;
}
