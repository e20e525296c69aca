/**
 * `authorize(matcher)`: the guard every route places first, after the path.
 * It admits the request only if the verified peer's SPIFFE ID matches, and
 * otherwise throws `AccessDeniedError` with a message that never says which
 * rule failed (the rule goes to the log). Every handler it creates is
 * remembered, so a fitness test can prove that each route has a guard.
 */
import type { MiddlewareHandler } from 'hono';
import { AccessDeniedError, UnauthenticatedError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import type { Matcher } from '../spiffe/match.ts';
import type { PeerEnv } from './peer.ts';

export interface AuthorizeOptions {
  /** Where denials are written, with the peer and the rule it failed. */
  readonly logger?: Logger;
}

const AUTHORIZE_HANDLERS = new WeakSet<object>();

export function authorize(
  matcher: Matcher,
  options: AuthorizeOptions = {},
): MiddlewareHandler<PeerEnv> {
  if (typeof matcher !== 'function' || typeof matcher.description !== 'string') {
    throw new TypeError('authorize() takes a Matcher from shared/spiffe/match.ts');
  }
  const { logger } = options;
  async function authorizeMiddleware(
    c: Parameters<MiddlewareHandler<PeerEnv>>[0],
    next: Parameters<MiddlewareHandler<PeerEnv>>[1],
  ): Promise<void> {
    // requirePeer runs first in every app; without it, fail closed anyway.
    const peer = c.get('peer') as PeerEnv['Variables']['peer'] | undefined;
    if (peer === undefined) {
      throw new UnauthenticatedError();
    }
    if (!matcher(peer.id)) {
      logger?.warn('Access denied', {
        peer: peer.id.toString(),
        method: c.req.method,
        path: c.req.path,
        rule: matcher.description,
      });
      throw new AccessDeniedError();
    }
    await next();
  }
  AUTHORIZE_HANDLERS.add(authorizeMiddleware);
  return authorizeMiddleware;
}

/** Whether `handler` was created by `authorize()`. */
export function isAuthorizeHandler(handler: unknown): boolean {
  return typeof handler === 'function' && AUTHORIZE_HANDLERS.has(handler);
}
