import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Hono } from 'hono';
import { InvalidRequestError } from '../errors/errors.ts';
import { createMemoryAuditSink } from '../log/audit_log.ts';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { matchAny, matchId } from '../spiffe/match.ts';
import { parseSpiffeId } from '../spiffe/spiffe_id.ts';
import { createBaseApp } from './app.ts';
import { authorize, isAuthorizeHandler, type RequestCheck } from './authorize.ts';

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
  app.get('/admin', authorize(matchId(ADMIN), { logger, action: 'admin.read' }), (c) => {
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
    app.get('/', authorize(matchAny(), { action: 'root.read' }), (c) => c.text('ran'));
    app.onError((err, c) => c.text((err as { code?: string }).code ?? 'none', 500));
    assert.equal(await (await app.request('/')).text(), 'ERR_UNAUTHENTICATED');
  });

  test('isAuthorizeHandler() knows exactly the handlers authorize() made', () => {
    const guard = authorize(matchAny(), { action: 'any.read' });
    assert.equal(isAuthorizeHandler(guard), true);
    assert.equal(
      isAuthorizeHandler(async () => {}),
      false,
    );
    assert.equal(isAuthorizeHandler(undefined), false);
    assert.equal(isAuthorizeHandler({}), false);
  });

  test("takes a Matcher or a RequestCheck, and the route's audit action", () => {
    assert.throws(() => authorize((() => true) as never, { action: 'x.read' }), TypeError);
    assert.throws(
      () => authorize({ decide: () => true } as never, { action: 'x.read' }),
      TypeError,
    );
    assert.throws(
      () => authorize({ description: '', decide: () => true } as never, { action: 'x.read' }),
      TypeError,
    );
    assert.throws(() => authorize(matchAny(), { action: '' }), TypeError);
    assert.throws(() => authorize(matchAny(), {} as never), TypeError);
  });
});

describe('authorize() with a RequestCheck', () => {
  /** Admits only "mine", and only for /app; the name is what it hands on. */
  const onlyMine: RequestCheck<string> = {
    description: 'only "mine"',
    decide(c, peer) {
      const name = c.req.param('name') ?? '';
      if (name.includes('!')) {
        throw new InvalidRequestError('Bad name');
      }
      const allowed = name === 'mine' && peer.path === '/app';
      return {
        allowed,
        reason: allowed ? 'policy' : 'no_matching_policy',
        policy: allowed ? 'mine-only' : undefined,
        target: name.toUpperCase(),
        resource: name,
      };
    },
  };

  function appWith(peerId: string) {
    const sink = createMemorySink();
    const logger = createLogger({ component: 'test', sink });
    const auditSink = createMemoryAuditSink();
    const app = createBaseApp(
      () => ({
        id: parseSpiffeId(peerId),
        notBefore: new Date(Date.now() - HOUR_MS),
        notAfter: new Date(Date.now() + HOUR_MS),
        serialNumber: '01',
      }),
      logger,
      { audit: { sink: auditSink, component: 'test' } },
    );
    const seen: string[] = [];
    app.get('/things/:name', authorize(onlyMine, { action: 'thing.read', logger }), (c) => {
      // Typed by the guard: the handler never parses the name again.
      const target: string = c.get('target');
      seen.push(target);
      return c.text('ok');
    });
    return { app, sink, audit: auditSink.events, seen };
  }

  test('admits, and hands the parsed target to the handler', async () => {
    const { app, seen } = appWith('spiffe://example.org/app');
    assert.equal((await app.request('/things/mine')).status, 200);
    assert.deepEqual(seen, ['MINE']);
  });

  test('audits the action, the resource and the decision with the policy that granted', async () => {
    const { app, audit } = appWith('spiffe://example.org/app');
    await app.request('/things/mine');
    assert.equal(audit.length, 1);
    assert.equal(audit[0]?.action, 'thing.read');
    assert.equal(audit[0]?.resource, 'mine');
    assert.deepEqual(audit[0]?.decision, { reason: 'policy', policy: 'mine-only' });
  });

  test('a refusal is 403 without the rule; the audit event and the log carry the reason', async () => {
    const { app, audit, sink, seen } = appWith('spiffe://example.org/app');
    const res = await app.request('/things/yours');
    assert.equal(res.status, 403);
    const text = await res.text();
    assert.equal(JSON.parse(text).error.code, 'ERR_ACCESS_DENIED');
    assert.doesNotMatch(text, /no_matching_policy|mine|yours/);
    assert.deepEqual(seen, []);
    assert.equal(audit[0]?.outcome, 'denied');
    assert.equal(audit[0]?.resource, 'yours');
    assert.deepEqual(audit[0]?.decision, { reason: 'no_matching_policy', policy: null });
    const denial = sink.lines.find((line) => line.msg === 'Access denied');
    assert.equal(denial?.rule, 'only "mine"');
    assert.equal(denial?.reason, 'no_matching_policy');
  });

  test('a malformed target is 400 with the action audited and no decision', async () => {
    const { app, audit, seen } = appWith('spiffe://example.org/app');
    const res = await app.request('/things/mine!');
    assert.equal(res.status, 400);
    assert.deepEqual(seen, []);
    assert.equal(audit[0]?.action, 'thing.read');
    assert.equal(audit[0]?.decision, null);
  });

  test('a matcher guard audits identity_matched or identity_not_matched', async () => {
    const auditSink = createMemoryAuditSink();
    const app = createBaseApp(
      () => ({
        id: parseSpiffeId('spiffe://example.org/user'),
        notBefore: new Date(Date.now() - HOUR_MS),
        notAfter: new Date(Date.now() + HOUR_MS),
        serialNumber: '01',
      }),
      createLogger({ component: 'test', sink: createMemorySink() }),
      { audit: { sink: auditSink, component: 'test' } },
    );
    app.get('/open', authorize(matchAny(), { action: 'open.read' }), (c) => c.text('ok'));
    app.get('/admin', authorize(matchId(ADMIN), { action: 'admin.read' }), (c) => c.text('ok'));
    assert.equal((await app.request('/open')).status, 200);
    assert.equal((await app.request('/admin')).status, 403);
    assert.deepEqual(
      auditSink.events.map((event) => [event.action, event.resource, event.decision]),
      [
        ['open.read', null, { reason: 'identity_matched', policy: null }],
        ['admin.read', null, { reason: 'identity_not_matched', policy: null }],
      ],
    );
  });

  test('its handlers count as guards', () => {
    assert.equal(isAuthorizeHandler(authorize(onlyMine, { action: 'thing.read' })), true);
  });
});
