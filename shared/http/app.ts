/**
 * The fixed outer shape of every mTLS app: the audit trail outermost (so
 * denials are audited), then `requirePeer` so nothing
 * runs for an unverified peer, `Cache-Control: no-store` on every response,
 * one error handler, and a not-found that throws like everything else.
 */
import { Hono } from 'hono';
import { NotFoundError } from '../errors/errors.ts';
import type { AuditSink } from '../log/audit_log.ts';
import type { Logger } from '../log/logger.ts';
import { audit } from './audit.ts';
import { createErrorHandler } from './error_handler.ts';
import { type GetPeer, type PeerEnv, requirePeer } from './peer.ts';

export interface BaseAppOptions {
  /** Where the audit trail goes; without it requests are not audited (tests). */
  readonly audit?: { readonly sink: AuditSink; readonly component: string };
}

export function createBaseApp(
  getPeer: GetPeer,
  logger: Logger,
  options: BaseAppOptions = {},
): Hono<PeerEnv> {
  const app = new Hono<PeerEnv>();
  if (options.audit !== undefined) {
    app.use(audit(options.audit));
  }
  app.use(async function noStore(c, next) {
    await next();
    c.header('Cache-Control', 'no-store');
  });
  app.use(requirePeer(getPeer));
  app.notFound(() => {
    throw new NotFoundError('No such route');
  });
  app.onError(createErrorHandler(logger));
  return app;
}
