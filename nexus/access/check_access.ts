/**
 * The access decision of Nexus: may this peer do this on this path? Pure: the
 * policies come from a synchronous source (the policy cache), so deciding
 * never waits on the database.
 *
 * Rules, in order:
 * 1. A peer of another trust domain gets nothing.
 * 2. A path that is not well-formed gets nothing (fail closed).
 * 3. The Pilot superuser role (its ID or an ID under it) may do everything
 *    on secrets and policies.
 * 4. The recover and restore roles get nothing here: they have their
 *    operator routes only.
 * 5. Otherwise deny, unless some single policy's SPIFFE ID pattern matches
 *    the peer, its path pattern matches the path, and it grants the
 *    permission (or `super`).
 *
 * Paths under `sys/` are reserved for Nexus itself: `sys/policies` stands for
 * policy management (so a policy can delegate it), and no secret may live
 * there. A policy reaches a reserved path only when its path pattern starts
 * with the literal segment `sys`: wildcards never cross into the reserved
 * namespace, so `**` with `super` does not quietly make someone a policy
 * admin (SPIKE's ADR-0033 closes the same hole differently).
 *
 * Every decision says why, as a short code the guard writes to the audit
 * event (never to a response), with the name of the policy that granted.
 */
import {
  isPilotRecover,
  isPilotRestore,
  isPilotSuperuser,
} from '../../shared/spiffe/identities.ts';
import { SpiffeId, type TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { EVERYWHERE, type PathReach, splitPath } from './pattern.ts';
import { PERMISSIONS, type Permission } from './permissions.ts';
import type { Policy } from './policy.ts';

/** The first segment of every reserved path. */
export const RESERVED_ROOT = 'sys';
/** The path that stands for policy management: `list`, `read`, `write`, `delete`. */
export const POLICY_ADMIN_PATH = 'sys/policies';

/** Whether `path` is `sys` or lies under `sys/`, where no secret may live. */
export function isReservedPath(path: string): boolean {
  return path === RESERVED_ROOT || path.startsWith(`${RESERVED_ROOT}/`);
}

/** Why a request was allowed or denied; audited, never answered. */
export type AccessReason =
  /** Allowed: the Pilot superuser role. */
  | 'superuser'
  /** Allowed: the policy named in `policy` grants it. */
  | 'policy'
  /** Allowed to list: any member of the trust domain; each listed path is then checked. */
  | 'trust_domain_member'
  /** Denied: no policy grants the permission on the path. */
  | 'no_matching_policy'
  /** Denied: the recover and restore roles have their operator routes only. */
  | 'operator_role'
  /** Denied: the peer is of another trust domain. */
  | 'foreign_trust_domain'
  /** Denied: the path is not well-formed. */
  | 'malformed_path';

export interface AccessDecision {
  readonly allowed: boolean;
  readonly reason: AccessReason;
  /** The name of the policy that allowed the request, if one did. */
  readonly policy?: string;
}

export interface AccessChecker {
  isAllowed(peer: SpiffeId, permission: Permission, path: string): boolean;
  /** The same decision, with its reason and the policy that granted. */
  explain(peer: SpiffeId, permission: Permission, path: string): AccessDecision;
  /**
   * Whether the peer may list at all: any member of the trust domain but the
   * recover and restore roles. What it then sees is checked path by path
   * (`list_visible.ts`).
   */
  explainList(peer: SpiffeId): AccessDecision;
  /**
   * Where the paths the peer may list lie: every path outside `sys/` for
   * which `isAllowed(peer, 'list', path)` holds is in one of these reaches,
   * so a listing need read nowhere else. Empty when the peer may list
   * nothing (no policy grants it `list`); `[EVERYWHERE]` for the superuser.
   */
  listReach(peer: SpiffeId): readonly PathReach[];
}

export interface AccessCheckerOptions {
  readonly trustDomain: TrustDomain;
  /** The current policies; called on every check, so it must be synchronous and cheap. */
  readonly policies: () => readonly Policy[];
}

export function createAccessChecker(options: AccessCheckerOptions): AccessChecker {
  const { trustDomain, policies } = options;
  if (typeof policies !== 'function') {
    throw new TypeError('createAccessChecker() needs a policies() function');
  }
  const isSuperuser = isPilotSuperuser(trustDomain);
  const isRecover = isPilotRecover(trustDomain);
  const isRestore = isPilotRestore(trustDomain);

  function requirePeer(peer: SpiffeId): void {
    if (!(peer instanceof SpiffeId)) {
      throw new TypeError('An access check needs a SpiffeId from parseSpiffeId()');
    }
  }

  function explain(peer: SpiffeId, permission: Permission, path: string): AccessDecision {
    requirePeer(peer);
    if (!(PERMISSIONS as readonly string[]).includes(permission)) {
      throw new TypeError(`Unknown permission ${JSON.stringify(permission)}`);
    }
    if (!peer.isMemberOf(trustDomain)) {
      return deny('foreign_trust_domain');
    }
    // Split once: every policy below matches these segments.
    const segments = typeof path === 'string' ? splitPath(path) : undefined;
    if (segments === undefined) {
      return deny('malformed_path');
    }
    if (isSuperuser(peer)) {
      return { allowed: true, reason: 'superuser' };
    }
    if (isRecover(peer) || isRestore(peer)) {
      return deny('operator_role');
    }
    const isReserved = isReservedPath(path);
    for (const policy of policies()) {
      if (
        policy.grants(permission) &&
        (!isReserved || policy.pathPattern.startsWithLiteral(RESERVED_ROOT)) &&
        policy.appliesTo(peer) &&
        policy.coversSegments(segments)
      ) {
        return { allowed: true, reason: 'policy', policy: policy.name };
      }
    }
    return deny('no_matching_policy');
  }

  function explainList(peer: SpiffeId): AccessDecision {
    requirePeer(peer);
    if (!peer.isMemberOf(trustDomain)) {
      return deny('foreign_trust_domain');
    }
    if (isSuperuser(peer)) {
      return { allowed: true, reason: 'superuser' };
    }
    if (isRecover(peer) || isRestore(peer)) {
      return deny('operator_role');
    }
    return { allowed: true, reason: 'trust_domain_member' };
  }

  function listReach(peer: SpiffeId): readonly PathReach[] {
    // Who may list at all is explainList's rule; only a member's reach
    // depends on its policies.
    const admitted = explainList(peer);
    if (!admitted.allowed) return [];
    if (admitted.reason === 'superuser') return [EVERYWHERE];
    const reaches: PathReach[] = [];
    for (const policy of policies()) {
      // A pattern that starts with `sys` reaches reserved paths only, which
      // are never listed; the rest reach what `explain` could allow.
      if (
        policy.grants('list') &&
        !policy.pathPattern.startsWithLiteral(RESERVED_ROOT) &&
        policy.appliesTo(peer)
      ) {
        reaches.push(policy.pathPattern.reach());
      }
    }
    return reaches;
  }

  return {
    explain,
    explainList,
    listReach,
    isAllowed(peer, permission, path) {
      return explain(peer, permission, path).allowed;
    },
  };
}

function deny(reason: AccessReason): AccessDecision {
  return { allowed: false, reason };
}
