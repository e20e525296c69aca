/**
 * `authorize(check, { action })`: the guard every route places first, after
 * the path. It names the route's audit action, then decides, before anything
 * is looked up:
 *
 * - with a `Matcher`, on the verified peer's SPIFFE ID alone;
 * - with a `RequestCheck`, on the peer and what the request names (the
 *   secret path in the URL…): the check parses that (a malformed one is
 *   `ERR_INVALID_REQUEST`), decides, and the guard hands the parsed value to
 *   the handler as `c.get('target')`, so no handler parses it again.
 *
 * Either way the decision's reason (and the policy that granted, if one did)
 * goes into the request's audit event, and a refusal throws
 * `AccessDeniedError`, whose message never says which rule failed (the rule
 * goes to the operational log). No body has been read by then; an admitted
 * request that declares a body on a route that reads none is refused
 * (`ERR_INVALID_REQUEST`). Every guard it creates is remembered, so a
 * fitness test can prove that each route has one.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { AccessDeniedError, InvalidRequestError, UnauthenticatedError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import type { Matcher } from '../spiffe/match.ts';
import type { SpiffeId } from '../spiffe/spiffe_id.ts';
import { setAudit } from './audit.ts';
import type { PeerEnv } from './peer.ts';
import { declaresBody, routeReadsBody } from './validate.ts';

/** What a request-aware check concluded about one request. */
export interface CheckOutcome<T> {
  readonly allowed: boolean;
  /** Why, as a short code (`superuser`, `policy`, `no_matching_policy`…): audited, never answered. */
  readonly reason: string;
  /** The policy that granted the request, if one did. */
  readonly policy?: string | undefined;
  /** What was checked, parsed; the handler gets it as `c.get('target')`. */
  readonly target: T;
  /** How the audit event names what was checked (`resource`), if it names it. */
  readonly resource?: string | undefined;
}

/** A decision that depends on the request as well as on the peer. */
export interface RequestCheck<T> {
  /** What the check requires, for the operational log on a refusal. */
  readonly description: string;
  /**
   * Parses what the request names and decides. Throws `InvalidRequestError`
   * when the request is malformed; looks nothing up.
   */
  decide(c: Context<PeerEnv>, peer: SpiffeId): CheckOutcome<T>;
}

export interface AuthorizeOptions {
  /** The audit action of the route (`secret.read`…), recorded with the decision, and also when the check throws. */
  readonly action: string;
  /** Where refusals are written, with the peer and the rule it failed. */
  readonly logger?: Logger | undefined;
}

/** The context of a handler after a guard whose check hands it a `T`. */
export type GuardedEnv<T> = PeerEnv & { Variables: { target: T } };

/** The reasons a matcher's decision is audited with. */
export const MATCHER_REASONS = {
  allowed: 'identity_matched',
  denied: 'identity_not_matched',
} as const;

const AUTHORIZE_HANDLERS = new WeakSet<object>();

export function authorize(check: Matcher, options: AuthorizeOptions): MiddlewareHandler<PeerEnv>;
export function authorize<T>(
  check: RequestCheck<T>,
  options: AuthorizeOptions,
): MiddlewareHandler<GuardedEnv<T>>;
export function authorize<T>(
  check: Matcher | RequestCheck<T>,
  options: AuthorizeOptions,
): MiddlewareHandler<GuardedEnv<T>> | MiddlewareHandler<PeerEnv> {
  const decide = toDecide(check);
  const { logger, action } = options;
  if (typeof action !== 'string' || action === '') {
    throw new TypeError('authorize() needs the audit action of the route');
  }
  async function authorizeMiddleware(
    c: Context<GuardedEnv<T>>,
    next: Parameters<MiddlewareHandler>[1],
  ): Promise<void> {
    // The base app finds the peer first; without one, fail closed anyway.
    const peer = c.get('peer') as PeerEnv['Variables']['peer'] | undefined;
    if (peer === undefined) {
      throw new UnauthenticatedError();
    }
    let outcome: CheckOutcome<T>;
    try {
      outcome = decide(c as unknown as Context<PeerEnv>, peer.id);
    } catch (err) {
      // A malformed request is audited with the route's action too.
      setAudit(c, { action });
      throw err;
    }
    // One annotation: each one is a new object merged into the request's.
    const decision = { reason: outcome.reason, policy: outcome.policy ?? null };
    setAudit(
      c,
      outcome.resource === undefined
        ? { action, decision }
        : { action, resource: outcome.resource, decision },
    );
    if (!outcome.allowed) {
      refuseAccess(c, peer.id, { rule: check.description, reason: outcome.reason }, logger);
    }
    // Only now, for an admitted caller: a route that reads no body refuses
    // one rather than act as if it had not been sent.
    if (declaresBody(c) && !routeReadsBody(c)) {
      throw new InvalidRequestError('This route takes no request body');
    }
    c.set('target', outcome.target);
    await next();
  }
  AUTHORIZE_HANDLERS.add(authorizeMiddleware);
  return authorizeMiddleware;
}

/**
 * Refuses a request: the rule it failed and why go to the operational log,
 * never into the answer, and it throws `AccessDeniedError`. The guard calls
 * it, and so does a handler that decides on what only the body names (each
 * path of a watch over several), once it has audited the decision.
 */
export function refuseAccess(
  c: Context,
  peer: SpiffeId,
  refusal: { readonly rule: string; readonly reason: string; readonly resource?: string },
  logger: Logger | undefined,
): never {
  logger?.warn('Access denied', {
    peer: peer.toString(),
    method: c.req.method,
    path: c.req.path,
    ...(refusal.resource === undefined ? {} : { resource: refusal.resource }),
    rule: refusal.rule,
    reason: refusal.reason,
  });
  throw new AccessDeniedError();
}

/** The check as one function, after making sure it is a Matcher or a RequestCheck. */
function toDecide<T>(
  check: Matcher | RequestCheck<T>,
): (c: Context<PeerEnv>, peer: SpiffeId) => CheckOutcome<T> {
  if (typeof check === 'function' && typeof check.description === 'string') {
    return function decideByMatcher(_c, peer) {
      const isAllowed = check(peer);
      return {
        allowed: isAllowed,
        reason: isAllowed ? MATCHER_REASONS.allowed : MATCHER_REASONS.denied,
        target: undefined as T,
      };
    };
  }
  if (
    typeof check === 'object' &&
    check !== null &&
    typeof check.decide === 'function' &&
    typeof check.description === 'string' &&
    check.description !== ''
  ) {
    return function decideByRequest(c, peer) {
      return check.decide(c, peer);
    };
  }
  throw new TypeError(
    'authorize() takes a Matcher from shared/spiffe/match.ts or a RequestCheck with a description',
  );
}

/** Whether `handler` was created by `authorize()`. */
export function isAuthorizeHandler(handler: unknown): boolean {
  return typeof handler === 'function' && AUTHORIZE_HANDLERS.has(handler);
}
