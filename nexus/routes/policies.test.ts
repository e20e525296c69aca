import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import {
  type PolicyDocument,
  parseListPoliciesResponse,
  parsePolicyResponse,
  policyPath,
} from '../../shared/api/policies.ts';
import { createBaseApp } from '../../shared/http/app.ts';
import { createMemoryAuditSink } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import {
  pilotRecoverId,
  pilotRestoreId,
  pilotSuperuserId,
} from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import { createAccessChecker } from '../access/check_access.ts';
import { loadPolicyCache } from '../access/policy_cache.ts';
import type { StoredPolicy } from '../store/policy_store.ts';
import { MemoryPolicyStore } from '../store/testing/memory_policy_store.ts';
import { createPolicyRoutes } from './policies.ts';

const TD = parseTrustDomain('nexus.test');
const FOREIGN = parseTrustDomain('other.test');
const HOUR_MS = 3_600_000;

const ADMIN = parseSpiffeId('spiffe://nexus.test/ops/admin');
const AUDITOR = parseSpiffeId('spiffe://nexus.test/ops/auditor');
const WEB = parseSpiffeId('spiffe://nexus.test/apps/web');

/** Grants policy management to ADMIN through the reserved path. */
const ADMIN_POLICY: PolicyDocument = {
  name: 'policy-admins',
  spiffeIdPattern: ADMIN.toString(),
  pathPattern: 'sys/policies',
  permissions: ['read', 'write', 'list', 'delete'],
};
/** Lets AUDITOR look, not touch. */
const AUDITOR_POLICY: PolicyDocument = {
  name: 'policy-auditors',
  spiffeIdPattern: AUDITOR.toString(),
  pathPattern: 'sys/policies',
  permissions: ['read', 'list'],
};
/** WEB may do anything on secrets, which does not reach sys/policies. */
const WEB_POLICY: PolicyDocument = {
  name: 'web-secrets',
  spiffeIdPattern: WEB.toString(),
  pathPattern: '**',
  permissions: ['super'],
};
const SEED = [ADMIN_POLICY, AUDITOR_POLICY, WEB_POLICY];

const NEW_POLICY = {
  spiffeIdPattern: 'spiffe://nexus.test/apps/api/*',
  pathPattern: 'apps/api/**',
  permissions: ['read'],
};

/** A MemoryPolicyStore that counts every call, so a test can prove a refused request never reached it. */
class CountingStore extends MemoryPolicyStore {
  calls = 0;
  override list() {
    this.calls += 1;
    return super.list();
  }
  override get(name: string) {
    this.calls += 1;
    return super.get(name);
  }
  override upsert(policy: PolicyDocument) {
    this.calls += 1;
    return super.upsert(policy);
  }
  override delete(name: string) {
    this.calls += 1;
    return super.delete(name);
  }
}

async function policyApp(firstPeer: SpiffeId | undefined) {
  let peerId = firstPeer;
  let nowMs = Date.parse('2026-03-01T10:00:00.000Z');
  const store = new CountingStore({ now: () => nowMs });
  for (const policy of SEED) await store.upsert(policy);
  const sink = createMemorySink();
  const logger = createLogger({ component: 'nexus', level: 'debug', sink });
  const cache = await loadPolicyCache({ store, logger });
  const checker = createAccessChecker({ trustDomain: TD, policies: () => cache.policies() });
  const audit = createMemoryAuditSink();
  const app = createBaseApp(
    () =>
      peerId === undefined
        ? undefined
        : {
            id: peerId,
            notBefore: new Date(Date.now() - HOUR_MS),
            notAfter: new Date(Date.now() + HOUR_MS),
            serialNumber: '01',
          },
    logger,
    { audit: { sink: audit, component: 'nexus' } },
  );
  app.route('/', createPolicyRoutes({ trustDomain: TD, checker, cache, store, logger }));
  store.calls = 0;
  return {
    app,
    store,
    cache,
    checker,
    sink,
    audit,
    tick(ms: number) {
      nowMs += ms;
    },
    /** The next requests come from `id`. */
    actAs(id: SpiffeId) {
      peerId = id;
    },
  };
}

function jsonRequest(method: string, body: unknown): RequestInit {
  return {
    method,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  };
}

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

/** What is stored, without the counting. */
async function storedNames(store: CountingStore): Promise<string[]> {
  const names = (await MemoryPolicyStore.prototype.list.call(store)) as StoredPolicy[];
  return names.map((policy) => policy.name);
}

interface RouteCase {
  readonly name: string;
  readonly permission: 'list' | 'read' | 'write' | 'delete';
  readonly path: string;
  readonly init: () => RequestInit;
  readonly okStatus: number;
  readonly action: string;
}

const ROUTES: readonly RouteCase[] = [
  {
    name: 'GET /v1/policies',
    permission: 'list',
    path: PATHS.policies,
    init: () => ({ method: 'GET' }),
    okStatus: 200,
    action: 'policy.list',
  },
  {
    name: 'GET /v1/policies/:name',
    permission: 'read',
    path: policyPath('web-secrets'),
    init: () => ({ method: 'GET' }),
    okStatus: 200,
    action: 'policy.read',
  },
  {
    name: 'PUT /v1/policies/:name',
    permission: 'write',
    path: policyPath('api-reads'),
    init: () => jsonRequest('PUT', NEW_POLICY),
    okStatus: 200,
    action: 'policy.write',
  },
  {
    name: 'DELETE /v1/policies/:name',
    permission: 'delete',
    path: policyPath('web-secrets'),
    init: () => ({ method: 'DELETE' }),
    okStatus: 204,
    action: 'policy.delete',
  },
];

describe('policy routes: every route × every kind of caller', () => {
  const allowed: ReadonlyArray<[string, SpiffeId, readonly string[]]> = [
    ['the superuser', pilotSuperuserId(TD), ['list', 'read', 'write', 'delete']],
    [
      'an ID under the superuser',
      parseSpiffeId('spiffe://nexus.test/spike/pilot/role/superuser/alice'),
      ['list', 'read', 'write', 'delete'],
    ],
    ['an app with a matching admin policy', ADMIN, ['list', 'read', 'write', 'delete']],
    ['an app with a read-only admin policy', AUDITOR, ['list', 'read']],
    ['an app whose policies do not cover sys/policies', WEB, []],
    ['the recover role', pilotRecoverId(TD), []],
    ['the restore role', pilotRestoreId(TD), []],
    ['the superuser of a foreign trust domain', pilotSuperuserId(FOREIGN), []],
    ['a foreign ID that looks like the admin', parseSpiffeId('spiffe://other.test/ops/admin'), []],
  ];

  for (const [who, peer, permissions] of allowed) {
    for (const route of ROUTES) {
      if (permissions.includes(route.permission)) {
        test(`${route.name} by ${who}: ${route.okStatus}`, async () => {
          const { app, store, audit } = await policyApp(peer);
          const res = await app.request(route.path, route.init());
          assert.equal(res.status, route.okStatus);
          assert.equal(res.headers.get('cache-control'), 'no-store');
          assert.ok(store.calls > 0);
          assert.equal(audit.events.length, 1);
          assert.equal(audit.events[0]?.outcome, 'allowed');
          assert.equal(audit.events[0]?.action, route.action);
          assert.equal(audit.events[0]?.peer, peer.toString());
        });
      } else {
        test(`${route.name} by ${who}: 403, store untouched, one denied audit event`, async () => {
          const { app, store, sink, audit } = await policyApp(peer);
          const res = await app.request(route.path, route.init());
          assert.equal(res.status, 403);
          const error = await errorOf(res);
          assert.equal(error.code, 'ERR_ACCESS_DENIED');
          assert.doesNotMatch(error.message, /sys|polic|spiffe/i);
          assert.equal(store.calls, 0);
          assert.deepEqual(await storedNames(store), [
            'policy-admins',
            'policy-auditors',
            'web-secrets',
          ]);
          assert.equal(audit.events.length, 1);
          assert.equal(audit.events[0]?.outcome, 'denied');
          assert.equal(audit.events[0]?.status, 403);
          assert.equal(audit.events[0]?.errorCode, 'ERR_ACCESS_DENIED');
          assert.equal(audit.events[0]?.action, route.action);
          assert.equal(audit.events[0]?.peer, peer.toString());
          const denials = sink.lines.filter((line) => line.msg === 'Access denied');
          assert.equal(denials.length, 1);
          assert.match(
            String(denials[0]?.rule),
            new RegExp(`"${route.permission}" on "sys/policies"`),
          );
        });
      }
    }
  }

  test('a request without a verified peer gets 401 on every route, store untouched', async () => {
    for (const route of ROUTES) {
      const { app, store, audit } = await policyApp(undefined);
      const res = await app.request(route.path, route.init());
      assert.equal(res.status, 401);
      assert.equal((await errorOf(res)).code, 'ERR_UNAUTHENTICATED');
      assert.equal(store.calls, 0);
      assert.equal(audit.events[0]?.outcome, 'denied');
    }
  });

  test('the audit event carries the decision and the policy name as the resource', async () => {
    const cases: ReadonlyArray<readonly [SpiffeId, string, number, unknown, string | null]> = [
      [pilotSuperuserId(TD), PATHS.policies, 200, { reason: 'superuser', policy: null }, null],
      [
        AUDITOR,
        policyPath('web-secrets'),
        200,
        { reason: 'policy', policy: 'policy-auditors' },
        'web-secrets',
      ],
      [WEB, policyPath('web-secrets'), 403, { reason: 'no_matching_policy', policy: null }, null],
      [pilotRecoverId(TD), PATHS.policies, 403, { reason: 'operator_role', policy: null }, null],
    ];
    for (const [peer, path, status, decision, resource] of cases) {
      const { app, audit } = await policyApp(peer);
      const res = await app.request(path);
      assert.equal(res.status, status, `${peer} ${path}`);
      if (status === 403) {
        assert.doesNotMatch(await res.text(), /reason|polic|superuser|operator/);
      }
      assert.equal(audit.events.length, 1);
      assert.deepEqual(audit.events[0]?.decision, decision, `${peer} ${path}`);
      assert.equal(audit.events[0]?.resource, resource);
    }
  });
});

describe('policy routes: what they answer', () => {
  test('GET /v1/policies lists every policy by name in the wire shape', async () => {
    const { app } = await policyApp(pilotSuperuserId(TD));
    const res = await app.request(PATHS.policies);
    const body = parseListPoliciesResponse(await res.json());
    assert.deepEqual(
      body.policies.map((policy) => policy.name),
      ['policy-admins', 'policy-auditors', 'web-secrets'],
    );
    assert.deepEqual(body.policies[2], {
      ...WEB_POLICY,
      createdAt: '2026-03-01T10:00:00.000Z',
      updatedAt: '2026-03-01T10:00:00.000Z',
    });
  });

  test('GET one policy answers it; a missing one is 404 for a caller who may read', async () => {
    const { app } = await policyApp(ADMIN);
    const res = await app.request(policyPath('policy-auditors'));
    assert.equal(res.status, 200);
    assert.deepEqual(
      { ...parsePolicyResponse(await res.json()), createdAt: '', updatedAt: '' },
      { ...AUDITOR_POLICY, createdAt: '', updatedAt: '' },
    );
    const missing = await app.request(policyPath('nope'));
    assert.equal(missing.status, 404);
    assert.equal((await errorOf(missing)).code, 'ERR_NOT_FOUND');
  });

  test('a caller who may not read gets 403 for missing and existing policies alike', async () => {
    const { app } = await policyApp(WEB);
    for (const name of ['nope', 'web-secrets']) {
      assert.equal((await app.request(policyPath(name))).status, 403);
      assert.equal((await app.request(policyPath(name), { method: 'DELETE' })).status, 403);
    }
    assert.equal((await app.request(`${PATHS.policies}/a%20b`)).status, 403);
  });

  test('PUT creates a policy (200 with it) and the checker uses it at once', async () => {
    const { app, checker, audit } = await policyApp(pilotSuperuserId(TD));
    const api = parseSpiffeId('spiffe://nexus.test/apps/api/pod-1');
    assert.equal(checker.isAllowed(api, 'read', 'apps/api/db'), false);
    const res = await app.request(policyPath('api-reads'), jsonRequest('PUT', NEW_POLICY));
    assert.equal(res.status, 200);
    const body = parsePolicyResponse(await res.json());
    assert.deepEqual(
      { ...body, createdAt: '', updatedAt: '' },
      { name: 'api-reads', ...NEW_POLICY, createdAt: '', updatedAt: '' },
    );
    assert.equal(checker.isAllowed(api, 'read', 'apps/api/db'), true);
    assert.equal(checker.isAllowed(api, 'write', 'apps/api/db'), false);
    assert.equal(audit.events[0]?.resource, 'api-reads');
  });

  test('PUT replaces a policy, keeps createdAt and moves updatedAt', async () => {
    const { app, tick } = await policyApp(ADMIN);
    tick(60_000);
    const res = await app.request(
      policyPath('web-secrets'),
      jsonRequest('PUT', { ...WEB_POLICY, pathPattern: 'apps/web/**' }),
    );
    assert.equal(res.status, 200);
    const body = parsePolicyResponse(await res.json());
    assert.equal(body.pathPattern, 'apps/web/**');
    assert.equal(body.createdAt, '2026-03-01T10:00:00.000Z');
    assert.equal(body.updatedAt, '2026-03-01T10:01:00.000Z');
  });

  test('a policy granted through PUT lets its holder manage policies next', async () => {
    const { app, actAs } = await policyApp(WEB);
    assert.equal((await app.request(PATHS.policies)).status, 403);
    actAs(pilotSuperuserId(TD));
    const res = await app.request(
      policyPath('web-lists-policies'),
      jsonRequest('PUT', {
        spiffeIdPattern: WEB.toString(),
        pathPattern: 'sys/policies',
        permissions: ['list'],
      }),
    );
    assert.equal(res.status, 200);
    actAs(WEB);
    assert.equal((await app.request(PATHS.policies)).status, 200);
    assert.equal((await app.request(policyPath('web-secrets'))).status, 403);
  });

  test('DELETE removes a policy (204, no body) and the checker stops using it', async () => {
    const { app, checker, store } = await policyApp(ADMIN);
    assert.equal(checker.isAllowed(WEB, 'read', 'apps/x'), true);
    const res = await app.request(policyPath('web-secrets'), { method: 'DELETE' });
    assert.equal(res.status, 204);
    assert.equal(await res.text(), '');
    assert.equal(checker.isAllowed(WEB, 'read', 'apps/x'), false);
    assert.deepEqual(await storedNames(store), ['policy-admins', 'policy-auditors']);
    const again = await app.request(policyPath('web-secrets'), { method: 'DELETE' });
    assert.equal(again.status, 404);
    assert.equal((await errorOf(again)).code, 'ERR_NOT_FOUND');
  });

  test('writes are logged with the peer and the policy name', async () => {
    const { app, sink } = await policyApp(ADMIN);
    await app.request(policyPath('api-reads'), jsonRequest('PUT', NEW_POLICY));
    await app.request(policyPath('api-reads'), { method: 'DELETE' });
    for (const msg of ['Policy written', 'Policy deleted']) {
      const line = sink.lines.find((l) => l.msg === msg);
      assert.equal(line?.peer, ADMIN.toString());
      assert.equal(line?.policy, 'api-reads');
    }
  });
});

describe('policy routes refuse bad requests before touching the store', () => {
  const cases: ReadonlyArray<[string, string, RequestInit, RegExp]> = [
    [
      'a body naming another policy',
      policyPath('api-reads'),
      jsonRequest('PUT', { ...NEW_POLICY, name: 'other' }),
      /"name" is "other"/,
    ],
    [
      'an invalid path pattern',
      policyPath('api-reads'),
      jsonRequest('PUT', { ...NEW_POLICY, pathPattern: 'apps/**x' }),
      /Path pattern "apps\/\*\*x"/,
    ],
    [
      'a wildcard trust domain',
      policyPath('api-reads'),
      jsonRequest('PUT', { ...NEW_POLICY, spiffeIdPattern: 'spiffe://*.test/apps' }),
      /SPIFFE ID pattern "spiffe:\/\/\*\.test\/apps"/,
    ],
    [
      'a SPIFFE ID pattern of another trust domain',
      policyPath('api-reads'),
      jsonRequest('PUT', { ...NEW_POLICY, spiffeIdPattern: 'spiffe://other.test/apps/**' }),
      /serves "nexus\.test"/,
    ],
    [
      'a regex in the style of SPIKE',
      policyPath('api-reads'),
      jsonRequest('PUT', { ...NEW_POLICY, pathPattern: '^apps/.*$' }),
      /Path pattern/,
    ],
    [
      'an unknown permission',
      policyPath('api-reads'),
      jsonRequest('PUT', { ...NEW_POLICY, permissions: ['execute'] }),
      /"permissions"/,
    ],
    [
      'an unknown field',
      policyPath('api-reads'),
      jsonRequest('PUT', { ...NEW_POLICY, id: 'x' }),
      /Unknown field "id"/,
    ],
    ['malformed JSON', policyPath('api-reads'), jsonRequest('PUT', '{"pathPattern":'), /JSON/],
    [
      'no JSON content type',
      policyPath('api-reads'),
      { method: 'PUT', body: JSON.stringify(NEW_POLICY) },
      /application\/json/,
    ],
    [
      'an invalid name in the path (PUT)',
      `${PATHS.policies}/a%20b`,
      jsonRequest('PUT', NEW_POLICY),
      /"name"/,
    ],
    // Refused for the encoded slash before the name is read (shared/http/app.ts).
    [
      'an invalid name in the path (GET)',
      `${PATHS.policies}/a%2Fb`,
      { method: 'GET' },
      /encoded slashes/,
    ],
    ['a name that is too long', `${PATHS.policies}/${'x'.repeat(65)}`, { method: 'DELETE' }, /64/],
  ];
  for (const [what, path, init, message] of cases) {
    test(`400 for ${what}`, async () => {
      const { app, store, audit } = await policyApp(pilotSuperuserId(TD));
      const res = await app.request(path, init);
      assert.equal(res.status, 400);
      const error = await errorOf(res);
      assert.equal(error.code, 'ERR_INVALID_REQUEST');
      assert.match(error.message, message);
      assert.equal(store.calls, 0);
      assert.equal(audit.events[0]?.outcome, 'error');
    });
  }

  test('a refused caller with a bad body gets 403, not 400: authorization comes first', async () => {
    const { app, store } = await policyApp(WEB);
    const res = await app.request(policyPath('api-reads'), jsonRequest('PUT', '{nope'));
    assert.equal(res.status, 403);
    assert.equal(store.calls, 0);
  });
});
