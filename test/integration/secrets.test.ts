/**
 * Secrets and policies with real processes over real mTLS: the embedded
 * agent, three Keepers and Nexus on a SQLite file. The superuser grants an
 * app identity read and list on its own subtree through the policy API; the
 * app then reads only what it may, another app nothing; after a kill -9 the
 * restarted Nexus recovers its key from the Keepers and serves the same
 * secrets under the same policy. The audit file holds one line per request,
 * with the caller's SPIFFE ID and never a secret value.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import type { ListResponse, SecretResponse } from '../../shared/api/secrets.ts';
import type { AuditEvent } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { isNexus } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createX509Source, type X509Source } from '../../shared/spiffe/x509_source.ts';
import {
  describe as describeProgram,
  freePort,
  type RunningProgram,
  startProgram,
  stopAll,
} from '../harness/spawn.ts';

const TD_NAME = 'secrets.test';
const TD = parseTrustDomain(TD_NAME);
const WORKLOADS = [
  'nexus=/spike/nexus',
  'keeper-1=/spike/keeper/1',
  'keeper-2=/spike/keeper/2',
  'keeper-3=/spike/keeper/3',
  'pilot=/spike/pilot/role/superuser',
  'web=/apps/web',
  'other=/apps/other',
].join(',');
const IDS = {
  pilot: `spiffe://${TD_NAME}/spike/pilot/role/superuser`,
  web: `spiffe://${TD_NAME}/apps/web`,
  other: `spiffe://${TD_NAME}/apps/other`,
} as const;
type Caller = keyof typeof IDS;

const WEB_SECRET = { password: `web-secret-${crypto.randomUUID()}`, user: 'web' };
const OTHER_SECRET = { password: `other-secret-${crypto.randomUUID()}` };
const REFUSED_SECRET = { password: `refused-secret-${crypto.randomUUID()}` };

interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
}

/** One request that Nexus answered, as the audit line should record it. */
interface Answered {
  readonly peer: string;
  readonly method: string;
  readonly status: number;
}

describe('secrets and policies with real processes', () => {
  let dir: string;
  let auditLog: string;
  let nexus: RunningProgram | undefined;
  /** Every Nexus started, the killed one included, for their logs. */
  const nexusRuns: RunningProgram[] = [];
  const keepers: RunningProgram[] = [];
  let keeperPorts: number[] = [];
  let nexusPort: number;
  const sources = new Map<Caller, X509Source>();
  const clients = new Map<Caller, MtlsClient>();
  const answered: Answered[] = [];
  const logger = createLogger({ component: 'test', sink: createMemorySink() });

  const socketOf = (name: string) => `unix://${join(dir, 'sockets', `${name}.sock`)}`;
  const identityEnv = (name: string) => ({
    SPIKE_TRUST_ROOT: TD_NAME,
    SPIFFE_ENDPOINT_SOCKET: socketOf(name),
    SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
  });

  async function client(caller: Caller): Promise<MtlsClient> {
    const known = clients.get(caller);
    if (known !== undefined) return known;
    let source = sources.get(caller);
    if (source === undefined) {
      source = await createX509Source({ address: socketOf(caller), logger, timeoutMs: 10_000 });
      sources.set(caller, source);
    }
    const made = new MtlsClient({ source, authorizeServer: isNexus(TD), timeoutMs: 5_000 });
    clients.set(caller, made);
    return made;
  }

  /** Drops kept-alive connections (to a Nexus that is gone); sources stay. */
  function closeClients(): void {
    for (const made of clients.values()) made.close();
    clients.clear();
  }

  async function call(
    caller: Caller,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Reply> {
    const res = await (await client(caller)).request({
      method,
      url: new URL(`https://127.0.0.1:${nexusPort}${path}`),
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    answered.push({ peer: IDS[caller], method, status: res.status });
    const text = res.text();
    return {
      status: res.status,
      text,
      body: text === '' ? undefined : (JSON.parse(text) as unknown),
    };
  }

  const data = (path: string) => `${PATHS.secretData}/${path}`;
  const list = (prefix = '') => `${PATHS.secretList}?prefix=${encodeURIComponent(prefix)}`;
  const codeOf = (reply: Reply) => (reply.body as { error?: { code?: string } }).error?.code;

  function startNexus(): RunningProgram {
    const started = startProgram('nexus', {
      env: {
        ...identityEnv('nexus'),
        SPIKE_NEXUS_TLS_PORT: String(nexusPort),
        SPIKE_NEXUS_DATA_DIR: join(dir, 'nexus-data'),
        SPIKE_NEXUS_KEEPER_PEERS: keeperPorts.map((port) => `https://127.0.0.1:${port}`).join(','),
        SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: '500ms',
        SPIKE_NEXUS_RECOVERY_MAX_INTERVAL: '1s',
        SPIKE_NEXUS_KEEPER_TIMEOUT: '1s',
        SPIKE_NEXUS_AUDIT_LOG: auditLog,
      },
    });
    nexusRuns.push(started);
    return started;
  }

  async function waitUntilReady(what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if ((await call('pilot', 'GET', PATHS.status)).status === 200) return;
      } catch {
        // Not listening yet, or a connection to the Nexus before a restart.
        closeClients();
      }
      if (Date.now() > deadline) {
        const logs = [...nexusRuns, ...keepers].map(describeProgram);
        throw new Error(`Timed out waiting until ${what}\n${logs.join('\n')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  function auditEvents(): AuditEvent[] {
    return readFileSync(auditLog, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AuditEvent);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spike-secrets-'));
    auditLog = join(dir, 'audit.jsonl');
    const agent = startProgram('agent', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIKE_AGENT_DATA_DIR: dir,
        SPIKE_AGENT_WORKLOADS: WORKLOADS,
      },
    });
    await agent.waitFor(/Press Ctrl-C to stop/);
    keeperPorts = [await freePort(), await freePort(), await freePort()];
    nexusPort = await freePort();
    await Promise.all(
      keeperPorts.map(async (port, i) => {
        const keeper = startProgram('keeper', {
          env: { ...identityEnv(`keeper-${i + 1}`), SPIKE_KEEPER_TLS_PORT: String(port) },
        });
        keepers.push(keeper);
        await keeper.waitFor(/"msg":"Listening"/);
      }),
    );
    nexus = startNexus();
    await waitUntilReady('Nexus initialised its root key');
  });

  after(async () => {
    closeClients();
    for (const source of sources.values()) source.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
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

  test('after kill -9, Nexus recovers its key from the Keepers and serves the same secrets', async () => {
    const killed = nexus;
    assert.ok(killed !== undefined);
    killed.child.kill('SIGKILL');
    assert.equal(await killed.exited(10_000), 'SIGKILL');
    closeClients();
    nexus = startNexus();
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

  test('the audit file has one line per answered request, with the caller and never a value', () => {
    const events = auditEvents();
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
    const text = readFileSync(auditLog, 'utf8');
    for (const secret of [WEB_SECRET, OTHER_SECRET, REFUSED_SECRET]) {
      assert.ok(!text.includes(secret.password), 'the audit log holds a secret value');
    }
    const logs = [...nexusRuns, ...keepers].flatMap((p) => [p.stdout(), p.stderr()]).join('\n');
    for (const secret of [WEB_SECRET, OTHER_SECRET, REFUSED_SECRET]) {
      assert.ok(!logs.includes(secret.password), 'a process log holds a secret value');
    }
  });
});
