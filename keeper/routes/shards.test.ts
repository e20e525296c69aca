import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { shardToWire } from '../../shared/api/keeper.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { encodeBase64 } from '../../shared/crypto/base64.ts';
import { SHARD_VALUE_BYTES, type Shard } from '../../shared/crypto/shard.ts';
import { createMemoryAuditSink } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import {
  keeperId,
  nexusId,
  pilotRecoverId,
  pilotSuperuserId,
} from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import type { VerifiedSvid } from '../../shared/spiffe/x509_svid.ts';
import { createApp, KEEPER_MAX_BODY_BYTES } from '../app.ts';
import { ShardHolder } from '../shard_holder.ts';

const TD = parseTrustDomain('keeper.test');
const HOUR_MS = 3_600_000;

/** A ShardHolder that counts every call, so tests can prove a denied request never reached it. */
class CountingHolder extends ShardHolder {
  calls = 0;
  override store(shard: Shard) {
    this.calls += 1;
    return super.store(shard);
  }
  override list() {
    this.calls += 1;
    return super.list();
  }
  override generations() {
    this.calls += 1;
    return super.generations();
  }
  override prune(keepFrom: number) {
    this.calls += 1;
    return super.prune(keepFrom);
  }
}

function svid(id: SpiffeId): VerifiedSvid {
  return {
    id,
    notBefore: new Date(Date.now() - HOUR_MS),
    notAfter: new Date(Date.now() + HOUR_MS),
    serialNumber: '01',
  };
}

function keeperApp(peerId: SpiffeId | undefined) {
  const sink = createMemorySink();
  const logger = createLogger({ component: 'keeper', level: 'debug', sink });
  const holder = new CountingHolder({ logger });
  const auditSink = createMemoryAuditSink();
  const app = createApp({
    getPeer: () => (peerId === undefined ? undefined : svid(peerId)),
    logger,
    trustDomain: TD,
    holder,
    auditSink,
  });
  return { app, holder, sink, auditSink };
}

function value(seed: number): Uint8Array {
  return Uint8Array.from({ length: SHARD_VALUE_BYTES }, (_, i) => (seed * 17 + i * 3 + 5) & 255);
}

function shard(generation: number, overrides: Partial<Shard> = {}): Shard {
  return { generation, index: 2, threshold: 2, value: value(generation), ...overrides };
}

function jsonRequest(method: string, body: unknown): RequestInit {
  return {
    method,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  };
}

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return body.error.code;
}

const ROUTES: ReadonlyArray<{
  name: string;
  path: string;
  action: string;
  init: () => RequestInit;
}> = [
  {
    name: 'PUT shards',
    path: PATHS.keeperShards,
    action: 'shard.contribute',
    init: () => jsonRequest('PUT', shardToWire(shard(1))),
  },
  {
    name: 'GET shards',
    path: PATHS.keeperShards,
    action: 'shard.read',
    init: () => ({ method: 'GET' }),
  },
  {
    name: 'GET generations',
    path: PATHS.keeperGenerations,
    action: 'shard.list',
    init: () => ({ method: 'GET' }),
  },
  {
    name: 'POST prune',
    path: PATHS.keeperPrune,
    action: 'shard.prune',
    init: () => jsonRequest('POST', { keepFrom: 1 }),
  },
];

describe('Keeper shard routes, as Nexus', () => {
  test('PUT stores a shard and answers with the generations held', async () => {
    const { app, holder } = keeperApp(nexusId(TD));
    const res = await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(shard(4))));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.deepEqual(await res.json(), { generations: [4] });
    assert.deepEqual(holder.list(), [shard(4)]);
  });

  test('an ID under Nexus is Nexus too', async () => {
    const { app } = keeperApp(parseSpiffeId('spiffe://keeper.test/spike/nexus/pod-1'));
    const res = await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(shard(1))));
    assert.equal(res.status, 200);
  });

  test('PUT of the same shard again is idempotent', async () => {
    const { app } = keeperApp(nexusId(TD));
    for (let i = 0; i < 2; i++) {
      const res = await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(shard(1))));
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { generations: [1] });
    }
  });

  test('PUT of other bytes for a held generation is a 409 that keeps the held shard', async () => {
    const { app, holder, sink } = keeperApp(nexusId(TD));
    await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(shard(1))));
    const other = shardToWire(shard(1, { value: value(50) }));
    const res = await app.request(PATHS.keeperShards, jsonRequest('PUT', other));
    assert.equal(res.status, 409);
    assert.equal(await errorCode(res), 'ERR_CONFLICT');
    assert.deepEqual(holder.list(), [shard(1)]);
    assert.ok(sink.lines.some((line) => line.msg === 'Refused a shard' && line.generation === 1));
  });

  test('GET lists every shard held in the wire shape', async () => {
    const { app } = keeperApp(nexusId(TD));
    await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(shard(2))));
    await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(shard(1, { index: 3 }))));
    const res = await app.request(PATHS.keeperShards);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      shards: [shardToWire(shard(1, { index: 3 })), shardToWire(shard(2))],
    });
  });

  test('GET generations lists generations only', async () => {
    const { app } = keeperApp(nexusId(TD));
    await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(shard(3))));
    const res = await app.request(PATHS.keeperGenerations);
    assert.deepEqual(await res.json(), { generations: [3] });
  });

  test('prune drops older generations only when it holds keepFrom', async () => {
    const { app, sink } = keeperApp(nexusId(TD));
    for (const generation of [1, 2, 3]) {
      await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(shard(generation))));
    }
    const skipped = await app.request(PATHS.keeperPrune, jsonRequest('POST', { keepFrom: 7 }));
    assert.equal(skipped.status, 200);
    assert.deepEqual(await skipped.json(), { generations: [1, 2, 3] });
    assert.ok(sink.lines.some((line) => line.level === 'warn' && line.keepFrom === 7));
    const pruned = await app.request(PATHS.keeperPrune, jsonRequest('POST', { keepFrom: 3 }));
    assert.deepEqual(await pruned.json(), { generations: [3] });
  });

  for (const route of ROUTES) {
    test(`${route.name} is audited once as ${route.action}, allowed`, async () => {
      const { app, auditSink } = keeperApp(nexusId(TD));
      const res = await app.request(route.path, route.init());
      assert.equal(res.status, 200);
      assert.equal(auditSink.events.length, 1);
      const [event] = auditSink.events;
      assert.equal(event?.action, route.action);
      assert.equal(event?.outcome, 'allowed');
      assert.equal(event?.peer, nexusId(TD).toString());
      assert.equal(event?.route, route.path);
      assert.equal(event?.errorCode, null);
      assert.deepEqual(event?.decision, { reason: 'identity_matched', policy: null });
    });
  }

  test('a refused PUT keeps its action in the audit trail', async () => {
    const { app, auditSink } = keeperApp(nexusId(TD));
    await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(shard(1))));
    const other = shardToWire(shard(1, { value: value(50) }));
    await app.request(PATHS.keeperShards, jsonRequest('PUT', other));
    await app.request(PATHS.keeperShards, jsonRequest('PUT', '{nope'));
    assert.deepEqual(
      auditSink.events.map((event) => [event.action, event.outcome, event.errorCode]),
      [
        ['shard.contribute', 'allowed', null],
        ['shard.contribute', 'error', 'ERR_CONFLICT'],
        ['shard.contribute', 'error', 'ERR_INVALID_REQUEST'],
      ],
    );
    assert.ok(!JSON.stringify(auditSink.events).includes(encodeBase64(value(50))));
  });

  test('logs name generations and indexes, never shard bytes', async () => {
    const { app, sink } = keeperApp(nexusId(TD));
    const input = shard(1);
    await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(input)));
    await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(input)));
    await app.request(PATHS.keeperShards, jsonRequest('PUT', shardToWire(shard(1, { index: 9 }))));
    await app.request(PATHS.keeperShards);
    await app.request(PATHS.keeperPrune, jsonRequest('POST', { keepFrom: 1 }));
    const log = JSON.stringify(sink.lines);
    assert.ok(!log.includes(encodeBase64(input.value)));
    const stored = sink.lines.find((line) => line.msg === 'Stored a shard');
    assert.equal(stored?.generation, 1);
    assert.equal(stored?.index, 2);
    assert.ok(sink.lines.some((line) => line.msg === 'Shard already held'));
    assert.ok(sink.lines.some((line) => line.msg === 'Read shards'));
    assert.ok(sink.lines.some((line) => line.msg === 'Pruned generations'));
  });
});

describe('Keeper shard routes refuse bad requests before touching the holder', () => {
  const cases: ReadonlyArray<[string, string, RequestInit]> = [
    [
      'bad base64',
      PATHS.keeperShards,
      jsonRequest('PUT', { ...shardToWire(shard(1)), shard: '!!!' }),
    ],
    [
      'a short shard',
      PATHS.keeperShards,
      jsonRequest('PUT', { ...shardToWire(shard(1)), shard: encodeBase64(new Uint8Array(8)) }),
    ],
    [
      'an unknown field',
      PATHS.keeperShards,
      jsonRequest('PUT', { ...shardToWire(shard(1)), x: 1 }),
    ],
    ['malformed JSON', PATHS.keeperShards, jsonRequest('PUT', '{"generation": 1,')],
    [
      'no JSON content type',
      PATHS.keeperShards,
      { method: 'PUT', body: JSON.stringify(shardToWire(shard(1))) },
    ],
    ['a fractional keepFrom', PATHS.keeperPrune, jsonRequest('POST', { keepFrom: 1.5 })],
    [
      'no body',
      PATHS.keeperPrune,
      { method: 'POST', headers: { 'content-type': 'application/json' } },
    ],
  ];
  for (const [name, path, init] of cases) {
    test(`400 for ${name}`, async () => {
      const { app, holder } = keeperApp(nexusId(TD));
      const res = await app.request(path, init);
      assert.equal(res.status, 400);
      assert.equal(await errorCode(res), 'ERR_INVALID_REQUEST');
      assert.equal(holder.calls, 0);
    });
  }

  test('400 names the field and never echoes the shard', async () => {
    const { app } = keeperApp(nexusId(TD));
    const secret = encodeBase64(value(7).subarray(0, 30));
    const res = await app.request(
      PATHS.keeperShards,
      jsonRequest('PUT', { ...shardToWire(shard(1)), shard: secret }),
    );
    const text = await res.text();
    assert.match(text, /\\"shard\\"/);
    assert.ok(!text.includes(secret));
  });

  test('413 for a body above the limit, with or without a length header', async () => {
    const big = JSON.stringify({ keepFrom: 1, pad: 'x'.repeat(KEEPER_MAX_BODY_BYTES) });
    const { app, holder } = keeperApp(nexusId(TD));
    const withLength = await app.request(PATHS.keeperPrune, {
      ...jsonRequest('POST', big),
      headers: { 'content-type': 'application/json', 'content-length': String(big.length) },
    });
    assert.equal(withLength.status, 413);
    assert.equal(await errorCode(withLength), 'ERR_PAYLOAD_TOO_LARGE');
    const streamed = await app.request(PATHS.keeperPrune, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new Blob([big]).stream(),
      duplex: 'half',
    } as RequestInit);
    assert.equal(streamed.status, 413);
    assert.equal(await errorCode(streamed), 'ERR_PAYLOAD_TOO_LARGE');
    assert.equal(holder.calls, 0);
  });
});

describe('Keeper shard routes refuse every peer but Nexus', () => {
  const strangers: ReadonlyArray<[string, SpiffeId]> = [
    ['Pilot superuser', pilotSuperuserId(TD)],
    ['Pilot recover', pilotRecoverId(TD)],
    ['an application', parseSpiffeId('spiffe://keeper.test/apps/web')],
    ['a Keeper', keeperId(TD, '2')],
    ['Nexus of a foreign trust domain', parseSpiffeId('spiffe://other.test/spike/nexus')],
    ['a look-alike of Nexus', parseSpiffeId('spiffe://keeper.test/spike/nexus-evil')],
  ];
  for (const [who, id] of strangers) {
    for (const route of ROUTES) {
      test(`${route.name} by ${who}: 403, holder untouched, rule only in the log`, async () => {
        const { app, holder, sink, auditSink } = keeperApp(id);
        const res = await app.request(route.path, route.init());
        assert.equal(res.status, 403);
        const body = (await res.json()) as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'ERR_ACCESS_DENIED');
        assert.doesNotMatch(body.error.message, /nexus|spiffe/i);
        assert.equal(holder.calls, 0);
        const denials = sink.lines.filter((line) => line.msg === 'Access denied');
        assert.equal(denials.length, 1);
        assert.equal(denials[0]?.peer, id.toString());
        assert.match(String(denials[0]?.rule), /spike\/nexus/);
        assert.equal(auditSink.events.length, 1);
        assert.equal(auditSink.events[0]?.outcome, 'denied');
        assert.equal(auditSink.events[0]?.action, route.action);
        assert.equal(auditSink.events[0]?.peer, id.toString());
        assert.equal(auditSink.events[0]?.errorCode, 'ERR_ACCESS_DENIED');
        assert.deepEqual(auditSink.events[0]?.decision, {
          reason: 'identity_not_matched',
          policy: null,
        });
      });
    }
  }

  test('a stranger with an invalid body gets 403, not 400: authorization comes first', async () => {
    const { app, holder } = keeperApp(pilotSuperuserId(TD));
    const res = await app.request(PATHS.keeperShards, jsonRequest('PUT', '{nope'));
    assert.equal(res.status, 403);
    assert.equal(holder.calls, 0);
  });

  test('a request without a verified peer gets 401 on every route', async () => {
    for (const route of ROUTES) {
      const { app, holder } = keeperApp(undefined);
      const res = await app.request(route.path, route.init());
      assert.equal(res.status, 401);
      assert.equal(await errorCode(res), 'ERR_UNAUTHENTICATED');
      assert.equal(holder.calls, 0);
    }
  });
});
