import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { bundleSetOf, createTestCa } from '../../test/harness/pki.ts';
import { isNexus } from './identities.ts';
import { serverTlsOptions } from './mtls.ts';
import { isNeverSent, MtlsClient } from './mtls_client.ts';
import { parseTrustDomain } from './spiffe_id.ts';
import { StaticX509Source } from './x509_source.ts';

const TD = parseTrustDomain('example.org');
const NEXUS = 'spiffe://example.org/spike/nexus';
const PILOT = 'spiffe://example.org/spike/pilot/role/superuser';

describe('MtlsClient: isNeverSent()', () => {
  let serverSource: StaticX509Source;
  let clientSource: StaticX509Source;

  before(async () => {
    const ca = await createTestCa('example.org');
    serverSource = new StaticX509Source((await ca.issueSvid(NEXUS)).x509Svid(), bundleSetOf(ca));
    clientSource = new StaticX509Source((await ca.issueSvid(PILOT)).x509Svid(), bundleSetOf(ca));
  });

  /** A Nexus stand-in; `handle` gets each request with its number (1-based). */
  async function serve(
    handle: (n: number, res: ServerResponse, server: Server) => void,
  ): Promise<{ server: Server; url: URL; bodies: string[] }> {
    const bodies: string[] = [];
    const server = createServer(
      serverTlsOptions(serverSource),
      (req: IncomingMessage, res: ServerResponse) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => {
          body += chunk;
        });
        req.on('end', () => {
          bodies.push(body);
          handle(bodies.length, res, server);
        });
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { server, url: new URL(`https://127.0.0.1:${port}/v1/x`), bodies };
  }

  function client(): MtlsClient {
    return new MtlsClient({ source: clientSource, authorizeServer: isNexus(TD), timeoutMs: 5_000 });
  }

  const clients: MtlsClient[] = [];
  after(() => {
    for (const made of clients) made.close();
  });

  test('a refused connection is never sent', async () => {
    const { server, url } = await serve((_n, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const mtls = client();
    clients.push(mtls);
    const err = await mtls.request({ method: 'PUT', url, body: 'a' }).catch((e: unknown) => e);
    assert.equal((err as { code?: string }).code, 'ECONNREFUSED');
    assert.equal(isNeverSent(err), true);
  });

  test('a request the server read on a new connection and then dropped is not', async () => {
    const { server, url, bodies } = await serve((_n, res) => res.socket?.destroy());
    const mtls = client();
    clients.push(mtls);
    try {
      const err = await mtls.request({ method: 'PUT', url, body: 'a' }).catch((e: unknown) => e);
      assert.ok(err instanceof Error);
      assert.equal(isNeverSent(err), false);
      assert.ok(bodies.includes('a'));
    } finally {
      server.close();
    }
  });

  test('a request on a kept-alive connection that the server read and dropped is not, whatever the runtime reports', async () => {
    // Deno 2.9 sends it again on a new connection by itself; with the server
    // gone, it then reports ECONNREFUSED, as if nothing had been sent.
    const { url, bodies } = await serve((n, res, server) => {
      if (n === 1) {
        res.end('first');
      } else {
        server.close();
        res.socket?.destroy();
      }
    });
    const mtls = client();
    clients.push(mtls);
    assert.equal((await mtls.request({ method: 'PUT', url, body: 'first' })).status, 200);
    const err = await mtls.request({ method: 'PUT', url, body: 'second' }).catch((e: unknown) => e);
    assert.ok(err instanceof Error, 'the request failed');
    assert.equal(bodies.filter((body) => body === 'second').length, 1, 'the server executed it');
    assert.equal(isNeverSent(err), false);
  });

  test('a body that is not JSON fails with a fixed message that quotes none of it', async () => {
    const planted = `shard-${crypto.randomUUID()}`;
    const { server, url } = await serve((_n, res) => res.end(`{"value":"${planted}`));
    const mtls = client();
    clients.push(mtls);
    try {
      const res = await mtls.request({ method: 'GET', url });
      const err = (() => {
        try {
          res.json();
        } catch (caught) {
          return caught;
        }
        return undefined;
      })();
      assert.ok(err instanceof Error);
      assert.match(err.message, /is not valid JSON/);
      assert.ok(!`${err.message} ${String(err.stack)} ${String(err.cause)}`.includes(planted));
    } finally {
      server.close();
    }
  });

  test('errors it did not raise are not', () => {
    assert.equal(isNeverSent(new Error('connect ECONNREFUSED')), false);
    assert.equal(isNeverSent(undefined), false);
    assert.equal(isNeverSent('ECONNREFUSED'), false);
  });
});
