/**
 * The fixed outer shape of every mTLS app: the audit trail outermost (so
 * denials are audited), then `requirePeer` so nothing
 * runs for an unverified peer, `Cache-Control: no-store` on every response,
 * a refusal of ambiguous request paths, one error handler, and a not-found
 * that throws like everything else.
 */

import type { HttpBindings } from '@hono/node-server';
import type { Context, Next } from 'hono';
import { Hono } from 'hono';
import { InvalidRequestError, NotFoundError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { type AuditOptions, audit } from './audit.ts';
import { createErrorHandler } from './error_handler.ts';
import { type GetPeer, type PeerEnv, requirePeer } from './peer.ts';
import { declaresBody } from './validate.ts';

export interface BaseAppOptions {
  /** Where the audit trail goes; without it requests are not audited (tests). */
  readonly audit?: AuditOptions;
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
  // Set before the handler runs, so every response built through the context
  // (c.json, c.body, the error handler) carries it. Setting it afterwards
  // makes Hono rebuild the finished response around its body as a stream,
  // which @hono/node-server then writes chunked: a read cost about twice as
  // much that way (docs/performance.md).
  app.use(async function noStore(c, next) {
    c.header('Cache-Control', 'no-store');
    await next();
  });
  app.use(requirePeer(getPeer));
  app.use(refuseAmbiguousPath);
  app.notFound(() => {
    throw new NotFoundError('No such route');
  });
  app.onError(createErrorHandler(logger));
  return app;
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
async function refuseAmbiguousPath(c: Context, next: Next): Promise<void> {
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
  await next();
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
