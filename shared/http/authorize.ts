/**
 * `authorize(matcher)`: the guard every route places first, after the path.
 * It admits the request only if the verified peer's SPIFFE ID matches, and
 * otherwise throws `AccessDeniedError` with a message that never says which
 * rule failed (the rule goes to the log). Every handler it creates is
 * remembered, so a fitness test can prove that each route has a guard.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { AccessDeniedError, UnauthenticatedError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import type { Matcher } from '../spiffe/match.ts';
import type { SpiffeId } from '../spiffe/spiffe_id.ts';
import { setAudit } from './audit.ts';
import type { PeerEnv } from './peer.ts';

export interface AuthorizeOptions {
  /** Where denials are written, with the peer and the rule it failed. */
  readonly logger?: Logger;
  /** The audit action of the route (`root_key.recover`…), recorded before the check so denials carry it. */
  readonly action?: string;
}

const AUTHORIZE_HANDLERS = new WeakSet<object>();

export function authorize(
  matcher: Matcher,
  options: AuthorizeOptions = {},
): MiddlewareHandler<PeerEnv> {
  if (typeof matcher !== 'function' || typeof matcher.description !== 'string') {
    throw new TypeError('authorize() takes a Matcher from shared/spiffe/match.ts');
  }
  return createGuard((_c, id) => matcher(id), matcher.description, options);
}

/**
 * `authorize()` for a decision that is not a plain matcher, such as a policy
 * check: `check(peer)` admits or refuses, and `description` (what it
 * requires) goes to the log on a refusal. Registered like `authorize()`.
 */
export function authorizeWith(
  check: (peer: SpiffeId) => boolean,
  description: string,
  options: AuthorizeOptions = {},
): MiddlewareHandler<PeerEnv> {
  if (typeof check !== 'function' || typeof description !== 'string' || description === '') {
    throw new TypeError('authorizeWith() takes a check function and a description');
  }
  return createGuard((_c, id) => check(id), description, options);
}

/**
 * `authorizeWith()` for a decision that also depends on the request, such as
 * the secret path in the URL: `check(c, peer)`. Registered like `authorize()`.
 */
export function authorizeRequest(
  check: (c: Context<PeerEnv>, peer: SpiffeId) => boolean,
  description: string,
  options: AuthorizeOptions = {},
): MiddlewareHandler<PeerEnv> {
  if (typeof check !== 'function' || typeof description !== 'string' || description === '') {
    throw new TypeError('authorizeRequest() takes a check function and a description');
  }
  return createGuard(check, description, options);
}

function createGuard(
  check: (c: Context<PeerEnv>, peer: SpiffeId) => boolean,
  description: string,
  options: AuthorizeOptions,
): MiddlewareHandler<PeerEnv> {
  const { logger, action } = options;
  async function authorizeMiddleware(
    c: Parameters<MiddlewareHandler<PeerEnv>>[0],
    next: Parameters<MiddlewareHandler<PeerEnv>>[1],
  ): Promise<void> {
    // requirePeer runs first in every app; without it, fail closed anyway.
    const peer = c.get('peer') as PeerEnv['Variables']['peer'] | undefined;
    if (peer === undefined) {
      throw new UnauthenticatedError();
    }
    if (action !== undefined) {
      setAudit(c, { action });
    }
    if (!check(c, peer.id)) {
      logger?.warn('Access denied', {
        peer: peer.id.toString(),
        method: c.req.method,
        path: c.req.path,
        rule: description,
      });
      throw new AccessDeniedError();
    }
    await next();
  }
  AUTHORIZE_HANDLERS.add(authorizeMiddleware);
  return authorizeMiddleware;
}

/** Whether `handler` was created by `authorize()`, `authorizeWith()` or `authorizeRequest()`. */
export function isAuthorizeHandler(handler: unknown): boolean {
  return typeof handler === 'function' && AUTHORIZE_HANDLERS.has(handler);
}
