/**
 * The audit trail: exactly one event per request, written by the outermost
 * middleware once the response is known, so denials and errors are audited
 * too. Routes only annotate (`setAudit`) what they did and to what. Events
 * carry the caller's SPIFFE ID and never a secret value, shard or key, nor the
 * raw query string. They go to their own sink (shared/log/audit_log.ts),
 * apart from the operational log.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { AuditSink } from '../log/audit_log.ts';

export interface AuditAnnotation {
  readonly action: string;
  readonly resource?: string;
}

/** Context variables the audit trail reads. */
export type AuditVariables = {
  audit?: AuditAnnotation;
  errorCode?: string;
};

/** Records what a route did; the last call wins. */
export function setAudit(c: Context, annotation: AuditAnnotation): void {
  c.set('audit', annotation);
}

export interface AuditOptions {
  readonly sink: AuditSink;
  readonly component: string;
  readonly now?: () => number;
}

/** Unauthenticated, forbidden, and rate limited (429 `ERR_RATE_LIMITED`) are denials. */
const DENIED_STATUSES: ReadonlySet<number> = new Set([401, 403, 429]);

export function audit(options: AuditOptions): MiddlewareHandler {
  const now = options.now ?? Date.now;
  return async function auditMiddleware(c, next) {
    const started = now();
    try {
      await next();
    } finally {
      const status = c.res.status;
      const annotation = c.get('audit') as AuditAnnotation | undefined;
      const peer = c.get('peer') as { id: { toString(): string } } | undefined;
      const errorCode = (c.get('errorCode') as string | undefined) ?? null;
      options.sink.write({
        ts: new Date(started).toISOString(),
        trailId: crypto.randomUUID(),
        component: options.component,
        peer: peer === undefined ? null : peer.id.toString(),
        method: c.req.method,
        route: c.req.routePath,
        action: annotation?.action ?? 'http.request',
        resource: annotation?.resource ?? null,
        outcome: DENIED_STATUSES.has(status) ? 'denied' : status >= 400 ? 'error' : 'allowed',
        status,
        errorCode,
        durationMs: now() - started,
      });
    }
  };
}
