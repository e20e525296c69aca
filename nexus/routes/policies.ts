/**
 * The policy routes, each read left to right as guard → validate → act. The
 * guard asks the access checker for the route's permission on the reserved
 * path `sys/policies`: the superuser passes, and so does anyone a policy
 * grants that permission there. Authorization comes before any lookup, so a
 * refused caller cannot learn whether a policy exists (403, never 404).
 * Writes go through the policy cache, so the next request is decided with
 * the new policies.
 */
import { Hono } from 'hono';
import { validator } from 'hono/validator';
import { PATHS } from '../../shared/api/paths.ts';
import {
  type ListPoliciesResponse,
  type PolicyResponse,
  type PutPolicyRequest,
  parsePolicyName,
  parsePutPolicyRequest,
} from '../../shared/api/policies.ts';
import { NotFoundError } from '../../shared/errors/errors.ts';
import { setAudit } from '../../shared/http/audit.ts';
import { authorize, type RequestCheck } from '../../shared/http/authorize.ts';
import type { PeerEnv } from '../../shared/http/peer.ts';
import { validateJson } from '../../shared/http/validate.ts';
import type { Logger } from '../../shared/log/logger.ts';
import type { TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { type AccessChecker, POLICY_ADMIN_PATH } from '../access/check_access.ts';
import type { Permission } from '../access/permissions.ts';
import { policyForPut } from '../access/policy.ts';
import type { PolicyCache } from '../access/policy_cache.ts';
import type { PolicyStore, StoredPolicy } from '../store/policy_store.ts';

export interface PolicyRoutesDeps {
  readonly trustDomain: TrustDomain;
  readonly checker: AccessChecker;
  /** Every change goes through the cache, which writes the store and refreshes. */
  readonly cache: PolicyCache;
  /** Reads (with times) come straight from the store. */
  readonly store: PolicyStore;
  readonly logger: Logger;
}

/** The route of one policy: `/v1/policies/:name`. */
const POLICY_ROUTE = `${PATHS.policies}/:name`;

export function createPolicyRoutes(deps: PolicyRoutesDeps): Hono<PeerEnv> {
  const { trustDomain, checker, cache, store, logger } = deps;
  const routes = new Hono<PeerEnv>();

  /**
   * The guard, which also names the audit action, so denials and bad input
   * carry it too. It decides on the reserved path alone: the policy name is
   * validated after it, so a refused caller learns nothing about the name.
   */
  function mayManage(permission: Permission, action: string) {
    const check: RequestCheck<undefined> = {
      description: `permission ${JSON.stringify(permission)} on ${JSON.stringify(POLICY_ADMIN_PATH)} (superuser or a policy)`,
      decide(_c, peer) {
        return { ...checker.explain(peer, permission, POLICY_ADMIN_PATH), target: undefined };
      },
    };
    return authorize(check, { action, logger });
  }

  const validateName = validator('param', (params: Record<string, string>) => ({
    name: parsePolicyName(params.name),
  }));

  routes.get(PATHS.policies, mayManage('list', 'policy.list'), async function listPolicies(c) {
    const policies = await store.list();
    const body: ListPoliciesResponse = { policies: policies.map(toPolicyResponse) };
    return c.json(body);
  });

  routes.get(
    POLICY_ROUTE,
    mayManage('read', 'policy.read'),
    validateName,
    async function readPolicy(c) {
      const { name } = c.req.valid('param');
      setAudit(c, { resource: name });
      const stored = await store.get(name);
      if (stored === undefined) {
        throw new NotFoundError(`Policy ${JSON.stringify(name)} does not exist`);
      }
      return c.json(toPolicyResponse(stored) satisfies PolicyResponse);
    },
  );

  routes.put(
    POLICY_ROUTE,
    mayManage('write', 'policy.write'),
    validateName,
    validateJson<PutPolicyRequest, PeerEnv>(parsePutPolicyRequest),
    async function writePolicy(c) {
      const { name } = c.req.valid('param');
      setAudit(c, { resource: name });
      const policy = policyForPut(name, c.req.valid('json'), { trustDomain });
      const stored = await cache.upsert(policy);
      logger.info('Policy written', { peer: c.get('peer').id.toString(), policy: name });
      return c.json(toPolicyResponse(stored) satisfies PolicyResponse);
    },
  );

  routes.delete(
    POLICY_ROUTE,
    mayManage('delete', 'policy.delete'),
    validateName,
    async function deletePolicy(c) {
      const { name } = c.req.valid('param');
      setAudit(c, { resource: name });
      if (!(await cache.delete(name))) {
        throw new NotFoundError(`Policy ${JSON.stringify(name)} does not exist`);
      }
      logger.info('Policy deleted', { peer: c.get('peer').id.toString(), policy: name });
      return c.body(null, 204);
    },
  );

  return routes;
}

function toPolicyResponse(stored: StoredPolicy): PolicyResponse {
  return {
    name: stored.name,
    spiffeIdPattern: stored.spiffeIdPattern,
    pathPattern: stored.pathPattern,
    permissions: [...stored.permissions],
    createdAt: stored.createdAt.toISOString(),
    updatedAt: stored.updatedAt.toISOString(),
  };
}
