/**
 * Identity attacks (issue 7, suite 2): every route of Nexus and of a Keeper,
 * served by real processes over real mTLS, against each kind of identity that
 * must not get in: no client certificate, a self-signed certificate, a
 * certificate from another CA that carries our trust domain's SPIFFE ID, a
 * foreign trust domain, an expired SVID, a not-yet-valid SVID, a leaf with two
 * URI SANs, a CA certificate used as a leaf (and the trust domain's own CA
 * certificate), and a valid SVID of the wrong role.
 *
 * Each hostile certificate claims the identity the target would admit (the
 * Pilot superuser for Nexus, Nexus for a Keeper), and the ones that need our
 * trust domain's CA are signed with the embedded agent's own CA key, read
 * from the broker's folder, so that only the rule under test refuses them.
 *
 * What is proven: every refused connection gets no HTTP answer and exactly one
 * audit event (`tls.connect`, denied, with its reason, the remote address and
 * the claimed SPIFFE ID), in Nexus's audit file and in the Keeper's audit
 * trail (its stdout); a wrong role at Nexus gets 403 `ERR_ACCESS_DENIED` from
 * the route's guard, audited once as denied; and none of them reached a
 * handler: the store, the policies and the Keepers' shard generations are
 * unchanged, and no request-level audit event carries a refused caller.
 *
 * The routes come from the apps themselves (`app.routes`), so a route added
 * later is attacked too. Each hostile connection comes from its own loopback
 * address (127.1.x.y), since refusals from one address after its first are
 * only counted into a summary for a while (`shared/spiffe/_refusal_windows.ts`,
 * proven in `shared/http/serve.test.ts`); here every refusal's own record is
 * what is checked.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { CA_CERT_FILE, CA_KEY_FILE } from '../../agent/ca.ts';
import { createApp as createKeeperApp } from '../../keeper/app.ts';
import { ShardHolder } from '../../keeper/shard_holder.ts';
import { createApp as createNexusApp } from '../../nexus/app.ts';
import { PATHS } from '../../shared/api/paths.ts';
import type { AuditEvent } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { isKeeper } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { completeLines } from '../harness/lines.ts';
import {
  adoptTestCa,
  createTestCa,
  selfSignedSvid,
  type TestCa,
  type TestSvid,
} from '../harness/pki.ts';

const TD = 'identity-attacks.test';
const FOREIGN_TD = 'identity-attacks-foreign.test';
const SUPERUSER_PATH = '/spike/pilot/role/superuser';
const NEXUS_PATH = '/spike/nexus';
/** The secret and policy the attacks aim at; both exist, so a handler would act. */
const TARGET_SECRET = 'attacks/target';
const TARGET_POLICY = 'attackers';
const TIMEOUT_MS = 5_000;

type Target = 'nexus' | 'keeper';

interface Endpoint {
  readonly method: string;
  /** The route pattern, as the audit trail records it. */
  readonly pattern: string;
  /** A concrete path that the pattern matches. */
  readonly path: string;
}

interface Credentials {
  readonly key: string;
  readonly cert: string;
}

/** What one hostile identity presents to a target, and what its audit event must say. */
interface Presented {
  /** Undefined presents no certificate. */
  readonly credentials: Credentials | undefined;
  /** `claimedPeer` of the audit event: the ID read from an unverified certificate. */
  readonly claimed: string | null;
  /** `peer` of the audit event: set only for a verified SVID in the wrong role. */
  readonly verified?: string;
}

/** The issuers and identities a hostile case mints its certificate from. */
interface Mint {
  /** The CA the broker trusts (the agent's own). */
  readonly real: TestCa;
  /** Another CA with the same trust domain and subject. */
  readonly rogue: TestCa;
  readonly foreign: TestCa;
  readonly broker: Broker;
}

interface HostileCase {
  readonly name: string;
  /** Only these targets (default both). */
  readonly targets?: readonly Target[];
  /** What the audit reason must say, where our verifier (not the runtime's TLS) decides. */
  readonly reason?: RegExp;
  /** `id` is the SPIFFE ID the target would admit (superuser for Nexus, Nexus for a Keeper). */
  present(mint: Mint, id: string): Promise<Presented>;
}

/** Every method and route pattern of an app, without middleware entries. */
function endpointsOf(
  routes: ReadonlyArray<{ readonly method: string; readonly path: string }>,
): Endpoint[] {
  const seen = new Set<string>();
  const endpoints: Endpoint[] = [];
  for (const route of routes) {
    if (route.method === 'ALL' && route.path.endsWith('*')) continue;
    const key = `${route.method} ${route.path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    endpoints.push({ method: route.method, pattern: route.path, path: concretePath(route.path) });
  }
  return endpoints;
}

/** Fills each `:param` (with or without a `{regex}`) with the value the attacks aim at. */
function concretePath(pattern: string): string {
  return pattern.replace(/:(\w+)(\{[^}]*\})?/g, (_match, name: string) =>
    name === 'name' ? TARGET_POLICY : name === 'path' ? TARGET_SECRET : 'x',
  );
}

function nexusEndpoints(): Endpoint[] {
  // Routes are only registered here, never called: the stores can be stand-ins.
  const unused = {} as never;
  const app = createNexusApp({
    getPeer: () => undefined,
    logger: createLogger({ component: 'nexus', sink: createMemorySink() }),
    trustDomain: parseTrustDomain(TD),
    rootKey: unused,
    manager: unused,
    secrets: unused,
    watches: unused,
    policies: unused,
    transitKeys: unused,
    policyCache: unused,
    access: unused,
    identity: unused,
    refusals: unused,
    deniedRequests: unused,
    maxBodyBytes: 1024,
  });
  return endpointsOf(app.routes);
}

function keeperEndpoints(): Endpoint[] {
  const logger = createLogger({ component: 'keeper', sink: createMemorySink() });
  const app = createKeeperApp({
    getPeer: () => undefined,
    logger,
    trustDomain: parseTrustDomain(TD),
    holder: new ShardHolder({ logger }),
  });
  return endpointsOf(app.routes);
}

/**
 * A body a handler would act on if the guard let it through, by route; the
 * guard comes before validation, so its shape never changes the answer.
 */
function bodyFor(endpoint: Endpoint, secretValue: string): unknown {
  if (endpoint.method === 'GET' || endpoint.method === 'DELETE') return undefined;
  const p = endpoint.pattern;
  if (p.startsWith(PATHS.secretData)) return { data: { password: secretValue } };
  if (p.startsWith(PATHS.secretMetadata)) return { maxVersions: 1 };
  if (p === PATHS.secretWatch) return { versions: { 'app/x': 0 }, wait: '1ms' };
  if (p.startsWith(PATHS.secretUndelete) || p.startsWith(PATHS.secretDestroy)) {
    return { versions: [1] };
  }
  if (p.startsWith(PATHS.policies)) {
    return { spiffeIdPattern: `spiffe://${TD}/*`, pathPattern: '**', permissions: ['super'] };
  }
  if (p === PATHS.operatorRestore) return { shard: 'spike:1:00' };
  if (p === PATHS.keeperShards) return { generation: 99, index: 1, threshold: 2, shard: 'AAAA' };
  if (p === PATHS.keeperPrune) return { keepFrom: 99 };
  return {};
}

interface AttemptResult {
  /** `address:port` of our end, as the server sees it. */
  readonly local: string | undefined;
  readonly status?: number;
  readonly error?: string;
}

let sourcesUsed = 0;

/** A loopback address no earlier attempt came from (Linux routes all of 127/8 to lo). */
function freshSource(): string {
  sourcesUsed += 1;
  return `127.1.${Math.floor(sourcesUsed / 250)}.${(sourcesUsed % 250) + 1}`;
}

/** One request on a fresh connection, from a fresh address, with the given credentials (or none). */
function attempt(
  port: number,
  endpoint: Endpoint,
  options: {
    readonly ca: string;
    readonly credentials: Credentials | undefined;
    readonly body: unknown;
  },
): Promise<AttemptResult> {
  return new Promise((resolve) => {
    let local: string | undefined;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        localAddress: freshSource(),
        port,
        path: endpoint.path,
        method: endpoint.method,
        agent: false,
        ca: options.ca,
        ...options.credentials,
        // The attacker does not care who the server is; this only probes it.
        checkServerIdentity: () => undefined,
        timeout: TIMEOUT_MS,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ local, status: res.statusCode ?? 0 }));
      },
    );
    req.on('socket', (socket) => {
      const remember = () => {
        const s = socket as TLSSocket;
        if (s.localPort !== undefined) local = `${s.localAddress ?? ''}:${s.localPort}`;
      };
      socket.once('connect', remember);
      socket.once('secureConnect', remember);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: Error & { code?: string }) =>
      resolve({ local, error: err.code ?? err.message }),
    );
    req.end(body);
  });
}

function parseAuditLines(text: string): AuditEvent[] {
  const events: AuditEvent[] = [];
  for (const line of completeLines(text)) {
    if (!line.startsWith('{')) continue;
    const event = JSON.parse(line) as AuditEvent;
    if (typeof event.trailId === 'string') events.push(event);
  }
  return events;
}

async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await delay(25);
  }
}

function key(endpoint: Endpoint): string {
  return `${endpoint.method} ${endpoint.pattern}`;
}

/**
 * The roles that each Nexus route must refuse. By default a Keeper (Keepers
 * never call Nexus) and an application no policy names. Exceptions, on
 * purpose: health answers every member of the trust domain, and the secret
 * list admits every member except the break-glass roles (each listed path is
 * then filtered), so it is the recover role that must be refused there.
 */
const DEFAULT_WRONG_ROLES = ['keeper-1', 'web'] as const;
const WRONG_ROLES_BY_ROUTE: Readonly<Record<string, readonly string[]>> = {
  [`GET ${PATHS.health}`]: [],
  [`GET ${PATHS.secretList}`]: ['recover'],
  // Like the secret list: any member may ask, and sees the keys it may list.
  [`GET ${PATHS.transitKeys}`]: ['recover'],
};

function pem(svid: TestSvid): Credentials {
  return { key: svid.privateKeyPem, cert: svid.certificatePem };
}

/** A certificate claiming `id`, as minted, and the claim its audit event records. */
async function claiming(svid: Promise<TestSvid> | TestSvid, claimed: string | null) {
  return { credentials: pem(await svid), claimed };
}

function foreignIdOf(id: string): string {
  return id.replace(`spiffe://${TD}/`, `spiffe://${FOREIGN_TD}/`);
}

const CASES: readonly HostileCase[] = [
  {
    name: 'no client certificate',
    reason: /no client certificate/,
    present: async () => ({ credentials: undefined, claimed: null }),
  },
  {
    name: 'a self-signed certificate',
    present: (_m, id) => claiming(selfSignedSvid(id), id),
  },
  {
    name: "a certificate from another CA that carries our trust domain's SPIFFE ID",
    present: (m, id) => claiming(m.rogue.issueSvid(id), id),
  },
  {
    name: 'an SVID of a foreign trust domain',
    present: (m, id) => claiming(m.foreign.issueSvid(foreignIdOf(id)), foreignIdOf(id)),
  },
  {
    name: 'an expired SVID',
    present: (m, id) => claiming(m.real.issueSvid(id, { validity: 'expired' }), id),
  },
  {
    name: 'a not-yet-valid SVID',
    present: (m, id) => claiming(m.real.issueSvid(id, { validity: 'notYetValid' }), id),
  },
  {
    name: 'a leaf with two URI SANs',
    reason: /2 URI SANs/,
    present: (m, id) =>
      claiming(m.real.issueSvid(id, { uriSans: [id, `spiffe://${TD}/apps/web`] }), null),
  },
  {
    name: 'a CA certificate used as a leaf',
    present: (m, id) =>
      claiming(
        m.real.issueSvid(id, {
          isCa: true,
          keyUsage: ['keyCertSign', 'cRLSign', 'digitalSignature'],
        }),
        id,
      ),
  },
  {
    name: "the trust domain's own CA certificate used as a leaf",
    present: (m) => claiming(m.real.rootAsSvid(), `spiffe://${TD}`),
  },
  // A valid SVID of the wrong role is refused at a Keeper's TLS layer (only
  // Nexus may connect); at Nexus it gets through TLS to the route guards.
  ...['pilot', 'keeper-2'].map(
    (name): HostileCase => ({
      name: `a valid SVID of the wrong role (${name})`,
      targets: ['keeper'],
      reason: /is not allowed here/,
      present: async (m) => {
        const svid = (await m.broker.source(name)).getX509Svid();
        return {
          credentials: { key: svid.privateKeyPem(), cert: svid.certificatePem() },
          claimed: null,
          verified: m.broker.idOf(name),
        };
      },
    }),
  ),
];

describe('identity attacks on every route of Nexus and of a Keeper', { timeout: 85_000 }, () => {
  let broker: Broker;
  let bundlePem: string;
  let keeperClient: MtlsClient | undefined;
  let mint: Mint;
  const nexusRoutes = nexusEndpoints();
  const keeperRoutes = keeperEndpoints();
  /** Every local address a hostile connection used, per target. */
  const hostile = { nexus: new Set<string>(), keeper: new Set<string>() };
  let wrongRoleCalls = 0;
  let snapshotBefore: unknown;
  let nexusAuditStart = 0;
  let keeperStderrStart = 0;

  function keeperAudit(): AuditEvent[] {
    return parseAuditLines(broker.keeper(0).stdout());
  }

  function auditOf(target: Target): AuditEvent[] {
    return target === 'nexus' ? broker.auditEvents() : keeperAudit();
  }

  async function snapshot(): Promise<unknown> {
    const read = async (path: string) => {
      const reply = await broker.call('pilot', 'GET', path);
      return { status: reply.status, body: reply.body };
    };
    keeperClient ??= new MtlsClient({
      source: await broker.source('nexus'),
      authorizeServer: isKeeper(broker.trustDomain),
      timeoutMs: TIMEOUT_MS,
    });
    const generations: unknown[] = [];
    for (const port of broker.keeperPorts) {
      const res = await keeperClient.request({
        method: 'GET',
        url: new URL(`https://127.0.0.1:${port}${PATHS.keeperGenerations}`),
      });
      generations.push({ status: res.status, body: res.json() });
    }
    return {
      list: await read(`${PATHS.secretList}?prefix=`),
      data: await read(`${PATHS.secretData}/${TARGET_SECRET}`),
      metadata: await read(`${PATHS.secretMetadata}/${TARGET_SECRET}`),
      policies: await read(PATHS.policies),
      generations,
    };
  }

  before(
    async () => {
      broker = await startBroker({
        trustDomain: TD,
        workloads: { web: '/apps/web', recover: '/spike/pilot/role/recover' },
      });
      // Something for every write, delete and destroy to act on.
      const put = await broker.call('pilot', 'PUT', `${PATHS.secretData}/${TARGET_SECRET}`, {
        data: { password: broker.secretValue('target') },
      });
      assert.equal(put.status, 200, put.text);
      const policy = await broker.call('pilot', 'PUT', `${PATHS.policies}/${TARGET_POLICY}`, {
        spiffeIdPattern: `spiffe://${TD}/apps/other`,
        pathPattern: 'attacks/**',
        permissions: ['read'],
      });
      assert.equal(policy.status, 200, policy.text);
      snapshotBefore = await snapshot();

      const pilotSource = await broker.source('pilot');
      const bundle = pilotSource.getX509Bundles().get(broker.trustDomain);
      assert.ok(bundle, 'the trust bundle of our trust domain');
      bundlePem = bundle.pem();
      // The CA the broker trusts: the agent keeps it in the broker's folder.
      const real = await adoptTestCa(TD, {
        certificatePem: readFileSync(join(broker.dir, CA_CERT_FILE), 'utf8'),
        privateKeyPem: readFileSync(join(broker.dir, CA_KEY_FILE), 'utf8'),
      });
      const rogue = await createTestCa(TD, { rootSubject: real.root.certificate.subject });
      const foreign = await createTestCa(FOREIGN_TD);

      mint = { real, rogue, foreign, broker };
      nexusAuditStart = broker.auditEvents().length;
      keeperStderrStart = broker.keeper(0).stderr().length;
    },
    { timeout: 60_000 },
  );

  after(async () => {
    keeperClient?.close();
    await broker?.stop();
  });

  test('the routes under attack are read from the apps', () => {
    const nexusKeys = nexusRoutes.map(key);
    const keeperKeys = keeperRoutes.map(key);
    for (const expected of [
      `GET ${PATHS.health}`,
      `GET ${PATHS.status}`,
      `PUT ${PATHS.secretData}/:path{.+}`,
      `POST ${PATHS.operatorRecover}`,
      `POST ${PATHS.operatorRestore}`,
      `DELETE ${PATHS.policies}/:name`,
    ]) {
      assert.ok(
        nexusKeys.includes(expected),
        `${expected} is missing from ${nexusKeys.join(', ')}`,
      );
    }
    for (const expected of [`PUT ${PATHS.keeperShards}`, `POST ${PATHS.keeperPrune}`]) {
      assert.ok(keeperKeys.includes(expected), `${expected} is missing`);
    }
    assert.ok(nexusRoutes.length >= 15, `only ${nexusRoutes.length} Nexus routes`);
    assert.ok(keeperRoutes.length >= 5, `only ${keeperRoutes.length} Keeper routes`);
    // Every concrete path names the targets, never a raw parameter.
    for (const endpoint of [...nexusRoutes, ...keeperRoutes]) {
      assert.doesNotMatch(endpoint.path, /[:{}]/, endpoint.pattern);
    }
  });

  for (const hostileCase of CASES) {
    test(`${hostileCase.name}: refused at TLS on every route, audited once per connection`, async () => {
      const targets = hostileCase.targets ?? (['nexus', 'keeper'] as const);
      for (const target of targets) {
        const port = target === 'nexus' ? broker.nexusPort : (broker.keeperPorts[0] as number);
        const routes = target === 'nexus' ? nexusRoutes : keeperRoutes;
        const id = `spiffe://${TD}${target === 'nexus' ? SUPERUSER_PATH : NEXUS_PATH}`;
        const presented = await hostileCase.present(mint, id);
        const auditStart = auditOf(target).length;
        const locals: string[] = [];
        for (const endpoint of routes) {
          const result = await attempt(port, endpoint, {
            ca: bundlePem,
            credentials: presented.credentials,
            body: bodyFor(endpoint, broker.secretValue('hostile')),
          });
          assert.equal(
            result.status,
            undefined,
            `${hostileCase.name}: ${target} ${key(endpoint)} answered HTTP ${result.status}`,
          );
          assert.ok(result.local, `${hostileCase.name}: no local address for ${key(endpoint)}`);
          assert.ok(!hostile[target].has(result.local), 'a local port was reused');
          hostile[target].add(result.local);
          locals.push(result.local);
        }
        const forThese = (events: AuditEvent[]) =>
          events.filter((e) => e.remoteAddress != null && locals.includes(e.remoteAddress));
        await eventually(
          () =>
            new Set(forThese(auditOf(target)).map((e) => e.remoteAddress)).size === locals.length,
          `${target} audited ${locals.length} refusals of "${hostileCase.name}"\n${target === 'nexus' ? broker.nexus().stderr() : broker.keeper(0).stderr()}`,
        );
        const events = forThese(auditOf(target));
        // Exactly one event per connection: the refusal, and nothing else.
        assert.equal(events.length, locals.length, JSON.stringify(events, null, 1));
        // Nothing but the refusals: no request on a refused connection was
        // read (Nexus polls the Keepers meanwhile; those are its requests).
        const others = auditOf(target)
          .slice(auditStart)
          .filter((e) => e.action !== 'tls.connect' && e.peer !== broker.idOf('nexus'));
        assert.deepEqual(others, [], `${hostileCase.name}: request events at ${target}`);
        const verified = presented.verified;
        for (const event of events) {
          assert.equal(event.component, target);
          assert.equal(event.action, 'tls.connect');
          assert.equal(event.outcome, 'denied');
          assert.equal(event.count, 1);
          assert.equal(event.method, null);
          assert.equal(event.route, null);
          assert.equal(event.resource, null);
          assert.equal(event.peer, verified ?? null);
          assert.equal(event.claimedPeer, presented.claimed);
          assert.equal(event.status, verified === undefined ? 401 : 403);
          assert.equal(
            event.errorCode,
            verified === undefined ? 'ERR_UNAUTHENTICATED' : 'ERR_ACCESS_DENIED',
          );
          assert.equal(typeof event.reason, 'string');
          assert.ok((event.reason ?? '').length > 0);
          if (hostileCase.reason !== undefined)
            assert.match(event.reason ?? '', hostileCase.reason);
          // Never the certificate: no PEM, no base64 DER.
          assert.doesNotMatch(JSON.stringify(event), /BEGIN|MII[A-Za-z0-9+/]{20}/);
        }
      }
    });
  }

  test('a valid SVID of the wrong role gets 403 ERR_ACCESS_DENIED from every Nexus route guard, audited once as denied', async () => {
    for (const endpoint of nexusRoutes) {
      const roles = WRONG_ROLES_BY_ROUTE[key(endpoint)] ?? DEFAULT_WRONG_ROLES;
      for (const role of roles) {
        const before = broker.auditEvents().length;
        const reply = await broker.call(
          role,
          endpoint.method,
          endpoint.path,
          bodyFor(endpoint, broker.secretValue('wrong-role')),
        );
        wrongRoleCalls += 1;
        const what = `${role} → ${key(endpoint)}`;
        assert.equal(reply.status, 403, `${what}: ${reply.text}`);
        assert.deepEqual(
          (reply.body as { error?: { code?: string } }).error?.code,
          'ERR_ACCESS_DENIED',
          what,
        );
        // The audit line is written before the answer is sent.
        const events = broker.auditEvents().slice(before);
        assert.equal(events.length, 1, `${what}: ${JSON.stringify(events)}`);
        const [event] = events as [AuditEvent];
        assert.equal(event.peer, broker.idOf(role), what);
        assert.equal(event.method, endpoint.method, what);
        assert.equal(event.route, endpoint.pattern, what);
        assert.equal(event.outcome, 'denied', what);
        assert.equal(event.status, 403, what);
        assert.equal(event.errorCode, 'ERR_ACCESS_DENIED', what);
      }
    }
    assert.ok(wrongRoleCalls >= nexusRoutes.length, `only ${wrongRoleCalls} wrong-role calls`);
  });

  test('Nexus health is the one route without a wrong role: it answers any SVID of the trust domain, and says nothing else', async () => {
    assert.deepEqual(
      nexusRoutes
        .filter((e) => (WRONG_ROLES_BY_ROUTE[key(e)] ?? DEFAULT_WRONG_ROLES).length === 0)
        .map(key),
      [`GET ${PATHS.health}`],
    );
    const reply = await broker.call('keeper-1', 'GET', PATHS.health);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, { status: 'ok', component: 'nexus' });
  });

  test('no refused caller reached a handler: store, policies and Keeper shards unchanged; no request event from them', async () => {
    assert.deepEqual(await snapshot(), snapshotBefore);

    // Nexus: since the attacks began, only refusals, the wrong-role denials
    // and this test's own reads (the superuser; a Keeper's health check).
    const nexusEvents = broker.auditEvents().slice(nexusAuditStart);
    const refusals = nexusEvents.filter((e) => e.action === 'tls.connect');
    assert.equal(refusals.length, hostile.nexus.size);
    const requests = nexusEvents.filter((e) => e.action !== 'tls.connect');
    const deniedRequests = requests.filter((e) => e.outcome === 'denied');
    assert.equal(
      deniedRequests.length,
      wrongRoleCalls,
      JSON.stringify(deniedRequests.filter((e) => e.status !== 403).slice(0, 5), null, 1),
    );
    for (const event of requests) {
      assert.notEqual(event.route, null);
      if (event.outcome !== 'denied') {
        assert.ok(
          event.peer === broker.idOf('pilot') ||
            (event.peer === broker.idOf('keeper-1') && event.route === PATHS.health),
          `a request event from an unexpected caller: ${JSON.stringify(event)}`,
        );
      }
    }
    // Refusals are counted apart from denied requests.
    const status = await broker.call('pilot', 'GET', PATHS.status);
    const stats = status.body as { refusedHandshakes: number; deniedRequests: number };
    assert.equal(stats.refusedHandshakes, hostile.nexus.size);
    assert.equal(stats.deniedRequests, wrongRoleCalls);

    // Keeper: every request it served came from Nexus.
    const keeperEvents = keeperAudit();
    const keeperRefusals = keeperEvents.filter((e) => e.action === 'tls.connect');
    assert.equal(keeperRefusals.length, hostile.keeper.size);
    for (const event of keeperEvents.filter((e) => e.action !== 'tls.connect')) {
      assert.equal(event.peer, broker.idOf('nexus'), JSON.stringify(event));
      assert.equal(event.outcome, 'allowed', JSON.stringify(event));
    }
    // The shard handlers log what they did; none ran for a hostile peer.
    assert.doesNotMatch(
      broker.keeper(0).stderr().slice(keeperStderrStart),
      /"msg":"(Stored a shard|Read shards|Pruned generations|Prune skipped[^"]*|Refused a shard|Access denied)"/,
    );
  });

  // Last: it stops Nexus and the first Keeper, which write their summaries at stop.
  test('1,000 refused connections from one address cost Nexus and a Keeper a few audit lines each, which count all 1,000 and name the address', async () => {
    const total = 1_000;
    const from = freshSource();
    const ports = { nexus: broker.nexusPort, keeper: broker.keeperPorts[0] as number };
    for (const target of ['nexus', 'keeper'] as const) {
      const auditStart = auditOf(target).length;
      for (let i = 0; i < total; i += 50) {
        await Promise.all(Array.from({ length: 50 }, () => garbageConnection(ports[target], from)));
      }
      await (target === 'nexus' ? broker.nexus() : broker.keeper(0)).stop();
      const events = auditOf(target)
        .slice(auditStart)
        .filter((e) => e.remoteAddress?.startsWith(from) === true);
      assert.ok(events.length <= 2, `${target}: ${events.length} audit lines`);
      assert.equal(
        events.reduce((sum, e) => sum + (e.count ?? 0), 0),
        total,
        JSON.stringify(events),
      );
      for (const event of events) {
        assert.equal(event.action, 'tls.connect');
        assert.match(
          event.remoteAddress ?? '',
          new RegExp(`^${from.replaceAll('.', '\\.')}(:\\d+)?$`),
        );
      }
    }
  });
});

/**
 * A connection from `from` that sends a broken TLS record instead of a
 * ClientHello: the server answers with an alert and closes it, so it was
 * accepted (and its address read) before it ended.
 */
function garbageConnection(port: number, from: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port, localAddress: from });
    socket.on('error', () => {});
    socket.resume();
    socket.once('connect', () => socket.write('\x16\x03\x01\x00\x05hello'));
    socket.once('close', () => resolve());
  });
}
