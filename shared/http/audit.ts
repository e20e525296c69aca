/**
 * The audit trail: exactly one event per request, written by the outermost
 * middleware once the response is known, so denials and errors are audited
 * too. Routes only annotate (`setAudit`) what they did and to what. Events
 * carry the caller's SPIFFE ID and never a secret value, shard or key, nor the
 * raw query string. They go to their own sink (shared/log/audit_log.ts),
 * apart from the operational log, which writes the events of one event-loop
 * turn together; the middleware waits for the write that holds its event, so
 * the answer leaves only after its line was written (ADR 0017). When that
 * write fails the answer is a 500 `ERR_INTERNAL`, never the handler's; and
 * while the sink keeps failing, a sink that fails closed (the default) has
 * every request refused with 503 `ERR_AUDIT_UNAVAILABLE` before anything
 * else runs (ADR 0027).
 *
 * A connection refused at the TLS layer never becomes a request, so
 * `auditRefusals` writes a `tls.connect` event for it instead (or, after the
 * first from its address in a window, counts it into a summary event),
 * batched like the others, with nothing waiting on it.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { openPrivateFileForAppend } from '../config/file_modes.ts';
import { AuditUnavailableError, type ErrorCode, InternalError } from '../errors/errors.ts';
import { statusForCode } from '../errors/http_status.ts';
import { readFileEnd } from '../log/audit_chain.ts';
import {
  type AuditDecision,
  type AuditSink,
  type AuditWriteResult,
  createFdAuditSink,
  STDOUT_FD,
} from '../log/audit_log.ts';
import type { Logger } from '../log/logger.ts';
import type { AuditCounters } from '../ops/metrics.ts';
import type { PeerRefusal, RefusalListener } from '../spiffe/peer_verifier.ts';
import type { RequestCount } from './request_count.ts';

export interface AuditAnnotation {
  readonly action?: string;
  readonly resource?: string;
  /** Set by the route's guard: why it admitted or refused the request. */
  readonly decision?: AuditDecision;
}

/** Context variables the audit trail reads. */
export type AuditVariables = {
  audit?: AuditAnnotation;
  errorCode?: string;
};

/**
 * Records what a route did and to what. Calls add up: a field given again
 * replaces the earlier value, and fields not given are kept (so the guard's
 * decision stays when the handler names the resource).
 */
export function setAudit(c: Context, annotation: AuditAnnotation): void {
  const earlier = c.get('audit') as AuditAnnotation | undefined;
  c.set('audit', { ...earlier, ...annotation });
}

/** What `openAuditSink` needs besides where the trail goes. */
export interface AuditSinkSettings {
  /** `nexus` or `keeper`. */
  readonly component: string;
  /** The operator's audit key (ADR 0027), read from its file; without it the chain's key is public. */
  readonly key?: Uint8Array;
  /** Refuse requests while the sink fails (default true); see `AuditSink.failClosed`. */
  readonly failClosed?: boolean;
  /** Where the events written and those that failed are counted (the program's metrics). */
  readonly counters?: AuditCounters;
}

/**
 * The audit sink of a program: stdout for `-`, else the file appended to,
 * created 0600 when missing. An existing file that others may read or write
 * is refused with a `ConfigError` naming its mode and the `chmod` that fixes
 * it: audit events name callers and resources. The new segment of the chain
 * links to the line the file ended with. The sink's starting to fail is
 * logged once, however many writes fail after it.
 */
export function openAuditSink(
  destination: string,
  logger: Logger,
  settings: AuditSinkSettings,
): AuditSink {
  const { counters } = settings;
  const toStdout = destination === '-';
  // Read before opening, so a file we create is known to be new.
  const fileEnd = toStdout ? undefined : readFileEnd(destination);
  return createFdAuditSink(
    toStdout ? STDOUT_FD : openPrivateFileForAppend('Audit log', destination),
    {
      component: settings.component,
      ...(settings.key === undefined ? {} : { key: settings.key }),
      ...(settings.failClosed === undefined ? {} : { failClosed: settings.failClosed }),
      ...(fileEnd === undefined ? {} : { fileEnd }),
      ...(counters === undefined
        ? {}
        : {
            onBatch(events: number, written: boolean) {
              if (written) counters.countAuditEvents(events);
              else counters.countAuditFailures(events);
            },
          }),
      onError(error) {
        logger.error('Cannot write the audit trail; its events stay queued', {
          error: error.message,
        });
      },
    },
  );
}

export interface AuditOptions {
  readonly sink: AuditSink;
  readonly component: string;
  /** Counts the requests audited as denied (refused connections are the verifier's count). */
  readonly deniedRequests?: RequestCount;
  readonly now?: () => number;
}

/** Unauthenticated, forbidden, and rate limited (429 `ERR_RATE_LIMITED`) are denials. */
const DENIED_STATUSES: ReadonlySet<number> = new Set([401, 403, 429]);

export function audit(options: AuditOptions): MiddlewareHandler {
  const now = options.now ?? Date.now;
  const sink = options.sink;
  return async function auditMiddleware(c, next) {
    const started = now();
    // Failing closed: while lines cannot be written, nothing is done that
    // would go unaudited. The refusal is audited too (it waits in the queue).
    const refused = refusesRequests(sink);
    let result: AuditWriteResult;
    try {
      if (refused) {
        throw new AuditUnavailableError();
      }
      await next();
    } finally {
      const peer = c.get('peer') as { id: { toString(): string } } | undefined;
      const written = auditRequest(options, {
        started,
        peer: peer === undefined ? null : peer.id.toString(),
        method: c.req.method,
        route: c.req.routePath,
        annotation: c.get('audit') as AuditAnnotation | undefined,
        status: refused ? AUDIT_UNAVAILABLE_STATUS : c.res.status,
        errorCode: refused
          ? ('ERR_AUDIT_UNAVAILABLE' satisfies ErrorCode)
          : ((c.get('errorCode') as string | undefined) ?? null),
      });
      // A refused request has nothing to wait for; the error handler answers it.
      result = refused ? REFUSED : await written;
    }
    // An answer whose audit line is not written must not look like a
    // success: the error handler turns this into a 500 (the sink logs why).
    // Failing open, the answer stands and the line waits in the queue.
    if (!result.written && sink.failClosed) {
      throw new InternalError(undefined, { cause: result.error });
    }
  };
}

/** One answered request, as the audit trail records it. */
export interface AnsweredRequest {
  /** When the request arrived, by the audit options' clock. */
  readonly started: number;
  /** The verified caller's SPIFFE ID, or null when none was verified. */
  readonly peer: string | null;
  readonly method: string;
  /** The matched route pattern. */
  readonly route: string;
  readonly annotation: AuditAnnotation | undefined;
  readonly status: number;
  readonly errorCode: string | null;
}

/**
 * Writes the event of one answered request (and counts a denial): the one
 * place its shape is made, for the middleware above and for a route served
 * before the app (nexus/routes/secret_read.ts). The promise settles once
 * the write holding the event returned.
 */
export function auditRequest(
  options: AuditOptions,
  request: AnsweredRequest,
): Promise<AuditWriteResult> {
  const { status, annotation } = request;
  const isDenied = DENIED_STATUSES.has(status);
  if (isDenied) {
    options.deniedRequests?.increment();
  }
  return options.sink.write({
    ts: new Date(request.started).toISOString(),
    trailId: crypto.randomUUID(),
    component: options.component,
    peer: request.peer,
    method: request.method,
    route: request.route,
    action: annotation?.action ?? 'http.request',
    resource: annotation?.resource ?? null,
    decision: annotation?.decision ?? null,
    outcome: isDenied ? 'denied' : status >= 400 ? 'error' : 'allowed',
    status,
    errorCode: request.errorCode,
    durationMs: (options.now ?? Date.now)() - request.started,
  });
}

/**
 * Whether a sink that fails closed cannot write now, so that no request may
 * be served (the middleware above, and the read shortcut, which leaves the
 * request to the app to refuse).
 */
export function refusesRequests(sink: AuditSink): boolean {
  return sink.failClosed && !sink.writable();
}

/** Audited for a refused request before the error handler answers it. */
const AUDIT_UNAVAILABLE_STATUS = statusForCode('ERR_AUDIT_UNAVAILABLE');
const REFUSED: AuditWriteResult = Object.freeze({ written: true });

/** The action of a connection refused at the TLS layer. */
export const TLS_CONNECT_ACTION = 'tls.connect';

/**
 * A `PeerVerifier` listener that writes one denied `tls.connect` event per
 * refusal it hears: the reason, the remote address, the peer's SPIFFE ID
 * (`peer` when its SVID verified but it may not connect here, `claimedPeer`
 * when it was only read from an unverified certificate), and `count`, the
 * connections it stands for (1, or a summary's count).
 */
export function auditRefusals(options: AuditOptions): RefusalListener {
  const now = options.now ?? Date.now;
  return function auditRefusal(refusal: PeerRefusal) {
    const isVerified = refusal.peerId !== undefined;
    // Not awaited: no answer depends on it. A failed write stays queued in
    // the sink and is retried with the next batch.
    options.sink.write({
      ts: new Date(now()).toISOString(),
      trailId: crypto.randomUUID(),
      component: options.component,
      peer: refusal.peerId ?? null,
      claimedPeer: refusal.claimedId ?? null,
      method: null,
      route: null,
      action: TLS_CONNECT_ACTION,
      resource: null,
      decision: null,
      outcome: 'denied',
      // A verified peer is known and not allowed; any other was not
      // authenticated. The status is what the refusal stands for, never sent.
      status: isVerified ? 403 : 401,
      errorCode: (isVerified ? 'ERR_ACCESS_DENIED' : 'ERR_UNAUTHENTICATED') satisfies ErrorCode,
      durationMs: 0,
      reason: refusal.reason,
      remoteAddress: refusal.remoteAddress ?? null,
      count: refusal.count ?? 1,
    });
  };
}
