/**
 * Wire contract of the policy routes:
 *
 * | Route | Permission on `sys/policies` | What |
 * |---|---|---|
 * | `GET /v1/policies` | list | every policy, by name |
 * | `GET /v1/policies/{name}` | read | one policy |
 * | `PUT /v1/policies/{name}` | write | create or replace (200 with the policy) |
 * | `DELETE /v1/policies/{name}` | delete | remove (204; 404 if absent) |
 *
 * These parsers check shape only (fields, types, names, permissions). What a
 * pattern means, and whether it is valid, is Nexus's business
 * (`nexus/access/pattern.ts`), which refuses a bad one with a 400 too.
 * Parsers are strict: unknown fields and wrong types are refused with an
 * InvalidRequestError naming the field.
 */
import { InvalidRequestError } from '../errors/errors.ts';
import { PATHS } from './paths.ts';

/**
 * What a policy may grant. Mirrors `PERMISSIONS` in nexus/access/permissions.ts
 * (the contract cannot import Nexus); a test there keeps the two equal.
 */
export const POLICY_PERMISSIONS = [
  'read',
  'write',
  'list',
  'delete',
  'encrypt',
  'decrypt',
  'rewrap',
  'hmac',
  'super',
] as const;
export type PolicyPermission = (typeof POLICY_PERMISSIONS)[number];

export const MAX_POLICY_NAME_LENGTH = 64;
const POLICY_NAME_REGEXP = /^[A-Za-z0-9._-]+$/;
/** Raw pattern strings are bounded here; nexus/access/pattern.ts bounds them more tightly. */
export const MAX_POLICY_PATTERN_LENGTH = 2048;

/** A policy as written by its author. */
export interface PolicyDocument {
  readonly name: string;
  readonly spiffeIdPattern: string;
  readonly pathPattern: string;
  /** Non-empty, no duplicates, in the order of `POLICY_PERMISSIONS`. */
  readonly permissions: readonly PolicyPermission[];
}

/** `PUT /v1/policies/{name}` body: the name may be left out, or must equal the path's. */
export interface PutPolicyRequest {
  readonly name?: string;
  readonly spiffeIdPattern: string;
  readonly pathPattern: string;
  readonly permissions: readonly PolicyPermission[];
}

/** A stored policy, as every policy route answers it. */
export interface PolicyResponse extends PolicyDocument {
  /** ISO 8601; kept when the policy is replaced. */
  readonly createdAt: string;
  /** ISO 8601; the last create or replace. */
  readonly updatedAt: string;
}

/** `GET /v1/policies`: every policy, sorted by name. */
export interface ListPoliciesResponse {
  readonly policies: readonly PolicyResponse[];
}

const DOCUMENT_FIELDS = ['name', 'spiffeIdPattern', 'pathPattern', 'permissions'] as const;
const PUT_FIELDS = DOCUMENT_FIELDS;
const RESPONSE_FIELDS = [...DOCUMENT_FIELDS, 'createdAt', 'updatedAt'] as const;

/** 1..64 characters of letters, digits, `.`, `_` and `-`; never `.` or `..`. */
export function parsePolicyName(value: unknown, field = 'name'): string {
  if (typeof value !== 'string' || value === '') {
    throw new InvalidRequestError(`Field "${field}" must be a non-empty string`);
  }
  if (value.length > MAX_POLICY_NAME_LENGTH) {
    throw new InvalidRequestError(
      `Field "${field}" must be at most ${MAX_POLICY_NAME_LENGTH} characters (got ${value.length})`,
    );
  }
  if (!POLICY_NAME_REGEXP.test(value)) {
    throw new InvalidRequestError(
      `Field "${field}" may contain only letters, digits, ".", "_" and "-"`,
    );
  }
  // A URL path segment of "." or ".." is resolved away by clients.
  if (value === '.' || value === '..') {
    throw new InvalidRequestError(`Field "${field}" must not be "." or ".."`);
  }
  return value;
}

/** The full policy shape `{ name, spiffeIdPattern, pathPattern, permissions }`, strictly. */
export function parsePolicyDocument(body: unknown): PolicyDocument {
  const fields = objectWith(body, DOCUMENT_FIELDS);
  return {
    name: parsePolicyName(fields.name),
    ...ruleOf(fields),
  };
}

/** The PUT body: a policy document whose `name` is optional. */
export function parsePutPolicyRequest(body: unknown): PutPolicyRequest {
  const fields = objectWith(body, PUT_FIELDS);
  const rule = ruleOf(fields);
  return fields.name === undefined ? rule : { name: parsePolicyName(fields.name), ...rule };
}

/** One policy as Nexus answers it (Pilot checks responses with this). */
export function parsePolicyResponse(body: unknown): PolicyResponse {
  const fields = objectWith(body, RESPONSE_FIELDS);
  return {
    name: parsePolicyName(fields.name),
    ...ruleOf(fields),
    createdAt: timestampOf(fields.createdAt, 'createdAt'),
    updatedAt: timestampOf(fields.updatedAt, 'updatedAt'),
  };
}

export function parseListPoliciesResponse(body: unknown): ListPoliciesResponse {
  const fields = objectWith(body, ['policies']);
  if (!Array.isArray(fields.policies)) {
    throw new InvalidRequestError('Field "policies" must be an array');
  }
  return { policies: fields.policies.map(parsePolicyResponse) };
}

/** The route path of one policy: `/v1/policies/{name}`. */
export function policyPath(name: string): string {
  return `${PATHS.policies}/${parsePolicyName(name)}`;
}

/** Checks that `body` is an object with only the `allowed` keys. */
function objectWith(body: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError('The body must be a JSON object');
  }
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) {
      // A policy holds no secret data, so the name helps; but cut, since it is the caller's text.
      throw new InvalidRequestError(`Unknown field ${JSON.stringify(key.slice(0, 64))}`);
    }
  }
  return body as Record<string, unknown>;
}

function ruleOf(fields: Record<string, unknown>): Omit<PolicyDocument, 'name'> {
  return {
    spiffeIdPattern: patternOf(fields.spiffeIdPattern, 'spiffeIdPattern'),
    pathPattern: patternOf(fields.pathPattern, 'pathPattern'),
    permissions: permissionsOf(fields.permissions),
  };
}

function patternOf(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new InvalidRequestError(`Field "${field}" must be a non-empty string`);
  }
  if (value.length > MAX_POLICY_PATTERN_LENGTH) {
    throw new InvalidRequestError(
      `Field "${field}" must be at most ${MAX_POLICY_PATTERN_LENGTH} characters`,
    );
  }
  return value;
}

function permissionsOf(value: unknown): PolicyPermission[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new InvalidRequestError(
      `Field "permissions" must be a non-empty array of ${POLICY_PERMISSIONS.map((p) => `"${p}"`).join(', ')}`,
    );
  }
  const seen = new Set<PolicyPermission>();
  for (const item of value) {
    if (!isPolicyPermission(item)) {
      throw new InvalidRequestError(
        `Field "permissions" may hold only ${POLICY_PERMISSIONS.map((p) => `"${p}"`).join(', ')}`,
      );
    }
    if (seen.has(item)) {
      throw new InvalidRequestError(`Field "permissions" lists "${item}" more than once`);
    }
    seen.add(item);
  }
  return POLICY_PERMISSIONS.filter((permission) => seen.has(permission));
}

function isPolicyPermission(value: unknown): value is PolicyPermission {
  return typeof value === 'string' && (POLICY_PERMISSIONS as readonly string[]).includes(value);
}

function timestampOf(value: unknown, field: string): string {
  if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) {
    throw new InvalidRequestError(`Field "${field}" must be an ISO 8601 time`);
  }
  return value;
}
