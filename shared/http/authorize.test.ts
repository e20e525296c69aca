import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Hono } from 'hono';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { matchAny, matchId } from '../spiffe/match.ts';
import { parseSpiffeId } from '../spiffe/spiffe_id.ts';
import { createBaseApp } from './app.ts';
import { authorize, isAuthorizeHandler } from './authorize.ts';

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
