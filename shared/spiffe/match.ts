/**
 * Authorization matchers over parsed SPIFFE IDs. A matcher is a plain
 * predicate, `matcher(id)`, that also carries a `description` saying what it
 * expects, so that a refusal can be written to the audit log with the rule it
 * failed (never to the response). Comparisons are on parsed values only:
 * trust domains by name, paths byte for byte and never case-folded.
 */
import { SpiffeId, TrustDomain } from './spiffe_id.ts';

export interface Matcher {
  (id: SpiffeId): boolean;
  /** What the matcher admits, for logs: `id "spiffe://td/x"`, `member of "td"`, … */
  readonly description: string;
}

/** Admits every SPIFFE ID. Use only where another layer already decides. */
export function matchAny(): Matcher {
  return createMatcher('any SPIFFE ID', function matchesAny() {
    return true;
  });
}

/** Admits exactly one ID. */
export function matchId(expected: SpiffeId): Matcher {
  requireSpiffeId(expected, 'matchId()');
  return createMatcher(`id ${quoted(expected)}`, function matchesId(id) {
    return id.equals(expected);
  });
}

/** Admits any of the listed IDs; with none listed it admits nothing. */
export function matchOneOf(...expected: SpiffeId[]): Matcher {
  for (const id of expected) {
    requireSpiffeId(id, 'matchOneOf()');
  }
  const allowed = Object.freeze([...expected]);
  const list = allowed.map(quoted).join(', ');
  return createMatcher(`one of [${list}]`, function matchesOneOf(id) {
    return allowed.some((candidate) => candidate.equals(id));
  });
}

/** Admits every ID of one trust domain, including the trust domain's own ID. */
export function matchMemberOf(trustDomain: TrustDomain): Matcher {
  if (!(trustDomain instanceof TrustDomain)) {
    throw new TypeError('matchMemberOf() needs a TrustDomain from parseTrustDomain()');
  }
  return createMatcher(`member of ${JSON.stringify(trustDomain.name)}`, function matchesMember(id) {
    return id.isMemberOf(trustDomain);
  });
}

/**
 * SPIKE's role rule: admits `base` itself and any ID of the same trust domain
 * whose path continues base's path with more whole segments. So
 * `.../spike/nexus` admits `.../spike/nexus/pod-1` but not
 * `.../spike/nexus-evil` or `.../spike/nexusx/1`.
 *
 * The base must have a path: "a trust-domain ID or under it" would admit the
 * whole trust domain, which `matchMemberOf()` says explicitly, so a pathless
 * base is refused here as a likely configuration mistake.
 */
export function matchIdOrUnder(base: SpiffeId): Matcher {
  requireSpiffeId(base, 'matchIdOrUnder()');
  if (base.path === '') {
    throw new RangeError(
      `matchIdOrUnder() needs an ID with a path, got ${quoted(base)}: use matchMemberOf() for a whole trust domain`,
    );
  }
  // Paths are validated (no empty segments, no trailing slash), so a match on
  // `base.path + "/"` means one or more further non-empty segments.
  const prefix = `${base.path}/`;
  return createMatcher(`id ${quoted(base)} or under it`, function matchesIdOrUnder(id) {
    return (
      id.trustDomain.equals(base.trustDomain) &&
      (id.path === base.path || id.path.startsWith(prefix))
    );
  });
}

/** Admits an ID when at least one of the matchers does; with none it admits nothing. */
export function matchEither(...matchers: Matcher[]): Matcher {
  for (const matcher of matchers) {
    if (typeof matcher !== 'function' || typeof matcher.description !== 'string') {
      throw new TypeError('matchEither() takes matchers built by this module');
    }
  }
  const all = Object.freeze([...matchers]);
  const description =
    all.length === 0 ? 'nothing' : all.map((m) => `(${m.description})`).join(' or ');
  return createMatcher(description, function matchesEither(id) {
    return all.some((matcher) => matcher(id));
  });
}

function createMatcher(description: string, test: (id: SpiffeId) => boolean): Matcher {
  function matcher(id: SpiffeId): boolean {
    // Fail loudly on a programmer error instead of comparing a raw string.
    requireSpiffeId(id, 'A matcher');
    return test(id);
  }
  return Object.freeze(Object.assign(matcher, { description }));
}

function requireSpiffeId(value: unknown, where: string): void {
  if (!(value instanceof SpiffeId)) {
    throw new TypeError(`${where} needs a SpiffeId from parseSpiffeId(), not a raw value`);
  }
}

function quoted(id: SpiffeId): string {
  return JSON.stringify(id.toString());
}
