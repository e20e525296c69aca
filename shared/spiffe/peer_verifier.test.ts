import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { issueCertificate } from '../../agent/certificate.ts';
import { bundleSetOf, createTestCa, type TestCa, type TestSvid } from '../../test/harness/pki.ts';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { isPilotSuperuser } from './identities.ts';
import { serverTlsOptions } from './mtls.ts';
import {
  claimedSpiffeId,
  MAX_REFUSAL_REASON_CHARS,
  type PeerRefusal,
  PeerVerifier,
  REFUSAL_CAUSES,
} from './peer_verifier.ts';
import { parseTrustDomain } from './spiffe_id.ts';
import { StaticX509Source } from './x509_source.ts';

const TD = parseTrustDomain('example.org');
const SUPERUSER = 'spiffe://example.org/spike/pilot/role/superuser';
const NEXUS = 'spiffe://example.org/spike/nexus';

describe('claimedSpiffeId()', () => {
  let ca: TestCa;
  before(async () => {
    ca = await createTestCa('example.org');
  });

  test('reads the only URI SAN of a certificate without verifying it', async () => {
    const svid = await ca.issueSvid(SUPERUSER, { validity: 'expired' });
    assert.equal(claimedSpiffeId(svid.chain[0] as Uint8Array), SUPERUSER);
  });

  test('claims nothing for two URI SANs, none, a URI that is not a SPIFFE ID, or garbage', async () => {
    const two = await ca.issueSvid(SUPERUSER, { uriSans: [SUPERUSER, NEXUS] });
    const none = await ca.issueSvid(SUPERUSER, { uriSans: [] });
    const http = await ca.issueSvid(SUPERUSER, { uriSans: ['https://example.org/x'] });
    const upper = await ca.issueSvid(SUPERUSER, { uriSans: ['SPIFFE://example.org/x'] });
    for (const svid of [two, none, http, upper]) {
      assert.equal(claimedSpiffeId(svid.chain[0] as Uint8Array), undefined);
    }
    assert.equal(claimedSpiffeId(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])), undefined);
    assert.equal(claimedSpiffeId(new Uint8Array()), undefined);
  });
});

describe('PeerVerifier', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let server: Server;
  let port: number;
  let verifier: PeerVerifier;
  const refusals: PeerRefusal[] = [];
  const logSink = createMemorySink();

  before(async () => {
    ca = await createTestCa('example.org');
    otherCa = await createTestCa('example.org');
    const serverSvid = await ca.issueSvid(NEXUS);
    const source = new StaticX509Source(serverSvid.x509Svid(), bundleSetOf(ca));
    verifier = new PeerVerifier({
      source,
      authorize: isPilotSuperuser(TD),
      logger: createLogger({ component: 'test', sink: logSink }),
      // Every refusal whole: these tests read each connection's record.
      refusalWindowMs: 0,
    });
    verifier.onRefusal((refusal) => refusals.push(refusal));
    server = createServer(serverTlsOptions(source));
    server.on('secureConnection', (socket: TLSSocket) => {
      if (verifier.admit(socket) !== undefined) socket.end('admitted');
    });
    server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
      verifier.refuse(
        socket,
        { reason: `TLS handshake failed: ${err.code ?? err.message}` },
        'handshake_failed',
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** Connects, and says what came back and from which local port. */
  function connectWith(svid: TestSvid | undefined): Promise<{ text: string; local: string }> {
    return new Promise((resolve) => {
      let text = '';
      let local = '';
      const socket = connect({
        host: '127.0.0.1',
        port,
        ca: ca.rootPem,
        ...(svid === undefined ? {} : { key: svid.privateKeyPem, cert: svid.certificatePem }),
        checkServerIdentity: () => undefined,
      });
      socket.setTimeout(5_000, () => socket.destroy());
      socket.on('secureConnect', () => {
        local = `${socket.localAddress}:${socket.localPort}`;
      });
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve({ text, local }));
    });
  }

  async function refusalFor(local: string): Promise<PeerRefusal> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const found = refusals.filter((r) => r.remoteAddress === local);
      if (found.length > 0) {
        assert.equal(found.length, 1, 'one refusal per connection');
        return found[0] as PeerRefusal;
      }
      if (Date.now() > deadline) throw new Error(`No refusal for ${local}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  test('admits an authorized peer and tells no listener', async () => {
    const before = refusals.length;
    const result = await connectWith(await ca.issueSvid(SUPERUSER));
    assert.equal(result.text, 'admitted');
    assert.equal(refusals.length, before);
  });

  test('a peer without a certificate is refused with that reason and its address and port', async () => {
    const result = await connectWith(undefined);
    assert.equal(result.text, '');
    const refusal = await refusalFor(result.local);
    assert.equal(refusal.reason, 'The peer presented no client certificate');
    assert.equal(refusal.claimedId, undefined);
    assert.equal(refusal.peerId, undefined);
  });

  test("a chain the TLS layer rejects is refused with the runtime's reason and the claimed ID", async () => {
    const result = await connectWith(await otherCa.issueSvid(SUPERUSER));
    assert.equal(result.text, '');
    const refusal = await refusalFor(result.local);
    assert.match(refusal.reason, /^TLS verification failed: [A-Z_]+$/);
    assert.equal(refusal.claimedId, SUPERUSER);
    assert.equal(refusal.peerId, undefined);
  });

  test('a verified SVID that may not connect is refused with its verified ID, not a claim', async () => {
    const result = await connectWith(await ca.issueSvid(NEXUS));
    assert.equal(result.text, '');
    const refusal = await refusalFor(result.local);
    assert.match(refusal.reason, /is not allowed here/);
    assert.equal(refusal.peerId, NEXUS);
    assert.equal(refusal.claimedId, undefined);
  });

  test('counts each refusal under its fixed cause, every cause listed from the start', async () => {
    const fresh = new PeerVerifier({
      source: new StaticX509Source((await ca.issueSvid(NEXUS)).x509Svid(), bundleSetOf(ca)),
      authorize: isPilotSuperuser(TD),
      logger: createLogger({ component: 'test', sink: createMemorySink() }),
    });
    assert.deepEqual(
      [...fresh.refusedByCause()],
      REFUSAL_CAUSES.map((cause) => [cause, 0]),
    );
    const before = new Map(verifier.refusedByCause());
    const delta = () =>
      Object.fromEntries(
        [...verifier.refusedByCause()]
          .map(([cause, n]) => [cause, n - (before.get(cause) ?? 0)])
          .filter(([, n]) => n !== 0),
      );
    for (const svid of [
      undefined,
      await otherCa.issueSvid(SUPERUSER),
      await ca.issueSvid(NEXUS),
      await ca.issueSvid(SUPERUSER, { uriSans: [SUPERUSER, NEXUS] }),
    ]) {
      await refusalFor((await connectWith(svid)).local);
    }
    assert.deepEqual(delta(), {
      no_certificate: 1,
      untrusted_certificate: 1,
      not_allowed: 1,
      invalid_svid: 1,
    });
  });

  test('a listener that throws is logged and cannot undo the refusal; unsubscribing stops the calls', async () => {
    let calls = 0;
    const unsubscribe = verifier.onRefusal(() => {
      calls += 1;
      throw new Error('audit sink is full');
    });
    const result = await connectWith(await otherCa.issueSvid(SUPERUSER));
    assert.equal(result.text, '');
    await refusalFor(result.local);
    assert.equal(calls, 1);
    assert.ok(logSink.lines.some((line) => line.msg === 'A refusal listener failed'));
    unsubscribe();
    const again = await connectWith(undefined);
    await refusalFor(again.local);
    assert.equal(calls, 1);
  });

  test('a long reason is cut, and a refusal never carries certificate bytes', async () => {
    const before = refusals.length;
    verifier.refuse(
      undefined,
      { reason: 'x'.repeat(5_000), remoteAddress: '192.0.2.1:1' },
      'handshake_failed',
    );
    const refusal = refusals[before] as PeerRefusal;
    assert.equal(refusal.reason.length, MAX_REFUSAL_REASON_CHARS + 1);
    assert.equal(refusal.remoteAddress, '192.0.2.1:1');
    // A certificate whose URI SAN is long but well-formed is claimed as is.
    const longId = `spiffe://example.org/${'a'.repeat(200)}`;
    const leaf = await issueCertificate({
      subject: 'O=test',
      uriSans: [longId],
      isCa: false,
      keyUsage: ['digitalSignature'],
      notBefore: new Date(Date.now() - 1_000),
      notAfter: new Date(Date.now() + 60_000),
    });
    assert.equal(claimedSpiffeId(leaf.der), longId);
    for (const r of refusals) {
      assert.doesNotMatch(JSON.stringify(r), /BEGIN|MII[A-Za-z0-9+/]{20}/);
    }
  });
});

describe('PeerVerifier summarizes refusals per source address', () => {
  let source: StaticX509Source;
  before(async () => {
    const ca = await createTestCa('example.org');
    source = new StaticX509Source((await ca.issueSvid(NEXUS)).x509Svid(), bundleSetOf(ca));
  });

  function verifierAt(clock: { now: number }, maxRefusalSources = 16) {
    const logSink = createMemorySink();
    const verifier = new PeerVerifier({
      source,
      authorize: isPilotSuperuser(TD),
      logger: createLogger({ component: 'test', sink: logSink }),
      refusalWindowMs: 60_000,
      maxRefusalSources,
      now: () => clock.now,
    });
    const heard: PeerRefusal[] = [];
    verifier.onRefusal((refusal) => heard.push(refusal));
    return { verifier, heard, logSink };
  }

  test('the first refusal from an address in a window is whole, the rest one summary with their count', () => {
    const clock = { now: 0 };
    const { verifier, heard, logSink } = verifierAt(clock);
    for (let port = 1; port <= 5; port++) {
      verifier.refuse(
        undefined,
        { reason: `reset ${port}`, remoteAddress: `192.0.2.1:${port}` },
        'handshake_failed',
      );
    }
    verifier.refuse(
      undefined,
      { reason: 'other', remoteAddress: '[2001:db8::1]:7' },
      'handshake_failed',
    );
    // A verified peer that may not connect is audited as another status: apart.
    verifier.refuse(
      undefined,
      { reason: 'not allowed', peerId: NEXUS, remoteAddress: '192.0.2.1:9' },
      'not_allowed',
    );
    assert.deepEqual(
      heard.map((r) => [r.remoteAddress, r.count]),
      [
        ['192.0.2.1:1', undefined],
        ['[2001:db8::1]:7', undefined],
        ['192.0.2.1:9', undefined],
      ],
    );
    // The window closes: its summary comes before the next whole refusal.
    clock.now = 60_000;
    verifier.refuse(
      undefined,
      { reason: 'again', remoteAddress: '192.0.2.1:10' },
      'handshake_failed',
    );
    assert.deepEqual(heard.slice(3), [
      {
        reason: '4 more refusals from this address; the last: reset 5',
        remoteAddress: '192.0.2.1',
        count: 4,
      },
      { reason: 'again', remoteAddress: '192.0.2.1:10' },
    ]);
    assert.equal(verifier.refusedCount, 8);
    assert.equal(logSink.lines.filter((l) => String(l.msg).startsWith('Refused')).length, 5);
  });

  test('at stop, the open windows are summarized at once', () => {
    const { verifier, heard } = verifierAt({ now: 0 });
    for (let port = 1; port <= 3; port++) {
      verifier.refuse(
        undefined,
        { reason: 'x', remoteAddress: `198.51.100.7:${port}` },
        'handshake_failed',
      );
    }
    verifier.refuse(
      undefined,
      { reason: 'y', remoteAddress: '198.51.100.8:1' },
      'handshake_failed',
    );
    verifier.flushRefusals();
    assert.deepEqual(
      heard.map((r) => [r.remoteAddress, r.count]),
      [
        ['198.51.100.7:1', undefined],
        ['198.51.100.8:1', undefined],
        ['198.51.100.7', 2],
      ],
    );
    // Nothing is left to flush; a later refusal opens a new window.
    verifier.flushRefusals();
    verifier.refuse(
      undefined,
      { reason: 'z', remoteAddress: '198.51.100.7:4' },
      'handshake_failed',
    );
    assert.equal(heard.length, 4);
  });

  test('more addresses than the table holds are counted into one summary without an address', () => {
    const { verifier, heard } = verifierAt({ now: 0 }, 2);
    for (let i = 1; i <= 10; i++) {
      verifier.refuse(
        undefined,
        { reason: `r${i}`, remoteAddress: `203.0.113.${i}:1` },
        'handshake_failed',
      );
    }
    verifier.flushRefusals();
    assert.equal(heard.length, 3);
    const overall = heard[2] as PeerRefusal;
    assert.equal(overall.count, 8);
    assert.equal(overall.remoteAddress, undefined);
    assert.match(overall.reason, /^8 refusals from more source addresses than are tracked/);
  });
});
