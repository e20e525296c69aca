/**
 * The audit trail: exactly one event per request, written by the outermost
 * middleware once the response is known, so denials and errors are audited
 * too. Routes only annotate (`setAudit`) what they did and to what. Events
 * carry the caller's SPIFFE ID and never a secret value, shard or key, nor the
 * raw query string. They go to their own sink, apart from the operational log.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Context, MiddlewareHandler } from 'hono';

export type AuditOutcome = 'allowed' | 'denied' | 'error';

export interface AuditEvent {
  readonly ts: string;
  readonly trailId: string;
  readonly component: string;
  readonly peer: string | null;
  readonly method: string;
  /** The matched route pattern, e.g. `/v1/secrets/data/:path{.+}`. */
  readonly route: string;
  /** `noun.verb`, e.g. `secret.read`; `http.request` when a route set none. */
  readonly action: string;
  /** The entity acted on (a secret path, a policy name), never a value. */
  readonly resource: string | null;
  readonly outcome: AuditOutcome;
  readonly status: number;
  readonly errorCode: string | null;
  readonly durationMs: number;
}

export interface AuditSink {
  write(event: AuditEvent): void;
  close(): void;
}

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
        outcome: status === 401 || status === 403 ? 'denied' : status >= 400 ? 'error' : 'allowed',
        status,
        errorCode,
        durationMs: now() - started,
      });
    }
  };
}

/**
 * A JSON-lines sink: a file opened for appending (mode 0600), or stdout with
 * `-`. Writes are synchronous so that an acknowledged request is audited even
 * if the process dies right after.
 */
export function createFileAuditSink(destination: string): AuditSink {
  const fd = destination === '-' ? 1 : openSync(destination, 'a', 0o600);
  return {
    write(event) {
      writeSync(fd, `${JSON.stringify(event)}\n`);
    },
    close() {
      if (fd !== 1) {
        closeSync(fd);
      }
    },
  };
}

/** A sink that keeps events in memory, for tests. */
export function createMemoryAuditSink(): AuditSink & { readonly events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return {
    events,
    write(event) {
      events.push(event);
    },
    close() {},
  };
}
