import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BrokerError, InvalidRequestError } from '../errors/errors.ts';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { parseSpiffeId } from '../spiffe/spiffe_id.ts';
import type { VerifiedSvid } from '../spiffe/x509_svid.ts';
import { createBaseApp } from './app.ts';
import { requirePeer } from './peer.ts';

const HOUR_MS = 3_600_000;

function peer(notAfterMs: number): VerifiedSvid {
  return {
    id: parseSpiffeId('spiffe://example.org/app'),
    notBefore: new Date(Date.now() - HOUR_MS),
    notAfter: new Date(notAfterMs),
    serialNumber: '01',
  };
}

function appWith(getPeer: () => VerifiedSvid | undefined) {
  const sink = createMemorySink();
  const app = createBaseApp(getPeer, createLogger({ component: 'test', sink }));
  let ran = 0;
  app.get('/ok', (c) => {
    ran += 1;
    return c.json({ peer: c.get('peer').id.toString() });
  });
  app.get('/bad', () => {
    throw new InvalidRequestError('Field "path" is missing');
  });
  app.get('/bug', () => {
    throw new Error('secret detail that must not leak');
  });
  return { app, sink, ran: () => ran };
}

describe('createBaseApp()', () => {
  test('passes a verified peer to the handler with Cache-Control: no-store', async () => {
    const { app, ran } = appWith(() => peer(Date.now() + HOUR_MS));
    const res = await app.request('/ok');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.deepEqual(await res.json(), { peer: 'spiffe://example.org/app' });
    assert.equal(ran(), 1);
  });

  test('fails closed with ERR_UNAUTHENTICATED when the connection has no verified peer', async () => {
    const { app, ran } = appWith(() => undefined);
    const res = await app.request('/ok');
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const body = (await res.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'ERR_UNAUTHENTICATED');
    assert.equal(ran(), 0);
  });

  test('refuses a kept-alive connection whose client SVID has expired and closes it', async () => {
    const { app, ran } = appWith(() => peer(Date.now() - 1));
    const res = await app.request('/ok');
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('connection'), 'close');
    assert.equal(ran(), 0);
  });

  test('answers a BrokerError with its status and the one error shape', async () => {
    const { app } = appWith(() => peer(Date.now() + HOUR_MS));
    const res = await app.request('/bad');
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      error: { code: 'ERR_INVALID_REQUEST', message: 'Field "path" is missing' },
    });
  });

  test('answers an unknown error with a generic 500 and logs it without leaking to the client', async () => {
    const { app, sink } = appWith(() => peer(Date.now() + HOUR_MS));
    const res = await app.request('/bug');
    assert.equal(res.status, 500);
    const text = await res.text();
    assert.doesNotMatch(text, /secret detail/);
    assert.equal((JSON.parse(text) as { error: { code: string } }).error.code, 'ERR_INTERNAL');
    assert.ok(sink.lines.some((line) => line.level === 'error'));
  });

  test('answers an unknown route with ERR_NOT_FOUND after the peer check', async () => {
    const { app } = appWith(() => peer(Date.now() + HOUR_MS));
    const res = await app.request('/nope');
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'ERR_NOT_FOUND');
    const anonymous = await appWith(() => undefined).app.request('/nope');
    assert.equal(anonymous.status, 401);
  });
});

describe('requirePeer()', () => {
  test('uses the injected clock for the expiry check', async () => {
    const { Hono } = await import('hono');
    const app = new Hono();
    const now = Date.now();
    app.use(
      requirePeer(
        () => peer(now + 1000),
        () => now + 2000,
      ),
    );
    app.get('/', (c) => c.text('ran'));
    app.onError((err, c) => c.text((err as BrokerError).code, 401));
    const res = await app.request('/');
    assert.equal(await res.text(), 'ERR_UNAUTHENTICATED');
  });
});

describe('createBaseApp() refuses ambiguous request paths', () => {
  /** A request whose raw target is `target`, as @hono/node-server hands it over. */
  async function send(target: string): Promise<{ status: number; code: string; ran: number }> {
    const { app, ran } = appWith(() => peer(Date.now() + HOUR_MS));
    const res = await app.request(target, {}, { incoming: { url: target } });
    const body = (await res.json()) as { error?: { code: string } };
    return { status: res.status, code: body.error?.code ?? '', ran: ran() };
  }

  for (const target of [
    '/x/../ok',
    '/./ok',
    '/x/%2e%2e/ok',
    '/x/%2E./ok',
    '/%2e/ok',
    '//ok',
    '/x%2fok',
    '/x%5Cok',
    '/ok%0A',
    '/ok%00',
    '/ok%E2%80%A8',
    'https://host/x/../ok',
  ]) {
    test(`answers ${JSON.stringify(target)} with ERR_INVALID_REQUEST before any route runs`, async () => {
      const answer = await send(target);
      assert.deepEqual(answer, { status: 400, code: 'ERR_INVALID_REQUEST', ran: 0 });
    });
  }

  test('still serves a plain path, with dots inside segments and a query', async () => {
    const { app } = appWith(() => peer(Date.now() + HOUR_MS));
    app.get('/a.b/..c/ok', (c) => c.json({ ok: true }));
    const res = await app.request(
      '/a.b/..c/ok?x=../..',
      {},
      { incoming: { url: '/a.b/..c/ok?x=../..' } },
    );
    assert.equal(res.status, 200);
    assert.equal((await send('/ok?next=/a/../b//c')).status, 200);
  });

  test('checks the parsed URL when there is no raw target (app.request without env)', async () => {
    const { app, ran } = appWith(() => peer(Date.now() + HOUR_MS));
    const res = await app.request('/x%2Fok');
    assert.equal(res.status, 400);
    assert.equal(ran(), 0);
  });

  test('refuses a GET that declares a body, and serves one that declares none', async () => {
    const { app, ran } = appWith(() => peer(Date.now() + HOUR_MS));
    for (const headers of [{ 'content-length': '5' }, { 'transfer-encoding': 'chunked' }]) {
      const res = await app.request('/ok', { headers });
      assert.equal(res.status, 400, JSON.stringify(headers));
      assert.equal(
        ((await res.json()) as { error: { code: string } }).error.code,
        'ERR_INVALID_REQUEST',
      );
    }
    assert.equal(ran(), 0);
    assert.equal((await app.request('/ok', { headers: { 'content-length': '0' } })).status, 200);
  });

  test('authenticates first: an unknown peer gets ERR_UNAUTHENTICATED, not a path error', async () => {
    const { app } = appWith(() => undefined);
    const res = await app.request('/x/../ok', {}, { incoming: { url: '/x/../ok' } });
    assert.equal(res.status, 401);
  });
});
