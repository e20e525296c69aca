/**
 * Which connections MtlsClient reuses: never one after an answer the server
 * gave without reading our body (a 413), since such a server may close it
 * while still saying `keep-alive`. The stand-in server below drops a
 * connection when a second request arrives on it after such an answer, so a
 * client that reuses it fails at once and deterministically.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { bundleSetOf, createTestCa } from '../../test/harness/pki.ts';
import { isNexus } from './identities.ts';
import { serverTlsOptions } from './mtls.ts';
import { MtlsClient } from './mtls_client.ts';
import { parseTrustDomain } from './spiffe_id.ts';
import { StaticX509Source } from './x509_source.ts';

const TD = parseTrustDomain('example.org');
const NEXUS = 'spiffe://example.org/spike/nexus';
const PILOT = 'spiffe://example.org/spike/pilot/role/superuser';

describe('MtlsClient: connection reuse', () => {
  let serverSource: StaticX509Source;
  let clientSource: StaticX509Source;
  const servers: Server[] = [];
  const clients: MtlsClient[] = [];

  before(async () => {
    const ca = await createTestCa('example.org');
    serverSource = new StaticX509Source((await ca.issueSvid(NEXUS)).x509Svid(), bundleSetOf(ca));
    clientSource = new StaticX509Source((await ca.issueSvid(PILOT)).x509Svid(), bundleSetOf(ca));
  });

  after(() => {
    for (const made of clients) made.close();
    for (const server of servers) server.close();
  });

  /**
   * A PUT is answered 413 at once, unread, with `keep-alive`; the connection
   * is then dead for the next request: one that arrives on it is dropped
   * unanswered. Anything else is answered 200 with the connection's number.
   */
  async function serve(): Promise<{ url: URL; connections: () => number }> {
    const refused = new WeakSet<Socket>();
    let connections = 0;
    const server = createServer(
      serverTlsOptions(serverSource),
      (req: IncomingMessage, res: ServerResponse) => {
        if (refused.has(req.socket)) {
          req.socket.destroy();
          return;
        }
        if (req.method === 'PUT') {
          refused.add(req.socket);
          res.writeHead(413, { 'content-type': 'application/json', connection: 'keep-alive' });
          res.end('{"error":{"code":"ERR_PAYLOAD_TOO_LARGE","message":"too large"}}');
          return;
        }
        res.end(String(connections));
      },
    );
    server.on('secureConnection', () => {
      connections += 1;
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { url: new URL(`https://127.0.0.1:${port}/v1/x`), connections: () => connections };
  }

  function client(): MtlsClient {
    const made = new MtlsClient({
      source: clientSource,
      authorizeServer: isNexus(TD),
      timeoutMs: 5_000,
    });
    clients.push(made);
    return made;
  }

  test('a kept-alive connection is reused after an ordinary answer', async () => {
    const { url, connections } = await serve();
    const mtls = client();
    assert.equal((await mtls.request({ method: 'GET', url })).text(), '1');
    assert.equal((await mtls.request({ method: 'GET', url })).text(), '1');
    assert.equal(connections(), 1);
  });

  test('after a 413 the next request goes out on a new connection', async () => {
    const { url, connections } = await serve();
    const mtls = client();
    assert.equal((await mtls.request({ method: 'GET', url })).status, 200);
    const refused = await mtls.request({ method: 'PUT', url, body: 'x'.repeat(100) });
    assert.equal(refused.status, 413);
    const next = await mtls.request({ method: 'GET', url });
    assert.equal(next.status, 200);
    assert.equal(next.text(), '2');
    assert.equal(connections(), 2);
  });
});
