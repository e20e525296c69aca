/**
 * The secret read served before the app (secret_read.ts) against the app's
 * own route: two servers over one store, one with the shortcut in front of
 * the app and one with the app alone, get the same requests, and every
 * answer (status, headers, body), audit event and recorded request metric
 * must be the same. The requests cover what the shortcut takes (reads, and
 * the errors of a read it has admitted) and what it must leave to the app (refusals,
 * malformed paths and queries, HEAD, a body, an expired or missing peer, an
 * empty rate-limit bucket); a count of what it took keeps the comparison
 * from passing with a shortcut that takes nothing.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { PolicyDocument } from '../../shared/api/policies.ts';
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import { createTokenBuckets } from '../../shared/http/rate_limit.ts';
import { RequestCount } from '../../shared/http/request_count.ts';
import { requestListener } from '../../shared/http/serve.ts';
import {
  type AuditEvent,
  type AuditSink,
  createMemoryAuditSink,
} from '../../shared/log/audit_log.ts';
import { pilotSuperuserId } from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import type { VerifiedSvid } from '../../shared/spiffe/x509_svid.ts';
import { type NexusApp, nexusApp } from '../../test/harness/nexus_app.ts';
import { createReadShortcut } from '../app.ts';
import { RootKey } from '../root_key/root_key.ts';
import { createMemorySecretStore } from '../store/testing/memory_secret_store.ts';

const TD = parseTrustDomain('nexus.test');
const HOUR_MS = 3_600_000;
const SUPERUSER = pilotSuperuserId(TD).toString();
const WEB = 'spiffe://nexus.test/apps/web';
const NOBODY = 'spiffe://nexus.test/apps/nobody';
/** May read `app/web/**` like WEB; empties its own rate-limit bucket. */
const FLOOD = 'spiffe://nexus.test/apps/flood';
/** Each server's rate limit: a burst of this many, refilled too slowly to matter here. */
const BURST = 100;

/** How a test request names its peer: a header only these servers read. */
const PEER_HEADER = 'x-test-peer';
const EXPIRED_HEADER = 'x-test-expired';

function peerOf(request: IncomingMessage): VerifiedSvid | undefined {
  const id = request.headers[PEER_HEADER];
  if (typeof id !== 'string') return undefined;
  const expired = request.headers[EXPIRED_HEADER] !== undefined;
  return {
    id: parseSpiffeId(id),
    notBefore: new Date(Date.now() - 2 * HOUR_MS),
    notAfter: new Date(Date.now() + (expired ? -HOUR_MS : HOUR_MS)),
    serialNumber: '01',
  } as VerifiedSvid;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

interface Subject {
  readonly url: string;
  readonly audit: AuditEvent[];
  readonly denied: RequestCount;
  readonly sink: { failing: boolean; unwritable: boolean; failOpen: boolean };
  /** Route, method and status of each request the metrics recorded. */
  readonly recorded: string[];
  /** Requests the shortcut answered. */
  taken: number;
}

const rootKey = new RootKey();
const servers: Server[] = [];
let shortcutFirst: Subject;
let appAlone: Subject;
let closeStore: () => Promise<void> = async () => {};
const apps: NexusApp[] = [];

const POLICIES: readonly PolicyDocument[] = [
  { name: 'web-reads', spiffeIdPattern: WEB, pathPattern: 'app/web/**', permissions: ['read'] },
  { name: 'flood-reads', spiffeIdPattern: FLOOD, pathPattern: 'app/web/**', permissions: ['read'] },
];

before(async () => {
  rootKey.unseal(randomBytes(32), randomBytes(32), 1);
  const store = await createMemorySecretStore({
    keyring: rootKey.withKeyring.bind(rootKey),
    maxVersionsDefault: 10,
  });
  closeStore = () => store.close();
  await store.put(parseSecretPath('app/web/db'), {
    password: 'p1',
    user: 'web',
    '10': 'a',
    '2': 'b',
  });
  await store.put(parseSecretPath('app/web/db'), { password: 'p2' });
  await store.put(parseSecretPath('app/web/db'), { password: 'p3' });
  await store.softDelete(parseSecretPath('app/web/db'), [2]);
  await store.put(parseSecretPath('app/web/gone'), { password: 'x' });
  await store.destroy(parseSecretPath('app/web/gone'), [1]);
  await store.put(parseSecretPath('app/other/db'), { password: 'o1' });

  async function serve(withShortcut: boolean): Promise<Subject> {
    const memory = createMemoryAuditSink();
    const sink = { failing: false, unwritable: false, failOpen: false };
    const auditSink: AuditSink = {
      get failClosed() {
        return !sink.failOpen;
      },
      writable: () => !sink.unwritable,
      write: (event) =>
        sink.failing
          ? Promise.resolve({ written: false, error: new Error('disk full') })
          : memory.write(event),
      close() {},
    };
    const denied = new RequestCount();
    const recorded: string[] = [];
    // Both apps read the one store under the one root key; each has its own
    // audit sink, denied count, metrics and rate limit.
    const nexus = await nexusApp({
      rootKey: { rootKey },
      secretStore: store,
      policies: POLICIES,
      getPeer: (c) => peerOf(c.env.incoming),
      deniedRequests: denied,
      rateLimit: createTokenBuckets({ ratePerSecond: 0.001, burst: BURST }),
      auditSink,
      metrics: {
        recordRequest(route, method, status, seconds) {
          assert.ok(seconds >= 0);
          recorded.push(`${method} ${route} ${status}`);
        },
      },
    });
    apps.push(nexus);
    const subject = { url: '', audit: memory.events, denied, sink, recorded, taken: 0 };
    const shortcut = createReadShortcut(nexus.deps, peerOf);
    const server = createServer(
      requestListener(
        nexus.app.fetch,
        withShortcut
          ? (request, response) => {
              const isTaken = shortcut(request, response);
              if (isTaken) subject.taken += 1;
              return isTaken;
            }
          : undefined,
      ),
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    subject.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return subject;
  }

  shortcutFirst = await serve(true);
  appAlone = await serve(false);
});

after(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  await Promise.all(apps.map((app) => app.close()));
  await closeStore();
});

interface Sent {
  readonly method?: string;
  readonly path: string;
  readonly peer?: string | undefined;
  readonly expired?: boolean;
  readonly body?: string;
  /** The Host header instead of the one the client sets. */
  readonly host?: string;
}

function send(base: string, sent: Sent): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (sent.peer !== undefined) headers[PEER_HEADER] = sent.peer;
  if (sent.expired === true) headers[EXPIRED_HEADER] = '1';
  if (sent.body !== undefined) headers['content-length'] = String(Buffer.byteLength(sent.body));
  if (sent.host !== undefined) headers.host = sent.host;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${base}${sent.path}`,
      { method: sent.method ?? 'GET', headers, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(sent.body);
  });
}

/** What the two must agree on: the headers but the date and connection handling. */
function comparable(answer: Answer) {
  const {
    date: _date,
    connection: _connection,
    'keep-alive': _keepAlive,
    ...headers
  } = answer.headers;
  return { status: answer.status, headers, text: answer.text };
}

function eventShape(event: AuditEvent | undefined) {
  assert.ok(event !== undefined, 'no audit event');
  const { ts: _ts, trailId: _trailId, durationMs: _durationMs, ...rest } = event;
  return rest;
}

/** Sends to both; asserts the same answer, audit event and denial count; returns the answer. */
async function sameFromBoth(sent: Sent): Promise<{ answer: Answer; isTaken: boolean }> {
  const takenBefore = shortcutFirst.taken;
  const eventsBefore = [shortcutFirst.audit.length, appAlone.audit.length];
  const first = await send(shortcutFirst.url, sent);
  const second = await send(appAlone.url, sent);
  assert.deepEqual(comparable(first), comparable(second), `answers to ${sent.path}`);
  assert.equal(shortcutFirst.audit.length, (eventsBefore[0] ?? 0) + 1);
  assert.equal(appAlone.audit.length, (eventsBefore[1] ?? 0) + 1);
  assert.deepEqual(eventShape(shortcutFirst.audit.at(-1)), eventShape(appAlone.audit.at(-1)));
  assert.equal(shortcutFirst.denied.value, appAlone.denied.value);
  assert.deepEqual(shortcutFirst.recorded, appAlone.recorded);
  return { answer: first, isTaken: shortcutFirst.taken > takenBefore };
}

describe('a secret read answered before the app', () => {
  test('answers a read, a read of a version, a long-poll read and the errors of an admitted read as the app does', async () => {
    const cases: Array<[Sent, number]> = [
      [{ path: '/v1/secrets/data/app/web/db', peer: WEB }, 200],
      [{ path: '/v1/secrets/data/app/web/db?version=1', peer: WEB }, 200],
      [{ path: '/v1/secrets/data/app/web/db', peer: WEB, body: '' }, 200],
      [{ path: '/v1/secrets/data/app/web/db?newerThan=1&wait=10ms', peer: WEB }, 200],
      [{ path: '/v1/secrets/data/app/web/db?newerThan=0', peer: WEB }, 200],
      [{ path: '/v1/secrets/data/app/web/db?newerThan=3&wait=10ms', peer: WEB }, 304],
      [{ path: '/v1/secrets/data/app/web/missing?newerThan=2&wait=10ms', peer: WEB }, 404],
      [{ path: '/v1/secrets/data/app/web/db', peer: SUPERUSER }, 200],
      [{ path: '/v1/secrets/data/app/web/db?version=2', peer: WEB }, 404],
      [{ path: '/v1/secrets/data/app/web/db?version=9', peer: WEB }, 404],
      [{ path: '/v1/secrets/data/app/web/gone', peer: WEB }, 404],
      [{ path: '/v1/secrets/data/app/web/missing', peer: WEB }, 404],
    ];
    for (const [sent, status] of cases) {
      const { answer, isTaken } = await sameFromBoth(sent);
      assert.equal(answer.status, status, `${sent.path}: ${answer.text}`);
      assert.ok(isTaken, `the shortcut left ${sent.path} to the app`);
    }
  });

  test('answers the data as it was sealed: every key and value, keys in code-unit order', async () => {
    const { answer } = await sameFromBoth({
      path: '/v1/secrets/data/app/web/db?version=1',
      peer: WEB,
    });
    assert.ok(
      answer.text.includes('"data":{"10":"a","2":"b","password":"p1","user":"web"}'),
      answer.text,
    );
    assert.deepEqual(JSON.parse(answer.text), {
      path: 'app/web/db',
      version: 1,
      data: { password: 'p1', user: 'web', '10': 'a', '2': 'b' },
      createdAt: (JSON.parse(answer.text) as { createdAt: string }).createdAt,
    });
  });

  test('leaves every refusal, odd request and unknown query to the app, which answers it', async () => {
    const cases: Sent[] = [
      { path: '/v1/secrets/data/app/other/db', peer: WEB },
      { path: '/v1/secrets/data/app/web/db', peer: NOBODY },
      { path: '/v1/secrets/data/app/web/db' },
      { path: '/v1/secrets/data/app/web/db', peer: WEB, expired: true },
      { path: '/v1/secrets/data/sys/anything', peer: SUPERUSER },
      { path: '/v1/secrets/data/app//web/db', peer: SUPERUSER },
      { path: '/v1/secrets/data/app/web/../other/db', peer: WEB },
      { path: '/v1/secrets/data/app/web%2Fdb', peer: SUPERUSER },
      { path: '/v1/secrets/data/app/%77eb/db', peer: WEB },
      { path: '/v1/secrets/data/app/web/db/', peer: WEB },
      { path: `/v1/secrets/data/${'a/'.repeat(40)}b`, peer: SUPERUSER },
      { path: '/v1/secrets/data/app/web/db?version=0', peer: WEB },
      { path: '/v1/secrets/data/app/web/db?version=x', peer: WEB },
      { path: '/v1/secrets/data/app/web/db?version=', peer: WEB },
      { path: '/v1/secrets/data/app/web/db?version=1&version=2', peer: WEB },
      { path: '/v1/secrets/data/app/web/db?other=1', peer: WEB },
      { path: '/v1/secrets/data/app/web/db?newerThan=3&wait=bad', peer: WEB },
      { path: '/v1/secrets/data/app/web/db?newerThan=x&wait=10ms', peer: WEB },
      { path: '/v1/secrets/data/app/web/db?wait=10ms&newerThan=3', peer: WEB },
      { path: '/v1/secrets/data/app/web/db?wait=10ms', peer: WEB },
      { path: '/v1/secrets/data/app/web/db?newerThan=3&wait=10ms&version=1', peer: WEB },
      { path: '/v1/secrets/data/app/other/db?newerThan=1&wait=10ms', peer: WEB },
      { path: '/v1/secrets/data/app/web/db', peer: WEB, method: 'HEAD' },
      { path: '/v1/secrets/data/app/web/db', peer: WEB, body: 'hello' },
      { path: '/v1/secrets/data/app/web/db', peer: WEB, method: 'DELETE' },
    ];
    for (const sent of cases) {
      const { isTaken } = await sameFromBoth(sent);
      assert.ok(!isTaken, `the shortcut took ${JSON.stringify(sent)}`);
    }
  });

  test('shares the rate limit with the app: reads it answers take tokens, and an empty bucket is a 429 from the app', async () => {
    // Each server has its own buckets; empty FLOOD's in both the same way,
    // with reads the shortcut answers on one side and the app on the other.
    for (let i = 0; i < BURST; i++) {
      const { answer, isTaken } = await sameFromBoth({
        path: '/v1/secrets/data/app/web/db',
        peer: FLOOD,
      });
      assert.equal(answer.status, 200);
      assert.ok(isTaken);
    }
    const { answer, isTaken } = await sameFromBoth({
      path: '/v1/secrets/data/app/web/db',
      peer: FLOOD,
    });
    assert.equal(answer.status, 429);
    assert.ok(!isTaken);
  });

  test('leaves a request with a Host the adapter would not take as it is to the app', async () => {
    for (const host of ['a b', 'x:99999', 'EXAMPLE.test', '[::1]:8553']) {
      const sent = { path: '/v1/secrets/data/app/web/db', peer: WEB, host };
      const takenBefore = shortcutFirst.taken;
      const first = await send(shortcutFirst.url, sent);
      const second = await send(appAlone.url, sent);
      assert.deepEqual(comparable(first), comparable(second), host);
      assert.equal(shortcutFirst.taken, takenBefore, `the shortcut took Host ${host}`);
    }
  });

  test('failing open, an answer whose audit line was not written stands, as in the app', async () => {
    for (const subject of [shortcutFirst, appAlone]) {
      subject.sink.failOpen = true;
      subject.sink.failing = true;
    }
    try {
      const first = await send(shortcutFirst.url, {
        path: '/v1/secrets/data/app/web/db',
        peer: WEB,
      });
      const second = await send(appAlone.url, { path: '/v1/secrets/data/app/web/db', peer: WEB });
      assert.deepEqual(comparable(first), comparable(second));
      assert.equal(first.status, 200);
    } finally {
      for (const subject of [shortcutFirst, appAlone]) {
        subject.sink.failOpen = false;
        subject.sink.failing = false;
      }
    }
  });

  test('answers 500 when the audit line cannot be written, as the app does', async () => {
    shortcutFirst.sink.failing = true;
    appAlone.sink.failing = true;
    try {
      const first = await send(shortcutFirst.url, {
        path: '/v1/secrets/data/app/web/db',
        peer: WEB,
      });
      const second = await send(appAlone.url, { path: '/v1/secrets/data/app/web/db', peer: WEB });
      assert.deepEqual(comparable(first), comparable(second));
      assert.equal(first.status, 500);
      assert.ok(!first.text.includes('p3'), 'the value left with a 500');
    } finally {
      shortcutFirst.sink.failing = false;
      appAlone.sink.failing = false;
    }
  });

  test('leaves the request to the app, which answers 503, while the audit sink cannot write', async () => {
    shortcutFirst.sink.unwritable = true;
    appAlone.sink.unwritable = true;
    try {
      const { answer, isTaken } = await sameFromBoth({
        path: '/v1/secrets/data/app/web/db',
        peer: WEB,
      });
      assert.equal(answer.status, 503);
      assert.ok(!isTaken);
    } finally {
      shortcutFirst.sink.unwritable = false;
      appAlone.sink.unwritable = false;
    }
  });

  test('answers 503 while Nexus is sealed, as the app does', async () => {
    rootKey.seal();
    const { answer, isTaken } = await sameFromBoth({
      path: '/v1/secrets/data/app/web/db',
      peer: WEB,
    });
    assert.equal(answer.status, 503);
    assert.ok(isTaken);
  });
});
