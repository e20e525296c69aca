import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Matcher,
  matchAny,
  matchEither,
  matchId,
  matchIdOrUnder,
  matchMemberOf,
  matchOneOf,
} from './match.ts';
import { parseSpiffeId, parseTrustDomain } from './spiffe_id.ts';

const id = parseSpiffeId;

function admits(matcher: Matcher, input: string): boolean {
  return matcher(id(input));
}

describe('matchAny', () => {
  test('admits every ID, with or without a path', () => {
    const matcher = matchAny();
    assert.ok(admits(matcher, 'spiffe://example.org/a'));
    assert.ok(admits(matcher, 'spiffe://other.org'));
  });

  test('describes itself for the audit log', () => {
    assert.equal(matchAny().description, 'any SPIFFE ID');
  });
});

describe('matchId', () => {
  const matcher = matchId(id('spiffe://example.org/spike/nexus'));

  test('admits an equal ID parsed separately', () => {
    assert.ok(admits(matcher, 'spiffe://example.org/spike/nexus'));
  });

  test('refuses the same path in another trust domain', () => {
    assert.ok(!admits(matcher, 'spiffe://example.com/spike/nexus'));
    assert.ok(!admits(matcher, 'spiffe://sub.example.org/spike/nexus'));
  });

  test('refuses an ID under the expected one', () => {
    assert.ok(!admits(matcher, 'spiffe://example.org/spike/nexus/pod-1'));
  });

  test('refuses an ID that extends the last segment without a slash', () => {
    assert.ok(!admits(matcher, 'spiffe://example.org/spike/nexusx'));
  });

  test('refuses a parent of the expected ID and the trust domain ID', () => {
    assert.ok(!admits(matcher, 'spiffe://example.org/spike'));
    assert.ok(!admits(matcher, 'spiffe://example.org'));
  });

  test('refuses a path that differs only in case', () => {
    assert.ok(!admits(matcher, 'spiffe://example.org/spike/Nexus'));
  });

  test('matches a trust domain ID exactly', () => {
    const tdOnly = matchId(id('spiffe://example.org'));
    assert.ok(admits(tdOnly, 'spiffe://example.org'));
    assert.ok(!admits(tdOnly, 'spiffe://example.org/a'));
  });

  test('describes the ID it expects', () => {
    assert.equal(matcher.description, 'id "spiffe://example.org/spike/nexus"');
  });

  test('refuses to be built from a raw string', () => {
    assert.throws(() => matchId('spiffe://example.org/x' as never), TypeError);
  });
});

describe('matchOneOf', () => {
  const matcher = matchOneOf(id('spiffe://example.org/a'), id('spiffe://example.org/b'));

  test('admits each listed ID', () => {
    assert.ok(admits(matcher, 'spiffe://example.org/a'));
    assert.ok(admits(matcher, 'spiffe://example.org/b'));
  });

  test('refuses IDs that are not listed, including look-alikes', () => {
    assert.ok(!admits(matcher, 'spiffe://example.org/c'));
    assert.ok(!admits(matcher, 'spiffe://example.org/A'));
    assert.ok(!admits(matcher, 'spiffe://example.org/a/b'));
    assert.ok(!admits(matcher, 'spiffe://example.org/ab'));
    assert.ok(!admits(matcher, 'spiffe://example.com/a'));
  });

  test('admits nothing when no IDs are listed', () => {
    const none = matchOneOf();
    assert.ok(!admits(none, 'spiffe://example.org/a'));
    assert.equal(none.description, 'one of []');
  });

  test('is not changed by later edits to the array that was spread into it', () => {
    const ids = [id('spiffe://example.org/a')];
    const fromArray = matchOneOf(...ids);
    ids.push(id('spiffe://example.org/evil'));
    assert.ok(!admits(fromArray, 'spiffe://example.org/evil'));
  });

  test('describes every ID it admits', () => {
    assert.equal(
      matcher.description,
      'one of ["spiffe://example.org/a", "spiffe://example.org/b"]',
    );
  });

  test('refuses to be built from raw strings', () => {
    assert.throws(() => matchOneOf(id('spiffe://td/a'), 'spiffe://td/b' as never), TypeError);
  });
});

describe('matchMemberOf', () => {
  const matcher = matchMemberOf(parseTrustDomain('example.org'));

  test('admits any ID of the trust domain, including the trust domain ID', () => {
    assert.ok(admits(matcher, 'spiffe://example.org/a/b/c'));
    assert.ok(admits(matcher, 'spiffe://example.org'));
  });

  test('refuses other trust domains, including sub- and super-domains', () => {
    assert.ok(!admits(matcher, 'spiffe://example.com/a'));
    assert.ok(!admits(matcher, 'spiffe://sub.example.org/a'));
    assert.ok(!admits(matcher, 'spiffe://org/a'));
    assert.ok(!admits(matcher, 'spiffe://example.org.evil/a'));
    assert.ok(!admits(matcher, 'spiffe://example.org./a'));
    assert.ok(!admits(matcher, 'spiffe://xexample.org/a'));
  });

  test('describes the trust domain it expects', () => {
    assert.equal(matcher.description, 'member of "example.org"');
  });

  test('refuses to be built from a raw string', () => {
    assert.throws(() => matchMemberOf('example.org' as never), TypeError);
  });
});

describe('matchIdOrUnder', () => {
  const matcher = matchIdOrUnder(id('spiffe://example.org/spike/nexus'));

  test('admits the base ID itself', () => {
    assert.ok(admits(matcher, 'spiffe://example.org/spike/nexus'));
  });

  test('admits IDs that continue the base path with more segments', () => {
    assert.ok(admits(matcher, 'spiffe://example.org/spike/nexus/pod-1'));
    assert.ok(admits(matcher, 'spiffe://example.org/spike/nexus/a/b/c'));
  });

  test('refuses a prefix of the last segment without a slash', () => {
    assert.ok(!admits(matcher, 'spiffe://example.org/spike/nexus-evil'));
    assert.ok(!admits(matcher, 'spiffe://example.org/spike/nexusx/1'));
    assert.ok(!admits(matcher, 'spiffe://example.org/spike/nexus.'));
    assert.ok(!admits(matcher, 'spiffe://example.org/spike/nexus_/x'));
  });

  test('refuses the same path in another trust domain', () => {
    assert.ok(!admits(matcher, 'spiffe://example.com/spike/nexus'));
    assert.ok(!admits(matcher, 'spiffe://example.com/spike/nexus/pod-1'));
    assert.ok(!admits(matcher, 'spiffe://evil.example.org/spike/nexus'));
  });

  test('refuses parents of the base and the trust domain ID', () => {
    assert.ok(!admits(matcher, 'spiffe://example.org/spike'));
    assert.ok(!admits(matcher, 'spiffe://example.org'));
  });

  test('refuses the base path embedded further down another path', () => {
    assert.ok(!admits(matcher, 'spiffe://example.org/x/spike/nexus'));
    assert.ok(!admits(matcher, 'spiffe://example.org/spike/keeper/spike/nexus'));
  });

  test('refuses paths that differ only in case', () => {
    assert.ok(!admits(matcher, 'spiffe://example.org/Spike/nexus'));
    assert.ok(!admits(matcher, 'spiffe://example.org/spike/NEXUS/pod-1'));
  });

  test('treats a base with several segments as a whole-segment prefix', () => {
    const deep = matchIdOrUnder(id('spiffe://example.org/spike/pilot/role/superuser'));
    assert.ok(admits(deep, 'spiffe://example.org/spike/pilot/role/superuser/alice'));
    assert.ok(!admits(deep, 'spiffe://example.org/spike/pilot/role/superuser2'));
    assert.ok(!admits(deep, 'spiffe://example.org/spike/pilot/role'));
    assert.ok(!admits(deep, 'spiffe://example.org/spike/pilot/role/recover'));
  });

  test('refuses a trust domain ID as the base, pointing at matchMemberOf', () => {
    assert.throws(
      () => matchIdOrUnder(id('spiffe://example.org')),
      (err: unknown) => err instanceof RangeError && /matchMemberOf/.test(err.message),
    );
  });

  test('describes the base it expects', () => {
    assert.equal(matcher.description, 'id "spiffe://example.org/spike/nexus" or under it');
  });
});

describe('matchEither', () => {
  const matcher = matchEither(
    matchId(id('spiffe://example.org/spike/nexus')),
    matchMemberOf(parseTrustDomain('other.org')),
  );

  test('admits an ID that any of its matchers admits', () => {
    assert.ok(admits(matcher, 'spiffe://example.org/spike/nexus'));
    assert.ok(admits(matcher, 'spiffe://other.org/anything'));
  });

  test('refuses an ID that none of its matchers admits', () => {
    assert.ok(!admits(matcher, 'spiffe://example.org/spike/keeper'));
    assert.ok(!admits(matcher, 'spiffe://third.org/spike/nexus'));
  });

  test('admits nothing when given no matchers', () => {
    const none = matchEither();
    assert.ok(!admits(none, 'spiffe://example.org/a'));
    assert.equal(none.description, 'nothing');
  });

  test('describes each alternative', () => {
    assert.equal(
      matcher.description,
      '(id "spiffe://example.org/spike/nexus") or (member of "other.org")',
    );
  });

  test('refuses a plain function that is not a matcher', () => {
    assert.throws(() => matchEither((() => true) as never), TypeError);
  });
});

describe('every matcher', () => {
  const all: Matcher[] = [
    matchAny(),
    matchId(id('spiffe://td/a')),
    matchOneOf(id('spiffe://td/a')),
    matchMemberOf(parseTrustDomain('td')),
    matchIdOrUnder(id('spiffe://td/a')),
    matchEither(matchAny()),
  ];

  test('is a frozen function whose description cannot be changed', () => {
    for (const matcher of all) {
      assert.equal(typeof matcher, 'function');
      assert.ok(Object.isFrozen(matcher));
      assert.throws(() => {
        (matcher as { description: string }).description = 'anything';
      }, TypeError);
    }
  });

  test('throws a TypeError when handed a raw string instead of a parsed ID', () => {
    for (const matcher of all) {
      assert.throws(() => matcher('spiffe://td/a' as never), TypeError);
    }
  });
});
