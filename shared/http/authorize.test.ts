import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Hono } from 'hono';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { matchAny, matchId } from '../spiffe/match.ts';
import { parseSpiffeId, type SpiffeId } from '../spiffe/spiffe_id.ts';
import { createBaseApp } from './app.ts';
import { authorize, authorizeRequest, authorizeWith, isAuthorizeHandler } from './authorize.ts';

const ADMIN = parseSpiffeId('spiffe://example.org/admin');
const HOUR_MS = 3_600_000;

function appFor(peerId: string) {
  const sink = createMemorySink();
  const logger = createLogger({ component: 'test', sink });
  const app = createBaseApp(
    () => ({
      id: parseSpiffeId(peerId),
      notBefore: new Date(Date.now() - HOUR_MS),
      notAfter: new Date(Date.now() + HOUR_MS),
      serialNumber: '01',
    }),
    logger,
  );
  let ran = 0;
  app.get('/admin', authorize(matchId(ADMIN), { logger }), (c) => {
    ran += 1;
    return c.text('ok');
  });
  return { app, sink, ran: () => ran };
}

describe('authorize()', () => {
  test('admits a peer the matcher admits', async () => {
    const { app, ran } = appFor('spiffe://example.org/admin');
    const res = await app.request('/admin');
    assert.equal(res.status, 200);
    assert.equal(ran(), 1);
  });

  test('refuses other peers with ERR_ACCESS_DENIED; the rule goes to the log only', async () => {
    const { app, sink, ran } = appFor('spiffe://example.org/user');
    const res = await app.request('/admin');
    assert.equal(res.status, 403);
    const text = await res.text();
    assert.equal(JSON.parse(text).error.code, 'ERR_ACCESS_DENIED');
    assert.doesNotMatch(text, /admin|spiffe/);
    assert.equal(ran(), 0);
    const denial = sink.lines.find((line) => line.msg === 'Access denied');
    assert.equal(denial?.peer, 'spiffe://example.org/user');
    assert.match(String(denial?.rule), /example\.org\/admin/);
  });

  test('fails closed with ERR_UNAUTHENTICATED when no peer was set', async () => {
    const app = new Hono();
    app.get('/', authorize(matchAny()), (c) => c.text('ran'));
    app.onError((err, c) => c.text((err as { code?: string }).code ?? 'none', 500));
    assert.equal(await (await app.request('/')).text(), 'ERR_UNAUTHENTICATED');
  });

  test('isAuthorizeHandler() knows exactly the handlers authorize() made', () => {
    const guard = authorize(matchAny());
    assert.equal(isAuthorizeHandler(guard), true);
    assert.equal(
      isAuthorizeHandler(async () => {}),
      false,
    );
    assert.equal(isAuthorizeHandler(undefined), false);
    assert.equal(isAuthorizeHandler({}), false);
  });

  test('takes only matchers', () => {
    assert.throws(() => authorize((() => true) as never), TypeError);
  });
});

describe('authorizeWith()', () => {
  function appWith(peerId: string, check: (id: SpiffeId) => boolean) {
    const sink = createMemorySink();
    const logger = createLogger({ component: 'test', sink });
    const app = createBaseApp(
      () => ({
        id: parseSpiffeId(peerId),
        notBefore: new Date(Date.now() - HOUR_MS),
        notAfter: new Date(Date.now() + HOUR_MS),
        serialNumber: '01',
      }),
      logger,
    );
    let ran = 0;
    const seen: string[] = [];
    app.get(
      '/thing',
      authorizeWith(
        (id) => {
          seen.push(id.toString());
          return check(id);
        },
        'write on "sys/things"',
        { logger },
      ),
      (c) => {
        ran += 1;
        return c.text('ok');
      },
    );
    return { app, sink, seen, ran: () => ran };
  }

  test('admits when the check says yes, passing it the parsed peer ID', async () => {
    const { app, seen, ran } = appWith('spiffe://example.org/admin', () => true);
    assert.equal((await app.request('/thing')).status, 200);
    assert.deepEqual(seen, ['spiffe://example.org/admin']);
    assert.equal(ran(), 1);
  });

  test('refuses with ERR_ACCESS_DENIED when it says no; the description goes to the log', async () => {
    const { app, sink, ran } = appWith('spiffe://example.org/user', () => false);
    const res = await app.request('/thing');
    assert.equal(res.status, 403);
    assert.equal(
      ((await res.json()) as { error: { code: string } }).error.code,
      'ERR_ACCESS_DENIED',
    );
    assert.equal(ran(), 0);
    const denial = sink.lines.find((line) => line.msg === 'Access denied');
    assert.equal(denial?.rule, 'write on "sys/things"');
  });

  test('its handlers count as guards; it needs a function and a description', () => {
    assert.equal(isAuthorizeHandler(authorizeWith(() => true, 'anything')), true);
    assert.throws(() => authorizeWith(undefined as never, 'x'), TypeError);
    assert.throws(() => authorizeWith(() => true, ''), TypeError);
  });
});

describe('authorizeRequest()', () => {
  test('passes the request to the check, and its handlers count as guards', async () => {
    const app = createBaseApp(
      () => ({
        id: parseSpiffeId('spiffe://example.org/app'),
        notBefore: new Date(Date.now() - HOUR_MS),
        notAfter: new Date(Date.now() + HOUR_MS),
        serialNumber: '01',
      }),
      createLogger({ component: 'test', sink: createMemorySink() }),
    );
    const guard = authorizeRequest(
      (c, peer) => c.req.param('name') === 'mine' && peer.path === '/app',
      'only "mine"',
    );
    assert.equal(isAuthorizeHandler(guard), true);
    app.get('/things/:name', guard, (c) => c.text('ok'));
    assert.equal((await app.request('/things/mine')).status, 200);
    assert.equal((await app.request('/things/yours')).status, 403);
    assert.throws(() => authorizeRequest(() => true, ''), TypeError);
  });
});
