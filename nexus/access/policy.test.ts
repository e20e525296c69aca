import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { POLICY_PERMISSIONS, type PolicyPermission } from '../../shared/api/policies.ts';
import { InvalidRequestError } from '../../shared/errors/errors.ts';
import { parseSpiffeId, parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { PERMISSIONS, type Permission } from './permissions.ts';
import { Policy, parsePolicy, policyForPut } from './policy.ts';

const DOCUMENT = {
  name: 'web-db',
  spiffeIdPattern: 'spiffe://example.org/apps/web/*',
  pathPattern: 'apps/web/db/**',
  permissions: ['read', 'list'],
};

function assertRefused(run: () => unknown, message: RegExp) {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof InvalidRequestError, String(err));
    assert.match(err.message, message);
    return true;
  });
}

describe('parsePolicy()', () => {
  test('compiles both patterns once and keeps the document as written', () => {
    const policy = parsePolicy(DOCUMENT);
    assert.ok(policy instanceof Policy);
    assert.equal(policy.name, 'web-db');
    assert.equal(policy.spiffeIdPattern.source, DOCUMENT.spiffeIdPattern);
    assert.equal(policy.pathPattern.source, DOCUMENT.pathPattern);
    assert.deepEqual(policy.permissions, ['read', 'list']);
    assert.deepEqual(policy.toDocument(), DOCUMENT);
    assert.deepEqual(JSON.parse(JSON.stringify(policy)), DOCUMENT);
    assert.ok(Object.isFrozen(policy));
    assert.ok(Object.isFrozen(policy.permissions));
  });

  test('matches peers and paths through its compiled patterns', () => {
    const policy = parsePolicy(DOCUMENT);
    assert.equal(policy.appliesTo(parseSpiffeId('spiffe://example.org/apps/web/pod-1')), true);
    assert.equal(policy.appliesTo(parseSpiffeId('spiffe://example.org/apps/web')), false);
    assert.equal(policy.covers('apps/web/db'), true);
    assert.equal(policy.covers('apps/web/db/creds'), true);
    assert.equal(policy.covers('apps/web/dbx'), false);
  });

  test('grants its permissions, and every permission with "super"', () => {
    const policy = parsePolicy(DOCUMENT);
    assert.equal(policy.grants('read'), true);
    assert.equal(policy.grants('list'), true);
    assert.equal(policy.grants('write'), false);
    assert.equal(policy.grants('delete'), false);
    assert.equal(policy.grants('super'), false);
    const all = parsePolicy({ ...DOCUMENT, permissions: ['super'] });
    for (const permission of PERMISSIONS) {
      assert.equal(all.grants(permission), true, permission);
    }
  });

  test('refuses invalid patterns with a message naming them', () => {
    assertRefused(
      () => parsePolicy({ ...DOCUMENT, pathPattern: 'a/**b' }),
      /Path pattern "a\/\*\*b"/,
    );
    assertRefused(
      () => parsePolicy({ ...DOCUMENT, spiffeIdPattern: 'spiffe://*.org/x' }),
      /SPIFFE ID pattern "spiffe:\/\/\*\.org\/x"/,
    );
  });

  test('refuses a bad shape: name, permissions, unknown fields', () => {
    assertRefused(() => parsePolicy({ ...DOCUMENT, name: 'a b' }), /"name"/);
    assertRefused(() => parsePolicy({ ...DOCUMENT, name: 'x'.repeat(65) }), /"name"/);
    assertRefused(() => parsePolicy({ ...DOCUMENT, permissions: [] }), /"permissions"/);
    assertRefused(() => parsePolicy({ ...DOCUMENT, permissions: ['execute'] }), /"permissions"/);
    assertRefused(() => parsePolicy({ ...DOCUMENT, id: '1' }), /Unknown field "id"/);
    assertRefused(() => parsePolicy('web-db'), /JSON object/);
  });

  test('with a trust domain, refuses a SPIFFE ID pattern of another one', () => {
    const trustDomain = parseTrustDomain('example.org');
    assert.equal(parsePolicy(DOCUMENT, { trustDomain }).name, 'web-db');
    assertRefused(
      () =>
        parsePolicy(
          { ...DOCUMENT, spiffeIdPattern: 'spiffe://other.org/apps/web' },
          { trustDomain },
        ),
      /trust domain "other\.org".*serves "example\.org"/,
    );
  });

  test('a Policy cannot be built without the parser', () => {
    const policy = parsePolicy(DOCUMENT);
    assert.throws(
      () =>
        new Policy(
          Symbol('x') as never,
          'x',
          policy.spiffeIdPattern,
          policy.pathPattern,
          policy.permissions,
        ),
      TypeError,
    );
  });

  test('the wire permissions are exactly the permissions of Nexus', () => {
    const fromWire: readonly Permission[] = POLICY_PERMISSIONS;
    const toWire: readonly PolicyPermission[] = PERMISSIONS;
    assert.deepEqual(fromWire, toWire);
  });
});

describe('policyForPut()', () => {
  const { name: _name, ...rule } = DOCUMENT;
  const request = { ...rule, permissions: ['read', 'list'] as const };

  test('takes the name from the path', () => {
    assert.equal(policyForPut('from-path', request).name, 'from-path');
    assert.equal(policyForPut('web-db', { ...request, name: 'web-db' }).name, 'web-db');
  });

  test('refuses a body that names another policy', () => {
    assertRefused(
      () => policyForPut('web-db', { ...request, name: 'other' }),
      /"name" is "other" but the path names policy "web-db"/,
    );
  });

  test('refuses a bad name from the path and compiles the patterns', () => {
    assertRefused(() => policyForPut('a/b', request), /"name"/);
    assertRefused(() => policyForPut('ok', { ...request, pathPattern: 'a//b' }), /Path pattern/);
  });
});

describe('parsePolicy(): permissions on named keys', () => {
  const keyPolicy = (pathPattern: string, permissions: string[]) =>
    parsePolicy({ ...DOCUMENT, pathPattern, permissions });

  test('encrypt, decrypt, rewrap and hmac are granted on patterns that reach sys/keys/', () => {
    for (const pattern of [
      'sys/keys/orders',
      'sys/keys/*',
      'sys/keys/**',
      'sys/**',
      'sys/*/orders',
      'sys/**/orders',
    ]) {
      const policy = keyPolicy(pattern, ['encrypt', 'decrypt', 'rewrap', 'hmac']);
      assert.deepEqual(policy.permissions, ['encrypt', 'decrypt', 'rewrap', 'hmac'], pattern);
    }
  });

  test('they are refused on a pattern that can reach no key, naming the way to write one', () => {
    for (const pattern of [
      'apps/**',
      '**',
      '*/keys/*',
      'sys/policies',
      'sys/keys',
      'keys/orders',
    ]) {
      for (const permission of ['encrypt', 'decrypt', 'rewrap', 'hmac']) {
        assertRefused(
          () => keyPolicy(pattern, ['read', permission]),
          /applies to named keys only.*"sys\/keys\/<name>"/,
        );
      }
    }
  });

  test('read, write, list, delete and super stay valid anywhere', () => {
    const all = ['read', 'write', 'list', 'delete', 'super'];
    for (const pattern of ['apps/**', 'sys/keys/*']) {
      assert.deepEqual(keyPolicy(pattern, all).permissions, all, pattern);
    }
  });
});
