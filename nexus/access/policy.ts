/**
 * An access policy: which SPIFFE IDs (a pattern) may do what (permissions)
 * on which paths (a pattern). Patterns are compiled once, when a policy is
 * parsed, so checking access never parses anything. A Policy is immutable
 * and can only come from `parsePolicy()` or `policyForPut()`.
 */
import {
  type PolicyDocument,
  type PutPolicyRequest,
  parsePolicyDocument,
} from '../../shared/api/policies.ts';
import { InvalidRequestError } from '../../shared/errors/errors.ts';
import type { SpiffeId, TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import {
  type PathPattern,
  type PathSegments,
  parsePathPattern,
  parseSpiffeIdPattern,
  type SpiffeIdPattern,
} from './pattern.ts';
import { KEY_ROOT, KEY_USE_PERMISSIONS, type Permission } from './permissions.ts';

/** Where keys are named in policies, as segments. */
const KEY_SEGMENTS = KEY_ROOT.split('/');

// A module-private token so that only the parsers below can build policies.
const CONSTRUCT = Symbol('construct');

export class Policy {
  /** 1..64 characters of letters, digits, `.`, `_` and `-`. */
  readonly name: string;
  readonly spiffeIdPattern: SpiffeIdPattern;
  readonly pathPattern: PathPattern;
  /** Non-empty, without duplicates, in the order of `PERMISSIONS`. */
  readonly permissions: readonly Permission[];
  readonly #granted: ReadonlySet<Permission>;

  constructor(
    token: typeof CONSTRUCT,
    name: string,
    spiffeIdPattern: SpiffeIdPattern,
    pathPattern: PathPattern,
    permissions: readonly Permission[],
  ) {
    if (token !== CONSTRUCT) {
      throw new TypeError('Use parsePolicy() to create a Policy');
    }
    this.name = name;
    this.spiffeIdPattern = spiffeIdPattern;
    this.pathPattern = pathPattern;
    this.permissions = Object.freeze([...permissions]);
    this.#granted = new Set(permissions);
    Object.freeze(this);
  }

  /** Whether the policy grants `permission`, directly or through `super`. */
  grants(permission: Permission): boolean {
    return this.#granted.has(permission) || this.#granted.has('super');
  }

  /** Whether `peer` is one of the IDs the policy speaks for. */
  appliesTo(peer: SpiffeId): boolean {
    return this.spiffeIdPattern.matches(peer);
  }

  /** Whether `path` is one of the paths the policy covers. */
  covers(path: string): boolean {
    return this.pathPattern.matches(path);
  }

  /** `covers()` for a path already split by `splitPath()` (see PathPattern.matchesSegments). */
  coversSegments(segments: PathSegments): boolean {
    return this.pathPattern.matchesSegments(segments);
  }

  /** The policy as written: the wire and storage shape. */
  toDocument(): PolicyDocument {
    return {
      name: this.name,
      spiffeIdPattern: this.spiffeIdPattern.source,
      pathPattern: this.pathPattern.source,
      permissions: [...this.permissions],
    };
  }

  toJSON(): PolicyDocument {
    return this.toDocument();
  }
}

export interface ParsePolicyOptions {
  /**
   * The trust domain this Nexus serves. When given, a SPIFFE ID pattern of
   * another trust domain is refused: it could never match a peer.
   */
  readonly trustDomain?: TrustDomain;
}

/**
 * Parses the wire shape `{ name, spiffeIdPattern, pathPattern, permissions }`
 * strictly and compiles its patterns. Every problem is an
 * InvalidRequestError that names the field or the pattern.
 */
export function parsePolicy(input: unknown, options: ParsePolicyOptions = {}): Policy {
  return compile(parsePolicyDocument(input), options);
}

/**
 * The policy a `PUT /v1/policies/{name}` describes: the name comes from the
 * path, and a body that names a policy must name the same one.
 */
export function policyForPut(
  name: string,
  request: PutPolicyRequest,
  options: ParsePolicyOptions = {},
): Policy {
  if (request.name !== undefined && request.name !== name) {
    throw new InvalidRequestError(
      `Field "name" is ${JSON.stringify(request.name)} but the path names policy ${JSON.stringify(name)}: leave it out or make them equal`,
    );
  }
  const { spiffeIdPattern, pathPattern, permissions } = request;
  return parsePolicy({ name, spiffeIdPattern, pathPattern, permissions }, options);
}

function compile(document: PolicyDocument, options: ParsePolicyOptions): Policy {
  const spiffeIdPattern = parseSpiffeIdPattern(document.spiffeIdPattern);
  const { trustDomain } = options;
  if (trustDomain !== undefined && !spiffeIdPattern.trustDomain.equals(trustDomain)) {
    throw new InvalidRequestError(
      `SPIFFE ID pattern ${JSON.stringify(document.spiffeIdPattern)} is of trust domain ${JSON.stringify(spiffeIdPattern.trustDomain.name)}, but this Nexus serves ${JSON.stringify(trustDomain.name)}`,
    );
  }
  const pathPattern = parsePathPattern(document.pathPattern);
  const permissions: readonly Permission[] = document.permissions;
  const keyUses = permissions.filter((permission) => KEY_USE_PERMISSIONS.includes(permission));
  if (
    keyUses.length > 0 &&
    !(pathPattern.startsWithLiteral('sys') && pathPattern.canMatchUnder(KEY_SEGMENTS))
  ) {
    // Granted on secrets they would mean nothing: refused, not ignored.
    throw new InvalidRequestError(
      `Permission ${keyUses.map((p) => JSON.stringify(p)).join(', ')} applies to named keys only, but path pattern ${JSON.stringify(document.pathPattern)} can match no key: name keys as "sys/keys/<name>" (for example "sys/keys/orders" or "sys/keys/*")`,
    );
  }
  return new Policy(CONSTRUCT, document.name, spiffeIdPattern, pathPattern, permissions);
}
