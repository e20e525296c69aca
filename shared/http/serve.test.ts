/**
 * serveMtls's resource limits over real sockets: every timeout closes the
 * connection it guards well before Node's default 30 s check would, and the
 * connection caps refuse (and count once) what is over them while others
 * still get in. Generous deadlines: these assert that a close happens, not
 * how fast.
 */
import assert from 'node:assert/strict';
import { type Socket, connect as tcpConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { bundleSetOf, createTestCa, type TestCa } from '../../test/harness/pki.ts';
import { createMemoryAuditSink } from '../log/audit_log.ts';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { matchMemberOf } from '../spiffe/match.ts';
import { PeerVerifier } from '../spiffe/peer_verifier.ts';
import { parseTrustDomain } from '../spiffe/spiffe_id.ts';
import { StaticX509Source } from '../spiffe/x509_source.ts';
import { createBaseApp } from './app.ts';
import { auditRefusals } from './audit.ts';
import { peerFromConnection } from './peer.ts';
import {
  connectionsCheckingIntervalMs,
  DEFAULT_SERVER_LIMITS,
  type MtlsServer,
  type ServerLimits,
  serveMtls,
} from './serve.ts';

const TD = parseTrustDomain('example.org');
/** Far below the 30 s at which Node would first check a timeout by default. */
const CLOSE_DEADLINE_MS = 10_000;

interface Credentials {
  readonly key: string;
  readonly cert: string;
}

let ca: TestCa;
const servers: MtlsServer[] = [];
const sockets: Socket[] = [];

async function credentialsOf(path: string): Promise<Credentials> {
  const svid = (await ca.issueSvid(`spiffe://example.org${path}`)).x509Svid();
  return { key: svid.privateKeyPem(), cert: svid.certificatePem() };
}

/** A server with a /ping and an /echo route, and the verifier that counts its refusals. */
async function startServer(
  limits: Partial<ServerLimits>,
  logSink = createMemorySink(),
): Promise<{ server: MtlsServer; verifier: PeerVerifier }> {
  const svid = (await ca.issueSvid('spiffe://example.org/spike/nexus')).x509Svid();
  const logger = createLogger({ component: 'test', sink: logSink });
  const source = new StaticX509Source(svid, bundleSetOf(ca));
  const verifier = new PeerVerifier({ source, authorize: matchMemberOf(TD), logger });
  const app = createBaseApp(peerFromConnection(verifier), logger);
  app.get('/ping', (c) => c.json({ ok: true }));
  app.post('/echo', async (c) => c.json({ length: (await c.req.text()).length }));
  const server = await serveMtls({ fetch: app.fetch, source, verifier, logger, port: 0, limits });
  servers.push(server);
  return { server, verifier };
}

function track<T extends Socket>(socket: T): T {
  sockets.push(socket);
  socket.on('error', () => {});
  // Reading keeps the socket flowing, so the server's close reaches us as 'close'.
  socket.resume();
  return socket;
}

function tlsConnect(server: MtlsServer, credentials: Credentials): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = track(
      connect({
        host: '127.0.0.1',
        port: server.port,
        ...credentials,
        ca: ca.rootPem,
        checkServerIdentity: () => undefined,
      }),
    );
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before the handshake completed')));
  });
}

/** Resolves with what the server wrote once it closes the socket; rejects after the deadline. */
function whenClosed(socket: Socket, deadlineMs = CLOSE_DEADLINE_MS): Promise<string> {
  let received = '';
  socket.on('data', (chunk: Uint8Array) => {
    received += new TextDecoder().decode(chunk);
  });
  return new Promise((resolve, reject) => {
    if (socket.destroyed) {
      resolve(received);
      return;
    }
    const timer = setTimeout(
      () => reject(new Error(`still open after ${deadlineMs} ms`)),
      deadlineMs,
    );
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
}

/** Whether a fresh connection completes its handshake and stays usable for a request. */
async function canRequest(server: MtlsServer, credentials: Credentials): Promise<boolean> {
  try {
    const socket = await tlsConnect(server, credentials);
    const answer = whenClosed(socket);
    socket.write('GET /ping HTTP/1.1\r\nHost: nexus\r\nConnection: close\r\n\r\n');
    return (await answer).startsWith('HTTP/1.1 200');
  } catch {
    return false;
  }
}

describe('serveMtls() after a refused body', () => {
  before(async () => {
    ca = await createTestCa('example.org');
  });

  after(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    for (const server of servers.splice(0)) await server.close();
  });

  test('an error answer to a request with a body closes the connection, so its unread tail is never read as a request', async () => {
    const { server } = await startServer({});
    const socket = await tlsConnect(server, await credentialsOf('/apps/one'));
    const answer = whenClosed(socket);
    // Declares more than it sends: the rest would be read as the next request.
    socket.write(
      'POST /missing HTTP/1.1\r\nHost: nexus\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"a":',
    );
    const received = await answer;
    assert.match(received, /^HTTP\/1\.1 404/);
    assert.match(received, /\r\nconnection: close\r\n/i);
  });

  test('an error answer to a request without a body keeps the connection', async () => {
    const { server } = await startServer({});
    const socket = await tlsConnect(server, await credentialsOf('/apps/one'));
    let received = '';
    const twoAnswers = new Promise<void>((resolve) => {
      socket.on('data', (chunk: Uint8Array) => {
        received += new TextDecoder().decode(chunk);
        if (received.split('HTTP/1.1 ').length > 2) resolve();
      });
    });
    socket.write('GET /missing HTTP/1.1\r\nHost: nexus\r\n\r\n');
    socket.write('GET /ping HTTP/1.1\r\nHost: nexus\r\n\r\n');
    await twoAnswers;
    assert.match(received, /^HTTP\/1\.1 404[\s\S]*HTTP\/1\.1 200/);
  });
});

describe('serveMtls() resource limits', () => {
  let app: Credentials;
  let other: Credentials;

  before(async () => {
    ca = await createTestCa('example.org');
    app = await credentialsOf('/apps/one');
    other = await credentialsOf('/apps/two');
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((server) => server.close()));
  });

  test('checks the timeouts often enough to enforce them (not every 30 s)', () => {
    assert.equal(connectionsCheckingIntervalMs(DEFAULT_SERVER_LIMITS), 1_000);
    assert.equal(
      connectionsCheckingIntervalMs({
        ...DEFAULT_SERVER_LIMITS,
        headersTimeoutMs: 200,
        requestTimeoutMs: 400,
      }),
      100,
    );
  });

  test('a TCP connection that never starts TLS is closed after the handshake timeout', async () => {
    const { server } = await startServer({ handshakeTimeoutMs: 300 });
    const socket = track(tcpConnect({ host: '127.0.0.1', port: server.port }));
    await whenClosed(socket);
  });

  test('a connection that sends no request is answered 408 and closed after the headers timeout', async () => {
    const { server } = await startServer({ headersTimeoutMs: 300, requestTimeoutMs: 600 });
    const socket = await tlsConnect(server, app);
    assert.match(await whenClosed(socket), /^HTTP\/1\.1 408/);
  });

  test('headers trickled in one line at a time are cut off by the headers timeout', async () => {
    const { server } = await startServer({ headersTimeoutMs: 300, requestTimeoutMs: 600 });
    const socket = await tlsConnect(server, app);
    socket.write('GET /ping HTTP/1.1\r\nHost: nexus\r\n');
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write('X-Slow: 1\r\n');
    }, 50);
    try {
      assert.match(await whenClosed(socket), /^HTTP\/1\.1 408/);
    } finally {
      clearInterval(trickle);
    }
  });

  test('a body trickled in one byte at a time is cut off by the request timeout', async () => {
    const { server } = await startServer({ headersTimeoutMs: 300, requestTimeoutMs: 600 });
    const socket = await tlsConnect(server, app);
    socket.write('POST /echo HTTP/1.1\r\nHost: nexus\r\nContent-Length: 1000\r\n\r\n');
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write('a');
    }, 50);
    try {
      assert.match(await whenClosed(socket), /^HTTP\/1\.1 408/);
    } finally {
      clearInterval(trickle);
    }
  });

  test('a kept-alive connection is closed once idle for the keep-alive timeout', async () => {
    const { server } = await startServer({ keepAliveTimeoutMs: 300 });
    const socket = await tlsConnect(server, app);
    const answer = whenClosed(socket);
    socket.write('GET /ping HTTP/1.1\r\nHost: nexus\r\n\r\n');
    assert.match(await answer, /^HTTP\/1\.1 200/);
  });

  test('connections over the per-identity cap are refused, once each, and others still get in', async () => {
    const { server, verifier } = await startServer({ maxConnectionsPerIdentity: 2 });
    const held = [await tlsConnect(server, app), await tlsConnect(server, app)];
    const refusedBefore = verifier.refusedCount;
    // TLS 1.3 completes the client's handshake before the server has checked
    // the peer, so a refused connection is one that closes without an answer.
    const third = await tlsConnect(server, app);
    assert.equal(await whenClosed(third), '');
    assert.equal(verifier.refusedCount - refusedBefore, 1);
    assert.equal(await canRequest(server, other), true);
    // A closed connection gives its slot back.
    const released = whenClosed(held[0] as TLSSocket);
    held[0]?.destroy();
    await released;
    await waitFor(() => server.openConnections() <= 2);
    assert.equal(await canRequest(server, app), true);
  });

  for (const [cap, limits] of [
    ['per-address', { maxConnectionsPerAddress: 2 }],
    ['total', { maxConnections: 2 }],
  ] as const) {
    test(`connections over the ${cap} cap are refused before TLS, counted once`, async () => {
      const { server, verifier } = await startServer({ ...limits, handshakeTimeoutMs: 5_000 });
      const held = [
        track(tcpConnect({ host: '127.0.0.1', port: server.port })),
        track(tcpConnect({ host: '127.0.0.1', port: server.port })),
      ];
      await waitFor(() => server.openConnections() === 2);
      const refusedBefore = verifier.refusedCount;
      const third = track(tcpConnect({ host: '127.0.0.1', port: server.port }));
      await whenClosed(third);
      // Give a second (wrong) refusal from the TLS layer the time to show up.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(verifier.refusedCount - refusedBefore, 1);
      for (const socket of held) socket.destroy();
      await waitFor(() => server.openConnections() === 0);
      assert.equal(await canRequest(server, app), true);
    });
  }

  test('refuses limits that cannot work', async () => {
    await assert.rejects(startServer({ headersTimeoutMs: 0 }), RangeError);
    await assert.rejects(startServer({ maxConnections: -1 }), RangeError);
    await assert.rejects(
      startServer({ headersTimeoutMs: 2_000, requestTimeoutMs: 1_000 }),
      RangeError,
    );
  });
});

describe('serveMtls() under a flood of refused connections', () => {
  before(async () => {
    ca = await createTestCa('example.org');
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((server) => server.close()));
  });

  /** A refused connection: TLS without a certificate, or garbage instead of TLS. */
  function refusedHandshake(server: MtlsServer, garbage: boolean): Promise<void> {
    const socket = garbage
      ? tcpConnect({ host: '127.0.0.1', port: server.port })
      : connect({
          host: '127.0.0.1',
          port: server.port,
          ca: ca.rootPem,
          checkServerIdentity: () => undefined,
        });
    socket.on('error', () => {});
    socket.resume();
    if (garbage) socket.once('connect', () => socket.end('\x16\x03\x01\x00\x05hello'));
    return new Promise((resolve) => socket.once('close', resolve));
  }

  /**
   * `count` connections reset once the server has accepted them all (one
   * reset before it is accepted has no address left to read).
   */
  async function resets(server: MtlsServer, count: number): Promise<void> {
    await waitFor(() => server.openConnections() === 0);
    const batch = Array.from({ length: count }, () => {
      const socket = tcpConnect({ host: '127.0.0.1', port: server.port });
      socket.on('error', () => {});
      return socket;
    });
    await waitFor(() => server.openConnections() === count);
    await Promise.all(
      batch.map((socket) => {
        const closed = new Promise((resolve) => socket.once('close', resolve));
        socket.resetAndDestroy();
        return closed;
      }),
    );
  }

  test('1,000 refused connections from one address are audited and logged in a bounded number of lines that count all 1,000, each with the address', async () => {
    const logSink = createMemorySink();
    const { server, verifier } = await startServer({}, logSink);
    const audit = createMemoryAuditSink();
    verifier.onRefusal(auditRefusals({ sink: audit, component: 'nexus' }));
    const total = 1_000;
    for (let i = 0; i < 16; i += 1) await resets(server, 50);
    for (let i = 0; i < 8; i += 1) {
      await Promise.all(
        Array.from({ length: 25 }, (_, j) => refusedHandshake(server, j % 2 === 0)),
      );
    }
    await waitFor(() => verifier.refusedCount === total);
    // At stop, the summaries of windows still open are written.
    verifier.flushRefusals();
    const events = audit.events;
    assert.ok(
      events.length <= 2,
      `${events.length} audit events for one address: ${JSON.stringify(events)}`,
    );
    assert.equal(
      events.reduce((sum, event) => sum + (event.count ?? 0), 0),
      total,
      JSON.stringify(events),
    );
    for (const event of events) {
      assert.equal(event.action, 'tls.connect');
      assert.equal(event.status, 401);
      assert.match(event.remoteAddress ?? '', /^127\.0\.0\.1(:\d+)?$/, JSON.stringify(event));
    }
    const logged = logSink.lines.filter((line) => String(line.msg).startsWith('Refused'));
    assert.ok(logged.length <= 2, `${logged.length} log lines`);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = CLOSE_DEADLINE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
