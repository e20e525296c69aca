/**
 * Policy rows, both dialects: what a policy document becomes in the
 * `policies` table and how a row becomes a `StoredPolicy` again. Shared by
 * `SqlitePolicyStore` (SQLite) and `PgPolicyStore`, so both store and check
 * policies the same way. Pure.
 */
import { type PolicyDocument, parsePolicyDocument } from '../../shared/api/policies.ts';
import { InternalError, isBrokerError } from '../../shared/errors/errors.ts';
import type { StoredPolicy } from './policy_store.ts';

/** A `policies` row as either dialect reads it. */
export interface PolicyRowLike {
  readonly name: string;
  readonly spiffeIdPattern: string;
  readonly pathPattern: string;
  readonly permissions: string;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
}

/** The columns a create or replace writes besides the name and the times. */
export function policyRule(document: PolicyDocument): {
  readonly spiffeIdPattern: string;
  readonly pathPattern: string;
  readonly permissions: string;
} {
  return {
    spiffeIdPattern: document.spiffeIdPattern,
    pathPattern: document.pathPattern,
    permissions: JSON.stringify(document.permissions),
  };
}

/**
 * A row back into a StoredPolicy, checked with the same parser as a request:
 * a row edited by hand into something invalid is an internal error naming
 * the policy, never a half-read policy.
 */
export function toStoredPolicy(row: PolicyRowLike): StoredPolicy {
  let document: PolicyDocument;
  try {
    document = parsePolicyDocument({
      name: row.name,
      spiffeIdPattern: row.spiffeIdPattern,
      pathPattern: row.pathPattern,
      permissions: JSON.parse(row.permissions) as unknown,
    });
  } catch (err) {
    if (!isBrokerError(err) && !(err instanceof SyntaxError)) throw err;
    throw new InternalError(`Stored policy ${JSON.stringify(row.name)} is invalid`, {
      cause: err,
    });
  }
  return Object.freeze({
    ...document,
    createdAt: new Date(row.createdAtMs),
    updatedAt: new Date(row.updatedAtMs),
  });
}
