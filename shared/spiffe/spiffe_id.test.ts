import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidSpiffeIdError } from '../errors/errors.ts';
import {
  MAX_SPIFFE_ID_BYTES,
  MAX_TRUST_DOMAIN_BYTES,
  parseSpiffeId,
  parseTrustDomain,
  SpiffeId,
  spiffeIdFromPath,
  spiffeIdWithSegments,
  TrustDomain,
} from './spiffe_id.ts';

/** Asserts an InvalidSpiffeIdError whose message matches `reason`. */
function assertInvalid(fn: () => unknown, reason: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidSpiffeIdError, `expected InvalidSpiffeIdError, got ${err}`);
    assert.equal(err.code, 'ERR_SPIFFE_ID_INVALID');
    assert.match(err.message, reason);
    return true;
  });
}

const EMPTY = /cannot be empty/;
const NON_ASCII = /non-ASCII/;
const SCHEME = /scheme/;
const TD_MISSING = /missing its trust domain/;
const TD_CHARS = /invalid trust domain: characters are limited/;
const PATH_CHARS = /invalid path: segment characters are limited/;
const EMPTY_SEGMENT = /empty path segment/;
const TRAILING_SLASH = /trailing slash/;
const DOT_SEGMENT = /dot segment/;
const ID_TOO_LONG = /longer than 2048 bytes/;
const TD_TOO_LONG = /longer than 255 bytes/;

describe('parseSpiffeId accepts valid IDs (§1.1)', () => {
  const valid: ReadonlyArray<readonly [input: string, td: string, path: string, rule: string]> = [
    ['spiffe://example.org', 'example.org', '', 'a trust domain ID has no path'],
    ['spiffe://example.org/service', 'example.org', '/service', 'a one-segment path'],
    ['spiffe://example.org/a/b/c', 'example.org', '/a/b/c', 'a several-segment path'],
    ['spiffe://td/AZaz09._-', 'td', '/AZaz09._-', 'path characters include upper case'],
    ['spiffe://a-b_c.0-9/x', 'a-b_c.0-9', '/x', 'trust domain characters are [a-z0-9._-]'],
    ['spiffe://td/.path', 'td', '/.path', 'a segment may start with a dot'],
    ['spiffe://td/..path', 'td', '/..path', 'a segment may start with two dots'],
    ['spiffe://td/...', 'td', '/...', 'three dots are not a dot segment'],
    ['spiffe://td/a/.b/..c/d..', 'td', '/a/.b/..c/d..', 'dots inside segments'],
    ['spiffe://192.168.0.1/x', '192.168.0.1', '/x', 'an IPv4 address is an ordinary name'],
    ['spiffe://999.999.999.999', '999.999.999.999', '', 'a bogus dotted quad is a name too'],
    ['spiffe://.example.org/x', '.example.org', '/x', 'a leading dot is no DNS rule here'],
    ['spiffe://example..org/x', 'example..org', '/x', 'an empty label is allowed'],
    ['spiffe://example.org./x', 'example.org.', '/x', 'a trailing dot is allowed'],
    ['spiffe://-example.org/x', '-example.org', '/x', 'a leading dash is allowed'],
    ['spiffe://example-.org/x', 'example-.org', '/x', 'a trailing dash in a label is allowed'],
    ['spiffe://under_score/x', 'under_score', '/x', 'an underscore is allowed'],
  ];
  for (const [input, td, path, rule] of valid) {
    test(`accepts ${JSON.stringify(input)} because ${rule}`, () => {
      const id = parseSpiffeId(input);
      assert.equal(id.trustDomain.name, td);
      assert.equal(id.path, path);
      assert.equal(id.toString(), input);
    });
  }
});

describe('parseSpiffeId rejects invalid IDs with a message naming the problem (§1.1, §1.2)', () => {
  const invalid: ReadonlyArray<readonly [input: string, reason: RegExp, rule: string]> = [
    ['', EMPTY, 'the input is empty'],
    // Scheme: exactly the bytes "spiffe://".
    ['spiffe:/x', SCHEME, 'one slash is not the scheme separator'],
    ['spiffe:x', SCHEME, 'there is no authority'],
    ['spiffe', SCHEME, 'there is only a scheme name'],
    ['Spiffe://td/x', SCHEME, 'the scheme is capitalised'],
    ['SPIFFE://td/path', SCHEME, 'the scheme is upper case'],
    ['http://td/x', SCHEME, 'the scheme is http'],
    ['xspiffe://td/x', SCHEME, 'the scheme has a prefix'],
    ['://td/x', SCHEME, 'the scheme is missing'],
    [' spiffe://td/x', SCHEME, 'there is leading white space'],
    ['td/x', SCHEME, 'a bare trust domain and path is not an ID'],
    // Trust domain missing.
    ['spiffe://', TD_MISSING, 'nothing follows the scheme'],
    ['spiffe:///x', TD_MISSING, 'the path follows the scheme directly'],
    ['spiffe:///', TD_MISSING, 'only a slash follows the scheme'],
    // Trust domain characters.
    ['spiffe://EXAMPLE.ORG/service', TD_CHARS, 'the trust domain is upper case'],
    ['spiffe://Example.org/service', TD_CHARS, 'the trust domain has one capital'],
    ['spiffe://user@td/x', TD_CHARS, 'userinfo is present'],
    ['spiffe://user:pass@td/x', TD_CHARS, 'userinfo with a password is present'],
    ['spiffe://td:8080/x', TD_CHARS, 'a port is present'],
    ['spiffe://td:/x', TD_CHARS, 'an empty port is present'],
    ['spiffe://[::1]/x', TD_CHARS, 'an IPv6 literal is not allowed'],
    ['spiffe://[2001:db8::1]', TD_CHARS, 'an IPv6 literal without a path is not allowed'],
    ['spiffe://%62%61%64/x', TD_CHARS, 'the trust domain is percent-encoded'],
    ['spiffe://td?query=1', TD_CHARS, 'a query follows the trust domain'],
    ['spiffe://td#fragment', TD_CHARS, 'a fragment follows the trust domain'],
    ['spiffe://td x/y', TD_CHARS, 'the trust domain has a space'],
    ['spiffe://td\\x', TD_CHARS, 'the trust domain has a backslash'],
    // Path characters.
    ['spiffe://td/%41', PATH_CHARS, 'the path is percent-encoded'],
    ['spiffe://td/a%2Fb', PATH_CHARS, 'an encoded slash hides in a segment'],
    ['spiffe://td/x?query=1', PATH_CHARS, 'a query follows the path'],
    ['spiffe://td/x#fragment', PATH_CHARS, 'a fragment follows the path'],
    ['spiffe://td/a b', PATH_CHARS, 'a segment has a space'],
    ['spiffe://td/a:b', PATH_CHARS, 'a segment has a colon'],
    ['spiffe://td/a@b', PATH_CHARS, 'a segment has an at sign'],
    ['spiffe://td/a\\b', PATH_CHARS, 'a segment has a backslash'],
    ['spiffe://td/a\nb', PATH_CHARS, 'a segment has a newline'],
    ['spiffe://td/a\u0000', PATH_CHARS, 'a segment has a NUL byte'],
    // Segments.
    ['spiffe://td/', TRAILING_SLASH, 'the path is only a slash'],
    ['spiffe://td/a/', TRAILING_SLASH, 'the path ends with a slash'],
    ['spiffe://td//a', EMPTY_SEGMENT, 'the first segment is empty'],
    ['spiffe://td/a//b', EMPTY_SEGMENT, 'a middle segment is empty'],
    ['spiffe://td/.', DOT_SEGMENT, 'the only segment is "."'],
    ['spiffe://td/..', DOT_SEGMENT, 'the only segment is ".."'],
    ['spiffe://td/./a', DOT_SEGMENT, 'the first segment is "."'],
    ['spiffe://td/a/../b', DOT_SEGMENT, 'a middle segment is ".."'],
    ['spiffe://td/a/.', DOT_SEGMENT, 'the last segment is "."'],
    ['spiffe://td/a/..', DOT_SEGMENT, 'the last segment is ".."'],
    // Non-ASCII, including letters that look like ASCII ones.
    ['spiffe://\u0435xample.org/x', NON_ASCII, 'the trust domain has a Cyrillic "е"'],
    ['spiffe://example.org/\u0455ervice', NON_ASCII, 'the path has a Cyrillic "ѕ"'],
    ['spiffe://\u212Aey.org/x', NON_ASCII, 'the trust domain has a Kelvin sign that folds to "k"'],
    ['spiffe://td/caf\u00e9', NON_ASCII, 'the path has a Latin-1 letter'],
    ['spiffe://td/\u{1F600}', NON_ASCII, 'the path has an astral character'],
    ['\uFF53piffe://td/x', NON_ASCII, 'the scheme has a full-width "ｓ"'],
    ['spiffe://td/a\u200Bb', NON_ASCII, 'the path has a zero-width space'],
  ];
  for (const [input, reason, rule] of invalid) {
    test(`rejects ${JSON.stringify(input)} because ${rule}`, () => {
      assertInvalid(() => parseSpiffeId(input), reason);
    });
  }

  test('rejects a value that is not a string', () => {
    assertInvalid(() => parseSpiffeId(42 as unknown as string), /must be a string/);
    assertInvalid(() => parseSpiffeId(undefined as unknown as string), /must be a string/);
  });
});

describe('parseSpiffeId reports the first problem in go-spiffe order (§1.2)', () => {
  test('reports "spiffe://trustdomain//" as an empty segment, not a trailing slash', () => {
    assertInvalid(() => parseSpiffeId('spiffe://trustdomain//'), EMPTY_SEGMENT);
  });

  test('reports a bad path character before the trailing slash that follows it', () => {
    assertInvalid(() => parseSpiffeId('spiffe://td/a%/'), PATH_CHARS);
  });

  test('reports an empty segment before a bad character later in the path', () => {
    assertInvalid(() => parseSpiffeId('spiffe://td//a%'), EMPTY_SEGMENT);
  });

  test('reports a dot segment before a bad character later in the path', () => {
    assertInvalid(() => parseSpiffeId('spiffe://td/../a%'), DOT_SEGMENT);
  });

  test('reports the trust domain before any problem in the path', () => {
    assertInvalid(() => parseSpiffeId('spiffe://TD//'), TD_CHARS);
  });

  test('reports the scheme before the trust domain', () => {
    assertInvalid(() => parseSpiffeId('SPIFFE://TD/x'), SCHEME);
  });

  test('reports non-ASCII before the scheme', () => {
    assertInvalid(() => parseSpiffeId('http://\u0435xample.org'), NON_ASCII);
  });
});

describe('length limits (§1.1 max length, a conscious extension)', () => {
  const prefix = 'spiffe://td/';

  test('accepts an ID of exactly 2048 bytes', () => {
    const input = prefix + 'a'.repeat(MAX_SPIFFE_ID_BYTES - prefix.length);
    assert.equal(input.length, 2048);
    assert.equal(parseSpiffeId(input).toString(), input);
  });

  test('rejects an ID of 2049 bytes', () => {
    const input = prefix + 'a'.repeat(MAX_SPIFFE_ID_BYTES - prefix.length + 1);
    assert.equal(input.length, 2049);
    assertInvalid(() => parseSpiffeId(input), ID_TOO_LONG);
  });

  test('accepts an ID of exactly 2048 bytes made of many segments', () => {
    // "spiffe://td" is 11 bytes; 508 segments of "/abc" add 2032, and "/abcd" makes 2048.
    const input = `spiffe://td${'/abc'.repeat(508)}/abcd`;
    assert.equal(input.length, 2048);
    assert.equal(parseSpiffeId(input).toString(), input);
  });

  test('accepts a trust domain of exactly 255 bytes', () => {
    const name = 'a'.repeat(MAX_TRUST_DOMAIN_BYTES);
    assert.equal(parseSpiffeId(`spiffe://${name}/x`).trustDomain.name, name);
    assert.equal(parseTrustDomain(name).name, name);
  });

  test('rejects a trust domain of 256 bytes inside an ID', () => {
    const name = 'a'.repeat(MAX_TRUST_DOMAIN_BYTES + 1);
    assertInvalid(() => parseSpiffeId(`spiffe://${name}/x`), TD_TOO_LONG);
    assertInvalid(() => parseSpiffeId(`spiffe://${name}`), TD_TOO_LONG);
  });

  test('rejects a bare trust domain of 256 bytes', () => {
    assertInvalid(() => parseTrustDomain('a'.repeat(MAX_TRUST_DOMAIN_BYTES + 1)), TD_TOO_LONG);
  });

  test('keeps an over-long value out of the error message', () => {
    const input = prefix + 'a'.repeat(5000);
    assert.throws(
      () => parseSpiffeId(input),
      (err: unknown) => err instanceof Error && err.message.length < 300,
    );
  });
});

describe('parseTrustDomain (§1.3)', () => {
  const valid: ReadonlyArray<readonly [input: string, name: string]> = [
    ['example.org', 'example.org'],
    ['spike.ist', 'spike.ist'],
    ['192.168.0.1', '192.168.0.1'],
    ['.example.org', '.example.org'],
    ['example..org', 'example..org'],
    ['-example.org', '-example.org'],
    ['spiffe://example.org', 'example.org'],
    ['spiffe://example.org/some/workload', 'example.org'],
  ];
  for (const [input, name] of valid) {
    test(`accepts ${JSON.stringify(input)} as trust domain ${JSON.stringify(name)}`, () => {
      assert.equal(parseTrustDomain(input).name, name);
    });
  }

  const invalid: ReadonlyArray<readonly [input: string, reason: RegExp, rule: string]> = [
    ['', /Trust domain is missing/, 'the input is empty'],
    ['trustdomain:test', TD_CHARS, 'a colon is not a trust domain character'],
    ['[::1]', TD_CHARS, 'an IPv6 literal is not allowed'],
    ['Example.org', TD_CHARS, 'upper case is not allowed'],
    ['EXAMPLE.ORG', TD_CHARS, 'all upper case is not allowed'],
    ['example.org/path', TD_CHARS, 'a slash is not a trust domain character'],
    ['user@example.org', TD_CHARS, 'userinfo is not allowed'],
    ['%65xample.org', TD_CHARS, 'percent-encoding is not allowed'],
    ['\u0435xample.org', NON_ASCII, 'a Cyrillic look-alike is not ASCII'],
    ['spiffe://td/', TRAILING_SLASH, 'an ID input must have a valid path too'],
    ['spiffe://td//x', EMPTY_SEGMENT, 'an ID input with an empty segment is refused'],
    ['spiffe://', TD_MISSING, 'an ID input without a trust domain is refused'],
    ['http://example.org', SCHEME, 'an input with ":/" is parsed as an ID'],
    ['SPIFFE://example.org', SCHEME, 'an upper-case scheme is refused'],
  ];
  for (const [input, reason, rule] of invalid) {
    test(`rejects ${JSON.stringify(input)} because ${rule}`, () => {
      assertInvalid(() => parseTrustDomain(input), reason);
    });
  }

  test('rejects a value that is not a string', () => {
    assertInvalid(() => parseTrustDomain(null as unknown as string), /must be a string/);
  });

  test('gives the trust domain ID as spiffe://<name>', () => {
    const td = parseTrustDomain('example.org');
    assert.equal(td.idString(), 'spiffe://example.org');
    assert.equal(parseSpiffeId(td.idString()).trustDomain.name, 'example.org');
  });

  test('serialises as its bare name', () => {
    const td = parseTrustDomain('example.org');
    assert.equal(td.toString(), 'example.org');
    assert.equal(JSON.stringify({ td }), '{"td":"example.org"}');
  });

  test('compares trust domains by name', () => {
    const a = parseTrustDomain('example.org');
    assert.notEqual(a, parseTrustDomain('spiffe://example.org/x'));
    assert.ok(a.equals(parseTrustDomain('spiffe://example.org/x')));
    assert.ok(!a.equals(parseTrustDomain('example.com')));
    assert.ok(!a.equals(parseTrustDomain('example.org.')));
  });
});

describe('SpiffeId values', () => {
  test('are equal when their parsed values are equal, not by identity', () => {
    const a = parseSpiffeId('spiffe://example.org/service');
    const b = parseSpiffeId('spiffe://example.org/service');
    assert.notEqual(a, b);
    assert.ok(a.equals(b));
    assert.ok(b.equals(a));
  });

  test('are different when only the path case differs (§2.4)', () => {
    const lower = parseSpiffeId('spiffe://example.org/service');
    const upper = parseSpiffeId('spiffe://example.org/Service');
    assert.ok(!lower.equals(upper));
  });

  test('are different when only the trust domain differs', () => {
    const a = parseSpiffeId('spiffe://example.org/service');
    const b = parseSpiffeId('spiffe://example.com/service');
    assert.ok(!a.equals(b));
  });

  test('are different when one is a prefix of the other', () => {
    const a = parseSpiffeId('spiffe://example.org/service');
    assert.ok(!a.equals(parseSpiffeId('spiffe://example.org/service/x')));
    assert.ok(!a.equals(parseSpiffeId('spiffe://example.org')));
  });

  test('round-trip through toString and JSON unchanged', () => {
    for (const input of ['spiffe://td', 'spiffe://td/a', 'spiffe://example.org/A/b.c/_-']) {
      const id = parseSpiffeId(input);
      assert.equal(id.toString(), input);
      assert.equal(`${id}`, input);
      assert.equal(JSON.stringify(id), JSON.stringify(input));
      assert.ok(parseSpiffeId(id.toString()).equals(id));
    }
  });

  test('list their path segments', () => {
    assert.deepEqual(parseSpiffeId('spiffe://td').segments(), []);
    assert.deepEqual(parseSpiffeId('spiffe://td/a').segments(), ['a']);
    assert.deepEqual(parseSpiffeId('spiffe://td/spike/pilot/role/superuser').segments(), [
      'spike',
      'pilot',
      'role',
      'superuser',
    ]);
  });

  test('hand out a fresh segments array each time', () => {
    const id = parseSpiffeId('spiffe://td/a/b');
    id.segments().push('evil');
    assert.deepEqual(id.segments(), ['a', 'b']);
  });

  test('split their path once for matching, into a frozen array', () => {
    const id = parseSpiffeId('spiffe://td/a/b');
    const segments = id.pathSegments();
    assert.deepEqual(segments, ['a', 'b']);
    assert.ok(Object.isFrozen(segments));
    assert.equal(id.pathSegments(), segments);
    assert.throws(() => (segments as string[]).push('evil'), TypeError);
    assert.deepEqual(parseSpiffeId('spiffe://td').pathSegments(), []);
  });

  test('know which trust domain they belong to', () => {
    const id = parseSpiffeId('spiffe://example.org/service');
    assert.ok(id.isMemberOf(parseTrustDomain('example.org')));
    assert.ok(!id.isMemberOf(parseTrustDomain('example.com')));
    assert.ok(!id.isMemberOf(parseTrustDomain('org')));
    assert.ok(!id.isMemberOf(parseTrustDomain('sub.example.org')));
    assert.ok(parseSpiffeId('spiffe://example.org').isMemberOf(parseTrustDomain('example.org')));
  });

  test('are frozen, and so is their trust domain', () => {
    const id = parseSpiffeId('spiffe://example.org/service');
    assert.ok(Object.isFrozen(id));
    assert.ok(Object.isFrozen(id.trustDomain));
    assert.throws(() => {
      (id as { path: string }).path = '/admin';
    }, TypeError);
    assert.throws(() => {
      (id.trustDomain as { name: string }).name = 'evil.org';
    }, TypeError);
    assert.equal(id.toString(), 'spiffe://example.org/service');
  });

  test('cannot be built with the SpiffeId constructor directly', () => {
    const td = parseTrustDomain('example.org');
    assert.throws(
      () => new SpiffeId(Symbol('construct') as never, td, '/x'),
      (err: unknown) => err instanceof TypeError && /parseSpiffeId/.test(err.message),
    );
    assert.throws(() => new SpiffeId(undefined as never, td, '/x'), TypeError);
  });

  test('cannot be built with the TrustDomain constructor directly', () => {
    assert.throws(
      () => new TrustDomain(Symbol('construct') as never, 'EVIL'),
      (err: unknown) => err instanceof TypeError && /parseTrustDomain/.test(err.message),
    );
    assert.throws(() => new TrustDomain(undefined as never, 'x'), TypeError);
  });
});

describe('spiffeIdFromPath', () => {
  const td = parseTrustDomain('example.org');

  test('builds an ID from a trust domain and a path', () => {
    const id = spiffeIdFromPath(td, '/spike/nexus');
    assert.equal(id.toString(), 'spiffe://example.org/spike/nexus');
    assert.ok(id.equals(parseSpiffeId('spiffe://example.org/spike/nexus')));
  });

  test('builds the trust domain ID from an empty path', () => {
    assert.equal(spiffeIdFromPath(td, '').toString(), 'spiffe://example.org');
  });

  const invalid: ReadonlyArray<readonly [path: string, reason: RegExp]> = [
    ['spike/nexus', /does not start with "\/"/],
    ['/', TRAILING_SLASH],
    ['/spike/', TRAILING_SLASH],
    ['//spike', EMPTY_SEGMENT],
    ['/spike/../admin', DOT_SEGMENT],
    ['/spike/%6E', PATH_CHARS],
    ['/spike?x', PATH_CHARS],
    ['/sp\u0456ke', NON_ASCII],
  ];
  for (const [path, reason] of invalid) {
    test(`validates the path ${JSON.stringify(path)} like the parser does`, () => {
      assertInvalid(() => spiffeIdFromPath(td, path), reason);
    });
  }

  test('enforces the 2048-byte limit on the whole ID', () => {
    const room = MAX_SPIFFE_ID_BYTES - 'spiffe://example.org/'.length;
    assert.equal(spiffeIdFromPath(td, `/${'a'.repeat(room)}`).toString().length, 2048);
    assertInvalid(() => spiffeIdFromPath(td, `/${'a'.repeat(room + 1)}`), ID_TOO_LONG);
  });

  test('refuses a look-alike trust domain object that was never parsed', () => {
    const fake = { name: 'EVIL/../x', idString: () => '', equals: () => true } as never;
    assert.throws(() => spiffeIdFromPath(fake, '/x'), TypeError);
  });

  test('refuses a path that is not a string', () => {
    assertInvalid(() => spiffeIdFromPath(td, 7 as unknown as string), /must be a string/);
  });
});

describe('spiffeIdWithSegments', () => {
  const base = parseSpiffeId('spiffe://example.org/spike/keeper');

  test('appends segments to the base path', () => {
    assert.equal(
      spiffeIdWithSegments(base, 'pod-1', 'x').toString(),
      'spiffe://example.org/spike/keeper/pod-1/x',
    );
  });

  test('appends to a trust domain ID', () => {
    const td = parseSpiffeId('spiffe://example.org');
    assert.equal(spiffeIdWithSegments(td, 'a').toString(), 'spiffe://example.org/a');
  });

  test('returns the base unchanged when given no segments', () => {
    assert.ok(spiffeIdWithSegments(base).equals(base));
  });

  test('leaves the base unchanged', () => {
    spiffeIdWithSegments(base, 'a');
    assert.equal(base.toString(), 'spiffe://example.org/spike/keeper');
  });

  test('refuses a segment that contains a slash', () => {
    assertInvalid(() => spiffeIdWithSegments(base, 'a/b'), /contains a slash/);
    assertInvalid(() => spiffeIdWithSegments(base, '/a'), /contains a slash/);
    assertInvalid(() => spiffeIdWithSegments(base, 'a/'), /contains a slash/);
  });

  const invalid: ReadonlyArray<readonly [segment: string, reason: RegExp]> = [
    ['', TRAILING_SLASH],
    ['.', DOT_SEGMENT],
    ['..', DOT_SEGMENT],
    ['a b', PATH_CHARS],
    ['%2F', PATH_CHARS],
    ['k\u0435eper', NON_ASCII],
  ];
  for (const [segment, reason] of invalid) {
    test(`validates the segment ${JSON.stringify(segment)}`, () => {
      assertInvalid(() => spiffeIdWithSegments(base, segment), reason);
    });
  }

  test('reports an empty segment in the middle as an empty segment', () => {
    assertInvalid(() => spiffeIdWithSegments(base, '', 'a'), EMPTY_SEGMENT);
  });

  test('enforces the 2048-byte limit', () => {
    const room = MAX_SPIFFE_ID_BYTES - base.toString().length - 1;
    assert.equal(spiffeIdWithSegments(base, 'a'.repeat(room)).toString().length, 2048);
    assertInvalid(() => spiffeIdWithSegments(base, 'a'.repeat(room + 1)), ID_TOO_LONG);
  });
});
