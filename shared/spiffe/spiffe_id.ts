/**
 * SPIFFE IDs and trust domains, parsed as strictly as go-spiffe and SPIRE do
 * (SPIFFE-ID.md §2), plus the length limits of §2.3 and an ASCII-only rule.
 * Everything downstream carries these typed values, never raw strings.
 */
import { InvalidSpiffeIdError } from '../errors/errors.ts';

const SCHEME_PREFIX = 'spiffe://';
/** §2.3: implementations must support 2048 bytes; we refuse anything longer. */
export const MAX_SPIFFE_ID_BYTES = 2048;
/** §2.1: a trust domain is an RFC 3986 host, at most 255 bytes. */
export const MAX_TRUST_DOMAIN_BYTES = 255;

// A module-private token so that only the parsers below can build values.
const CONSTRUCT = Symbol('construct');

export class TrustDomain {
  readonly name: string;

  constructor(token: typeof CONSTRUCT, name: string) {
    if (token !== CONSTRUCT) {
      throw new TypeError('Use parseTrustDomain() to create a TrustDomain');
    }
    this.name = name;
    Object.freeze(this);
  }

  /** The trust domain as a SPIFFE ID without a path: `spiffe://<name>`. */
  idString(): string {
    return `${SCHEME_PREFIX}${this.name}`;
  }

  equals(other: TrustDomain): boolean {
    return this.name === other.name;
  }

  toString(): string {
    return this.name;
  }

  toJSON(): string {
    return this.name;
  }
}

export class SpiffeId {
  readonly trustDomain: TrustDomain;
  /** Empty, or `/seg/seg…` with every segment valid. */
  readonly path: string;
  readonly #text: string;
  /** `pathSegments()`, split on first use: a private field stays writable in a frozen object. */
  #segments: readonly string[] | undefined;

  constructor(token: typeof CONSTRUCT, trustDomain: TrustDomain, path: string) {
    if (token !== CONSTRUCT) {
      throw new TypeError('Use parseSpiffeId() to create a SpiffeId');
    }
    this.trustDomain = trustDomain;
    this.path = path;
    this.#text = `${SCHEME_PREFIX}${trustDomain.name}${path}`;
    Object.freeze(this);
  }

  /** The path split into its segments; empty for a trust-domain ID. A copy the caller may change. */
  segments(): string[] {
    return [...this.pathSegments()];
  }

  /**
   * The path's segments, split once and frozen: what an access check matches
   * against every policy's pattern, without splitting the ID for each.
   */
  pathSegments(): readonly string[] {
    this.#segments ??= Object.freeze(this.path === '' ? [] : this.path.slice(1).split('/'));
    return this.#segments;
  }

  isMemberOf(trustDomain: TrustDomain): boolean {
    return this.trustDomain.equals(trustDomain);
  }

  /** Byte equality of the canonical form: the parser never normalises. */
  equals(other: SpiffeId): boolean {
    return this.#text === other.#text;
  }

  toString(): string {
    return this.#text;
  }

  toJSON(): string {
    return this.#text;
  }
}

/** Parses `spiffe://<trust-domain>[/<path>]` or throws `InvalidSpiffeIdError`. */
export function parseSpiffeId(input: string): SpiffeId {
  if (typeof input !== 'string') {
    throw new InvalidSpiffeIdError('SPIFFE ID must be a string');
  }
  if (input === '') {
    throw new InvalidSpiffeIdError('SPIFFE ID cannot be empty');
  }
  checkAsciiAndLength(input, 'SPIFFE ID', MAX_SPIFFE_ID_BYTES);
  if (!input.startsWith(SCHEME_PREFIX)) {
    throw new InvalidSpiffeIdError(
      `SPIFFE ID ${quote(input)} has a missing or invalid scheme: it must start with "spiffe://"`,
    );
  }
  const rest = input.slice(SCHEME_PREFIX.length);
  const slash = rest.indexOf('/');
  const name = slash === -1 ? rest : rest.slice(0, slash);
  const trustDomain = newTrustDomain(name, input);
  const path = slash === -1 ? '' : rest.slice(slash);
  checkPath(path, input);
  return new SpiffeId(CONSTRUCT, trustDomain, path);
}

/**
 * Parses a bare trust domain name (`example.org`), or the trust domain of a
 * SPIFFE ID when the input contains `:/` (as go-spiffe does).
 */
export function parseTrustDomain(input: string): TrustDomain {
  if (typeof input !== 'string') {
    throw new InvalidSpiffeIdError('Trust domain must be a string');
  }
  if (input.includes(':/')) {
    return parseSpiffeId(input).trustDomain;
  }
  checkAsciiAndLength(input, 'Trust domain', MAX_TRUST_DOMAIN_BYTES);
  return newTrustDomain(input, input);
}

/**
 * Builds the ID `spiffe://<td><path>` from a trust domain and a path such as
 * `/spike/nexus`, validating the path with the same rules as the parser.
 */
export function spiffeIdFromPath(trustDomain: TrustDomain, path: string): SpiffeId {
  // TrustDomain is structurally typed, so a look-alike object would type-check;
  // only a parsed value may lend its (validated) name to a new ID.
  if (!(trustDomain instanceof TrustDomain)) {
    throw new TypeError('spiffeIdFromPath() needs a TrustDomain from parseTrustDomain()');
  }
  if (typeof path !== 'string') {
    throw new InvalidSpiffeIdError('SPIFFE ID path must be a string');
  }
  const text = `${SCHEME_PREFIX}${trustDomain.name}${path}`;
  checkAsciiAndLength(text, 'SPIFFE ID', MAX_SPIFFE_ID_BYTES);
  checkPath(path, text);
  return new SpiffeId(CONSTRUCT, trustDomain, path);
}

/**
 * Returns the same ID with more segments appended (`/a` + `b`, `c` → `/a/b/c`).
 * Each argument is exactly one segment: a `/` inside one is refused, so a
 * name such as `"x/nexus"` cannot smuggle in extra segments. With no
 * segments the base is returned unchanged.
 */
export function spiffeIdWithSegments(base: SpiffeId, ...segments: string[]): SpiffeId {
  if (segments.length === 0) {
    return base;
  }
  for (const segment of segments) {
    if (typeof segment !== 'string') {
      throw new InvalidSpiffeIdError('SPIFFE ID path segment must be a string');
    }
    if (segment.includes('/')) {
      throw new InvalidSpiffeIdError(
        `SPIFFE ID path segment ${quote(segment)} contains a slash: pass one segment per argument`,
      );
    }
  }
  return spiffeIdFromPath(base.trustDomain, `${base.path}/${segments.join('/')}`);
}

function newTrustDomain(name: string, input: string): TrustDomain {
  if (name === '') {
    throw new InvalidSpiffeIdError(
      input === '' ? 'Trust domain is missing' : `${describe(input)} is missing its trust domain`,
    );
  }
  if (name.length > MAX_TRUST_DOMAIN_BYTES) {
    throw new InvalidSpiffeIdError(
      `${describe(input)} has a trust domain longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`,
    );
  }
  for (let i = 0; i < name.length; i++) {
    if (!isTrustDomainChar(name.charCodeAt(i))) {
      throw new InvalidSpiffeIdError(
        `${describe(input)} has an invalid trust domain: characters are limited to lowercase letters, numbers, dots, dashes and underscores`,
      );
    }
  }
  return new TrustDomain(CONSTRUCT, name);
}

/** go-spiffe's ValidatePath, with the same error order. */
function checkPath(path: string, input: string): void {
  if (path === '') {
    return;
  }
  if (path.charCodeAt(0) !== 0x2f) {
    throw new InvalidSpiffeIdError(`${describe(input)} has a path that does not start with "/"`);
  }
  let segmentStart = 0;
  for (let i = 1; i <= path.length; i++) {
    const atEnd = i === path.length;
    const code = atEnd ? 0x2f : path.charCodeAt(i);
    if (code === 0x2f) {
      const segment = path.slice(segmentStart + 1, i);
      if (segment === '') {
        throw new InvalidSpiffeIdError(
          atEnd
            ? `${describe(input)} has a trailing slash`
            : `${describe(input)} has an empty path segment`,
        );
      }
      if (segment === '.' || segment === '..') {
        throw new InvalidSpiffeIdError(`${describe(input)} has a dot segment in its path`);
      }
      segmentStart = i;
      continue;
    }
    if (!isPathChar(code)) {
      throw new InvalidSpiffeIdError(
        `${describe(input)} has an invalid path: segment characters are limited to letters, numbers, dots, dashes and underscores`,
      );
    }
  }
}

function checkAsciiAndLength(input: string, what: string, max: number): void {
  for (let i = 0; i < input.length; i++) {
    if (input.charCodeAt(i) > 0x7f) {
      throw new InvalidSpiffeIdError(`${what} ${quote(input)} contains a non-ASCII character`);
    }
  }
  // ASCII only, so the UTF-16 length equals the byte length.
  if (input.length > max) {
    throw new InvalidSpiffeIdError(`${what} is longer than ${max} bytes (${input.length})`);
  }
}

function isTrustDomainChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2e || // .
    c === 0x2d || // -
    c === 0x5f // _
  );
}

function isPathChar(c: number): boolean {
  return isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a); // plus A-Z
}

function describe(input: string): string {
  return input.startsWith(SCHEME_PREFIX)
    ? `SPIFFE ID ${quote(input)}`
    : `Trust domain ${quote(input)}`;
}

/** Quotes a value for an error message, cut short so that messages stay small. */
function quote(value: string): string {
  const shown = value.length > 120 ? `${value.slice(0, 117)}...` : value;
  return JSON.stringify(shown);
}
