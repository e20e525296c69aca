/**
 * The SDK's answer to a rate limit, against a stand-in Nexus over real mTLS:
 * with a retry deadline it waits at least the `Retry-After` and sends again;
 * without one, or when `Retry-After` is beyond the deadline, it throws
 * RateLimitedError at once. close() cuts a back-off short.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RateLimitedError } from '../shared/errors/errors.ts';
import { delay } from '../shared/runtime/delay.ts';
import { serverTlsOptions } from '../shared/spiffe/mtls.ts';
import { StaticX509Source } from '../shared/spiffe/x509_source.ts';
import { bundleSetOf, createTestCa } from '../test/harness/pki.ts';
import { createSpikeClient, type SpikeClient } from './index.ts';

const TD = 'example.org';
const SECRET = {
  path: 'app/web/db',
  version: 1,
  data: { user: 'web' },
  createdAt: '2026-11-22T00:00:00.000Z',
};
const LIMITED = JSON.stringify({
  error: { code: 'ERR_RATE_LIMITED', message: 'Too many requests from this SPIFFE ID' },
});

describe('SpikeClient on 429 ERR_RATE_LIMITED', () => {
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
    for (const server of servers) server.close();
  });

  /** A Nexus that answers 429 with `retryAfter` for the first `limited` requests. */
  async function nexus(limited: number, retryAfter: string) {
    const arrivals: number[] = [];
    const server = createServer(serverTlsOptions(serverSource), (req, res) => {
      req.resume();
      arrivals.push(Date.now());
      if (arrivals.length <= limited) {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': retryAfter });
        res.end(LIMITED);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(SECRET));
      }
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, arrivals };
  }

  async function client(nexusUrl: string, retryDeadlineMs: number): Promise<SpikeClient> {
    const made = await createSpikeClient({
      nexusUrl,
      source: clientSource,
      trustDomain: TD,
      timeoutMs: 5_000,
      retryDeadlineMs,
    });
    clients.push(made);
    return made;
  }

  test('with a deadline, it waits at least Retry-After and sends again', async () => {
    const { url, arrivals } = await nexus(1, '1');
    const secret = await (await client(url, 10_000)).getSecret('app/web/db');
    assert.deepEqual(secret.data, SECRET.data);
    assert.equal(arrivals.length, 2);
    assert.ok((arrivals[1] ?? 0) - (arrivals[0] ?? 0) >= 950, 'waited for Retry-After');
  });

  test('without a deadline, it throws RateLimitedError at once', async () => {
    const { url, arrivals } = await nexus(1, '1');
    await assert.rejects((await client(url, 0)).getSecret('app/web/db'), RateLimitedError);
    assert.equal(arrivals.length, 1);
  });

  test('close() during a back-off ends the call at once with TypeError', async () => {
    const { url, arrivals } = await nexus(1, '10');
    const client = await createSpikeClient({
      nexusUrl: url,
      source: clientSource,
      trustDomain: TD,
      timeoutMs: 5_000,
      retryDeadlineMs: 20_000,
    });
    const read = client.getSecret('app/web/db');
    const started = Date.now();
    while (arrivals.length === 0) await delay(10);
    client.close();
    await assert.rejects(read, TypeError);
    assert.equal(arrivals.length, 1);
    assert.ok(Date.now() - started < 5_000, 'sat out the Retry-After');
  });

  test('a Retry-After beyond the deadline fails at once instead of waiting', async () => {
    const { url, arrivals } = await nexus(1, '30');
    const started = Date.now();
    await assert.rejects((await client(url, 20_000)).getSecret('app/web/db'), RateLimitedError);
    assert.equal(arrivals.length, 1);
    // Waiting would have taken the whole 20 s deadline.
    assert.ok(Date.now() - started < 10_000, 'did not wait');
  });
});
