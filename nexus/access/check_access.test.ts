import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  keeperId,
  nexusId,
  pilotRecoverId,
  pilotRestoreId,
  pilotSuperuserId,
} from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import {
  createAccessChecker,
  isReservedPath,
  POLICY_ADMIN_PATH,
  RESERVED_ROOT,
} from './check_access.ts';
import { EVERYWHERE } from './pattern.ts';
import { keyPath, PERMISSIONS, type Permission } from './permissions.ts';
import { type Policy, parsePolicy } from './policy.ts';

const TD = parseTrustDomain('example.org');
const FOREIGN = parseTrustDomain('other.org');
const WEB = parseSpiffeId('spiffe://example.org/apps/web');
const WEB_POD = parseSpiffeId('spiffe://example.org/apps/web/pod-1');

function policy(
  name: string,
  spiffeIdPattern: string,
  pathPattern: string,
  permissions: readonly Permission[],
): Policy {
  return parsePolicy({ name, spiffeIdPattern, pathPattern, permissions: [...permissions] });
}

function checkerWith(...policies: Policy[]) {
  let calls = 0;
  const checker = createAccessChecker({
    trustDomain: TD,
    policies: () => {
      calls += 1;
      return policies;
    },
  });
  return { checker, calls: () => calls };
}

describe('createAccessChecker(): built-in roles', () => {
  test('the superuser, or an ID under it, may do everything on secrets and policies', () => {
    const { checker } = checkerWith();
    const superusers = [
      pilotSuperuserId(TD),
      parseSpiffeId('spiffe://example.org/spike/pilot/role/superuser/alice'),
    ];
    for (const peer of superusers) {
      for (const permission of PERMISSIONS) {
        for (const path of ['apps/web/db', POLICY_ADMIN_PATH, 'sys/anything']) {
          assert.equal(checker.isAllowed(peer, permission, path), true, `${peer} ${permission}`);
        }
      }
    }
    assert.deepEqual(checker.explain(pilotSuperuserId(TD), 'read', 'a'), {
      allowed: true,
      reason: 'superuser',
    });
  });

  test('a look-alike of the superuser is nobody special', () => {
    const { checker } = checkerWith();
    const peer = parseSpiffeId('spiffe://example.org/spike/pilot/role/superuser-evil');
    assert.equal(checker.isAllowed(peer, 'read', 'apps/web/db'), false);
  });

  test('the recover and restore roles get nothing, even with a matching policy', () => {
    const { checker, calls } = checkerWith(
      policy('everyone', 'spiffe://example.org/**', '**', ['super']),
      policy('admins', 'spiffe://example.org/**', 'sys/**', ['super']),
    );
    for (const peer of [pilotRecoverId(TD), pilotRestoreId(TD)]) {
      for (const permission of PERMISSIONS) {
        assert.equal(checker.isAllowed(peer, permission, 'apps/web/db'), false);
        assert.equal(checker.isAllowed(peer, permission, POLICY_ADMIN_PATH), false);
      }
      assert.equal(checker.explain(peer, 'read', 'a').reason, 'operator_role');
    }
    assert.equal(calls(), 0);
  });

  test('a peer of another trust domain gets nothing, superuser or not', () => {
    const { checker } = checkerWith(policy('everyone', 'spiffe://example.org/**', '**', ['super']));
    for (const peer of [
      pilotSuperuserId(FOREIGN),
      parseSpiffeId('spiffe://other.org/apps/web'),
      parseSpiffeId('spiffe://example.org.evil/apps/web'),
    ]) {
      for (const permission of PERMISSIONS) {
        assert.equal(checker.isAllowed(peer, permission, 'apps/web/db'), false);
      }
      assert.equal(checker.explain(peer, 'read', 'a').reason, 'foreign_trust_domain');
    }
  });

  test('Nexus and Keepers have no implicit access', () => {
    const { checker } = checkerWith();
    for (const peer of [nexusId(TD), keeperId(TD, '1')]) {
      assert.equal(checker.isAllowed(peer, 'read', 'apps/web/db'), false);
    }
  });
});

describe('createAccessChecker(): policies', () => {
  test('default deny: without policies nobody but the superuser gets anything', () => {
    const { checker } = checkerWith();
    for (const permission of PERMISSIONS) {
      assert.equal(checker.isAllowed(WEB, permission, 'apps/web/db'), false);
    }
    assert.deepEqual(checker.explain(WEB, 'read', 'apps/web/db'), {
      allowed: false,
      reason: 'no_matching_policy',
    });
  });

  test('allows when one policy matches the peer, the path and the permission', () => {
    const { checker } = checkerWith(
      policy('web-db', 'spiffe://example.org/apps/web/**', 'apps/web/db/*', ['read', 'list']),
    );
    assert.equal(checker.isAllowed(WEB, 'read', 'apps/web/db/creds'), true);
    assert.equal(checker.isAllowed(WEB_POD, 'list', 'apps/web/db/creds'), true);
    assert.deepEqual(checker.explain(WEB, 'read', 'apps/web/db/creds'), {
      allowed: true,
      reason: 'policy',
      policy: 'web-db',
    });
    // wrong permission, path, peer
    assert.equal(checker.isAllowed(WEB, 'write', 'apps/web/db/creds'), false);
    assert.equal(checker.isAllowed(WEB, 'delete', 'apps/web/db/creds'), false);
    assert.equal(checker.isAllowed(WEB, 'read', 'apps/web/db'), false);
    assert.equal(checker.isAllowed(WEB, 'read', 'apps/web/db/creds/x'), false);
    assert.equal(checker.isAllowed(WEB, 'read', 'test/apps/web/db/creds'), false);
    assert.equal(
      checker.isAllowed(parseSpiffeId('spiffe://example.org/apps/webx'), 'read', 'apps/web/db/a'),
      false,
    );
  });

  test('SPIKE over-grant cases are denied', () => {
    const { checker } = checkerWith(
      policy('db', 'spiffe://example.org/apps/web', 'secrets/db/*', ['read']),
    );
    assert.equal(checker.isAllowed(WEB, 'read', 'secrets/db/x'), true);
    for (const path of ['test/secrets/db/x', 'secrets/db', 'secrets/db/x/y', 'secrets/dbx/y']) {
      assert.equal(checker.isAllowed(WEB, 'read', path), false, path);
    }
  });

  test('"super" in a policy grants every permission on what it covers', () => {
    const { checker } = checkerWith(
      policy('owner', 'spiffe://example.org/apps/web', 'apps/web/**', ['super']),
    );
    for (const permission of PERMISSIONS) {
      assert.equal(checker.isAllowed(WEB, permission, 'apps/web/x'), true);
    }
    assert.equal(checker.isAllowed(WEB, 'read', 'apps/api/x'), false);
  });

  test('permissions are not combined across policies, yet any single policy suffices', () => {
    const { checker } = checkerWith(
      policy('reads', 'spiffe://example.org/apps/web', 'apps/**', ['read']),
      policy('writes', 'spiffe://example.org/apps/web', 'apps/web/**', ['write']),
    );
    assert.equal(checker.isAllowed(WEB, 'read', 'apps/api/x'), true);
    assert.equal(checker.isAllowed(WEB, 'write', 'apps/api/x'), false);
    assert.equal(checker.isAllowed(WEB, 'write', 'apps/web/x'), true);
    assert.equal(checker.explain(WEB, 'write', 'apps/web/x').policy, 'writes');
  });

  test('sees policy changes at once: it asks its source on every check', () => {
    let policies: Policy[] = [];
    const checker = createAccessChecker({ trustDomain: TD, policies: () => policies });
    assert.equal(checker.isAllowed(WEB, 'read', 'a'), false);
    policies = [policy('p', 'spiffe://example.org/apps/web', 'a', ['read'])];
    assert.equal(checker.isAllowed(WEB, 'read', 'a'), true);
    policies = [];
    assert.equal(checker.isAllowed(WEB, 'read', 'a'), false);
  });

  test('malformed paths are denied to everyone, superuser included', () => {
    const { checker } = checkerWith(policy('all', 'spiffe://example.org/**', '**', ['super']));
    for (const path of ['', '/a', 'a/', 'a//b', 'a/../sys/policies', './a', 'a/b c']) {
      assert.equal(checker.isAllowed(WEB, 'read', path), false, path);
      assert.equal(checker.isAllowed(pilotSuperuserId(TD), 'read', path), false, path);
    }
    assert.equal(checker.explain(WEB, 'read', 'a//b').reason, 'malformed_path');
  });

  test('programmer errors throw: raw strings and unknown permissions', () => {
    const { checker } = checkerWith();
    assert.throws(
      () => checker.isAllowed('spiffe://example.org/x' as unknown as SpiffeId, 'read', 'a'),
      TypeError,
    );
    assert.throws(() => checker.isAllowed(WEB, 'execute' as Permission, 'a'), TypeError);
    assert.throws(() => createAccessChecker({ trustDomain: TD, policies: [] as never }), TypeError);
  });
});

describe('createAccessChecker(): explainList()', () => {
  test('members may list (each path is checked later); the superuser is named', () => {
    const { checker, calls } = checkerWith();
    assert.deepEqual(checker.explainList(WEB), { allowed: true, reason: 'trust_domain_member' });
    assert.deepEqual(checker.explainList(nexusId(TD)), {
      allowed: true,
      reason: 'trust_domain_member',
    });
    assert.deepEqual(checker.explainList(pilotSuperuserId(TD)), {
      allowed: true,
      reason: 'superuser',
    });
    assert.equal(calls(), 0);
  });

  test('the recover and restore roles and other trust domains may not list', () => {
    const { checker } = checkerWith(policy('everyone', 'spiffe://example.org/**', '**', ['super']));
    for (const peer of [pilotRecoverId(TD), pilotRestoreId(TD)]) {
      assert.deepEqual(checker.explainList(peer), { allowed: false, reason: 'operator_role' });
    }
    for (const peer of [pilotSuperuserId(FOREIGN), parseSpiffeId('spiffe://other.org/apps/web')]) {
      assert.deepEqual(checker.explainList(peer), {
        allowed: false,
        reason: 'foreign_trust_domain',
      });
    }
    assert.throws(() => checker.explainList('spiffe://example.org/x' as never), TypeError);
  });
});

describe('createAccessChecker(): listReach()', () => {
  test('the reaches of the policies that grant the peer list (or super), sys/ left out', () => {
    const { checker } = checkerWith(
      policy('web-list', 'spiffe://example.org/apps/web', 'apps/web/**', ['list']),
      policy('web-one', 'spiffe://example.org/apps/web', 'shared/db', ['super']),
      policy('web-read', 'spiffe://example.org/apps/web', 'reads/**', ['read', 'write']),
      policy('web-admin', 'spiffe://example.org/apps/web', 'sys/**', ['list']),
      policy('others', 'spiffe://example.org/apps/other', '**', ['list']),
    );
    assert.deepEqual(checker.listReach(WEB), [
      { base: 'apps/web', self: true, below: true },
      { base: 'shared/db', self: true, below: false },
    ]);
    assert.deepEqual(checker.listReach(WEB_POD), []);
  });

  test('the superuser reaches everywhere; operator roles and strangers nowhere', () => {
    const { checker } = checkerWith(policy('everyone', 'spiffe://example.org/**', '**', ['super']));
    assert.deepEqual(checker.listReach(pilotSuperuserId(TD)), [EVERYWHERE]);
    assert.deepEqual(checker.listReach(WEB), [EVERYWHERE]);
    for (const peer of [
      pilotRecoverId(TD),
      pilotRestoreId(TD),
      pilotSuperuserId(FOREIGN),
      parseSpiffeId('spiffe://other.org/apps/web'),
    ]) {
      assert.deepEqual(checker.listReach(peer), [], String(peer));
    }
    assert.throws(() => checker.listReach('spiffe://example.org/x' as never), TypeError);
  });
});

describe('createAccessChecker(): the reserved sys/ namespace', () => {
  test('a policy on "sys/policies" delegates policy management', () => {
    const admin = parseSpiffeId('spiffe://example.org/ops/admin');
    const { checker } = checkerWith(
      policy('policy-admins', 'spiffe://example.org/ops/admin', POLICY_ADMIN_PATH, [
        'read',
        'list',
      ]),
    );
    assert.equal(checker.isAllowed(admin, 'read', POLICY_ADMIN_PATH), true);
    assert.equal(checker.isAllowed(admin, 'list', POLICY_ADMIN_PATH), true);
    assert.equal(checker.isAllowed(admin, 'write', POLICY_ADMIN_PATH), false);
    assert.equal(checker.isAllowed(admin, 'delete', POLICY_ADMIN_PATH), false);
    assert.equal(checker.isAllowed(WEB, 'read', POLICY_ADMIN_PATH), false);
  });

  test('"sys/**" and "sys/*" reach it: they name the reserved root literally', () => {
    for (const pattern of ['sys/**', 'sys/*', 'sys/policies/**']) {
      const { checker } = checkerWith(
        policy('admins', 'spiffe://example.org/apps/web', pattern, ['write']),
      );
      assert.equal(checker.isAllowed(WEB, 'write', POLICY_ADMIN_PATH), true, pattern);
    }
  });

  test('wildcards never cross into sys/: "**", "*/policies", "**/policies" do not reach it', () => {
    for (const pattern of ['**', '*/policies', '**/policies', '*/*', '**/*']) {
      const { checker } = checkerWith(
        policy('broad', 'spiffe://example.org/**', pattern, ['super']),
      );
      for (const permission of PERMISSIONS) {
        assert.equal(checker.isAllowed(WEB, permission, POLICY_ADMIN_PATH), false, pattern);
      }
      // The same pattern does reach the same shape of path outside sys/.
      assert.equal(checker.isAllowed(WEB, 'read', 'apps/policies'), true, pattern);
    }
  });

  test('isReservedPath() is "sys" and everything under it, nothing else', () => {
    assert.equal(RESERVED_ROOT, 'sys');
    for (const path of ['sys', 'sys/policies', 'sys/a/b']) {
      assert.equal(isReservedPath(path), true, path);
    }
    for (const path of ['system', 'sysx/a', 'a/sys', 'app/sys/policies', 'SYS/policies']) {
      assert.equal(isReservedPath(path), false, path);
    }
  });
});

describe('createAccessChecker(): named keys', () => {
  const ORDERS = keyPath('orders');

  test('keys stand at sys/keys/{name}', () => {
    assert.equal(ORDERS, 'sys/keys/orders');
    assert.equal(isReservedPath(ORDERS), true);
  });

  test('encrypt and decrypt are granted apart, per key, per SPIFFE ID', () => {
    const api = parseSpiffeId('spiffe://example.org/apps/api');
    const { checker } = checkerWith(
      policy('web-encrypts', 'spiffe://example.org/apps/web', 'sys/keys/orders', ['encrypt']),
      policy('api-decrypts', 'spiffe://example.org/apps/api', 'sys/keys/orders', ['decrypt']),
    );
    assert.equal(checker.isAllowed(WEB, 'encrypt', ORDERS), true);
    assert.equal(checker.isAllowed(WEB, 'decrypt', ORDERS), false);
    assert.equal(checker.isAllowed(api, 'decrypt', ORDERS), true);
    assert.equal(checker.isAllowed(api, 'encrypt', ORDERS), false);
    for (const permission of ['rewrap', 'hmac', 'read', 'write', 'delete', 'list'] as const) {
      assert.equal(checker.isAllowed(WEB, permission, ORDERS), false, permission);
    }
    assert.equal(checker.isAllowed(WEB, 'encrypt', keyPath('other')), false);
    assert.deepEqual(checker.explain(WEB, 'encrypt', ORDERS), {
      allowed: true,
      reason: 'policy',
      policy: 'web-encrypts',
    });
  });

  test('a broad grant on secrets reaches no key; the superuser reaches every key', () => {
    const { checker } = checkerWith(
      policy('everything', 'spiffe://example.org/**', '**', ['super']),
      policy('any-one', 'spiffe://example.org/**', '*/*/*', ['super']),
    );
    for (const permission of PERMISSIONS) {
      assert.equal(checker.isAllowed(WEB, permission, ORDERS), false, permission);
      assert.equal(checker.isAllowed(pilotSuperuserId(TD), permission, ORDERS), true, permission);
    }
  });

  test('a policy on sys/keys/* manages and uses every key, and nothing else under sys/', () => {
    const { checker } = checkerWith(
      policy('key-admin', 'spiffe://example.org/apps/web', 'sys/keys/*', ['super']),
    );
    for (const permission of PERMISSIONS) {
      assert.equal(checker.isAllowed(WEB, permission, ORDERS), true, permission);
      assert.equal(checker.isAllowed(WEB, permission, POLICY_ADMIN_PATH), false, permission);
    }
  });
});
