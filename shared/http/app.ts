/**
 * The fixed outer shape of every mTLS app: the request metrics outermost (so
 * they see the final status), then the audit trail (so denials are audited),
 * then one edge step that runs, in this order,
 * `Cache-Control: no-store` on every response, the verified peer (so nothing
 * else runs for an unverified one), the refusal of ambiguous request paths
 * and of a body on GET, the per-identity rate limit (keyed by the verified
 * peer, before any body is read) and the body limit; then the routes, one
 * error handler, and a not-found that throws like everything else.
 *
 * The edge checks are one middleware rather than one each: every Hono
 * middleware costs a dispatch, a closure and a promise per request, which
 * showed in the profile of a read (docs/performance.md).
 */

import type { HttpBindings } from '@hono/node-server';
import type { Context, MiddlewareHandler } from 'hono';
import { Hono } from 'hono';
import { InvalidRequestError, NotFoundError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import type { RequestRecorder } from '../ops/metrics.ts';
import { type AuditOptions, audit } from './audit.ts';
import { checkBodyLimit, DEFAULT_MAX_BODY_BYTES, limitDeclaredBody } from './body_limit.ts';
import { createErrorHandler } from './error_handler.ts';
import { type GetPeer, type PeerEnv, verifiedPeer } from './peer.ts';
import { type TokenBuckets, takeToken } from './rate_limit.ts';
import { declaresBody } from './validate.ts';

export interface BaseAppOptions {
  /** Where the audit trail goes; without it requests are not audited (tests). */
  readonly audit?: AuditOptions;
  /** The buckets of the per-identity rate limit (`createTokenBuckets`); without them there is no limit. */
  readonly rateLimit?: TokenBuckets | undefined;
  /** The largest request body in bytes (body_limit.ts); default `DEFAULT_MAX_BODY_BYTES`. */
  readonly maxBodyBytes?: number;
  /** Routes (by exact path) that take larger bodies than `maxBodyBytes`: a snapshot upload. */
  readonly largeBodies?: ReadonlyMap<string, number>;
  /** The clock of the SVID expiry check (tests); default `Date.now`. */
  readonly now?: () => number;
  /** Told of every answered request (route pattern, method, status, duration); without it none are counted. */
  readonly metrics?: RequestRecorder;
}

export function createBaseApp(
  getPeer: GetPeer,
  logger: Logger,
  options: BaseAppOptions = {},
): Hono<PeerEnv> {
  const app = new Hono<PeerEnv>();
  if (options.metrics !== undefined) {
    app.use(measure(options.metrics));
  }
  if (options.audit !== undefined) {
    app.use(audit(options.audit));
  }
  const now = options.now ?? Date.now;
  const maxBodyBytes = checkBodyLimit(options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
  const largeBodies = options.largeBodies;
  for (const limit of largeBodies?.values() ?? []) checkBodyLimit(limit);
  const buckets = options.rateLimit;
  app.use(async function edge(c, next) {
    preventCaching(c);
    const peer = verifiedPeer(c, getPeer, now());
    refuseAmbiguousRequest(c);
    if (buckets !== undefined) {
      takeToken(buckets, peer.id.toString(), c);
    }
    // A GET or HEAD with a body was refused above: only other methods have
    // a body to limit (which saves the header lookups on every read).
    const method = c.req.method;
    if (method !== 'GET' && method !== 'HEAD') {
      limitDeclaredBody(c, largeBodies?.get(c.req.path) ?? maxBodyBytes);
    }
    await next();
  });
  app.notFound(() => {
    throw new NotFoundError('No such route');
  });
  app.onError(createErrorHandler(logger));
  return app;
}

/**
 * Records each request once its answer is final (the audit trail's failure
 * turns it into a 500 inside this). The route is the matched pattern, never
 * the path asked for; a request answered before any route matched (refused
 * at the edge, or no such route) counts under the middleware's `/*`, as in
 * the audit trail.
 */
function measure(recorder: RequestRecorder): MiddlewareHandler {
  return async function measureRequest(c, next) {
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    recorder.recordRequest(c.req.routePath, c.req.method, c.res.status, seconds);
  };
}

/**
 * `Cache-Control: no-store` on whatever answers this request, set before the
 * route runs. Behind the adapter (serve.ts) it goes on the node:http
 * response, whose `writeHead` merges it into every answer written there,
 * also the adapter's own. That keeps Hono's answers to a plain header
 * object: a header set through the context makes Hono build a fetch
 * `Headers` for every answer, and the adapter then copy it out again
 * (docs/performance.md). Without the adapter (`app.request()` in tests) it
 * is set through the context. Never after the route: setting a header on a
 * finished answer makes Hono rebuild it around its body as a stream, which
 * the adapter then writes chunked.
 */
function preventCaching(c: Context): void {
  const outgoing = (c.env as HttpBindings | undefined)?.outgoing;
  if (outgoing === undefined) {
    c.header('Cache-Control', 'no-store');
  } else {
    outgoing.setHeader('Cache-Control', 'no-store');
  }
}

/**
 * A `.` or `..` segment (also percent-encoded, which URL parsing decodes), an
 * encoded `/` or `\\`, or an empty segment.
 */
const AMBIGUOUS_PATH_REGEXP = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)|%2f|%5c|\/\//i;

/**
 * Refuses a request whose raw path has dot segments, encoded slashes or empty
 * segments, or whose decoded path has control characters. URL parsing (in the
 * adapter and in `app.request()`) resolves `a/../b` to `b` before routing, so
 * without this the request that is authorized, acted on and audited is not
 * the one the client wrote; and a decoded line break slips past a route's
 * `{.+}` into a 404 "No such route". No well-formed path of ours needs any of
 * these.
 */
function refuseAmbiguousRequest(c: Context): void {
  if (AMBIGUOUS_PATH_REGEXP.test(rawPathOf(c))) {
    throw new InvalidRequestError(
      'The request path must not contain "." or ".." segments, empty segments or encoded slashes',
    );
  }
  if (hasControlCharacter(c.req.path)) {
    throw new InvalidRequestError('The request path must not contain control characters');
  }
  // A body on GET has no meaning; the adapter drops it, so refuse it instead
  // of answering as if it had not been sent (a request-smuggling staple).
  // (On other methods, a route's guard refuses a body its route does not read.)
  if ((c.req.method === 'GET' || c.req.method === 'HEAD') && declaresBody(c)) {
    throw new InvalidRequestError(`A ${c.req.method} request must not have a body`);
  }
}

/** The request target as the client sent it (before URL parsing), without the query. */
function rawPathOf(c: Context): string {
  const raw = (c.env as HttpBindings | undefined)?.incoming?.url;
  let target = typeof raw === 'string' ? raw : new URL(c.req.url).pathname;
  // The absolute form (`https://host/path`) carries an authority first.
  target = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
  const end = target.search(/[?#]/);
  return end === -1 ? target : target.slice(0, end);
}

/** Control characters, and the line terminators a route pattern's `.` does not match. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f || code === 0x2028 || code === 0x2029) return true;
  }
  return false;
}
