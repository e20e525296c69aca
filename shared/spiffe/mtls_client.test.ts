import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { bundleSetOf, createTestCa } from '../../test/harness/pki.ts';
import { ResponseTooLargeError } from '../errors/errors.ts';
import { delay } from '../runtime/delay.ts';
import { isNexus, isPilotSuperuser } from './identities.ts';
import { serverTlsOptions } from './mtls.ts';
import {
  DEFAULT_MAX_RESPONSE_BYTES,
  isNeverSent,
  isServerRefused,
  MtlsClient,
} from './mtls_client.ts';
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

  test('a server with another SPIFFE ID is refused before anything is sent, and says so', async () => {
    const { server, url, bodies } = await serve((_n, res) => res.end('ok'));
    const mtls = new MtlsClient({
      source: clientSource,
      authorizeServer: isPilotSuperuser(TD),
      timeoutMs: 5_000,
    });
    clients.push(mtls);
    try {
      const err = await mtls.request({ method: 'PUT', url, body: 'a' }).catch((e: unknown) => e);
      assert.ok(err instanceof Error);
      assert.equal((err as { code?: string }).code, 'ERR_SVID_INVALID');
      assert.match(err.message, /spike\/nexus" is not the expected one/);
      assert.equal(isServerRefused(err), true);
      assert.deepEqual(bodies, []);
    } finally {
      server.close();
    }
  });

  test('errors it did not raise are not', () => {
    assert.equal(isServerRefused(new Error('connect ECONNREFUSED')), false);
    assert.equal(isNeverSent(new Error('connect ECONNREFUSED')), false);
    assert.equal(isNeverSent(undefined), false);
    assert.equal(isNeverSent('ECONNREFUSED'), false);
  });
});

describe('MtlsClient: bounded answers', () => {
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

  /** What a streaming server sent, and whether the client has closed on it. */
  interface Stream {
    sent: number;
    closed: boolean;
  }

  /**
   * A server whose every answer is an endless stream of 64 KiB chunks,
   * written as the connection drains (so nothing large is ever allocated),
   * announced by `contentLength` or chunked when it is undefined.
   */
  async function streamingServer(
    contentLength: number | undefined,
  ): Promise<{ url: URL; streams: Stream[] }> {
    const streams: Stream[] = [];
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    const server = createServer(serverTlsOptions(serverSource), (_req, res) => {
      const stream: Stream = { sent: 0, closed: false };
      streams.push(stream);
      res.writeHead(
        200,
        contentLength === undefined ? {} : { 'content-length': String(contentLength) },
      );
      res.on('close', () => {
        stream.closed = true;
      });
      const pump = () => {
        while (!stream.closed && !res.destroyed) {
          stream.sent += chunk.byteLength;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { url: new URL(`https://127.0.0.1:${port}/v1/x`), streams };
  }

  async function fixedServer(body: Uint8Array, chunked: boolean): Promise<URL> {
    const server = createServer(serverTlsOptions(serverSource), (_req, res) => {
      if (chunked) {
        res.write(body.subarray(0, 1));
        res.end(body.subarray(1));
      } else {
        res.end(body);
      }
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return new URL(`https://127.0.0.1:${port}/v1/x`);
  }

  function client(maxResponseBytes?: number): MtlsClient {
    const made = new MtlsClient({
      source: clientSource,
      authorizeServer: isNexus(TD),
      timeoutMs: 5_000,
      ...(maxResponseBytes === undefined ? {} : { maxResponseBytes }),
    });
    clients.push(made);
    return made;
  }

  /** Waits (with a deadline) until the server saw the client close the stream. */
  async function closedByClient(stream: Stream | undefined): Promise<Stream> {
    const deadline = Date.now() + 10_000;
    while (stream === undefined || !stream.closed) {
      assert.ok(Date.now() < deadline, 'the client never closed the stream');
      await delay(10);
    }
    return stream;
  }

  for (const [what, contentLength] of [
    ['a 4 GiB Content-Length', 4 * 1024 ** 3],
    ['an endless chunked body', undefined],
  ] as const) {
    test(`${what} fails with ERR_RESPONSE_TOO_LARGE and the stream is closed at once`, async () => {
      const { url, streams } = await streamingServer(contentLength);
      const err = await client()
        .request({ method: 'GET', url, maxBodyBytes: 64 * 1024 })
        .catch((e: unknown) => e);
      assert.ok(err instanceof ResponseTooLargeError, String(err));
      assert.equal(err.code, 'ERR_RESPONSE_TOO_LARGE');
      assert.match(err.message, /larger than 65536 bytes/);
      const stream = await closedByClient(streams[0]);
      // What the sockets' buffers took before the close: far below the stream.
      assert.ok(stream.sent < 32 * 1024 * 1024, `the server sent ${stream.sent} bytes`);
    });
  }

  test("the client's own cap applies when the call gives none", async () => {
    const { url, streams } = await streamingServer(undefined);
    const err = await client(128 * 1024)
      .request({ method: 'GET', url })
      .catch((e: unknown) => e);
    assert.ok(err instanceof ResponseTooLargeError, String(err));
    assert.match(err.message, /larger than 131072 bytes/);
    await closedByClient(streams[0]);
  });

  test('the default cap is bounded', () => {
    assert.ok(DEFAULT_MAX_RESPONSE_BYTES <= 64 * 1024 * 1024);
  });

  for (const chunked of [false, true]) {
    test(`a body of exactly the cap is read, one byte more is not (${chunked ? 'chunked' : 'Content-Length'})`, async () => {
      const exact = await fixedServer(new Uint8Array(1000).fill(0x62), chunked);
      const res = await client().request({ method: 'GET', url: exact, maxBodyBytes: 1000 });
      assert.equal(res.body.byteLength, 1000);
      const over = await fixedServer(new Uint8Array(1001).fill(0x62), chunked);
      const err = await client()
        .request({ method: 'GET', url: over, maxBodyBytes: 1000 })
        .catch((e: unknown) => e);
      assert.ok(err instanceof ResponseTooLargeError, String(err));
    });
  }

  test('a cap that is not a positive integer is refused', async () => {
    const url = await fixedServer(new Uint8Array(1), false);
    for (const maxBodyBytes of [0, -1, 1.5, Number.NaN]) {
      await assert.rejects(client().request({ method: 'GET', url, maxBodyBytes }), RangeError);
    }
    assert.throws(
      () =>
        new MtlsClient({ source: clientSource, authorizeServer: isNexus(TD), maxResponseBytes: 0 }),
      RangeError,
    );
  });
});
