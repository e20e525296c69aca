/**
 * Secrets and policies with real processes over real mTLS: the embedded
 * agent, three Keepers and Nexus on a SQLite file. The superuser grants an
 * app identity read and list on its own subtree through the policy API; the
 * app then reads only what it may, another app nothing; after a kill -9 the
 * restarted Nexus recovers its key from the Keepers and serves the same
 * secrets under the same policy. The audit file holds one line per request,
 * with the caller's SPIFFE ID and never a secret value; the harness's leak
 * scan then checks every output, file and error body for the values. The
 * namespace `tenant` has a quota of 3 paths: an app that fills it is refused
 * while other namespaces still write, and the count survives the kill -9.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import type { ListResponse, SecretResponse } from '../../shared/api/secrets.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, type Reply, startBroker } from '../harness/broker.ts';
import type { RunningProgram } from '../harness/spawn.ts';

const TD_NAME = 'secrets.test';
const IDS = {
  pilot: `spiffe://${TD_NAME}/spike/pilot/role/superuser`,
  web: `spiffe://${TD_NAME}/apps/web`,
  other: `spiffe://${TD_NAME}/apps/other`,
} as const;
type Caller = keyof typeof IDS;

/** One request that Nexus answered, as the audit line should record it. */
interface Answered {
  readonly peer: string;
  readonly method: string;
  readonly status: number;
}

describe('secrets and policies with real processes', () => {
  let broker: Broker;
  let nexus: RunningProgram | undefined;
  const answered: Answered[] = [];
  let WEB_SECRET: { password: string; user: string };
  let OTHER_SECRET: { password: string };
  let REFUSED_SECRET: { password: string };

  /** A request through the harness, kept for the audit comparison below. */
  async function call(
    caller: Caller,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Reply> {
    const reply = await broker.call(caller, method, path, body);
    answered.push({ peer: IDS[caller], method, status: reply.status });
    return reply;
  }

  /**
   * The harness's wait, through `call()` above, so that every status request
   * Nexus answered is in `answered` as well.
   */
  async function waitUntilReady(what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if ((await call('pilot', 'GET', PATHS.status)).status === 200) return;
      } catch {
        // Not listening yet, or a connection to the Nexus before a restart.
        broker.closeClients();
      }
      if (Date.now() > deadline)
        throw new Error(`Timed out waiting until ${what}\n${broker.logs()}`);
      await delay(100);
    }
  }

  const data = (path: string) => `${PATHS.secretData}/${path}`;
  const list = (prefix = '') => `${PATHS.secretList}?prefix=${encodeURIComponent(prefix)}`;
  const codeOf = (reply: Reply) => (reply.body as { error?: { code?: string } }).error?.code;

  before(async () => {
    broker = await startBroker({
      trustDomain: TD_NAME,
      workloads: { web: '/apps/web', other: '/apps/other' },
      startNexus: false,
      nexusEnv: { SPIKE_NEXUS_QUOTA_OVERRIDES: 'tenant=3:unlimited' },
    });
    WEB_SECRET = { password: broker.secretValue('web-secret'), user: 'web' };
    OTHER_SECRET = { password: broker.secretValue('other-secret') };
    REFUSED_SECRET = { password: broker.secretValue('refused-secret') };
    nexus = broker.startNexus();
    await waitUntilReady('Nexus initialised its root key');
  });

  after(async () => {
    await broker?.stop();
  });

  test('the superuser grants the web app read and list on app/web/** and writes two secrets', async () => {
    const policy = await call('pilot', 'PUT', `${PATHS.policies}/web-reads`, {
      spiffeIdPattern: IDS.web,
      pathPattern: 'app/web/**',
      permissions: ['read', 'list'],
    });
    assert.equal(policy.status, 200, policy.text);
    assert.equal(
      (await call('pilot', 'PUT', data('app/web/db'), { data: WEB_SECRET })).status,
      200,
    );
    assert.equal(
      (await call('pilot', 'PUT', data('app/other/db'), { data: OTHER_SECRET })).status,
      200,
    );
  });

  test('the web app reads its secret, and is refused elsewhere and on writes', async () => {
    const read = await call('web', 'GET', data('app/web/db'));
    assert.equal(read.status, 200, read.text);
    assert.deepEqual((read.body as SecretResponse).data, WEB_SECRET);
    for (const path of ['app/other/db', 'app/other/missing']) {
      const refused = await call('web', 'GET', data(path));
      assert.equal(refused.status, 403, `${path}: ${refused.text}`);
      assert.equal(codeOf(refused), 'ERR_ACCESS_DENIED');
    }
    for (const [method, path, body] of [
      ['PUT', data('app/web/db'), { data: REFUSED_SECRET }],
      ['PUT', data('app/web/new'), { data: REFUSED_SECRET }],
      ['DELETE', data('app/web/db'), undefined],
      ['DELETE', `${PATHS.secretMetadata}/app/web/db`, undefined],
      [
        'PUT',
        `${PATHS.policies}/web-writes`,
        { spiffeIdPattern: IDS.web, pathPattern: '**', permissions: ['super'] },
      ],
    ] as const) {
      const refused = await call('web', method, path, body);
      assert.equal(refused.status, 403, `${method} ${path}: ${refused.text}`);
      assert.equal(codeOf(refused), 'ERR_ACCESS_DENIED');
    }
    const still = await call('pilot', 'GET', data('app/web/db'));
    assert.deepEqual((still.body as SecretResponse).data, WEB_SECRET);
    assert.equal((still.body as SecretResponse).version, 1);
  });

  test('the web app lists only paths under app/web', async () => {
    const all = await call('web', 'GET', list());
    assert.equal(all.status, 200, all.text);
    assert.deepEqual((all.body as ListResponse).paths, ['app/web/db']);
    assert.deepEqual(
      ((await call('web', 'GET', list('app/other/'))).body as ListResponse).paths,
      [],
    );
    const superuser = await call('pilot', 'GET', list('app/'));
    assert.deepEqual((superuser.body as ListResponse).paths, ['app/other/db', 'app/web/db']);
  });

  test('the other app is refused everything and lists nothing', async () => {
    for (const [method, path, body] of [
      ['GET', data('app/web/db'), undefined],
      ['GET', data('app/other/db'), undefined],
      ['GET', `${PATHS.secretMetadata}/app/other/db`, undefined],
      ['PUT', data('app/other/db'), { data: REFUSED_SECRET }],
      ['DELETE', data('app/other/db'), undefined],
      ['GET', PATHS.policies, undefined],
      ['GET', PATHS.status, undefined],
    ] as const) {
      const refused = await call('other', method, path, body);
      assert.equal(refused.status, 403, `${method} ${path}: ${refused.text}`);
      assert.equal(codeOf(refused), 'ERR_ACCESS_DENIED');
    }
    const listed = await call('other', 'GET', list());
    assert.equal(listed.status, 200);
    assert.deepEqual((listed.body as ListResponse).paths, []);
  });

  test('an app filling its namespace gets 403 ERR_QUOTA_EXCEEDED; other namespaces still write', async () => {
    const granted = await call('pilot', 'PUT', `${PATHS.policies}/other-tenant`, {
      spiffeIdPattern: IDS.other,
      pathPattern: 'tenant/**',
      permissions: ['write'],
    });
    assert.equal(granted.status, 200, granted.text);
    for (const name of ['a', 'b', 'c/d']) {
      const put = await call('other', 'PUT', data(`tenant/${name}`), {
        data: { password: broker.secretValue(`tenant-${name}`) },
      });
      assert.equal(put.status, 200, put.text);
    }
    const refused = await call('other', 'PUT', data('tenant/e'), {
      data: { password: broker.secretValue('tenant-e') },
    });
    assert.equal(refused.status, 403, refused.text);
    assert.equal(codeOf(refused), 'ERR_QUOTA_EXCEEDED');
    assert.match(
      (refused.body as { error: { message: string } }).error.message,
      /"tenant" is full: it may hold at most 3 secret paths/,
    );
    // A new version of a path it holds is no new path.
    const version = await call('other', 'PUT', data('tenant/a'), {
      data: { password: broker.secretValue('tenant-a2') },
    });
    assert.equal(version.status, 200, version.text);
    // Other namespaces have their own (default) quota.
    const elsewhere = await call('pilot', 'PUT', data('spare/x'), {
      data: { password: broker.secretValue('spare') },
    });
    assert.equal(elsewhere.status, 200, elsewhere.text);
    const missing = await call('pilot', 'GET', data('tenant/e'));
    assert.equal(missing.status, 404, missing.text);
  });

  test('after kill -9, Nexus recovers its key from the Keepers and serves the same secrets', async () => {
    const killed = nexus;
    assert.ok(killed !== undefined);
    killed.child.kill('SIGKILL');
    assert.equal(await killed.exited(10_000), 'SIGKILL');
    broker.closeClients();
    nexus = broker.startNexus();
    await waitUntilReady('the restarted Nexus recovered its key');
    assert.match(nexus.stderr(), /Recovered the root key from the Keepers/);
    const read = await call('web', 'GET', data('app/web/db'));
    assert.equal(read.status, 200, read.text);
    assert.deepEqual((read.body as SecretResponse).data, WEB_SECRET);
    // The policy survived as well: still read-only, still only app/web.
    assert.equal((await call('web', 'GET', data('app/other/db'))).status, 403);
    assert.equal(
      (await call('web', 'PUT', data('app/web/db'), { data: REFUSED_SECRET })).status,
      403,
    );
    const other = await call('pilot', 'GET', data('app/other/db'));
    assert.deepEqual((other.body as SecretResponse).data, OTHER_SECRET);
  });

  test('after the restart the namespace is still full, and deleting a path makes room', async () => {
    const refused = await call('other', 'PUT', data('tenant/e'), {
      data: { password: broker.secretValue('tenant-e-again') },
    });
    assert.equal(refused.status, 403, refused.text);
    assert.equal(codeOf(refused), 'ERR_QUOTA_EXCEEDED');
    const deleted = await call('pilot', 'DELETE', `${PATHS.secretMetadata}/tenant/b`);
    assert.equal(deleted.status, 204, deleted.text);
    const made = await call('other', 'PUT', data('tenant/e'), {
      data: { password: broker.secretValue('tenant-e-fits') },
    });
    assert.equal(made.status, 200, made.text);
  });

  test('the audit file has one line per answered request, with the caller and never a value', () => {
    const events = broker.auditEvents();
    assert.deepEqual(
      events.map((event) => ({ peer: event.peer, method: event.method, status: event.status })),
      answered,
    );
    for (const event of events) {
      assert.equal(event.component, 'nexus');
      assert.equal(
        event.outcome,
        event.status === 401 || event.status === 403
          ? 'denied'
          : event.status >= 400
            ? 'error'
            : 'allowed',
      );
    }
    const webReads = events.filter((e) => e.peer === IDS.web && e.action === 'secret.read');
    assert.deepEqual(
      webReads.map((e) => [e.resource, e.outcome]),
      [
        ['app/web/db', 'allowed'],
        ['app/other/db', 'denied'],
        ['app/other/missing', 'denied'],
        ['app/web/db', 'allowed'],
        ['app/other/db', 'denied'],
      ],
    );
    const policyWrite = events.find((e) => e.peer === IDS.pilot && e.action === 'policy.write');
    assert.equal(policyWrite?.resource, 'web-reads');
    const text = readFileSync(broker.auditLog, 'utf8');
    for (const secret of [WEB_SECRET, OTHER_SECRET, REFUSED_SECRET]) {
      assert.ok(!text.includes(secret.password), 'the audit log holds a secret value');
    }
    const logs = broker.logs();
    for (const secret of [WEB_SECRET, OTHER_SECRET, REFUSED_SECRET]) {
      assert.ok(!logs.includes(secret.password), 'a process log holds a secret value');
    }
  });
});
