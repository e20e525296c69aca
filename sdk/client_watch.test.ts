/**
 * `watch()` and `getSecretNewerThan()` against a stand-in Nexus over real
 * mTLS that answers each long-poll from a script: what the SDK sends, what it
 * yields for 200, 304 and 404, which failures it waits out and which it
 * throws, and that aborting cuts the long-poll in flight.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { AccessDeniedError, InternalError, InvalidRequestError } from '../shared/errors/errors.ts';
import { serverTlsOptions } from '../shared/spiffe/mtls.ts';
import { StaticX509Source } from '../shared/spiffe/x509_source.ts';
import { bundleSetOf, createTestCa } from '../test/harness/pki.ts';
import { createSpikeClient, MAX_WATCH_PATHS, type SpikeClient } from './index.ts';

const TD = 'example.org';

function secret(version: number) {
  return {
    path: 'app/web/db',
    version,
    data: { password: `v${version}` },
    createdAt: '2026-11-22T00:00:00.000Z',
  };
}

function errorBody(code: string): string {
  return JSON.stringify({ error: { code, message: code } });
}

/** One scripted answer: status and body, or `hold` to never answer. */
type Scripted = { readonly status: number; readonly body?: string } | 'hold';

describe('SpikeClient long-poll reads', () => {
  let serverSource: StaticX509Source;
  let clientSource: StaticX509Source;
  const servers: Server[] = [];
  const clients: SpikeClient[] = [];

  before(async () => {
    const ca = await createTestCa(TD);
    serverSource = new StaticX509Source(
      (await ca.issueSvid(`spiffe://${TD}/spike/nexus`)).x509Svid(),
      bundleSetOf(ca),
    );
    clientSource = new StaticX509Source(
      (await ca.issueSvid(`spiffe://${TD}/apps/web`)).x509Svid(),
      bundleSetOf(ca),
    );
  });

  after(() => {
    for (const client of clients) client.close();
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
  });

  /** A Nexus answering each request with the next scripted answer; it records the URLs. */
  async function nexus(script: Scripted[]) {
    const urls: URL[] = [];
    const bodies: string[] = [];
    const closed: URL[] = [];
    const server = createServer(
      serverTlsOptions(serverSource),
      (req: IncomingMessage, res: ServerResponse) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => {
          body += chunk;
        });
        req.on('end', () => bodies.push(body));
        const url = new URL(req.url ?? '/', 'https://nexus');
        urls.push(url);
        res.once('close', () => {
          if (!res.writableFinished) closed.push(url);
        });
        const next = script.shift() ?? 'hold';
        if (next === 'hold') return;
        res.writeHead(
          next.status,
          next.body === undefined ? {} : { 'content-type': 'application/json' },
        );
        res.end(next.body);
      },
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = await createSpikeClient({
      nexusUrl: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
      source: clientSource,
      trustDomain: TD,
      timeoutMs: 5_000,
    });
    clients.push(client);
    return { client, urls, bodies, closed };
  }

  const ok = (version: number): Scripted => ({
    status: 200,
    body: JSON.stringify(secret(version)),
  });
  const unchanged: Scripted = { status: 304 };

  test('getSecretNewerThan sends newerThan and the wait, and is undefined on 304', async () => {
    const { client, urls } = await nexus([unchanged, ok(4)]);
    assert.equal(await client.getSecretNewerThan('app/web/db', 3, { waitMs: 1500 }), undefined);
    assert.deepEqual(await client.getSecretNewerThan('app/web/db', 3), secret(4));
    assert.deepEqual(
      urls.map((url) => [
        url.pathname,
        url.searchParams.get('newerThan'),
        url.searchParams.get('wait'),
      ]),
      [
        ['/v1/secrets/data/app/web/db', '3', '1500ms'],
        ['/v1/secrets/data/app/web/db', '3', '30000ms'],
      ],
    );
  });

  test('watch yields the current version, asks again after a 304, then each new version', async () => {
    const notFound = { status: 404, body: errorBody('ERR_NOT_FOUND') };
    const { client, urls } = await nexus([ok(2), unchanged, ok(3), notFound, ok(1)]);
    const seen: (number | null)[] = [];
    for await (const next of client.watch('app/web/db', { waitMs: 10 })) {
      seen.push(next === null ? null : next.version);
      if (seen.length === 4) break;
    }
    assert.deepEqual(seen, [2, 3, null, 1]);
    assert.deepEqual(
      urls.map((url) => url.searchParams.get('newerThan')),
      ['0', '2', '2', '3', '0'],
    );
  });

  test('watch waits out a sealed, busy or unreachable Nexus, and throws what would not heal', async () => {
    const { client } = await nexus([
      { status: 503, body: errorBody('ERR_NOT_READY') },
      { status: 429, body: errorBody('ERR_TOO_MANY_WATCHES') },
      { status: 503 },
      ok(5),
      { status: 403, body: errorBody('ERR_ACCESS_DENIED') },
    ]);
    const watch = client.watch('app/web/db', { newerThan: 4 });
    assert.equal((await watch.next()).value?.version, 5);
    await assert.rejects(watch.next(), AccessDeniedError);
  });

  test('aborting ends the watch quietly and cuts the long-poll in flight', async () => {
    const { client, urls, closed } = await nexus([ok(1), 'hold']);
    const controller = new AbortController();
    const watch = client.watch('app/web/db', { signal: controller.signal });
    assert.equal((await watch.next()).value?.version, 1);
    const pending = watch.next();
    const deadline = Date.now() + 10_000;
    while (urls.length < 2) {
      assert.ok(Date.now() < deadline, 'the second long-poll never arrived');
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    controller.abort();
    assert.deepEqual(await pending, { value: undefined, done: true });
    while (closed.length < 1) {
      assert.ok(Date.now() < deadline, 'the long-poll in flight was not cut');
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  });

  test('bad arguments throw at the call, before anything is sent', async () => {
    const { client, urls } = await nexus([]);
    assert.throws(() => client.watch('../x'), InvalidRequestError);
    assert.throws(() => client.watch('app/x', { waitMs: 0 }), InvalidRequestError);
    assert.throws(() => client.watch('app/x', { waitMs: 60_001 }), InvalidRequestError);
    assert.throws(() => client.watch('app/x', { newerThan: -1 }), InvalidRequestError);
    await assert.rejects(client.getSecretNewerThan('app/x', 1.5), InvalidRequestError);
    assert.equal(urls.length, 0);
  });

  test('waitForVersions sends every path in one request, and answers what changed or undefined on 304', async () => {
    const changed = { status: 200, body: JSON.stringify({ versions: { 'app/b': 0, 'app/c': 4 } }) };
    const { client, urls, bodies } = await nexus([unchanged, changed]);
    const known = new Map([
      ['app/a', 2],
      ['app/b', 1],
      ['app/c', 3],
    ]);
    assert.equal(await client.waitForVersions(known, { waitMs: 1500 }), undefined);
    assert.deepEqual(
      await client.waitForVersions(known),
      new Map([
        ['app/b', 0],
        ['app/c', 4],
      ]),
    );
    assert.deepEqual(
      urls.map((url) => url.pathname),
      ['/v1/secrets/watch', '/v1/secrets/watch'],
    );
    assert.deepEqual(
      bodies.map((body) => JSON.parse(body)),
      [
        { versions: { 'app/a': 2, 'app/b': 1, 'app/c': 3 }, wait: '1500ms' },
        { versions: { 'app/a': 2, 'app/b': 1, 'app/c': 3 }, wait: '30000ms' },
      ],
    );
  });

  test('waitForVersions refuses bad arguments unsent, and an answer it cannot read', async () => {
    const { client, urls } = await nexus([{ status: 200, body: '{"versions":{"app/a":-1}}' }]);
    const many = new Map(
      Array.from({ length: MAX_WATCH_PATHS + 1 }, (_, i): [string, number] => [`app/${i}`, 0]),
    );
    for (const [known, waitMs] of [
      [new Map(), undefined],
      [many, undefined],
      [new Map([['../x', 0]]), undefined],
      [new Map([['app/a', -1]]), undefined],
      [new Map([['app/a', 0]]), 0],
    ] as const) {
      await assert.rejects(client.waitForVersions(known, { waitMs }), InvalidRequestError);
    }
    assert.equal(urls.length, 0);
    await assert.rejects(client.waitForVersions(new Map([['app/a', 0]])), InternalError);
  });
});
