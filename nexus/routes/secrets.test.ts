/**
 * The secret routes through the whole Nexus app (`createApp`): every route ×
 * every kind of caller, KV semantics over HTTP, validation, the body limit and
 * the sealed state. The store is the real SqliteSecretStore on an in-memory
 * SQLite database, encrypting under the keyring an unsealed RootKey lends;
 * policies come from a MemoryPolicyStore through the policy cache; the peer
 * is injected per request. Every test ends by checking that no response,
 * audit event or log line carried a secret value it wrote, except the
 * answers of reads that were allowed.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import type { PolicyDocument } from '../../shared/api/policies.ts';
import type { ListResponse, MetadataResponse, SecretResponse } from '../../shared/api/secrets.ts';
import {
  pilotRecoverId,
  pilotRestoreId,
  pilotSuperuserId,
} from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import { type Answer, type NexusApp, nexusApp } from '../../test/harness/nexus_app.ts';
import type { Permission } from '../access/permissions.ts';
import type { SecretQuotas } from '../store/secret_quotas.ts';
import type { SecretData } from '../store/secret_store.ts';

const TD = parseTrustDomain('nexus.test');
const FOREIGN = parseTrustDomain('other.test');
const MAX_BODY_BYTES = 8192;

const SUPERUSER = pilotSuperuserId(TD);
/** May read and list `app/web/**`, nothing else. */
const WEB = parseSpiffeId('spiffe://nexus.test/apps/web');
/** May do everything on `app/other/**`, nothing on `app/web/**`. */
const OTHER = parseSpiffeId('spiffe://nexus.test/apps/other');
/** No policy names it. */
const NOBODY = parseSpiffeId('spiffe://nexus.test/apps/nobody');

const POLICIES: readonly PolicyDocument[] = [
  {
    name: 'web-reads',
    spiffeIdPattern: WEB.toString(),
    pathPattern: 'app/web/**',
    permissions: ['read', 'list'],
  },
  {
    name: 'other-owns',
    spiffeIdPattern: OTHER.toString(),
    pathPattern: 'app/other/**',
    permissions: ['super'],
  },
];

/** Every secret value written in this file starts with this, so a leak is easy to find. */
const SECRET_MARK = 'S3CR3T-';
function secretValue(label: string): string {
  return `${SECRET_MARK}${label}-${crypto.randomUUID()}`;
}

const WEB_DB = 'app/web/db';
const WEB_DB_V1 = { password: secretValue('web-v1') };
const WEB_DB_V2 = { password: secretValue('web-v2'), user: 'web' };
const OTHER_DB = 'app/other/db';
const OTHER_DB_V1 = { password: secretValue('other-v1') };

const apps: NexusApp[] = [];
after(async () => {
  await Promise.all(apps.map((app) => app.close()));
});

interface NexusOptions {
  /** Secrets written before the test starts (through the store, not audited). */
  readonly seed?: ReadonlyArray<readonly [string, SecretData]>;
  readonly maxVersionsDefault?: number;
  readonly quotas?: SecretQuotas;
}

const DEFAULT_SEED: ReadonlyArray<readonly [string, SecretData]> = [
  [WEB_DB, WEB_DB_V1],
  [WEB_DB, WEB_DB_V2],
  [OTHER_DB, OTHER_DB_V1],
];

async function secretsApp(options: NexusOptions = {}) {
  const nexus = await nexusApp({
    policies: POLICIES,
    seed: options.seed ?? DEFAULT_SEED,
    maxBodyBytes: MAX_BODY_BYTES,
    ...(options.maxVersionsDefault === undefined
      ? {}
      : { maxVersionsDefault: options.maxVersionsDefault }),
    ...(options.quotas === undefined ? {} : { quotas: options.quotas }),
  });
  apps.push(nexus);
  const { audit, logSink, sent, secretCalls } = nexus;
  return {
    ...nexus,
    /** Calls the routes made on the store, by method name. */
    calls: secretCalls,
    send: nexus.request,
    /** Forgets the store calls so far. */
    resetCalls() {
      secretCalls.length = 0;
    },
    /** Everything stored, read past the routes: paths, metadata and readable data. */
    async snapshot(): Promise<string> {
      return JSON.stringify(await nexus.storedSecrets());
    },
    /** No answer but an allowed read, no audit event and no log line held a secret value. */
    assertNoSecretLeaked() {
      for (const request of sent) {
        const isAllowedRead =
          request.method === 'GET' &&
          request.status === 200 &&
          request.url.startsWith(`${PATHS.secretData}/`);
        if (!isAllowedRead) {
          assert.ok(
            !request.text.includes(SECRET_MARK),
            `${request.method} ${request.url} (${request.status}) answered a secret value`,
          );
        }
      }
      assert.ok(
        !JSON.stringify(audit.events).includes(SECRET_MARK),
        'an audit event holds a value',
      );
      assert.ok(!JSON.stringify(logSink.lines).includes(SECRET_MARK), 'a log line holds a value');
    },
  };
}

type Nexus = Awaited<ReturnType<typeof secretsApp>>;

/** A test on a fresh Nexus that ends by checking that no secret value leaked. */
function nexusTest(name: string, body: (nexus: Nexus) => Promise<void>, options?: NexusOptions) {
  test(name, async () => {
    const nexus = await secretsApp(options);
    await body(nexus);
    nexus.assertNoSecretLeaked();
  });
}

function dataUrl(path: string, query = ''): string {
  return `${PATHS.secretData}/${path}${query}`;
}
function metadataUrl(path: string, query = ''): string {
  return `${PATHS.secretMetadata}/${path}${query}`;
}
function undeleteUrl(path: string): string {
  return `${PATHS.secretUndelete}/${path}`;
}
function destroyUrl(path: string): string {
  return `${PATHS.secretDestroy}/${path}`;
}
function listUrl(query: Readonly<Record<string, string>> = {}): string {
  const search = new URLSearchParams(query).toString();
  return search === '' ? PATHS.secretList : `${PATHS.secretList}?${search}`;
}

function json(method: string, body: unknown): RequestInit {
  return {
    method,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  };
}

function errorOf(answer: Answer): { code: string; message: string } {
  return (answer.body as { error: { code: string; message: string } }).error;
}

function assertError(answer: Answer, status: number, code: string): void {
  assert.equal(answer.status, status, answer.text);
  assert.equal(errorOf(answer).code, code);
}

interface RouteCase {
  readonly name: string;
  readonly permission: Exclude<Permission, 'super'>;
  readonly action: string;
  readonly okStatus: number;
  /** The URL and request for `path` (a prefix for the list route). */
  readonly request: (path: string) => [string, RequestInit];
  /** What the audit event names as the resource for `path`. */
  readonly resource: (path: string) => string;
}

const ROUTES: readonly RouteCase[] = [
  {
    name: 'GET /v1/secrets/data/{path}',
    permission: 'read',
    action: 'secret.read',
    okStatus: 200,
    request: (path) => [dataUrl(path), { method: 'GET' }],
    resource: (path) => path,
  },
  {
    name: 'PUT /v1/secrets/data/{path}',
    permission: 'write',
    action: 'secret.write',
    okStatus: 200,
    request: (path) => [dataUrl(path), json('PUT', { data: { password: secretValue('put') } })],
    resource: (path) => path,
  },
  {
    name: 'DELETE /v1/secrets/data/{path}',
    permission: 'delete',
    action: 'secret.delete',
    okStatus: 200,
    request: (path) => [dataUrl(path), { method: 'DELETE' }],
    resource: (path) => path,
  },
  {
    name: 'POST /v1/secrets/undelete/{path}',
    permission: 'write',
    action: 'secret.undelete',
    okStatus: 200,
    request: (path) => [undeleteUrl(path), json('POST', {})],
    resource: (path) => path,
  },
  {
    name: 'POST /v1/secrets/destroy/{path}',
    permission: 'delete',
    action: 'secret.destroy',
    okStatus: 200,
    request: (path) => [destroyUrl(path), json('POST', { versions: [1] })],
    resource: (path) => path,
  },
  {
    name: 'GET /v1/secrets/metadata/{path}',
    permission: 'read',
    action: 'metadata.read',
    okStatus: 200,
    request: (path) => [metadataUrl(path), { method: 'GET' }],
    resource: (path) => path,
  },
  {
    name: 'PUT /v1/secrets/metadata/{path}',
    permission: 'write',
    action: 'metadata.write',
    okStatus: 200,
    request: (path) => [metadataUrl(path), json('PUT', { customMetadata: { owner: 'team-a' } })],
    resource: (path) => path,
  },
  {
    name: 'DELETE /v1/secrets/metadata/{path}',
    permission: 'delete',
    action: 'secret.delete_path',
    okStatus: 204,
    request: (path) => [metadataUrl(path), { method: 'DELETE' }],
    resource: (path) => path,
  },
  {
    name: 'GET /v1/secrets/list',
    permission: 'list',
    action: 'secret.list',
    okStatus: 200,
    request: (path) => [listUrl({ prefix: `${path}/` }), { method: 'GET' }],
    resource: (path) => `${path}/`,
  },
];

const ALL = ['read', 'write', 'delete', 'list'] as const;

/** Who calls, and which permissions each has on `app/web/db` (list: the list route answers). */
const CALLERS: ReadonlyArray<readonly [string, SpiffeId, readonly string[]]> = [
  ['the superuser', SUPERUSER, ALL],
  [
    'an ID under the superuser',
    parseSpiffeId('spiffe://nexus.test/spike/pilot/role/superuser/alice'),
    ALL,
  ],
  ['an app with a matching read+list policy', WEB, ['read', 'list']],
  ['an app whose policy covers other paths only', OTHER, ['list']],
  ['an app without any policy', NOBODY, ['list']],
  [
    'an ID under the app a policy names',
    parseSpiffeId('spiffe://nexus.test/apps/web/debug'),
    ['list'],
  ],
  ['the recover role', pilotRecoverId(TD), []],
  ['the restore role', pilotRestoreId(TD), []],
  ['a foreign ID that looks like the app', parseSpiffeId('spiffe://other.test/apps/web'), []],
  ['the superuser of a foreign trust domain', pilotSuperuserId(FOREIGN), []],
];

describe('secret routes: every route × every kind of caller', () => {
  for (const [who, peer, permissions] of CALLERS) {
    for (const route of ROUTES) {
      if (permissions.includes(route.permission)) {
        nexusTest(`${route.name} by ${who}: ${route.okStatus}, audited as allowed`, async (n) => {
          n.actAs(peer);
          const [url, init] = route.request('app/web/db');
          const answer = await n.send(url, init);
          assert.equal(answer.status, route.okStatus, answer.text);
          assert.equal(answer.headers.get('cache-control'), 'no-store');
          // A caller that may list nothing under the prefix costs no store
          // query; those that may read app/web/db may list there too.
          const mayListThere = permissions.includes('read');
          assert.equal(n.calls.length > 0, route.permission !== 'list' || mayListThere);
          const events = n.takeAudit();
          assert.equal(events.length, 1);
          assert.equal(events[0]?.outcome, 'allowed');
          assert.equal(events[0]?.status, route.okStatus);
          assert.equal(events[0]?.action, route.action);
          assert.equal(events[0]?.resource, route.resource('app/web/db'));
          assert.equal(events[0]?.peer, peer.toString());
        });
      } else {
        nexusTest(
          `${route.name} by ${who}: 403 for an existing and a missing path, store untouched, one denied audit event each`,
          async (n) => {
            n.actAs(peer);
            const before = await n.snapshot();
            for (const path of [WEB_DB, 'app/web/missing']) {
              const [url, init] = route.request(path);
              const answer = await n.send(url, init);
              assertError(answer, 403, 'ERR_ACCESS_DENIED');
              assert.equal(errorOf(answer).message, 'Access denied');
              assert.deepEqual(n.calls, [], `${path}: the store was called`);
              const events = n.takeAudit();
              assert.equal(events.length, 1);
              assert.equal(events[0]?.outcome, 'denied');
              assert.equal(events[0]?.status, 403);
              assert.equal(events[0]?.errorCode, 'ERR_ACCESS_DENIED');
              assert.equal(events[0]?.action, route.action);
              assert.equal(events[0]?.resource, route.resource(path));
              assert.equal(events[0]?.peer, peer.toString());
            }
            assert.equal(await n.snapshot(), before);
          },
        );
      }
    }
  }

  nexusTest('every route answers 401 without a verified peer, store untouched', async (n) => {
    n.actAs(undefined);
    const before = await n.snapshot();
    for (const route of ROUTES) {
      const [url, init] = route.request(WEB_DB);
      const answer = await n.send(url, init);
      assertError(answer, 401, 'ERR_UNAUTHENTICATED');
      assert.deepEqual(n.calls, []);
      const events = n.takeAudit();
      assert.equal(events.length, 1, route.name);
      assert.equal(events[0]?.outcome, 'denied');
      assert.equal(events[0]?.status, 401);
      assert.equal(events[0]?.errorCode, 'ERR_UNAUTHENTICATED');
      assert.equal(events[0]?.peer, null);
    }
    assert.equal(await n.snapshot(), before);
  });
});

describe('secret routes: what a caller who may not read is told', () => {
  nexusTest(
    'an app gets 403, never 404, on paths outside its policy, existing or not',
    async (n) => {
      n.actAs(WEB);
      for (const path of [OTHER_DB, 'app/other/missing', 'nothing/here', 'app/webx/db']) {
        for (const url of [dataUrl(path), metadataUrl(path), dataUrl(path, '?version=7')]) {
          assertError(await n.send(url), 403, 'ERR_ACCESS_DENIED');
        }
      }
      assert.deepEqual(n.calls, []);
    },
  );

  nexusTest('the same app gets 404 for a missing path it may read', async (n) => {
    n.actAs(WEB);
    assertError(await n.send(dataUrl('app/web/missing')), 404, 'ERR_NOT_FOUND');
    assertError(await n.send(metadataUrl('app/web/missing')), 404, 'ERR_NOT_FOUND');
    assertError(await n.send(dataUrl(WEB_DB, '?version=9')), 404, 'ERR_NOT_FOUND');
  });

  nexusTest(
    'a ".." resolved by the URL parser is authorized as the path it resolves to',
    async (n) => {
      n.actAs(WEB);
      const answer = await n.send(`${PATHS.secretData}/app/web/../other/db`);
      assertError(answer, 403, 'ERR_ACCESS_DENIED');
      assert.equal(n.takeAudit()[0]?.resource, OTHER_DB);
      const encoded = await n.send(`${PATHS.secretData}/app/web/%2e%2e/other/db`);
      assertError(encoded, 403, 'ERR_ACCESS_DENIED');
      assert.equal(n.takeAudit()[0]?.resource, OTHER_DB);
      assert.deepEqual(n.calls, []);
    },
  );

  nexusTest('a refused caller with a bad body or version gets 403, not 400', async (n) => {
    n.actAs(WEB);
    assertError(await n.send(dataUrl(WEB_DB), json('PUT', '{nope')), 403, 'ERR_ACCESS_DENIED');
    assertError(await n.send(dataUrl(OTHER_DB, '?version=abc')), 403, 'ERR_ACCESS_DENIED');
    assertError(await n.send(destroyUrl(WEB_DB), json('POST', {})), 403, 'ERR_ACCESS_DENIED');
    assert.deepEqual(n.calls, []);
  });

  nexusTest('a denial is logged with the rule; the answer never says which', async (n) => {
    n.actAs(WEB);
    const answer = await n.send(dataUrl(OTHER_DB));
    assert.deepEqual(answer.body, {
      error: { code: 'ERR_ACCESS_DENIED', message: 'Access denied' },
    });
    const denials = n.logSink.lines.filter((line) => line.msg === 'Access denied');
    assert.equal(denials.length, 1);
    assert.equal(denials[0]?.peer, WEB.toString());
    assert.match(String(denials[0]?.rule), /read/);
  });

  nexusTest('the audit event carries the decision: why, and the policy that granted', async (n) => {
    const cases: ReadonlyArray<readonly [SpiffeId, string, number, unknown]> = [
      [SUPERUSER, dataUrl(WEB_DB), 200, { reason: 'superuser', policy: null }],
      [WEB, dataUrl(WEB_DB), 200, { reason: 'policy', policy: 'web-reads' }],
      [WEB, dataUrl(OTHER_DB), 403, { reason: 'no_matching_policy', policy: null }],
      [pilotRecoverId(TD), dataUrl(WEB_DB), 403, { reason: 'operator_role', policy: null }],
      [
        parseSpiffeId('spiffe://other.test/apps/web'),
        dataUrl(WEB_DB),
        403,
        { reason: 'foreign_trust_domain', policy: null },
      ],
      [NOBODY, listUrl({ prefix: 'app/' }), 200, { reason: 'trust_domain_member', policy: null }],
      [
        pilotRestoreId(TD),
        listUrl({ prefix: 'app/' }),
        403,
        { reason: 'operator_role', policy: null },
      ],
    ];
    for (const [peer, url, status, decision] of cases) {
      n.actAs(peer);
      const answer = await n.send(url);
      assert.equal(answer.status, status, `${peer} ${url}`);
      assert.doesNotMatch(answer.text, /reason|policy|superuser|operator_role|web-reads/);
      const events = n.takeAudit();
      assert.equal(events.length, 1);
      assert.deepEqual(events[0]?.decision, decision, `${peer} ${url}`);
    }
  });

  nexusTest('a malformed path is 400, audited with the action and no decision', async (n) => {
    n.actAs(SUPERUSER);
    assertError(await n.send(dataUrl('sys/policies')), 400, 'ERR_INVALID_REQUEST');
    const [event] = n.takeAudit();
    assert.equal(event?.action, 'secret.read');
    assert.equal(event?.decision, null);
    assert.deepEqual(n.calls, []);
  });
});

describe('secret routes: KV semantics through HTTP', () => {
  nexusTest(
    'PUT writes a new version each time and GET reads the current or a given one',
    async (n) => {
      const first = { password: secretValue('first') };
      const second = { password: secretValue('second'), user: 'svc' };
      const put1 = await n.send(dataUrl('app/api/db'), json('PUT', { data: first }));
      assert.equal(put1.status, 200);
      const metadata1 = put1.body as MetadataResponse;
      assert.equal(metadata1.path, 'app/api/db');
      assert.equal(metadata1.currentVersion, 1);
      assert.equal(metadata1.oldestVersion, 1);
      assert.equal(metadata1.maxVersions, 10);
      const put2 = await n.send(dataUrl('app/api/db'), json('PUT', { data: second }));
      assert.equal((put2.body as MetadataResponse).currentVersion, 2);
      assert.deepEqual(
        (put2.body as MetadataResponse).versions.map((v) => v.version),
        [1, 2],
      );

      const current = await n.send(dataUrl('app/api/db'));
      assert.equal(current.status, 200);
      const secret = current.body as SecretResponse;
      assert.deepEqual(secret.data, second);
      assert.equal(secret.version, 2);
      assert.equal(secret.path, 'app/api/db');
      assert.ok(!Number.isNaN(Date.parse(secret.createdAt)));
      const old = await n.send(dataUrl('app/api/db', '?version=1'));
      assert.deepEqual((old.body as SecretResponse).data, first);
      assert.equal((old.body as SecretResponse).version, 1);
      assertError(await n.send(dataUrl('app/api/db', '?version=3')), 404, 'ERR_NOT_FOUND');
    },
  );

  nexusTest('an empty map is a valid version', async (n) => {
    assert.equal((await n.send(dataUrl('app/empty'), json('PUT', { data: {} }))).status, 200);
    assert.deepEqual(((await n.send(dataUrl('app/empty'))).body as SecretResponse).data, {});
  });

  nexusTest(
    'check-and-set: 0 creates, the current version replaces, anything else is 409',
    async (n) => {
      const path = 'app/cas/db';
      const ok0 = await n.send(
        dataUrl(path),
        json('PUT', { data: { v: secretValue('a') }, cas: 0 }),
      );
      assert.equal(ok0.status, 200);
      const again0 = await n.send(
        dataUrl(path),
        json('PUT', { data: { v: secretValue('b') }, cas: 0 }),
      );
      assertError(again0, 409, 'ERR_CONFLICT');
      const ok1 = await n.send(
        dataUrl(path),
        json('PUT', { data: { v: secretValue('c') }, cas: 1 }),
      );
      assert.equal((ok1.body as MetadataResponse).currentVersion, 2);
      const before = await n.snapshot();
      for (const cas of [1, 3, 0]) {
        const stale = await n.send(
          dataUrl(path),
          json('PUT', { data: { v: secretValue('d') }, cas }),
        );
        assertError(stale, 409, 'ERR_CONFLICT');
      }
      assert.equal(await n.snapshot(), before);
      const events = n.takeAudit();
      assert.equal(events.at(-1)?.outcome, 'error');
      assert.equal(events.at(-1)?.errorCode, 'ERR_CONFLICT');
    },
  );

  nexusTest('concurrent writers with the same cas: exactly one wins', async (n) => {
    const answers = await Promise.all(
      [1, 2, 3, 4].map((i) =>
        n.send(dataUrl(WEB_DB), json('PUT', { data: { v: secretValue(`race-${i}`) }, cas: 2 })),
      ),
    );
    const statuses = answers.map((answer) => answer.status).sort();
    assert.deepEqual(statuses, [200, 409, 409, 409]);
    const metadata = (await n.send(metadataUrl(WEB_DB))).body as MetadataResponse;
    assert.equal(metadata.currentVersion, 3);
  });

  nexusTest(
    'DELETE soft-deletes the current version by default; undelete {} brings it back',
    async (n) => {
      const deleted = await n.send(dataUrl(WEB_DB), { method: 'DELETE' });
      assert.equal(deleted.status, 200);
      const versions = (deleted.body as MetadataResponse).versions;
      assert.equal(versions.find((v) => v.version === 1)?.deletedAt, null);
      assert.notEqual(versions.find((v) => v.version === 2)?.deletedAt, null);
      assertError(await n.send(dataUrl(WEB_DB)), 404, 'ERR_NOT_FOUND');
      assert.deepEqual(
        ((await n.send(dataUrl(WEB_DB, '?version=1'))).body as SecretResponse).data,
        WEB_DB_V1,
      );

      const undeleted = await n.send(undeleteUrl(WEB_DB), json('POST', {}));
      assert.equal(undeleted.status, 200);
      assert.ok((undeleted.body as MetadataResponse).versions.every((v) => v.deletedAt === null));
      assert.deepEqual(((await n.send(dataUrl(WEB_DB))).body as SecretResponse).data, WEB_DB_V2);
    },
  );

  nexusTest('DELETE ?versions= and undelete with versions act on exactly those', async (n) => {
    const deleted = await n.send(dataUrl(WEB_DB, '?versions=1,2'), { method: 'DELETE' });
    assert.ok((deleted.body as MetadataResponse).versions.every((v) => v.deletedAt !== null));
    assertError(await n.send(dataUrl(WEB_DB, '?version=1')), 404, 'ERR_NOT_FOUND');
    const undeleted = await n.send(undeleteUrl(WEB_DB), json('POST', { versions: [1] }));
    const versions = (undeleted.body as MetadataResponse).versions;
    assert.equal(versions.find((v) => v.version === 1)?.deletedAt, null);
    assert.notEqual(versions.find((v) => v.version === 2)?.deletedAt, null);
    assert.equal((await n.send(dataUrl(WEB_DB, '?version=1'))).status, 200);
    assertError(await n.send(dataUrl(WEB_DB)), 404, 'ERR_NOT_FOUND');
    assertError(
      await n.send(dataUrl(WEB_DB, '?versions=5'), { method: 'DELETE' }),
      404,
      'ERR_NOT_FOUND',
    );
  });

  nexusTest(
    'destroy removes version data for good; undelete of it is 409 ERR_CONFLICT',
    async (n) => {
      const destroyed = await n.send(destroyUrl(WEB_DB), json('POST', { versions: [1] }));
      assert.equal(destroyed.status, 200);
      const versions = (destroyed.body as MetadataResponse).versions;
      assert.equal(versions.find((v) => v.version === 1)?.destroyed, true);
      assert.equal(versions.find((v) => v.version === 2)?.destroyed, false);
      assertError(await n.send(dataUrl(WEB_DB, '?version=1')), 404, 'ERR_NOT_FOUND');
      const before = (await n.send(metadataUrl(WEB_DB))).body;
      assertError(
        await n.send(undeleteUrl(WEB_DB), json('POST', { versions: [1] })),
        409,
        'ERR_CONFLICT',
      );
      assert.deepEqual((await n.send(metadataUrl(WEB_DB))).body, before);
      assertError(await n.send(dataUrl(WEB_DB, '?version=1')), 404, 'ERR_NOT_FOUND');
      assert.deepEqual(((await n.send(dataUrl(WEB_DB))).body as SecretResponse).data, WEB_DB_V2);
      assertError(
        await n.send(destroyUrl(WEB_DB), json('POST', { versions: [7] })),
        404,
        'ERR_NOT_FOUND',
      );
    },
  );

  nexusTest(
    'DELETE metadata with ?onlyDeleted=true keeps a path that has a live version (409) and removes it once none is',
    async (n) => {
      const live = await n.send(metadataUrl(WEB_DB, '?onlyDeleted=true'), { method: 'DELETE' });
      assertError(live, 409, 'ERR_CONFLICT');
      assert.deepEqual(((await n.send(dataUrl(WEB_DB))).body as SecretResponse).data, WEB_DB_V2);
      assertError(
        await n.send(metadataUrl(WEB_DB, '?onlyDeleted=yes'), { method: 'DELETE' }),
        400,
        'ERR_INVALID_REQUEST',
      );
      assert.equal(
        (await n.send(dataUrl(WEB_DB, '?versions=1,2'), { method: 'DELETE' })).status,
        200,
      );
      const gone = await n.send(metadataUrl(WEB_DB, '?onlyDeleted=true'), { method: 'DELETE' });
      assert.equal(gone.status, 204);
      assertError(await n.send(metadataUrl(WEB_DB)), 404, 'ERR_NOT_FOUND');
    },
  );

  nexusTest(
    'metadata PUT sets the cap and custom metadata; GET shows them; a lower cap prunes',
    async (n) => {
      const custom = { owner: 'team-a', rotation: 'monthly' };
      const put = await n.send(
        metadataUrl(WEB_DB),
        json('PUT', { maxVersions: 3, customMetadata: custom }),
      );
      assert.equal(put.status, 200);
      for (const i of [3, 4, 5]) {
        await n.send(dataUrl(WEB_DB), json('PUT', { data: { v: secretValue(`v${i}`) } }));
      }
      const metadata = (await n.send(metadataUrl(WEB_DB))).body as MetadataResponse;
      assert.equal(metadata.path, WEB_DB);
      assert.equal(metadata.currentVersion, 5);
      assert.equal(metadata.oldestVersion, 3);
      assert.equal(metadata.maxVersions, 3);
      assert.equal(metadata.maxVersionsOverride, 3);
      assert.deepEqual(metadata.customMetadata, custom);
      assert.deepEqual(
        metadata.versions.map((v) => v.version),
        [3, 4, 5],
      );
      assertError(await n.send(dataUrl(WEB_DB, '?version=2')), 404, 'ERR_NOT_FOUND');
      const lowered = await n.send(metadataUrl(WEB_DB), json('PUT', { maxVersions: 1 }));
      assert.deepEqual(
        (lowered.body as MetadataResponse).versions.map((v) => v.version),
        [5],
      );
      const reset = await n.send(metadataUrl(WEB_DB), json('PUT', { maxVersions: null }));
      assert.equal((reset.body as MetadataResponse).maxVersionsOverride, null);
      assert.equal((reset.body as MetadataResponse).maxVersions, 10);
      assert.deepEqual((reset.body as MetadataResponse).customMetadata, custom);
    },
  );

  nexusTest('metadata of a path that was never written is 404 on GET and PUT', async (n) => {
    assertError(await n.send(metadataUrl('app/none')), 404, 'ERR_NOT_FOUND');
    assertError(
      await n.send(metadataUrl('app/none'), json('PUT', { maxVersions: 2 })),
      404,
      'ERR_NOT_FOUND',
    );
  });

  nexusTest('DELETE of the metadata removes the path: 204, then 404 everywhere', async (n) => {
    const deleted = await n.send(metadataUrl(WEB_DB), { method: 'DELETE' });
    assert.equal(deleted.status, 204);
    assert.equal(deleted.text, '');
    assertError(await n.send(dataUrl(WEB_DB)), 404, 'ERR_NOT_FOUND');
    assertError(await n.send(dataUrl(WEB_DB, '?version=1')), 404, 'ERR_NOT_FOUND');
    assertError(await n.send(metadataUrl(WEB_DB)), 404, 'ERR_NOT_FOUND');
    assertError(await n.send(metadataUrl(WEB_DB), { method: 'DELETE' }), 404, 'ERR_NOT_FOUND');
    assertError(await n.send(undeleteUrl(WEB_DB), json('POST', {})), 404, 'ERR_NOT_FOUND');
    const listed = (await n.send(listUrl())).body as ListResponse;
    assert.deepEqual(listed.paths, [OTHER_DB]);
    // The path can be written again, from version 1.
    const rewritten = await n.send(
      dataUrl(WEB_DB),
      json('PUT', { data: { v: secretValue('new') } }),
    );
    assert.equal((rewritten.body as MetadataResponse).currentVersion, 1);
  });
});

describe('secret routes: storage quotas', () => {
  // The seed holds two paths in the namespace "app": it is full.
  const appHoldsTwoPaths: SecretQuotas = {
    default: { paths: 2, bytes: null },
    namespaces: new Map([['ops', { paths: null, bytes: 2048 }]]),
  };

  nexusTest(
    'a write beyond the namespace quota is 403 ERR_QUOTA_EXCEEDED, audited as denied, and writes nothing',
    async (n) => {
      n.actAs(OTHER);
      const before = await n.snapshot();
      n.takeAudit();
      const refused = await n.send(
        dataUrl('app/other/new'),
        json('PUT', { data: { password: secretValue('over-quota') } }),
      );
      assert.equal(refused.status, 403, refused.text);
      assert.deepEqual(refused.body, {
        error: {
          code: 'ERR_QUOTA_EXCEEDED',
          message:
            'The namespace "app" is full: it may hold at most 2 secret paths; destroy versions or delete paths to make room',
        },
      });
      assert.equal(refused.headers.get('content-type'), 'application/json');
      const [event, ...more] = n.takeAudit();
      assert.deepEqual(more, []);
      assert.equal(event?.outcome, 'denied');
      assert.equal(event?.status, 403);
      assert.equal(event?.errorCode, 'ERR_QUOTA_EXCEEDED');
      assert.equal(event?.action, 'secret.write');
      assert.equal(event?.resource, 'app/other/new');
      assert.equal(event?.peer, OTHER.toString());
      assert.equal(await n.snapshot(), before);
      // A new version is no new path; deleting a path makes room for another.
      const again = await n.send(
        dataUrl(OTHER_DB),
        json('PUT', { data: { password: secretValue('v2') } }),
      );
      assert.equal(again.status, 200, again.text);
      assert.equal((await n.send(metadataUrl(OTHER_DB), { method: 'DELETE' })).status, 204);
      const made = await n.send(
        dataUrl('app/other/new'),
        json('PUT', { data: { password: secretValue('fits') } }),
      );
      assert.equal(made.status, 200, made.text);
    },
    { quotas: appHoldsTwoPaths },
  );

  nexusTest(
    'bytes: custom metadata or data beyond a namespace quota is refused; another namespace still writes',
    async (n) => {
      const big = { k: 'v'.repeat(1500) };
      assert.equal((await n.send(dataUrl('ops/a'), json('PUT', { data: big }))).status, 200);
      const before = await n.snapshot();
      assertError(
        await n.send(dataUrl('ops/a'), json('PUT', { data: big })),
        403,
        'ERR_QUOTA_EXCEEDED',
      );
      const metadata = await n.send(
        metadataUrl('ops/a'),
        json('PUT', { customMetadata: { note: 'n'.repeat(512), more: 'm'.repeat(512) } }),
      );
      assertError(metadata, 403, 'ERR_QUOTA_EXCEEDED');
      assert.match(errorOf(metadata).message, /"ops" is full: it may hold at most 2048 bytes/);
      assert.equal(await n.snapshot(), before);
      const elsewhere = await n.send(
        dataUrl('other-team/a'),
        json('PUT', { data: { password: secretValue('elsewhere') } }),
      );
      assert.equal(elsewhere.status, 200, elsewhere.text);
    },
    { quotas: appHoldsTwoPaths },
  );
});

describe('secret routes: list', () => {
  const LIST_SEED: ReadonlyArray<readonly [string, SecretData]> = [
    'app/a',
    'app/other/db',
    'app/other/z',
    'app/web',
    'app/web/api',
    'app/web/db',
    'app/web/deep/nested/key',
    'app/webx/db',
    'zz/last',
  ].map((path) => [path, { v: secretValue(path) }] as const);
  const ALL_PATHS = LIST_SEED.map(([path]) => path);

  async function listAll(n: Nexus, query: Readonly<Record<string, string>>): Promise<string[][]> {
    const pages: string[][] = [];
    let after: string | undefined;
    for (let i = 0; i < 50; i++) {
      const answer = await n.send(listUrl(after === undefined ? query : { ...query, after }));
      assert.equal(answer.status, 200, answer.text);
      const page = answer.body as ListResponse;
      pages.push([...page.paths]);
      if (page.next === undefined) return pages;
      assert.equal(page.next, page.paths.at(-1), 'the cursor is the last path of the page');
      after = page.next;
    }
    throw new Error('The list never ended');
  }

  nexusTest(
    'the superuser sees every path; a prefix narrows to that subtree',
    async (n) => {
      assert.deepEqual(((await n.send(listUrl())).body as ListResponse).paths, ALL_PATHS);
      assert.deepEqual(
        ((await n.send(listUrl({ prefix: 'app/web/' }))).body as ListResponse).paths,
        ['app/web/api', 'app/web/db', 'app/web/deep/nested/key'],
      );
      assert.deepEqual(
        ((await n.send(listUrl({ prefix: 'nothing/' }))).body as ListResponse).paths,
        [],
      );
    },
    { seed: LIST_SEED },
  );

  nexusTest(
    'each app sees only the paths its policy lets it list',
    async (n) => {
      const seen = async (peer: SpiffeId, prefix = '') => {
        n.actAs(peer);
        return ((await n.send(listUrl({ prefix }))).body as ListResponse).paths;
      };
      // `app/web/**` covers paths under app/web, and app/web itself (zero segments).
      const webPaths = ['app/web', 'app/web/api', 'app/web/db', 'app/web/deep/nested/key'];
      assert.deepEqual(await seen(WEB), webPaths);
      assert.deepEqual(await seen(WEB, 'app/'), webPaths);
      assert.deepEqual(await seen(WEB, 'app/other/'), []);
      assert.deepEqual(await seen(OTHER), ['app/other/db', 'app/other/z']);
      assert.deepEqual(await seen(NOBODY), []);
      const events = n.takeAudit();
      assert.ok(
        events.every((event) => event.outcome === 'allowed' && event.action === 'secret.list'),
      );
    },
    { seed: LIST_SEED },
  );

  nexusTest(
    'the store is read only where the caller may list: nowhere for a caller without a grant',
    async (n) => {
      const cases: ReadonlyArray<readonly [SpiffeId, string, readonly string[]]> = [
        [NOBODY, '', []],
        [OTHER, 'app/web/', []],
        // `app/other/**`: app/other itself is looked up, its subtree listed.
        [OTHER, '', ['listExisting', 'list']],
        [WEB, 'app/', ['listExisting', 'list']],
      ];
      for (const [peer, prefix, calls] of cases) {
        n.actAs(peer);
        n.resetCalls();
        const answer = await n.send(listUrl({ prefix }));
        assert.equal(answer.status, 200);
        assert.deepEqual(n.calls, calls, `${peer} ${prefix}`);
        const [event] = n.takeAudit();
        assert.equal(event?.outcome, 'allowed');
        assert.deepEqual(event?.decision, { reason: 'trust_domain_member', policy: null });
      }
    },
    { seed: LIST_SEED },
  );

  nexusTest(
    'pages follow `next` to the end without gaps or repeats',
    async (n) => {
      const pages = await listAll(n, { limit: '2' });
      assert.ok(pages.every((page) => page.length <= 2));
      assert.deepEqual(pages.flat(), ALL_PATHS);
      assert.equal(pages.length, Math.ceil(ALL_PATHS.length / 2));
    },
    { seed: LIST_SEED },
  );

  nexusTest(
    'a filtered list pages through what the caller may list, and `next` names only those',
    async (n) => {
      n.actAs(WEB);
      const pages = await listAll(n, { limit: '1' });
      assert.deepEqual(pages.flat(), [
        'app/web',
        'app/web/api',
        'app/web/db',
        'app/web/deep/nested/key',
      ]);
      for (const page of pages) assert.ok(page.every((path) => path.startsWith('app/web')));
    },
    { seed: LIST_SEED },
  );

  nexusTest(
    'many paths the caller may not list never show up as a cursor',
    async (n) => {
      n.actAs(WEB);
      const answer = await n.send(listUrl({ limit: '1' }));
      const page = answer.body as ListResponse;
      assert.deepEqual(page.paths, ['app/web/db']);
      assert.equal(page.next, undefined);
      assert.doesNotMatch(answer.text, /app\/a\d/);
    },
    {
      seed: [
        ...Array.from(
          { length: 40 },
          (_, i) => [`app/a${String(i).padStart(2, '0')}`, { v: 'x' }] as const,
        ),
        [WEB_DB, WEB_DB_V1],
      ],
    },
  );

  nexusTest('list refuses a bad limit, prefix or cursor with 400', async (n) => {
    for (const query of [
      { limit: '0' },
      { limit: '1001' },
      { limit: '-1' },
      { limit: 'ten' },
      { prefix: 'a//b' },
      { prefix: '../' },
      { after: 'a//b' },
      { after: '' },
    ]) {
      const answer = await n.send(listUrl(query));
      assertError(answer, 400, 'ERR_INVALID_REQUEST');
      assert.deepEqual(n.calls, [], JSON.stringify(query));
    }
  });
});

describe('secret routes refuse bad requests with 400 before touching the store', () => {
  const longPath = `app/${'x'.repeat(596)}`;
  const badPaths: ReadonlyArray<readonly [string, string]> = [
    ['".." kept by an encoded slash', 'app/%2e%2e%2fother/db'],
    ['".." before an encoded slash', 'app/web/..%2Fdb'],
    ['"." before an encoded slash', 'app/.%2Fdb'],
    ['a trailing ".." that resolves to a trailing slash', 'app/web/x/%2e%2e'],
    ['an empty segment', 'a//b'],
    ['an encoded empty segment', 'a%2F%2Fb'],
    ['a trailing slash', 'app/web/'],
    ['a space', 'app/a%20b'],
    ['a reserved path', 'sys/x'],
    ['the reserved root', 'sys'],
    ['a reserved policy path', 'sys/policies'],
    [`a path of ${longPath.length} characters`, longPath],
    ['33 segments', Array.from({ length: 33 }, () => 'a').join('/')],
  ];
  for (const [what, path] of badPaths) {
    nexusTest(`${what} is 400 on every path route`, async (n) => {
      for (const route of ROUTES.filter((r) => r.permission !== 'list')) {
        const [url, init] = route.request(path);
        const answer = await n.send(url, init);
        assertError(answer, 400, 'ERR_INVALID_REQUEST');
        assert.deepEqual(n.calls, [], route.name);
        const events = n.takeAudit();
        assert.equal(events.length, 1);
        assert.equal(events[0]?.outcome, 'error');
        assert.equal(events[0]?.status, 400);
      }
    });
  }

  const badVersions = [
    '0',
    '-1',
    'abc',
    '1.5',
    '1e3',
    '',
    ' 1',
    '2147483648',
    '99999999999',
    '1,2',
  ];
  nexusTest('a bad ?version= is 400', async (n) => {
    for (const version of badVersions) {
      const answer = await n.send(dataUrl(WEB_DB, `?version=${encodeURIComponent(version)}`));
      assertError(answer, 400, 'ERR_INVALID_REQUEST');
      assert.match(errorOf(answer).message, /"version"/);
    }
    assert.deepEqual(n.calls, []);
  });

  nexusTest('a bad ?versions= on DELETE is 400', async (n) => {
    for (const versions of [
      '0',
      '-1',
      'abc',
      '1,,2',
      '',
      '2147483648',
      Array(101).fill('1').join(','),
    ]) {
      const answer = await n.send(dataUrl(WEB_DB, `?versions=${versions}`), { method: 'DELETE' });
      assertError(answer, 400, 'ERR_INVALID_REQUEST');
    }
    assert.deepEqual(n.calls, []);
  });

  const leaked = secretValue('in-a-bad-body');
  const badBodies: ReadonlyArray<readonly [string, string, RequestInit]> = [
    ['malformed JSON', dataUrl(WEB_DB), json('PUT', `{"data":{"password":"${leaked}"`)],
    [
      'a text/plain body',
      dataUrl(WEB_DB),
      {
        method: 'PUT',
        headers: { 'content-type': 'text/plain' },
        body: JSON.stringify({ data: { password: leaked } }),
      },
    ],
    [
      'no content type',
      dataUrl(WEB_DB),
      { method: 'PUT', body: JSON.stringify({ data: { password: leaked } }) },
    ],
    [
      'no body',
      dataUrl(WEB_DB),
      { method: 'PUT', headers: { 'content-type': 'application/json' } },
    ],
    ['a JSON array', dataUrl(WEB_DB), json('PUT', [{ password: leaked }])],
    ['a JSON string', dataUrl(WEB_DB), json('PUT', JSON.stringify(leaked))],
    ['data missing', dataUrl(WEB_DB), json('PUT', { cas: 2 })],
    ['data a string', dataUrl(WEB_DB), json('PUT', { data: leaked })],
    ['data an array', dataUrl(WEB_DB), json('PUT', { data: [leaked] })],
    ['data null', dataUrl(WEB_DB), json('PUT', { data: null })],
    ['a number value', dataUrl(WEB_DB), json('PUT', { data: { password: leaked, port: 5432 } })],
    [
      'a nested value',
      dataUrl(WEB_DB),
      json('PUT', { data: { password: leaked, nested: { a: 'b' } } }),
    ],
    ['a null value', dataUrl(WEB_DB), json('PUT', { data: { password: leaked, other: null } })],
    ['an empty key', dataUrl(WEB_DB), json('PUT', { data: { '': leaked } })],
    ['an unknown field', dataUrl(WEB_DB), json('PUT', { data: { password: 'x' }, extra: leaked })],
    ['a negative cas', dataUrl(WEB_DB), json('PUT', { data: { password: leaked }, cas: -1 })],
    ['a fractional cas', dataUrl(WEB_DB), json('PUT', { data: { password: leaked }, cas: 1.5 })],
    ['a string cas', dataUrl(WEB_DB), json('PUT', { data: { password: leaked }, cas: '2' })],
    ['a huge cas', dataUrl(WEB_DB), json('PUT', { data: { password: leaked }, cas: 2 ** 31 })],
    ['undelete with empty versions', undeleteUrl(WEB_DB), json('POST', { versions: [] })],
    ['undelete with version 0', undeleteUrl(WEB_DB), json('POST', { versions: [0] })],
    ['undelete with versions a string', undeleteUrl(WEB_DB), json('POST', { versions: '1' })],
    ['undelete with an unknown field', undeleteUrl(WEB_DB), json('POST', { version: 1 })],
    ['destroy without versions', destroyUrl(WEB_DB), json('POST', {})],
    ['destroy with a negative version', destroyUrl(WEB_DB), json('POST', { versions: [-1] })],
    ['destroy without a JSON body', destroyUrl(WEB_DB), { method: 'POST' }],
    ['metadata with maxVersions 0', metadataUrl(WEB_DB), json('PUT', { maxVersions: 0 })],
    ['metadata with maxVersions a string', metadataUrl(WEB_DB), json('PUT', { maxVersions: '3' })],
    [
      'metadata with a number value',
      metadataUrl(WEB_DB),
      json('PUT', { customMetadata: { n: 1 } }),
    ],
    [
      'metadata with an unknown field',
      metadataUrl(WEB_DB),
      json('PUT', { data: { password: leaked } }),
    ],
  ];
  for (const [what, url, init] of badBodies) {
    nexusTest(`${what} is 400, and the value is not echoed`, async (n) => {
      const before = await n.snapshot();
      const answer = await n.send(url, init);
      assertError(answer, 400, 'ERR_INVALID_REQUEST');
      assert.ok(!answer.text.includes(leaked));
      assert.deepEqual(n.calls, []);
      const events = n.takeAudit();
      assert.equal(events.length, 1);
      assert.equal(events[0]?.outcome, 'error');
      assert.equal(events[0]?.errorCode, 'ERR_INVALID_REQUEST');
      assert.equal(await n.snapshot(), before);
    });
  }

  nexusTest('a body over the limit is 413, streamed or announced', async (n) => {
    const big = JSON.stringify({
      data: { password: `${SECRET_MARK}${'x'.repeat(MAX_BODY_BYTES)}` },
    });
    const before = await n.snapshot();
    const streamed = await n.send(dataUrl(WEB_DB), json('PUT', big));
    assertError(streamed, 413, 'ERR_PAYLOAD_TOO_LARGE');
    const announced = await n.send(dataUrl(WEB_DB), {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'content-length': String(big.length) },
      body: big,
    });
    assertError(announced, 413, 'ERR_PAYLOAD_TOO_LARGE');
    assert.deepEqual(n.calls, []);
    assert.equal(await n.snapshot(), before);
    const events = n.takeAudit();
    assert.equal(events.length, 2);
    assert.ok(events.every((event) => event.status === 413 && event.outcome === 'error'));
  });

  nexusTest('a body just under the limit is accepted', async (n) => {
    const filler = 'y'.repeat(MAX_BODY_BYTES - 100);
    const answer = await n.send(
      dataUrl(WEB_DB),
      json('PUT', { data: { password: `${SECRET_MARK}${filler}` } }),
    );
    assert.equal(answer.status, 200);
  });
});

describe('secret routes while the root key is sealed', () => {
  nexusTest('an authorized caller gets 503 ERR_NOT_READY on every route', async (n) => {
    n.rootKey.seal();
    for (const route of ROUTES) {
      const [url, init] = route.request(WEB_DB);
      const answer = await n.send(url, init);
      assertError(answer, 503, 'ERR_NOT_READY');
      const events = n.takeAudit();
      assert.equal(events.length, 1);
      assert.equal(events[0]?.outcome, 'error');
      assert.equal(events[0]?.action, route.action);
    }
  });

  nexusTest('a refused caller still gets 403: authorization comes before the key', async (n) => {
    n.rootKey.seal();
    n.actAs(WEB);
    assertError(await n.send(dataUrl(OTHER_DB)), 403, 'ERR_ACCESS_DENIED');
    assertError(
      await n.send(dataUrl(WEB_DB), json('PUT', { data: { v: 'x' } })),
      403,
      'ERR_ACCESS_DENIED',
    );
    assert.deepEqual(n.calls, []);
    // The web app may read its own path: it learns only that Nexus is sealed.
    assertError(await n.send(dataUrl(WEB_DB)), 503, 'ERR_NOT_READY');
  });

  nexusTest('once unsealed again with the same key, the secrets read as before', async (n) => {
    n.rootKey.seal();
    assertError(await n.send(dataUrl(WEB_DB)), 503, 'ERR_NOT_READY');
    n.unsealAgain();
    assert.deepEqual(((await n.send(dataUrl(WEB_DB))).body as SecretResponse).data, WEB_DB_V2);
  });
});

describe('secret routes never reveal a secret value outside a read', () => {
  nexusTest('a full life cycle leaves no value in answers, audit events or logs', async (n) => {
    const path = 'app/life/cycle';
    const values = [secretValue('one'), secretValue('two'), secretValue('three')];
    for (const value of values) {
      await n.send(dataUrl(path), json('PUT', { data: { password: value } }));
    }
    await n.send(dataUrl(path), json('PUT', { data: { password: secretValue('stale') }, cas: 1 }));
    await n.send(metadataUrl(path), json('PUT', { customMetadata: { note: 'rotated' } }));
    await n.send(metadataUrl(path));
    await n.send(listUrl({ prefix: 'app/' }));
    await n.send(dataUrl(path, '?versions=3'), { method: 'DELETE' });
    await n.send(dataUrl(path));
    await n.send(undeleteUrl(path), json('POST', { versions: [3] }));
    await n.send(destroyUrl(path), json('POST', { versions: [1] }));
    await n.send(dataUrl(path, '?version=1'));
    n.actAs(WEB);
    await n.send(dataUrl(path));
    await n.send(dataUrl(path), json('PUT', { data: { password: secretValue('denied') } }));
    n.actAs(SUPERUSER);
    const read = await n.send(dataUrl(path));
    assert.deepEqual((read.body as SecretResponse).data, { password: values[2] });
    await n.send(metadataUrl(path), { method: 'DELETE' });
    assert.equal(n.audit.events.length, 16);
    for (const event of n.audit.events) {
      assert.ok(event.resource === path || event.resource === 'app/', JSON.stringify(event));
      assert.equal(event.component, 'nexus');
    }
  });
});
