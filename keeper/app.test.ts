import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PATHS } from '../shared/api/paths.ts';
import { createMemoryAuditSink } from '../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../shared/log/logger.ts';
import { parseSpiffeId, parseTrustDomain } from '../shared/spiffe/spiffe_id.ts';
import type { VerifiedSvid } from '../shared/spiffe/x509_svid.ts';
import { createApp } from './app.ts';
import { ShardHolder } from './shard_holder.ts';

const HOUR_MS = 3_600_000;

function peer(id: string): VerifiedSvid {
  return {
    id: parseSpiffeId(id),
    notBefore: new Date(Date.now() - HOUR_MS),
    notAfter: new Date(Date.now() + HOUR_MS),
    serialNumber: '01',
  };
}

function keeperWith(caller: VerifiedSvid | undefined) {
  const logger = createLogger({ component: 'keeper', sink: createMemorySink() });
  const auditSink = createMemoryAuditSink();
  const holder = new ShardHolder({ logger });
  const app = createApp({
    getPeer: () => caller,
    logger,
    trustDomain: parseTrustDomain('example.org'),
    holder,
    auditSink,
  });
  return { app, auditSink, holder };
}

describe('the Keeper app', () => {
  test('audits each request of Nexus once, as the Keeper', async () => {
    const { app, auditSink } = keeperWith(peer('spiffe://example.org/spike/nexus'));
    const res = await app.request(PATHS.keeperGenerations);
    assert.equal(res.status, 200);
    assert.equal(auditSink.events.length, 1);
    const [event] = auditSink.events;
    assert.equal(event?.component, 'keeper');
    assert.equal(event?.peer, 'spiffe://example.org/spike/nexus');
    assert.equal(event?.route, PATHS.keeperGenerations);
    assert.equal(event?.outcome, 'allowed');
  });

  test('a caller other than Nexus is denied, audited once as denied, and nothing is stored', async () => {
    const { app, auditSink, holder } = keeperWith(peer('spiffe://example.org/spike/keeper/2'));
    const res = await app.request(PATHS.keeperShards, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ generation: 1, index: 1, threshold: 2, shard: 'AAAA' }),
    });
    assert.equal(res.status, 403);
    assert.equal(
      ((await res.json()) as { error: { code: string } }).error.code,
      'ERR_ACCESS_DENIED',
    );
    assert.deepEqual(holder.generations(), []);
    assert.equal(auditSink.events.length, 1);
    assert.equal(auditSink.events[0]?.outcome, 'denied');
    assert.equal(auditSink.events[0]?.peer, 'spiffe://example.org/spike/keeper/2');
  });

  test('a request without a verified peer is audited as denied with no peer', async () => {
    const { app, auditSink } = keeperWith(undefined);
    const res = await app.request(PATHS.keeperShards);
    assert.equal(res.status, 401);
    assert.equal(auditSink.events.length, 1);
    assert.equal(auditSink.events[0]?.peer, null);
    assert.equal(auditSink.events[0]?.errorCode, 'ERR_UNAUTHENTICATED');
  });
});
