/**
 * Real mTLS over real sockets: the server helper (hono on node:https) and the
 * client helper, with certificates minted at run time. Every refused peer must
 * be stopped before any handler runs.
 */
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { type ConnectionOptions, connect } from 'node:tls';
import { WorkloadApiUnavailableError } from '../../shared/errors/errors.ts';
import { createBaseApp } from '../../shared/http/app.ts';
import { peerFromConnection } from '../../shared/http/peer.ts';
import { type MtlsServer, serveMtls } from '../../shared/http/serve.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { isKeeper, isNexus, isPilotSuperuser } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { PeerVerifier } from '../../shared/spiffe/peer_verifier.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { StaticX509Source, type X509SvidSource } from '../../shared/spiffe/x509_source.ts';
import type { X509Svid } from '../../shared/spiffe/x509_svid.ts';
import { bundleSetOf, createTestCa, type TestCa, type TestSvid } from '../harness/pki.ts';

const TD = parseTrustDomain('example.org');
const NEXUS = 'spiffe://example.org/spike/nexus';
const SUPERUSER = 'spiffe://example.org/spike/pilot/role/superuser';

interface RawResult {
  readonly status?: number;
  readonly error?: string;
}

/** One request on a fresh connection with arbitrary credentials (or none). */
function rawRequest(
  server: MtlsServer,
  ca: TestCa,
  client?: { key: string; cert: string },
): Promise<RawResult> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      {
        host: server.hostname,
        port: server.port,
        path: '/whoami',
        method: 'GET',
        agent: false,
        ca: ca.rootPem,
        ...client,
        // Hostname checks mean nothing for SVIDs; this test only probes the server.
        checkServerIdentity: () => undefined,
        timeout: 5000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: Error & { code?: string }) =>
      resolve({ error: err.code ?? err.message }),
    );
    req.end();
  });
}

describe('SPIFFE mTLS server and client', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let foreignCa: TestCa;
  let serverSvid: TestSvid;
  let serverSource: StaticX509Source;
  let server: MtlsServer;
  let verifier: PeerVerifier;
  let handlerRuns = 0;
  const logSink = createMemorySink();
  const logger = createLogger({ component: 'test', sink: logSink });
  const clients: MtlsClient[] = [];

  async function clientFor(spiffeId: string, testCa: TestCa = ca) {
    const svid = await testCa.issueSvid(spiffeId);
    const source = new StaticX509Source(svid.x509Svid(), bundleSetOf(ca));
    const client = new MtlsClient({ source, authorizeServer: isNexus(TD), timeoutMs: 5000 });
    clients.push(client);
    return { svid, source, client };
  }

  function url(path: string): URL {
    return new URL(`https://${server.hostname}:${server.port}${path}`);
  }

  before(async () => {
    ca = await createTestCa('example.org', { intermediate: true });
    otherCa = await createTestCa('example.org');
    foreignCa = await createTestCa('foreign.org');
    serverSvid = await ca.issueSvid(NEXUS);
    serverSource = new StaticX509Source(serverSvid.x509Svid(), bundleSetOf(ca));
    verifier = new PeerVerifier({ source: serverSource, authorize: isPilotSuperuser(TD), logger });
    const app = createBaseApp(peerFromConnection(verifier), logger);
    app.get('/whoami', (c) => {
      handlerRuns += 1;
      const peer = c.get('peer');
      return c.json({ id: peer.id.toString(), serial: peer.serialNumber });
    });
    server = await serveMtls({ fetch: app.fetch, source: serverSource, verifier, logger, port: 0 });
  });

  after(async () => {
    for (const client of clients) client.close();
    await server.close();
  });

  test('an authorized peer reaches the handler and is seen by its SPIFFE ID', async () => {
    const { client, svid } = await clientFor(SUPERUSER);
    const res = await client.request({ method: 'GET', url: url('/whoami') });
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
    const body = res.json() as { id: string; serial: string };
    assert.equal(body.id, SUPERUSER);
    assert.equal(serial(body.serial), serial(svid.leaf.certificate.serialNumber));
    const missing = await client.request({ method: 'GET', url: url('/nowhere') });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['cache-control'], 'no-store');
  });

  test('a kept-alive connection is reused for later requests', async () => {
    const { client } = await clientFor(SUPERUSER);
    const admittedBefore = verifier.admittedCount;
    for (let i = 0; i < 5; i++) {
      const res = await client.request({ method: 'GET', url: url('/whoami') });
      assert.equal(res.status, 200);
    }
    assert.equal(verifier.admittedCount - admittedBefore, 1);
  });

  const refusals: Array<[string, () => Promise<{ key: string; cert: string } | undefined>]> = [
    ['no client certificate', async () => undefined],
    [
      'a certificate from another CA that carries our trust domain and an allowed ID',
      async () => {
        const svid = await otherCa.issueSvid(SUPERUSER);
        return { key: svid.privateKeyPem, cert: svid.certificatePem };
      },
    ],
    [
      'a valid SVID with the wrong SPIFFE ID',
      async () => {
        const svid = await ca.issueSvid('spiffe://example.org/spike/keeper/1');
        return { key: svid.privateKeyPem, cert: svid.certificatePem };
      },
    ],
    [
      'an expired SVID',
      async () => {
        const svid = await ca.issueSvid(SUPERUSER, { validity: 'expired' });
        return { key: svid.privateKeyPem, cert: svid.certificatePem };
      },
    ],
    [
      'a not-yet-valid SVID',
      async () => {
        const svid = await ca.issueSvid(SUPERUSER, { validity: 'notYetValid' });
        return { key: svid.privateKeyPem, cert: svid.certificatePem };
      },
    ],
    [
      'an SVID of a foreign trust domain',
      async () => {
        const svid = await foreignCa.issueSvid('spiffe://foreign.org/spike/pilot/role/superuser');
        return { key: svid.privateKeyPem, cert: svid.certificatePem };
      },
    ],
    [
      'a leaf with two URI SANs',
      async () => {
        const svid = await ca.issueSvid(SUPERUSER, {
          uriSans: [SUPERUSER, 'spiffe://example.org/spike/nexus'],
        });
        return { key: svid.privateKeyPem, cert: svid.certificatePem };
      },
    ],
  ];

  for (const [name, credentials] of refusals) {
    test(`${name} is refused before any handler runs`, async () => {
      const runsBefore = handlerRuns;
      const refusedBefore = verifier.refusedCount;
      const result = await rawRequest(server, ca, await credentials());
      assert.equal(result.status, undefined, `expected a refusal, got HTTP ${result.status}`);
      assert.ok(result.error);
      assert.equal(handlerRuns, runsBefore);
      // The refusal is counted and logged on the server side.
      await waitFor(() => verifier.refusedCount > refusedBefore);
      assert.ok(logSink.lines.some((line) => line.msg === 'Refused a TLS peer'));
    });
  }

  test('the client refuses a server whose SPIFFE ID is not the expected one', async () => {
    const svid = await ca.issueSvid(SUPERUSER);
    const source = new StaticX509Source(svid.x509Svid(), bundleSetOf(ca));
    const client = new MtlsClient({ source, authorizeServer: isKeeper(TD), timeoutMs: 5000 });
    clients.push(client);
    const runsBefore = handlerRuns;
    await assert.rejects(client.request({ method: 'GET', url: url('/whoami') }), (err: Error) => {
      assert.match(err.message, /not the expected one/);
      return true;
    });
    assert.equal(handlerRuns, runsBefore);
  });

  test('a server SVID rotation is picked up by new connections without a failed request', async () => {
    const { client } = await clientFor(SUPERUSER);
    const failures: unknown[] = [];
    let done = false;
    let requests = 0;
    const load = (async () => {
      while (!done) {
        try {
          const res = await client.request({ method: 'GET', url: url('/whoami') });
          if (res.status !== 200) failures.push(res.status);
        } catch (err) {
          failures.push(err);
        }
        requests += 1;
      }
    })();
    await waitFor(() => requests > 5);
    const rotated = await ca.issueSvid(NEXUS);
    serverSource.set(rotated.x509Svid(), bundleSetOf(ca));
    const fresh = await clientFor(SUPERUSER);
    await waitFor(() => requests > 20);
    done = true;
    await load;
    assert.deepEqual(failures, []);
    // A new connection now sees the rotated server certificate.
    const seen = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: server.hostname,
          port: server.port,
          path: '/whoami',
          agent: false,
          ca: ca.rootPem,
          key: fresh.svid.privateKeyPem,
          cert: fresh.svid.certificatePem,
          checkServerIdentity: () => undefined,
        },
        (res) => {
          const cert =
            res.socket && 'getPeerCertificate' in res.socket
              ? (res.socket as import('node:tls').TLSSocket).getPeerCertificate()
              : undefined;
          res.resume();
          res.on('end', () => resolve(cert?.serialNumber ?? ''));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(serial(seen), serial(rotated.leaf.certificate.serialNumber));
  });

  test('a client SVID rotation is used for new connections without a failed request', async () => {
    const { client, source } = await clientFor(SUPERUSER);
    const first = (await client.request({ method: 'GET', url: url('/whoami') })).json() as {
      serial: string;
    };
    const rotated = await ca.issueSvid(SUPERUSER);
    source.set(rotated.x509Svid(), bundleSetOf(ca));
    const second = (await client.request({ method: 'GET', url: url('/whoami') })).json() as {
      serial: string;
    };
    assert.notEqual(second.serial, first.serial);
    assert.equal(serial(second.serial), serial(rotated.leaf.certificate.serialNumber));
  });

  test('no TLS session is resumed: a client offering one gets a full, verified handshake', async () => {
    const svid = await ca.issueSvid(SUPERUSER);
    const options = {
      host: server.hostname,
      port: server.port,
      ca: ca.rootPem,
      key: svid.privateKeyPem,
      cert: svid.certificatePem,
      checkServerIdentity: () => undefined,
    };
    const first = await handshake(options);
    assert.equal(first.reused, false);
    if (first.session === undefined) {
      // Deno's TLS server sends no ticket at all: there is nothing to resume.
      return;
    }
    const admittedBefore = verifier.admittedCount;
    const second = await handshake({ ...options, session: first.session });
    assert.equal(second.reused, false);
    await waitFor(() => verifier.admittedCount > admittedBefore);
  });

  test('while its own SVID is withdrawn a server refuses connections, and serves again with a new one', async () => {
    const source = new WithdrawableSource(
      new StaticX509Source((await ca.issueSvid(NEXUS)).x509Svid(), bundleSetOf(ca)),
    );
    const withdrawnServer = await serveMtls({
      fetch: createBaseApp(() => undefined, logger).fetch,
      source,
      verifier: new PeerVerifier({ source, authorize: isPilotSuperuser(TD), logger }),
      logger,
      port: 0,
    });
    try {
      const svid = await ca.issueSvid(SUPERUSER);
      const credentials = { key: svid.privateKeyPem, cert: svid.certificatePem };
      assert.equal((await rawRequest(withdrawnServer, ca, credentials)).status, 401);
      source.withdraw();
      assert.ok((await rawRequest(withdrawnServer, ca, credentials)).error);
      source.restore((await ca.issueSvid(NEXUS)).x509Svid());
      // 401 here only because this app has no peer lookup: the connection was admitted.
      assert.equal((await rawRequest(withdrawnServer, ca, credentials)).status, 401);
    } finally {
      await withdrawnServer.close();
    }
  });

  test('while its own SVID is withdrawn a client fails its requests with a clear error', async () => {
    const source = new WithdrawableSource(
      new StaticX509Source((await ca.issueSvid(SUPERUSER)).x509Svid(), bundleSetOf(ca)),
    );
    const client = new MtlsClient({ source, authorizeServer: isNexus(TD), timeoutMs: 5000 });
    clients.push(client);
    assert.equal((await client.request({ method: 'GET', url: url('/whoami') })).status, 200);
    source.withdraw();
    await assert.rejects(client.request({ method: 'GET', url: url('/whoami') }), {
      code: 'ERR_WORKLOAD_API_UNAVAILABLE',
    });
    source.restore((await ca.issueSvid(SUPERUSER)).x509Svid());
    assert.equal((await client.request({ method: 'GET', url: url('/whoami') })).status, 200);
  });
});

/** A source whose SVID the test can withdraw, as a Workload API's PermissionDenied does. */
class WithdrawableSource implements X509SvidSource {
  readonly #inner: StaticX509Source;
  #isWithdrawn = false;

  constructor(inner: StaticX509Source) {
    this.#inner = inner;
  }

  getX509Svid() {
    if (this.#isWithdrawn) {
      throw new WorkloadApiUnavailableError('The SVID was withdrawn');
    }
    return this.#inner.getX509Svid();
  }

  getX509Bundles() {
    return this.#inner.getX509Bundles();
  }

  onUpdate(listener: () => void) {
    return this.#inner.onUpdate(listener);
  }

  withdraw() {
    this.#isWithdrawn = true;
    this.#inner.set(this.#inner.getX509Svid(), this.#inner.getX509Bundles());
  }

  restore(svid: X509Svid) {
    this.#isWithdrawn = false;
    this.#inner.set(svid, this.#inner.getX509Bundles());
  }
}

/** One TLS handshake; resolves with whether the session was resumed and any ticket received. */
function handshake(
  options: ConnectionOptions,
): Promise<{ reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const socket = connect(options, () => {
      const reused = socket.isSessionReused();
      // TLS 1.3 tickets arrive after the handshake: give them a moment.
      setTimeout(() => {
        socket.end();
        resolve({ reused, session });
      }, 100);
    });
    socket.on('session', (ticket: Buffer) => {
      session = ticket;
    });
    socket.on('error', reject);
  });
}

/** Serial numbers as hex without leading zeros (Deno's TLS layer drops them). */
function serial(hex: string): string {
  return hex.toLowerCase().replace(/^0+/, '');
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error('Timed out waiting for a condition');
    }
    await delay(10);
  }
}
