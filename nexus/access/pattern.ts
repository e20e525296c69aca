/**
 * The pattern language of access policies, for secret paths and for SPIFFE
 * IDs alike: anchored globs on whole segments, never regular expressions, so
 * a pattern cannot grant more than it visibly says (SPIKE's unanchored
 * regexes let `secrets/db/*` match `test/secrets/db/x`; its ADR-0033).
 *
 * - A literal segment (`db`, `app.v2`) matches exactly itself, byte for byte.
 * - `*` matches exactly one segment, whatever it is.
 * - `**` matches zero or more segments.
 * - A wildcard is always a whole segment: `db*`, `a/**b` and `*.prod` are
 *   refused, not given a meaning.
 * - The whole string must match: `secrets/db/*` matches `secrets/db/x` only,
 *   not `test/secrets/db/x`, `secrets/db` or `secrets/db/x/y`.
 *
 * A SPIFFE ID pattern is `spiffe://<trust domain>[/<path pattern>]`. The
 * trust domain is literal (no wildcards there) and the path after it uses
 * the globs above on the ID's path segments.
 */
import { InvalidRequestError, isBrokerError } from '../../shared/errors/errors.ts';
import { parseTrustDomain, SpiffeId, type TrustDomain } from '../../shared/spiffe/spiffe_id.ts';

/** The wildcard segment that matches exactly one segment. */
export const ONE_SEGMENT = '*';
/** The wildcard segment that matches zero or more segments. */
export const ANY_SEGMENTS = '**';

/** Bounds: those of a secret path (shared/api/secret_path.ts). */
export const MAX_PATH_PATTERN_LENGTH = 512;
export const MAX_PATH_PATTERN_SEGMENTS = 32;
/** A SPIFFE ID is at most 2048 bytes, so a pattern for one need not be longer. */
export const MAX_SPIFFE_ID_PATTERN_LENGTH = 2048;

const SPIFFE_SCHEME = 'spiffe://';
const LITERAL_SEGMENT_REGEXP = /^[A-Za-z0-9._-]+$/;

/**
 * Where the paths a pattern can match lie, in the terms a store selects by:
 * `base` is the pattern's literal segments before its first wildcard,
 * `self` says whether `base` itself can match and `below` whether paths
 * under `base/` can. An empty `base` (a pattern that starts with a wildcard)
 * reaches every path. A superset: `a/*` followed by `/b` still reaches
 * everything under `a/`.
 */
export interface PathReach {
  readonly base: string;
  readonly self: boolean;
  readonly below: boolean;
}

/** The reach of every path: that of `**`, and of the superuser. */
export const EVERYWHERE: PathReach = Object.freeze({ base: '', self: false, below: true });

// A module-private token so that only the parsers below can build patterns.
const CONSTRUCT = Symbol('construct');

/** A compiled path pattern; build one with `parsePathPattern()`. */
export class PathPattern {
  /** The pattern as written. */
  readonly source: string;
  /** Its segments: literals, `*` and `**`. */
  readonly segments: readonly string[];

  constructor(token: typeof CONSTRUCT, source: string, segments: readonly string[]) {
    if (token !== CONSTRUCT) {
      throw new TypeError('Use parsePathPattern() to create a PathPattern');
    }
    this.source = source;
    this.segments = Object.freeze([...segments]);
    Object.freeze(this);
  }

  /**
   * Whether the whole of `path` matches. A string that is not a well-formed
   * path (empty, empty or dot segments, other characters) never matches.
   */
  matches(path: string): boolean {
    const segments = splitPath(path);
    return segments !== undefined && matchSegments(this.segments, segments);
  }

  /**
   * `matches()` for a path already split by `splitPath()`: an access check
   * splits the request's path once, not once for each policy.
   */
  matchesSegments(segments: PathSegments): boolean {
    return matchSegments(this.segments, segments);
  }

  /**
   * Where the paths this pattern matches lie (see `PathReach`), so that a
   * listing reads only there: `a/b` reaches `a/b` alone; `a/*`, and `a/**`
   * followed by more segments, reach the paths under `a/`; `a/**` alone
   * reaches those and `a` itself.
   */
  reach(): PathReach {
    const firstWildcard = this.segments.findIndex(isWildcard);
    if (firstWildcard === -1) {
      return { base: this.source, self: true, below: false };
    }
    if (firstWildcard === 0) {
      return EVERYWHERE;
    }
    return {
      base: this.segments.slice(0, firstWildcard).join('/'),
      // Only `**` matches zero segments, so only a tail of `**` can stop at the base.
      self: this.segments.slice(firstWildcard).every((segment) => segment === ANY_SEGMENTS),
      below: true,
    };
  }

  /**
   * Whether some path of one more segment under `prefix` (`sys/keys/x` for
   * `['sys', 'keys']`) matches. The segment after the prefix is either a
   * wildcard's or one of the pattern's literals, so those (and one stand-in)
   * are the only names worth trying.
   */
  canMatchUnder(prefix: readonly string[]): boolean {
    const names = new Set(this.segments.filter((segment) => !isWildcard(segment)));
    names.add('x');
    for (const name of names) {
      if (matchSegments(this.segments, [...prefix, name])) return true;
    }
    return false;
  }

  /** Whether the pattern begins with the literal segment `segment`. */
  startsWithLiteral(segment: string): boolean {
    return this.segments[0] === segment;
  }

  toString(): string {
    return this.source;
  }

  toJSON(): string {
    return this.source;
  }
}

/** A compiled SPIFFE ID pattern; build one with `parseSpiffeIdPattern()`. */
export class SpiffeIdPattern {
  readonly source: string;
  /** The one trust domain whose IDs can match. */
  readonly trustDomain: TrustDomain;
  /** The globs over the ID's path segments; empty matches the trust-domain ID only. */
  readonly segments: readonly string[];

  constructor(
    token: typeof CONSTRUCT,
    source: string,
    trustDomain: TrustDomain,
    segments: readonly string[],
  ) {
    if (token !== CONSTRUCT) {
      throw new TypeError('Use parseSpiffeIdPattern() to create a SpiffeIdPattern');
    }
    this.source = source;
    this.trustDomain = trustDomain;
    this.segments = Object.freeze([...segments]);
    Object.freeze(this);
  }

  /** Whether `id` is of this trust domain and its whole path matches. */
  matches(id: SpiffeId): boolean {
    if (!(id instanceof SpiffeId)) {
      throw new TypeError('SpiffeIdPattern.matches() needs a SpiffeId from parseSpiffeId()');
    }
    return (
      id.trustDomain.equals(this.trustDomain) && matchSegments(this.segments, id.pathSegments())
    );
  }

  toString(): string {
    return this.source;
  }

  toJSON(): string {
    return this.source;
  }
}

/**
 * Parses a path pattern such as `apps/*` or `secrets/db/**`, or throws an
 * `InvalidRequestError` that names the pattern and what is wrong with it.
 */
export function parsePathPattern(source: unknown): PathPattern {
  if (typeof source !== 'string' || source === '') {
    throw new InvalidRequestError('A path pattern must be a non-empty string');
  }
  if (source.length > MAX_PATH_PATTERN_LENGTH) {
    throw new InvalidRequestError(
      `Path pattern ${quote(source)} is longer than ${MAX_PATH_PATTERN_LENGTH} characters`,
    );
  }
  const segments = source.split('/');
  if (segments.length > MAX_PATH_PATTERN_SEGMENTS) {
    throw new InvalidRequestError(
      `Path pattern ${quote(source)} has more than ${MAX_PATH_PATTERN_SEGMENTS} segments`,
    );
  }
  const problem = segmentsProblem(segments);
  if (problem !== undefined) {
    throw new InvalidRequestError(`Path pattern ${quote(source)} is invalid: ${problem}`);
  }
  return new PathPattern(CONSTRUCT, source, segments);
}

/**
 * Parses `spiffe://<trust domain>[/<path pattern>]` or throws an
 * `InvalidRequestError` that names the pattern and what is wrong with it.
 */
export function parseSpiffeIdPattern(source: unknown): SpiffeIdPattern {
  if (typeof source !== 'string' || source === '') {
    throw new InvalidRequestError('A SPIFFE ID pattern must be a non-empty string');
  }
  if (source.length > MAX_SPIFFE_ID_PATTERN_LENGTH) {
    throw new InvalidRequestError(
      `SPIFFE ID pattern ${quote(source)} is longer than ${MAX_SPIFFE_ID_PATTERN_LENGTH} characters`,
    );
  }
  if (!source.startsWith(SPIFFE_SCHEME)) {
    throw new InvalidRequestError(
      `SPIFFE ID pattern ${quote(source)} is invalid: it must start with "spiffe://"`,
    );
  }
  const rest = source.slice(SPIFFE_SCHEME.length);
  const slash = rest.indexOf('/');
  const name = slash === -1 ? rest : rest.slice(0, slash);
  if (name.includes('*')) {
    throw new InvalidRequestError(
      `SPIFFE ID pattern ${quote(source)} is invalid: the trust domain must be literal, without wildcards`,
    );
  }
  let trustDomain: TrustDomain;
  try {
    trustDomain = parseTrustDomain(name);
  } catch (err) {
    if (!isBrokerError(err)) throw err;
    throw new InvalidRequestError(
      `SPIFFE ID pattern ${quote(source)} is invalid: its trust domain ${quote(name)} is not a valid trust domain name`,
      { cause: err },
    );
  }
  if (slash === -1) {
    return new SpiffeIdPattern(CONSTRUCT, source, trustDomain, []);
  }
  const segments = rest.slice(slash + 1).split('/');
  const problem = segmentsProblem(segments);
  if (problem !== undefined) {
    throw new InvalidRequestError(`SPIFFE ID pattern ${quote(source)} is invalid: ${problem}`);
  }
  return new SpiffeIdPattern(CONSTRUCT, source, trustDomain, segments);
}

declare const CHECKED: unique symbol;
/**
 * The segments of a well-formed path, as only `splitPath()` makes them: the
 * type lets `matchesSegments()` skip the checks without trusting a raw
 * `path.split('/')`, in which `*` would match `''` or `..`.
 */
export type PathSegments = readonly string[] & { readonly [CHECKED]: true };

/**
 * The segments of a well-formed path (`a/b/c`), or undefined when it is not
 * one: empty, a leading, trailing or double slash, a `.` or `..` segment, or
 * a character outside letters, digits, `.`, `_` and `-`.
 */
export function splitPath(path: string): PathSegments | undefined {
  if (typeof path !== 'string' || path === '') {
    return undefined;
  }
  const segments = path.split('/');
  return segments.every(isLiteralSegment) ? (segments as unknown as PathSegments) : undefined;
}

function isWildcard(segment: string): boolean {
  return segment === ONE_SEGMENT || segment === ANY_SEGMENTS;
}

function isLiteralSegment(segment: string): boolean {
  return segment !== '.' && segment !== '..' && LITERAL_SEGMENT_REGEXP.test(segment);
}

/** What is wrong with a pattern's segments, or undefined when nothing is. */
function segmentsProblem(segments: readonly string[]): string | undefined {
  let previous: string | undefined;
  for (const segment of segments) {
    if (segment === '') {
      return 'segments must not be empty (no leading, trailing or double "/")';
    }
    if (segment === '.' || segment === '..') {
      return '"." and ".." segments are not allowed';
    }
    if (segment === ANY_SEGMENTS && previous === ANY_SEGMENTS) {
      return '"**/**" is redundant: write "**" once';
    }
    if (segment !== ONE_SEGMENT && segment !== ANY_SEGMENTS) {
      if (segment.includes('*')) {
        return `"*" and "**" must be whole segments (found ${quote(segment)})`;
      }
      if (!LITERAL_SEGMENT_REGEXP.test(segment)) {
        return `segment ${quote(segment)} may contain only letters, digits, ".", "_" and "-"`;
      }
    }
    previous = segment;
  }
  return undefined;
}

/**
 * Glob matching over segments: `*` is one segment, `**` any number. The
 * classic two-pointer walk that backtracks only to the last `**`, so the
 * cost is O(pattern × path) at worst, never exponential.
 */
function matchSegments(pattern: readonly string[], path: readonly string[]): boolean {
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  while (s < path.length) {
    const segment = pattern[p];
    if (segment === ANY_SEGMENTS) {
      starP = p;
      starS = s;
      p += 1;
    } else if (segment !== undefined && (segment === ONE_SEGMENT || segment === path[s])) {
      p += 1;
      s += 1;
    } else if (starP !== -1) {
      // Let the last `**` swallow one more segment and retry after it.
      starS += 1;
      s = starS;
      p = starP + 1;
    } else {
      return false;
    }
  }
  while (pattern[p] === ANY_SEGMENTS) {
    p += 1;
  }
  return p === pattern.length;
}

function quote(value: string): string {
  const shown = value.length > 120 ? `${value.slice(0, 117)}...` : value;
  return JSON.stringify(shown);
}
