import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { STATUS_BY_CODE } from '../errors/http_status.ts';
import { createMemoryAuditSink } from '../log/audit_log.ts';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { parseSpiffeId } from '../spiffe/spiffe_id.ts';
import type { VerifiedSvid } from '../spiffe/x509_svid.ts';
import { createBaseApp } from './app.ts';
import { createTokenBuckets, TokenBuckets } from './rate_limit.ts';

const HOUR_MS = 3_600_000;
const FLOODER = 'spiffe://example.org/apps/flooder';
const BYSTANDER = 'spiffe://example.org/apps/bystander';

function peerOf(id: string): VerifiedSvid {
  return {
    id: parseSpiffeId(id),
    notBefore: new Date(Date.now() - HOUR_MS),
    notAfter: new Date(Date.now() + HOUR_MS),
    serialNumber: '01',
  };
}

function clock() {
  let nowMs = 1_000;
  return {
    now: () => nowMs,
    advance(ms: number) {
      nowMs += ms;
    },
  };
}

/** An app whose caller is chosen by the `x-test-peer` header (a stand-in for the TLS layer). */
function limitedApp(options: { ratePerSecond: number; burst: number; now: () => number }) {
  const auditSink = createMemoryAuditSink();
  const app = createBaseApp(
    (c) => {
      const id = c.req.header('x-test-peer');
      return id === undefined ? undefined : peerOf(id);
    },
    createLogger({ component: 'test', sink: createMemorySink() }),
    { audit: { sink: auditSink, component: 'test' }, rateLimit: createTokenBuckets(options) },
  );
  let handlerRuns = 0;
  app.get('/thing', (c) => {
    handlerRuns += 1;
    return c.json({ ok: true });
  });
  const ask = (id: string | undefined) =>
    app.request('/thing', id === undefined ? {} : { headers: { 'x-test-peer': id } });
  return { ask, auditSink, handlerRuns: () => handlerRuns };
}

describe('TokenBuckets', () => {
  test('admits a burst, then refuses until a token has refilled', () => {
    const time = clock();
    const buckets = new TokenBuckets({ ratePerSecond: 2, burst: 3, now: time.now });
    for (let i = 0; i < 3; i += 1) assert.equal(buckets.take('a').isAllowed, true);
    const refused = buckets.take('a');
    assert.equal(refused.isAllowed, false);
    assert.equal(refused.isAllowed ? 0 : refused.retryAfterMs, 500);
    time.advance(499);
    assert.equal(buckets.take('a').isAllowed, false);
    time.advance(1);
    assert.equal(buckets.take('a').isAllowed, true);
    assert.equal(buckets.take('a').isAllowed, false);
  });

  test('an empty bucket of one key takes nothing from another', () => {
    const time = clock();
    const buckets = new TokenBuckets({ ratePerSecond: 1, burst: 2, now: time.now });
    for (let i = 0; i < 100; i += 1) buckets.take('flooder');
    assert.equal(buckets.take('other').isAllowed, true);
    assert.equal(buckets.take('other').isAllowed, true);
  });

  test('never holds more than the burst, however long a key was idle', () => {
    const time = clock();
    const buckets = new TokenBuckets({ ratePerSecond: 10, burst: 2, now: time.now });
    buckets.take('a');
    time.advance(HOUR_MS);
    assert.equal(buckets.take('a').isAllowed, true);
    assert.equal(buckets.take('a').isAllowed, true);
    assert.equal(buckets.take('a').isAllowed, false);
  });

  test('a clock that goes backwards adds no tokens', () => {
    const time = clock();
    const buckets = new TokenBuckets({ ratePerSecond: 1, burst: 1, now: time.now });
    assert.equal(buckets.take('a').isAllowed, true);
    time.advance(-10_000);
    assert.equal(buckets.take('a').isAllowed, false);
  });

  test('forgets refilled buckets once there are many, but keeps the empty ones', () => {
    const time = clock();
    const buckets = new TokenBuckets({
      ratePerSecond: 1,
      burst: 1,
      now: time.now,
      maxIdleBuckets: 3,
    });
    buckets.take('busy');
    time.advance(2_000);
    buckets.take('idle-1');
    buckets.take('idle-2');
    time.advance(2_000);
    buckets.take('busy');
    buckets.take('new');
    // 'idle-*' refilled and were dropped; 'busy' is empty and stays.
    assert.equal(buckets.size, 2);
    assert.equal(buckets.take('busy').isAllowed, false);
  });

  test('refuses a rate or burst that is not positive', () => {
    assert.throws(() => new TokenBuckets({ ratePerSecond: 0, burst: 1 }), RangeError);
    assert.throws(() => new TokenBuckets({ ratePerSecond: 1, burst: 0 }), RangeError);
    assert.throws(() => new TokenBuckets({ ratePerSecond: Number.NaN, burst: 1 }), RangeError);
  });
});

describe('the rate limit of createBaseApp()', () => {
  test('answers 429 ERR_RATE_LIMITED with Retry-After, audited as denied, without running the handler', async () => {
    const time = clock();
    const { ask, auditSink, handlerRuns } = limitedApp({
      ratePerSecond: 0.5,
      burst: 2,
      now: time.now,
    });
    assert.equal((await ask(FLOODER)).status, 200);
    assert.equal((await ask(FLOODER)).status, 200);
    const refused = await ask(FLOODER);
    assert.equal(refused.status, 429);
    assert.equal(STATUS_BY_CODE.ERR_RATE_LIMITED, 429);
    assert.equal(refused.headers.get('retry-after'), '2');
    assert.equal(refused.headers.get('cache-control'), 'no-store');
    const body = (await refused.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'ERR_RATE_LIMITED');
    assert.equal(handlerRuns(), 2);
    const last = auditSink.events.at(-1);
    assert.equal(last?.outcome, 'denied');
    assert.equal(last?.status, 429);
    assert.equal(last?.errorCode, 'ERR_RATE_LIMITED');
    assert.equal(last?.peer, FLOODER);
  });

  test('a flooding identity never starves another one', async () => {
    const time = clock();
    const { ask } = limitedApp({ ratePerSecond: 1, burst: 5, now: time.now });
    let refused = 0;
    for (let i = 0; i < 50; i += 1) {
      if ((await ask(FLOODER)).status === 429) refused += 1;
    }
    assert.equal(refused, 45);
    for (let i = 0; i < 5; i += 1) assert.equal((await ask(BYSTANDER)).status, 200);
  });

  test('is keyed by the verified peer, so it never runs for an unauthenticated request', async () => {
    const time = clock();
    const { ask, handlerRuns } = limitedApp({ ratePerSecond: 1, burst: 1, now: time.now });
    for (let i = 0; i < 3; i += 1) assert.equal((await ask(undefined)).status, 401);
    assert.equal((await ask(FLOODER)).status, 200);
    assert.equal(handlerRuns(), 1);
  });

  test('a rate of 0 turns the limit off', async () => {
    const time = clock();
    const { ask } = limitedApp({ ratePerSecond: 0, burst: 1, now: time.now });
    for (let i = 0; i < 20; i += 1) assert.equal((await ask(FLOODER)).status, 200);
  });
});
