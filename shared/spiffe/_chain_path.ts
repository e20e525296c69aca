/**
 * Certification path building and validation for a peer's X509-SVID
 * (spiffe.md §2.2 step 8): from the leaf through the intermediates the peer
 * sent to a root of its trust domain's bundle, each link a real issuer with a
 * valid signature, and the whole path checked for CA flags, keyCertSign,
 * RSA key sizes, pathLenConstraint and validity. The search is bounded, so a hostile chain
 * cannot make it expensive.
 */
import { SvidInvalidError } from '../errors/errors.ts';
import { KU_KEY_CERT_SIGN, type ParsedCert } from './_cert_cache.ts';
import { checkKeyStrength } from './_svid_rules.ts';
import { bytesEqual } from './der.ts';

/** Upper bound on the path-building steps, whatever the chain looks like. */
const MAX_PATH_SEARCH_STEPS = 256;

export interface PathContext {
  readonly now: Date;
  /** Names the peer's SVID in messages. */
  readonly label: string;
  readonly trustDomain: string;
  /** Most certificates a path may hold, leaf and root included. */
  readonly maxLength: number;
}

/**
 * Builds paths leaf → intermediates → root, where each link is a node:crypto
 * `checkIssued` plus a signature check, and returns the first path that also
 * passes the constraint checks. If paths exist but none passes, the first
 * path's failure is reported, so the message says what is wrong (for example
 * an expired intermediate) rather than that no path exists.
 *
 * A root ends a path either because the peer sent it (exact DER equality) or
 * because it issued and signed the last certificate of the path.
 */
export function validatePath(
  leaf: ParsedCert,
  intermediates: readonly ParsedCert[],
  roots: readonly ParsedCert[],
  ctx: PathContext,
): ParsedCert[] {
  let firstFailure: SvidInvalidError | undefined;
  let steps = 0;
  const path: ParsedCert[] = [leaf];
  // A certificate sent twice is one object (from the cache), so used once.
  const used = new Set<ParsedCert>([leaf]);
  // Memo of issuer checks for this call: child → (issuer → result).
  const memo = new Map<ParsedCert, Map<ParsedCert, boolean>>();

  function issued(child: ParsedCert, issuer: ParsedCert): boolean {
    let results = memo.get(child);
    if (results === undefined) {
      results = new Map();
      memo.set(child, results);
    }
    let result = results.get(issuer);
    if (result === undefined) {
      result = isIssuedBy(child, issuer);
      results.set(issuer, result);
    }
    return result;
  }

  // Returns a valid path, or undefined to keep searching.
  function extend(): ParsedCert[] | undefined {
    steps += 1;
    if (steps > MAX_PATH_SEARCH_STEPS) {
      throw new SvidInvalidError(
        `${ctx.label} has a certificate chain too tangled to verify within ${MAX_PATH_SEARCH_STEPS} steps`,
      );
    }
    const current = path[path.length - 1] as ParsedCert;
    const candidates: ParsedCert[][] = [];
    if (path.length > 1) {
      const sentRoot = roots.find((root) => bytesEqual(root.info.der, current.info.der));
      if (sentRoot !== undefined) {
        candidates.push([...path.slice(0, -1), sentRoot]);
      }
    }
    if (candidates.length === 0 && path.length < ctx.maxLength) {
      for (const root of roots) {
        if (issued(current, root)) {
          candidates.push([...path, root]);
        }
      }
    }
    for (const candidate of candidates) {
      try {
        checkPath(candidate, ctx);
        return candidate;
      } catch (err) {
        if (!(err instanceof SvidInvalidError)) {
          throw err;
        }
        firstFailure ??= err;
      }
    }
    // Nothing follows a root, and a path never grows past the cap.
    if (candidates.length > 0 || path.length >= ctx.maxLength) {
      return undefined;
    }
    for (const next of intermediates) {
      if (used.has(next) || !issued(current, next)) {
        continue;
      }
      used.add(next);
      path.push(next);
      const found = extend();
      path.pop();
      used.delete(next);
      if (found !== undefined) {
        return found;
      }
    }
    return undefined;
  }

  const found = extend();
  if (found !== undefined) {
    return found;
  }
  throw (
    firstFailure ??
    new SvidInvalidError(
      `${ctx.label} does not chain to a root of trust domain "${ctx.trustDomain}"`,
    )
  );
}

/**
 * Constraint checks on a complete path (leaf first, root last): every issuer
 * is a CA with keyCertSign (a root may omit keyUsage, as RFC 5280 trust
 * anchors may) and a key that is not too weak, pathLenConstraint holds, and every certificate is within its
 * validity window at `now`.
 */
function checkPath(path: readonly ParsedCert[], ctx: PathContext): void {
  const last = path.length - 1;
  for (let i = 1; i < path.length; i++) {
    const info = (path[i] as ParsedCert).info;
    const what = describeInPath(i, last, ctx);
    if (!info.isCa) {
      throw new SvidInvalidError(`${what} is not a CA certificate`);
    }
    const mayOmitKeyUsage = i === last && info.keyUsage === undefined;
    if (!mayOmitKeyUsage && ((info.keyUsage ?? 0) & KU_KEY_CERT_SIGN) === 0) {
      throw new SvidInvalidError(`${what} lacks the keyCertSign key usage`);
    }
    checkKeyStrength(info, what);
    // Intermediates below this issuer, not counting the leaf (RFC 5280 §4.2.1.9).
    const below = i - 1;
    if (info.pathLength !== undefined && below > info.pathLength) {
      throw new SvidInvalidError(
        `${what} allows ${info.pathLength} intermediate certificates below it, but the path has ${below}`,
      );
    }
  }
  for (let i = 0; i < path.length; i++) {
    const info = (path[i] as ParsedCert).info;
    if (ctx.now > info.notAfter) {
      throw new SvidInvalidError(
        `${describeInPath(i, last, ctx)} has expired: it was valid until ${info.notAfter.toISOString()}`,
      );
    }
    if (ctx.now < info.notBefore) {
      throw new SvidInvalidError(
        `${describeInPath(i, last, ctx)} is not yet valid: it is valid from ${info.notBefore.toISOString()}`,
      );
    }
  }
}

function describeInPath(index: number, last: number, ctx: PathContext): string {
  if (index === 0) {
    return ctx.label;
  }
  if (index === last) {
    return `Root certificate of trust domain "${ctx.trustDomain}" for ${ctx.label}`;
  }
  return `Intermediate certificate ${index} of ${ctx.label}`;
}

/**
 * Whether `child` names `issuer` as its issuer and carries its valid signature.
 * The exact name match comes first because OpenSSL's `checkIssued` also
 * refuses an issuer without keyCertSign; `checkPath` reports that case by name
 * instead of as a missing path. The signature check decides either way.
 */
function isIssuedBy(child: ParsedCert, issuer: ParsedCert): boolean {
  try {
    if (child.node.issuer !== issuer.node.subject && !child.node.checkIssued(issuer.node)) {
      return false;
    }
    return child.node.verify(issuer.publicKey);
  } catch {
    return false;
  }
}
