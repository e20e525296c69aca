import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidRequestError } from '../../shared/errors/errors.ts';
import { parseSpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import {
  EVERYWHERE,
  type PathReach,
  parsePathPattern,
  parseSpiffeIdPattern,
  splitPath,
} from './pattern.ts';

function assertMatches(pattern: string, matching: readonly string[], other: readonly string[]) {
  const compiled = parsePathPattern(pattern);
  for (const path of matching) {
    assert.equal(compiled.matches(path), true, `${pattern} should match ${path}`);
  }
  for (const path of other) {
    assert.equal(compiled.matches(path), false, `${pattern} should not match ${path}`);
  }
  // The access check's form, on the same paths split once, agrees.
  for (const path of [...matching, ...other]) {
    const segments = splitPath(path);
    if (segments !== undefined) {
      assert.equal(compiled.matchesSegments(segments), compiled.matches(path), path);
    }
  }
}

function assertInvalid(parse: (source: string) => unknown, source: string, message: RegExp) {
  assert.throws(
    () => parse(source),
    (err: unknown) => {
      assert.ok(err instanceof InvalidRequestError, `${source}: ${String(err)}`);
      assert.equal(err.code, 'ERR_INVALID_REQUEST');
      assert.match(err.message, message);
      return true;
    },
  );
}

describe('parsePathPattern(): SPIKE over-grant cases (its PR #202, ADR-0033)', () => {
  test('"secrets/db/*" matches one segment below secrets/db, and nothing else', () => {
    assertMatches(
      'secrets/db/*',
      ['secrets/db/x', 'secrets/db/creds'],
      [
        'test/secrets/db/x',
        'secrets/db',
        'secrets/db/x/y',
        'secrets/dbx/y',
        'xsecrets/db/x',
        'secrets/db/x/',
        'Secrets/db/x',
      ],
    );
  });

  test('"secrets/db/**" matches secrets/db and everything below it, not look-alikes', () => {
    assertMatches(
      'secrets/db/**',
      ['secrets/db', 'secrets/db/x', 'secrets/db/x/y/z'],
      ['secrets/dbx', 'secrets/dbx/y', 'secrets', 'test/secrets/db', 'test/secrets/db/x'],
    );
  });

  test('a literal pattern matches only itself, case-sensitively', () => {
    assertMatches(
      'secrets/db',
      ['secrets/db'],
      ['secrets/db/x', 'secrets', 'a/secrets/db', 'secrets/DB', 'secrets/d'],
    );
  });
});

describe('parsePathPattern(): wildcards', () => {
  test('"*" alone matches every one-segment path and only those', () => {
    assertMatches('*', ['a', 'secrets', 'sys'], ['a/b', 'a/b/c']);
  });

  test('"**" alone matches every path', () => {
    assertMatches('**', ['a', 'a/b', 'a/b/c/d/e'], []);
  });

  test('"*" in the middle matches exactly one segment', () => {
    assertMatches(
      'apps/*/db',
      ['apps/web/db', 'apps/api/db'],
      ['apps/db', 'apps/a/b/db', 'apps/web/db/x', 'apps/web/dbx'],
    );
  });

  test('"**" in the middle matches zero or more segments', () => {
    assertMatches(
      'apps/**/db',
      ['apps/db', 'apps/a/db', 'apps/a/b/c/db'],
      ['apps', 'apps/a/db/x', 'apps/a/dbx', 'x/apps/db'],
    );
  });

  test('a leading "**" matches at any depth, still anchored at the end', () => {
    assertMatches('**/creds', ['creds', 'a/creds', 'a/b/creds'], ['a/creds/x', 'a/xcreds']);
  });

  test('"*" and "**" combine', () => {
    assertMatches(
      '*/**/db/*',
      ['a/db/x', 'a/b/c/db/x'],
      ['db/x', 'a/db', 'a/db/x/y', 'a/b/db/x/y'],
    );
    assertMatches('**/*', ['a', 'a/b'], []);
    assertMatches('a/**/b/**/c', ['a/b/c', 'a/x/b/y/c', 'a/b/b/c'], ['a/c', 'a/b', 'a/c/b']);
  });

  test('many "**" segments do not blow up on a long path that does not match', () => {
    const pattern = parsePathPattern(Array.from({ length: 16 }, () => '**/a').join('/'));
    const path = Array.from({ length: 32 }, () => 'a').join('/');
    const started = Date.now();
    assert.equal(pattern.matches(`${path}/b`), false);
    assert.equal(pattern.matches(path), true);
    assert.ok(Date.now() - started < 1000);
  });

  test('malformed paths never match, whatever the pattern', () => {
    for (const pattern of ['**', '*', 'a/**']) {
      const compiled = parsePathPattern(pattern);
      for (const path of ['', '/', 'a/', '/a', 'a//b', 'a/./b', 'a/../b', '..', 'a/b c', 'a/*']) {
        assert.equal(compiled.matches(path), false, `${pattern} vs ${JSON.stringify(path)}`);
      }
    }
  });

  test('the pattern keeps its source and segments', () => {
    const pattern = parsePathPattern('apps/*/db/**');
    assert.equal(pattern.source, 'apps/*/db/**');
    assert.equal(String(pattern), 'apps/*/db/**');
    assert.equal(JSON.stringify({ pattern }), '{"pattern":"apps/*/db/**"}');
    assert.deepEqual(pattern.segments, ['apps', '*', 'db', '**']);
    assert.equal(pattern.startsWithLiteral('apps'), true);
    assert.equal(parsePathPattern('**').startsWithLiteral('apps'), false);
    assert.ok(Object.isFrozen(pattern));
  });
});

describe('PathPattern.reach()', () => {
  /** Whether `path` lies in `reach`. */
  function isInReach(reach: PathReach, path: string): boolean {
    if (reach.base === '') return true;
    return (
      (reach.self && path === reach.base) || (reach.below && path.startsWith(`${reach.base}/`))
    );
  }

  test('the literal segments before the first wildcard, and what may follow them', () => {
    const cases: ReadonlyArray<readonly [string, PathReach]> = [
      ['a', { base: 'a', self: true, below: false }],
      ['a/b.c/d', { base: 'a/b.c/d', self: true, below: false }],
      ['a/*', { base: 'a', self: false, below: true }],
      ['a/b/**', { base: 'a/b', self: true, below: true }],
      ['a/**/c', { base: 'a', self: false, below: true }],
      ['a/*/**', { base: 'a', self: false, below: true }],
      ['a/b/*/c/**', { base: 'a/b', self: false, below: true }],
      ['**', EVERYWHERE],
      ['*', EVERYWHERE],
      ['*/a/b', EVERYWHERE],
      ['**/secret', EVERYWHERE],
    ];
    for (const [pattern, reach] of cases) {
      assert.deepEqual(parsePathPattern(pattern).reach(), reach, pattern);
    }
  });

  test('every path a pattern matches lies in its reach', () => {
    const patterns = ['a', 'a/b', 'a/*', 'a/**', 'a/*/c', 'a/**/c', 'a/b/**', '*', '**', '*/b'];
    const paths = ['a', 'ab', 'a-b', 'a/b', 'a/c', 'a/b/c', 'a/x/c', 'a/b/c/d', 'b', 'b/b', 'x/a'];
    for (const source of patterns) {
      const pattern = parsePathPattern(source);
      const reach = pattern.reach();
      for (const path of paths) {
        if (pattern.matches(path)) {
          assert.ok(isInReach(reach, path), `${source} matches ${path} outside its reach`);
        }
      }
    }
  });
});

describe('parsePathPattern() refuses invalid patterns, naming them', () => {
  const cases: ReadonlyArray<[string, RegExp]> = [
    ['a/**b', /"a\/\*\*b".*whole segments/],
    ['a/b**', /whole segments/],
    ['db*', /whole segments/],
    ['*.prod', /whole segments/],
    ['***', /whole segments/],
    ['a//b', /"a\/\/b".*empty/],
    ['/a', /empty/],
    ['a/', /empty/],
    ['/', /empty/],
    ['a/../b', /"\.\."/],
    ['..', /"\.\."/],
    ['./a', /"\."/],
    ['a/**/**/b', /redundant/],
    ['a b', /may contain only/],
    ['a/b?', /may contain only/],
    ['secrets/(db|x)', /may contain only/],
    ['^secrets/db$', /may contain only/],
    [`${'a/'.repeat(32)}a`, /more than 32 segments/],
    ['a'.repeat(513), /longer than 512/],
  ];
  for (const [source, message] of cases) {
    test(`refuses ${JSON.stringify(source.length > 40 ? `${source.slice(0, 40)}…` : source)}`, () => {
      assertInvalid(parsePathPattern, source, message);
    });
  }

  test('refuses an empty pattern and non-strings', () => {
    for (const value of ['', undefined, null, 5, ['a']]) {
      assert.throws(() => parsePathPattern(value), InvalidRequestError);
    }
  });

  test('a PathPattern cannot be built without the parser', async () => {
    const { PathPattern } = await import('./pattern.ts');
    assert.throws(() => new PathPattern(Symbol('x') as never, 'a', ['a']), TypeError);
  });
});

describe('parseSpiffeIdPattern()', () => {
  const id = (text: string) => parseSpiffeId(text);

  test('matches IDs of its literal trust domain with the same segment globs', () => {
    const pattern = parseSpiffeIdPattern('spiffe://example.org/apps/*/web');
    assert.equal(pattern.trustDomain.name, 'example.org');
    assert.equal(pattern.matches(id('spiffe://example.org/apps/billing/web')), true);
    for (const other of [
      'spiffe://example.org/apps/web',
      'spiffe://example.org/apps/a/b/web',
      'spiffe://example.org/apps/billing/web/x',
      'spiffe://example.org/x/apps/billing/web',
      'spiffe://other.org/apps/billing/web',
      'spiffe://sub.example.org/apps/billing/web',
      'spiffe://example.org/apps/billing/Web',
    ]) {
      assert.equal(pattern.matches(id(other)), false, other);
    }
  });

  test('is anchored: a pattern never matches an ID that merely contains it', () => {
    const pattern = parseSpiffeIdPattern('spiffe://example.org/app');
    assert.equal(pattern.matches(id('spiffe://example.org/app')), true);
    assert.equal(pattern.matches(id('spiffe://example.org/app/x')), false);
    assert.equal(pattern.matches(id('spiffe://example.org/app-evil')), false);
    assert.equal(pattern.matches(id('spiffe://example.org/test/app')), false);
  });

  test('"**" covers an ID and everything under it', () => {
    const pattern = parseSpiffeIdPattern('spiffe://example.org/team/**');
    assert.equal(pattern.matches(id('spiffe://example.org/team')), true);
    assert.equal(pattern.matches(id('spiffe://example.org/team/a/b')), true);
    assert.equal(pattern.matches(id('spiffe://example.org/teams/a')), false);
  });

  test('"spiffe://td/**" covers the whole trust domain; "spiffe://td" only its own ID', () => {
    const all = parseSpiffeIdPattern('spiffe://example.org/**');
    assert.equal(all.matches(id('spiffe://example.org')), true);
    assert.equal(all.matches(id('spiffe://example.org/a/b')), true);
    assert.equal(all.matches(id('spiffe://example.com/a')), false);
    const bare = parseSpiffeIdPattern('spiffe://example.org');
    assert.deepEqual(bare.segments, []);
    assert.equal(bare.matches(id('spiffe://example.org')), true);
    assert.equal(bare.matches(id('spiffe://example.org/a')), false);
  });

  test('paths are case-sensitive', () => {
    const pattern = parseSpiffeIdPattern('spiffe://example.org/App');
    assert.equal(pattern.matches(id('spiffe://example.org/App')), true);
    assert.equal(pattern.matches(id('spiffe://example.org/app')), false);
  });

  test('matches() takes parsed IDs only', () => {
    const pattern = parseSpiffeIdPattern('spiffe://example.org/**');
    assert.throws(() => pattern.matches('spiffe://example.org/a' as never), TypeError);
  });

  const invalid: ReadonlyArray<[string, RegExp]> = [
    ['spiffe://*.org/app', /"spiffe:\/\/\*\.org\/app".*trust domain must be literal/],
    ['spiffe://*/app', /trust domain must be literal/],
    ['spiffe://**/app', /trust domain must be literal/],
    ['spiffe://Example.org/app', /not a valid trust domain/],
    ['spiffe:///app', /not a valid trust domain/],
    ['spiffe://exa mple.org/app', /not a valid trust domain/],
    ['example.org/app', /must start with "spiffe:\/\/"/],
    ['^spiffe://example.org/app$', /must start with "spiffe:\/\/"/],
    ['.*', /must start with "spiffe:\/\/"/],
    ['SPIFFE://example.org/app', /must start with "spiffe:\/\/"/],
    ['spiffe://example.org/', /empty/],
    ['spiffe://example.org//app', /empty/],
    ['spiffe://example.org/app/', /empty/],
    ['spiffe://example.org/app/..', /"\.\."/],
    ['spiffe://example.org/app/**x', /whole segments/],
    ['spiffe://example.org/app-*', /whole segments/],
    ['spiffe://example.org/app/.+', /may contain only/],
    [`spiffe://example.org/${'a'.repeat(2048)}`, /longer than 2048/],
  ];
  for (const [source, message] of invalid) {
    test(`refuses ${JSON.stringify(source.length > 40 ? `${source.slice(0, 40)}…` : source)}`, () => {
      assertInvalid(parseSpiffeIdPattern, source, message);
    });
  }

  test('refuses an empty pattern and non-strings', () => {
    for (const value of ['', undefined, 7, {}]) {
      assert.throws(() => parseSpiffeIdPattern(value), InvalidRequestError);
    }
  });
});

describe('splitPath()', () => {
  test('splits well-formed paths and refuses the rest', () => {
    assert.deepEqual(splitPath('a/b.c/d_e-f'), ['a', 'b.c', 'd_e-f']);
    for (const path of ['', '/', 'a/', 'a//b', 'a/./b', '../a', 'a/b*', 'ä']) {
      assert.equal(splitPath(path), undefined, JSON.stringify(path));
    }
  });
});
