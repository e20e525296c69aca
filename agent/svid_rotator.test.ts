import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger, createMemorySink } from '../shared/log/logger.ts';
import { parseSpiffeId, parseTrustDomain } from '../shared/spiffe/spiffe_id.ts';
import { type IssuedSvid, type LocalCa, loadOrCreateCa } from './ca.ts';
import type { Registration } from './registrations.ts';
import { rotationTimeMs, SvidRotator } from './svid_rotator.ts';

const TD = parseTrustDomain('example.org');
const REGISTRATION: Registration = {
  name: 'web',
  spiffeId: parseSpiffeId('spiffe://example.org/app/web'),
  socketPath: '/unused/web.sock',
};

function waitFor<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs}ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

describe('rotationTimeMs()', () => {
  test('rotates at half the lifetime, moved by at most 10% of that half', () => {
    assert.equal(rotationTimeMs(0, 1000, 0.5), 500);
    assert.equal(rotationTimeMs(0, 1000, 0), 450);
    assert.ok(Math.abs(rotationTimeMs(0, 1000, 0.999999) - 550) < 0.01);
    assert.equal(rotationTimeMs(10_000, 3_610_000, 0.5), 10_000 + 1_800_000);
  });

  test('stays within the jitter window for any random value', () => {
    for (let i = 0; i < 1000; i++) {
      const at = rotationTimeMs(0, 3_600_000, Math.random());
      assert.ok(at >= 1_620_000 && at < 1_980_000, `${at}`);
    }
  });
});

describe('SvidRotator', () => {
  let root: string;
  let ca: LocalCa;
  const sink = createMemorySink();
  const logger = createLogger({ component: 'agent', level: 'debug', sink });
  const rotators: SvidRotator[] = [];

  function newRotator(ttlMs: number, extra: { random?: () => number } = {}): SvidRotator {
    const rotator = new SvidRotator({ registration: REGISTRATION, ca, ttlMs, logger, ...extra });
    rotators.push(rotator);
    return rotator;
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'spike-agent-rot-'));
    ca = await loadOrCreateCa({ trustDomain: TD, dataDir: root, caTtlMs: 86_400_000, logger });
  });
  after(async () => {
    for (const rotator of rotators) {
      rotator.stop();
    }
    await rm(root, { recursive: true, force: true });
  });

  test('issues a first SVID on start and schedules its rotation near half-life', async () => {
    const rotator = newRotator(3_600_000, { random: () => 0.5 });
    assert.throws(() => rotator.current(), TypeError);
    const svid = await rotator.start();
    assert.equal(rotator.current(), svid);
    assert.ok(svid.spiffeId.equals(REGISTRATION.spiffeId));
    const half = (svid.notAfter.getTime() - Date.now()) / 2;
    const due = rotator.rotationDueAtMs() - Date.now();
    assert.ok(Math.abs(due - half) < 2000, `due in ${due}ms, half-life ${half}ms`);
    rotator.stop();
  });

  test('rotateNow() issues a new SVID and pushes it to every subscriber', async () => {
    const rotator = newRotator(60_000);
    const first = await rotator.start();
    const seenA: IssuedSvid[] = [];
    const seenB: IssuedSvid[] = [];
    rotator.subscribe((svid) => seenA.push(svid));
    const offB = rotator.subscribe((svid) => seenB.push(svid));
    const second = await rotator.rotateNow();
    assert.notEqual(second.serialNumber, first.serialNumber);
    assert.equal(rotator.current(), second);
    assert.deepEqual(seenA, [second]);
    assert.deepEqual(seenB, [second]);
    offB();
    const third = await rotator.rotateNow();
    assert.deepEqual(seenA, [second, third]);
    assert.deepEqual(seenB, [second]);
    rotator.stop();
  });

  test('concurrent rotateNow() calls share one issuance', async () => {
    const rotator = newRotator(60_000);
    await rotator.start();
    const [a, b] = await Promise.all([rotator.rotateNow(), rotator.rotateNow()]);
    assert.equal(a, b);
    rotator.stop();
  });

  test('rotates on its own at about half the lifetime', async () => {
    // 4 s lifetime (whole seconds in X.509): the rotation is due in about 1.5–2.2 s.
    const rotator = newRotator(4_000);
    const first = await rotator.start();
    const rotated = new Promise<IssuedSvid>((resolve) => {
      rotator.subscribe(resolve);
    });
    const second = await waitFor(rotated, 6_000);
    assert.notEqual(second.serialNumber, first.serialNumber);
    assert.ok(Date.now() < first.notAfter.getTime(), 'rotated before the old SVID expired');
    assert.ok(
      sink.lines.some((l) => l.action === 'svid.issue' && l.reason === 'rotation'),
      'the rotation was audited',
    );
    rotator.stop();
  });

  test('stop() cancels the timer and refuses further rotations', async () => {
    const rotator = newRotator(60_000);
    await rotator.start();
    rotator.stop();
    await assert.rejects(rotator.rotateNow(), TypeError);
  });
});
