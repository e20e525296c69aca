import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { createMemoryAuditSink } from '../log/audit_log.ts';
import { audit, auditRefusals, setAudit, TLS_CONNECT_ACTION } from './audit.ts';
import { RequestCount } from './request_count.ts';

const NOW = Date.parse('2026-01-02T03:04:05.000Z');

describe('auditRefusals()', () => {
  test('writes one denied tls.connect event with the reason, the address and the claimed ID', () => {
    const sink = createMemoryAuditSink();
    const audit = auditRefusals({ sink, component: 'keeper', now: () => NOW });
    audit({
      reason: 'TLS verification failed: CERT_HAS_EXPIRED',
      claimedId: 'spiffe://example.org/spike/nexus',
      remoteAddress: '127.0.0.1:40000',
    });
    assert.equal(sink.events.length, 1);
    const [event] = sink.events;
    assert.deepEqual(
      { ...event, trailId: 'x' },
      {
        ts: '2026-01-02T03:04:05.000Z',
        trailId: 'x',
        component: 'keeper',
        peer: null,
        claimedPeer: 'spiffe://example.org/spike/nexus',
        method: null,
        route: null,
        action: TLS_CONNECT_ACTION,
        resource: null,
        decision: null,
        outcome: 'denied',
        status: 401,
        errorCode: 'ERR_UNAUTHENTICATED',
        durationMs: 0,
        reason: 'TLS verification failed: CERT_HAS_EXPIRED',
        remoteAddress: '127.0.0.1:40000',
        count: 1,
      },
    );
    assert.match(event?.trailId ?? '', /^[0-9a-f-]{36}$/);
  });

  test('a verified peer that may not connect is the peer, with 403 ERR_ACCESS_DENIED', () => {
    const sink = createMemoryAuditSink();
    auditRefusals({ sink, component: 'keeper' })({
      reason: 'Peer "spiffe://example.org/spike/keeper/2" is not allowed here',
      peerId: 'spiffe://example.org/spike/keeper/2',
    });
    const [event] = sink.events;
    assert.equal(event?.peer, 'spiffe://example.org/spike/keeper/2');
    assert.equal(event?.claimedPeer, null);
    assert.equal(event?.status, 403);
    assert.equal(event?.errorCode, 'ERR_ACCESS_DENIED');
    assert.equal(event?.outcome, 'denied');
    assert.equal(event?.remoteAddress, null);
  });

  test("a summary's count is the event's, so the counts add up to every refusal", () => {
    const sink = createMemoryAuditSink();
    auditRefusals({ sink, component: 'nexus' })({
      reason: '41 more refusals from this address; the last: TLS handshake failed: ECONNRESET',
      remoteAddress: '192.0.2.1',
      count: 41,
    });
    assert.equal(sink.events[0]?.count, 41);
    assert.equal(sink.events[0]?.remoteAddress, '192.0.2.1');
  });

  test('each refusal gets its own trail ID', () => {
    const sink = createMemoryAuditSink();
    const audit = auditRefusals({ sink, component: 'nexus' });
    audit({ reason: 'a' });
    audit({ reason: 'b' });
    assert.notEqual(sink.events[0]?.trailId, sink.events[1]?.trailId);
  });
});

describe('audit(): deniedRequests', () => {
  test('counts the requests answered 401, 403 or 429, and no refused connection', async () => {
    const sink = createMemoryAuditSink();
    const deniedRequests = new RequestCount();
    const app = new Hono();
    app.use(audit({ sink, component: 'nexus', deniedRequests }));
    app.get('/:status', (c) => c.body(null, Number(c.req.param('status')) as ContentfulStatusCode));
    for (const status of [200, 401, 403, 404, 429, 500]) {
      await app.request(`/${status}`);
    }
    assert.equal(deniedRequests.value, 3);
    auditRefusals({ sink, component: 'nexus', deniedRequests })({ reason: 'no certificate' });
    assert.equal(deniedRequests.value, 3);
  });
});

describe('audit() and setAudit()', () => {
  function appWith(annotate: (c: Parameters<typeof setAudit>[0]) => void) {
    const sink = createMemoryAuditSink();
    const app = new Hono();
    app.use(audit({ sink, component: 'nexus', now: () => NOW }));
    app.get('/thing', (c) => {
      annotate(c);
      return c.text('ok');
    });
    return { app, events: sink.events };
  }

  test("setAudit() calls add up: the guard's decision stays when the handler names the resource", async () => {
    const { app, events } = appWith((c) => {
      setAudit(c, { action: 'policy.read' });
      setAudit(c, { decision: { reason: 'policy', policy: 'auditors' } });
      setAudit(c, { resource: 'web-reads-db' });
    });
    assert.equal((await app.request('/thing')).status, 200);
    assert.equal(events.length, 1);
    const [event] = events;
    assert.equal(event?.action, 'policy.read');
    assert.equal(event?.resource, 'web-reads-db');
    assert.deepEqual(event?.decision, { reason: 'policy', policy: 'auditors' });
    assert.equal(event?.outcome, 'allowed');
  });

  test('without a guard the event has action http.request and decision null', async () => {
    const { app, events } = appWith(() => {});
    await app.request('/thing');
    assert.equal(events[0]?.action, 'http.request');
    assert.equal(events[0]?.resource, null);
    assert.equal(events[0]?.decision, null);
  });
});
