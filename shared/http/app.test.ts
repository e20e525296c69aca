import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidRequestError } from '../errors/errors.ts';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { matchId } from '../spiffe/match.ts';
import { parseSpiffeId } from '../spiffe/spiffe_id.ts';
import type { VerifiedSvid } from '../spiffe/x509_svid.ts';
import { createBaseApp } from './app.ts';
import { authorize } from './authorize.ts';
import { validateJson } from './validate.ts';

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

  test("behind the adapter, puts no-store on the node response, so the route's answer keeps plain headers", async () => {
    const { app, ran } = appWith(() => peer(Date.now() + HOUR_MS));
    const set = new Map<string, string>();
    const outgoing = {
      setHeader(name: string, value: string) {
        set.set(name.toLowerCase(), value);
      },
    };
    const res = await app.request('/ok', {}, { incoming: { url: '/ok' }, outgoing });
    assert.equal(res.status, 200);
    assert.equal(ran(), 1);
    // The adapter's writeHead merges it into the answer it writes.
    assert.equal(set.get('cache-control'), 'no-store');
    assert.deepEqual([...res.headers.keys()], ['content-type']);
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

describe('the peer check of createBaseApp()', () => {
  test('uses the injected clock for the expiry check', async () => {
    const now = Date.now();
    const app = createBaseApp(
      () => peer(now + 1000),
      createLogger({ component: 'test', sink: createMemorySink() }),
      { now: () => now + 2000 },
    );
    app.get('/', (c) => c.text('ran'));
    const res = await app.request('/');
    assert.equal(res.status, 401);
    assert.equal(
      ((await res.json()) as { error: { code: string } }).error.code,
      'ERR_UNAUTHENTICATED',
    );
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

describe('request bodies in the base app, guarded routes and validateJson()', () => {
  const ALLOWED = 'spiffe://example.org/app';
  const ROUTE = '/things';

  /** A base app with a body limit of 64 bytes, a route that reads a body and one that reads none. */
  function guardedApp(callerId: string) {
    const sink = createMemorySink();
    const caller = { ...peer(Date.now() + HOUR_MS), id: parseSpiffeId(callerId) };
    const app = createBaseApp(() => caller, createLogger({ component: 'test', sink }), {
      maxBodyBytes: 64,
    });
    const allowed = matchId(parseSpiffeId(ALLOWED));
    let acted = 0;
    app.put(
      ROUTE,
      authorize(allowed, { action: 'thing.write' }),
      validateJson((body) => ({ body })),
      (c) => {
        acted += 1;
        return c.json(c.req.valid('json'));
      },
    );
    app.delete(ROUTE, authorize(allowed, { action: 'thing.delete' }), (c) => {
      acted += 1;
      return c.body(null, 204);
    });
    return { app, sink, acted: () => acted };
  }

  /** A chunked body that never ends, and how many times it was read. */
  function endlessBody() {
    let pulls = 0;
    const stream = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          pulls += 1;
          controller.enqueue(new TextEncoder().encode('{"a":"'));
        },
      },
      { highWaterMark: 0 },
    );
    return { stream, pulls: () => pulls };
  }

  function chunked(method: string, body: ReadableStream<Uint8Array>): RequestInit {
    return {
      method,
      body,
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      duplex: 'half',
    } as RequestInit;
  }

  async function codeOf(res: Response): Promise<string> {
    return ((await res.json()) as { error: { code: string } }).error.code;
  }

  test("an unauthorised caller's body is never read: a body that never ends is answered 403 at once", async () => {
    const { app, acted } = guardedApp('spiffe://example.org/other');
    const body = endlessBody();
    const res = await app.request(ROUTE, chunked('PUT', body.stream));
    assert.equal(res.status, 403);
    assert.equal(await codeOf(res), 'ERR_ACCESS_DENIED');
    assert.equal(body.pulls(), 0);
    assert.equal(acted(), 0);
  });

  test('an admitted caller whose chunked body goes past the limit gets 413 once the limit is passed', async () => {
    const { app, acted } = guardedApp(ALLOWED);
    const body = endlessBody();
    const res = await app.request(ROUTE, chunked('PUT', body.stream));
    assert.equal(res.status, 413);
    assert.equal(await codeOf(res), 'ERR_PAYLOAD_TOO_LARGE');
    assert.ok(body.pulls() <= 64 / 6 + 2, `${body.pulls()} reads`);
    assert.equal(acted(), 0);
  });

  test('a body whose stream fails midway (an aborted upload) is 400 ERR_BODY_INCOMPLETE, never a 500', async () => {
    const { app, sink, acted } = guardedApp(ALLOWED);
    let sent = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent) {
          controller.error(new Error('aborted'));
          return;
        }
        sent = true;
        controller.enqueue(new TextEncoder().encode('{"a":'));
      },
    });
    const res = await app.request(ROUTE, chunked('PUT', stream));
    assert.equal(res.status, 400);
    assert.equal(await codeOf(res), 'ERR_BODY_INCOMPLETE');
    assert.equal(acted(), 0);
    assert.ok(!sink.lines.some((line) => line.msg === 'Unhandled error'));
  });

  test('a body shorter than its Content-Length is 400 ERR_BODY_INCOMPLETE', async () => {
    const { app, acted } = guardedApp(ALLOWED);
    // What the adapter hands over when the peer closes after part of the body.
    const res = await app.request(ROUTE, {
      method: 'PUT',
      body: '{"a":1}',
      headers: { 'content-type': 'application/json', 'content-length': '40' },
    });
    assert.equal(res.status, 400);
    assert.equal(await codeOf(res), 'ERR_BODY_INCOMPLETE');
    assert.equal(acted(), 0);
  });

  test('a body on a route that reads none is refused after the guard, before the route acts', async () => {
    const admitted = guardedApp(ALLOWED);
    const res = await admitted.app.request(ROUTE, {
      method: 'DELETE',
      body: '{}',
      headers: { 'content-type': 'application/json', 'content-length': '2' },
    });
    assert.equal(res.status, 400);
    assert.equal(await codeOf(res), 'ERR_INVALID_REQUEST');
    assert.equal(admitted.acted(), 0);
    // The guard answers first: a refused caller learns nothing about the body rule.
    const refused = guardedApp('spiffe://example.org/other');
    const denied = await refused.app.request(ROUTE, {
      method: 'DELETE',
      body: '{}',
      headers: { 'content-type': 'application/json', 'content-length': '2' },
    });
    assert.equal(denied.status, 403);
    // Without a body the route acts.
    const ok = await admitted.app.request(ROUTE, { method: 'DELETE' });
    assert.equal(ok.status, 204);
    assert.equal(admitted.acted(), 1);
  });
});

describe('createBaseApp() with metrics', () => {
  function measuredApp(getPeer: () => VerifiedSvid | undefined) {
    const recorded: [string, string, number, number][] = [];
    const app = createBaseApp(
      getPeer,
      createLogger({ component: 'test', sink: createMemorySink() }),
      {
        metrics: {
          recordRequest: (route, method, status, seconds) =>
            recorded.push([route, method, status, seconds]),
        },
      },
    );
    app.get('/v1/secrets/data/:path{.+}', (c) => c.json({ ok: true }));
    app.get('/bad', () => {
      throw new InvalidRequestError('Field "path" is missing');
    });
    return { app, recorded };
  }

  test('records each request once, under its route pattern and never the path asked for', async () => {
    const { app, recorded } = measuredApp(() => peer(Date.now() + HOUR_MS));
    assert.equal((await app.request('/v1/secrets/data/team/db/password')).status, 200);
    assert.equal((await app.request('/bad')).status, 400);
    assert.deepEqual(
      recorded.map(([route, method, status]) => [route, method, status]),
      [
        ['/v1/secrets/data/:path{.+}', 'GET', 200],
        ['/bad', 'GET', 400],
      ],
    );
    assert.ok(recorded.every(([, , , seconds]) => seconds >= 0 && seconds < 60));
    assert.ok(!JSON.stringify(recorded).includes('team/db'));
  });

  test('a request refused at the edge or matching no route counts under /* with its final status', async () => {
    const { app, recorded } = measuredApp(() => undefined);
    assert.equal((await app.request('/v1/secrets/data/team/db/password')).status, 401);
    const withPeer = measuredApp(() => peer(Date.now() + HOUR_MS));
    assert.equal((await withPeer.app.request('/nowhere')).status, 404);
    assert.deepEqual(
      [...recorded, ...withPeer.recorded].map(([route, method, status]) => [route, method, status]),
      [
        ['/*', 'GET', 401],
        ['/*', 'GET', 404],
      ],
    );
  });
});
