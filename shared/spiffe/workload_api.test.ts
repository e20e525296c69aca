import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  type FakeWorkloadApi,
  rawBundleMap,
  rawSvid,
  startFakeWorkloadApi,
  waitUntil,
} from '../../test/harness/fake_workload_api.ts';
import { createTestCa, type TestCa, type TestSvid } from '../../test/harness/pki.ts';
import { WorkloadApiRejectedError, WorkloadApiUnavailableError } from '../errors/errors.ts';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { delay } from '../runtime/delay.ts';
import { createWorkloadApiClient, type WorkloadApiClient } from './workload_api.ts';
import type { X509BundlesUpdate, X509SvidUpdate } from './workload_messages.ts';
import { FETCH_X509_SVID_PATH } from './workload_proto.ts';

const UNIT_MS = 20;

let ca: TestCa;
let federatedCa: TestCa;
let svidA: TestSvid;
let svidB: TestSvid;
let svidOther: TestSvid;

before(async () => {
  ca = await createTestCa('example.org');
  federatedCa = await createTestCa('partner.test');
  svidA = await ca.issueSvid('spiffe://example.org/spike/nexus');
  svidB = await ca.issueSvid('spiffe://example.org/spike/nexus');
  svidOther = await ca.issueSvid('spiffe://example.org/spike/keeper/1');
});

interface Harness {
  fake: FakeWorkloadApi;
  client: WorkloadApiClient;
  sink: ReturnType<typeof createMemorySink>;
}

const open: Harness[] = [];

async function setup(options: { backoffUnitMs?: number } = {}): Promise<Harness> {
  const fake = await startFakeWorkloadApi();
  const sink = createMemorySink();
  const client = createWorkloadApiClient({
    address: fake.address,
    logger: createLogger({ component: 'test', level: 'debug', sink }),
    backoffUnitMs: options.backoffUnitMs ?? UNIT_MS,
  });
  const harness = { fake, client, sink };
  open.push(harness);
  return harness;
}

afterEach(async () => {
  for (const harness of open.splice(0)) {
    harness.client.close();
    await harness.fake.close();
  }
});

function serialOf(update: X509SvidUpdate, index = 0): string {
  const svid = update.svids[index];
  assert.ok(svid !== undefined);
  return Buffer.from(svid.chain[0] ?? []).toString('hex');
}

function serialOfTest(svid: TestSvid): string {
  return Buffer.from(svid.chain[0] ?? []).toString('hex');
}

function errorLines(sink: ReturnType<typeof createMemorySink>, message: RegExp) {
  return sink.lines.filter((line) => line.level === 'error' && message.test(String(line.msg)));
}

describe('WorkloadApiClient.watchX509Svids()', () => {
  test('delivers the first SVID with its own bundle and federated bundles, header set', async () => {
    const { fake, client } = await setup();
    fake.setX509SvidResponse({
      svids: [rawSvid(svidA, ca)],
      federated_bundles: rawBundleMap(federatedCa),
    });
    const updates: X509SvidUpdate[] = [];
    client.watchX509Svids({ onUpdate: (update) => updates.push(update) });
    await waitUntil(() => updates.length === 1, 5000, 'the first SVID');
    const [update] = updates;
    assert.ok(update !== undefined);
    assert.equal(update.svids[0]?.id.toString(), 'spiffe://example.org/spike/nexus');
    assert.equal(serialOf(update), serialOfTest(svidA));
    assert.deepEqual(
      update.bundles
        .all()
        .map((b) => b.trustDomain.name)
        .sort(),
      ['example.org', 'partner.test'],
    );
    const calls = fake.callsOf('FetchX509SVID');
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]?.header, ['true']);
    assert.equal(calls[0]?.accepted, true);
  });

  test('observes a pushed rotation on the same stream', async () => {
    const { fake, client } = await setup();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const updates: X509SvidUpdate[] = [];
    client.watchX509Svids({ onUpdate: (update) => updates.push(update) });
    await waitUntil(() => updates.length === 1);
    fake.setX509SvidResponse({ svids: [rawSvid(svidB, ca)] });
    await waitUntil(() => updates.length === 2, 5000, 'the rotation');
    assert.deepEqual(
      updates.map((u) => serialOf(u)),
      [serialOfTest(svidA), serialOfTest(svidB)],
    );
    assert.equal(fake.callsOf('FetchX509SVID').length, 1, 'no reconnect was needed');
  });

  test('discards malformed updates and keeps going (barrier update)', async () => {
    const { fake, client, sink } = await setup();
    const good = rawSvid(svidA, ca);
    fake.setX509SvidResponse({ svids: [good] });
    const updates: X509SvidUpdate[] = [];
    client.watchX509Svids({ onUpdate: (update) => updates.push(update) });
    // Positive control first.
    await waitUntil(() => updates.length === 1);
    const bad: Array<[string, unknown]> = [
      ['no svids', { svids: [] }],
      ['no spiffe_id', { svids: [{ ...good, spiffe_id: '' }] }],
      ['no x509_svid', { svids: [{ ...good, x509_svid: new Uint8Array(0) }] }],
      ['no key', { svids: [{ ...good, x509_svid_key: new Uint8Array(0) }] }],
      ['no bundle', { svids: [{ ...good, bundle: new Uint8Array(0) }] }],
      ['garbage chain', { svids: [{ ...good, x509_svid: new Uint8Array([0x30, 0x03, 1, 2, 3]) }] }],
      ['garbage bundle', { svids: [{ ...good, bundle: new Uint8Array([1, 2, 3]) }] }],
      ['invalid spiffe_id', { svids: [{ ...good, spiffe_id: 'spiffe://EXAMPLE.org/x' }] }],
      ['spiffe_id of another workload', { svids: [{ ...good, spiffe_id: svidOther.spiffeId }] }],
      ['key of another SVID', { svids: [{ ...good, x509_svid_key: svidB.privateKeyPkcs8 }] }],
      [
        'bad federated key',
        { svids: [good], federated_bundles: { 'partner.test': federatedCa.root.der } },
      ],
      [
        'federated key with a path',
        { svids: [good], federated_bundles: { 'spiffe://partner.test/x': federatedCa.root.der } },
      ],
      ['federated own trust domain', { svids: [good], federated_bundles: rawBundleMap(ca) }],
      ['undecodable bytes', new Uint8Array([0x0a, 0xff, 0xff])],
    ];
    for (const [, raw] of bad) {
      fake.setX509SvidResponse(raw as never);
    }
    // Barrier: a good update B; once B is seen, every bad one was processed.
    fake.setX509SvidResponse({ svids: [rawSvid(svidB, ca)] });
    await waitUntil(() => updates.length >= 2, 5000, 'the barrier update');
    assert.deepEqual(
      updates.map((u) => serialOf(u)),
      [serialOfTest(svidA), serialOfTest(svidB)],
      'no malformed update was ever delivered',
    );
    assert.equal(errorLines(sink, /malformed/).length, bad.length);
    assert.equal(fake.callsOf('FetchX509SVID').length, 1, 'the stream survived');
  });

  test('reconnects when the server ends the stream', async () => {
    const { fake, client } = await setup();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const updates: X509SvidUpdate[] = [];
    const errors: WorkloadApiUnavailableError[] = [];
    client.watchX509Svids({
      onUpdate: (update) => updates.push(update),
      onError: (error) => errors.push(error),
    });
    await waitUntil(() => updates.length === 1);
    fake.endStreams();
    await fake.waitForCalls('FetchX509SVID', 2);
    await waitUntil(() => updates.length === 2, 5000, 'the resent state');
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof WorkloadApiUnavailableError);
  });

  test('reconnects after the server restarts', async () => {
    const { fake, client } = await setup();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const updates: X509SvidUpdate[] = [];
    client.watchX509Svids({ onUpdate: (update) => updates.push(update) });
    await waitUntil(() => updates.length === 1);
    await fake.stop();
    // Let the client notice and fail at least one reconnect while it is down.
    await waitUntil(() => fake.callsOf('FetchX509SVID').length === 1, 1000);
    await delay(UNIT_MS * 5);
    fake.setX509SvidResponse({ svids: [rawSvid(svidB, ca)] });
    await fake.start();
    await waitUntil(() => updates.length === 2, 10_000, 'the update after the restart');
    assert.equal(serialOf(updates[1] as X509SvidUpdate), serialOfTest(svidB));
    assert.ok(fake.callsOf('FetchX509SVID').length >= 2);
  });

  test('PermissionDenied reports a redaction and keeps retrying', async () => {
    const { fake, client } = await setup();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const updates: X509SvidUpdate[] = [];
    const redactions: WorkloadApiUnavailableError[] = [];
    client.watchX509Svids({
      onUpdate: (update) => updates.push(update),
      onRedacted: (error) => redactions.push(error),
    });
    await waitUntil(() => updates.length === 1);
    fake.sendError(grpc.status.PERMISSION_DENIED, { persist: true, details: 'no identity' });
    await fake.waitForCalls('FetchX509SVID', 3);
    assert.ok(redactions.length >= 2);
    assert.match(redactions[0]?.message ?? '', /no identity/);
    fake.clearError();
    await waitUntil(() => updates.length === 2, 5000, 'the identity after it was granted again');
  });

  test('backs off linearly while the server is unavailable', async () => {
    const unit = 40;
    const { fake, client } = await setup({ backoffUnitMs: unit });
    fake.sendError(grpc.status.UNAVAILABLE, { persist: true });
    client.watchX509Svids({ onUpdate: () => {} });
    await fake.waitForCalls('FetchX509SVID', 5, 10_000);
    const times = fake.callsOf('FetchX509SVID').map((call) => call.at);
    for (let i = 1; i < 5; i++) {
      const gap = (times[i] as number) - (times[i - 1] as number);
      // Timers never fire early; allow a little clock granularity.
      assert.ok(gap >= i * unit - 5, `retry ${i} waited ${gap} ms, expected about ${i * unit}`);
    }
  });

  test('resets the backoff after a good message', async () => {
    const unit = 200;
    const { fake, client } = await setup({ backoffUnitMs: unit });
    fake.sendError(grpc.status.UNAVAILABLE, { persist: true });
    const updates: X509SvidUpdate[] = [];
    client.watchX509Svids({ onUpdate: (update) => updates.push(update) });
    // Two failures: the next retry would wait 3 units, then 4, without a reset.
    await fake.waitForCalls('FetchX509SVID', 2, 10_000);
    fake.clearError();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    await waitUntil(() => updates.length === 1, 10_000);
    const count = fake.callsOf('FetchX509SVID').length;
    const failedAt = Date.now();
    fake.sendError(grpc.status.UNAVAILABLE);
    await fake.waitForCalls('FetchX509SVID', count + 1, 10_000);
    const gap = (fake.callsOf('FetchX509SVID')[count]?.at ?? 0) - failedAt;
    assert.ok(gap >= unit - 5, `waited ${gap} ms, expected one unit`);
    assert.ok(gap < 3 * unit, `waited ${gap} ms: the backoff was not reset`);
  });
});

describe('WorkloadApiClient: final errors', () => {
  test('the fake refuses a call without the security header with InvalidArgument', async () => {
    const { fake } = await setup();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const raw = new grpc.Client(fake.grpcTarget, grpc.credentials.createInsecure());
    try {
      const status = await new Promise<grpc.StatusObject>((resolve) => {
        const call = raw.makeServerStreamRequest(
          FETCH_X509_SVID_PATH,
          () => Buffer.alloc(0),
          (bytes: Buffer) => bytes,
          {},
          new grpc.Metadata(),
          {},
        );
        call.on('data', () => {});
        call.on('error', () => {});
        call.on('status', resolve);
      });
      assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(status.details, 'security header missing from request');
    } finally {
      raw.close();
    }
    const [call] = fake.callsOf('FetchX509SVID');
    assert.deepEqual(call?.header, []);
    assert.equal(call?.accepted, false);
  });

  for (const code of [grpc.status.INVALID_ARGUMENT, grpc.status.UNIMPLEMENTED]) {
    test(`does not retry after ${grpc.status[code]}`, async () => {
      const { fake, client, sink } = await setup();
      // Positive control: a retryable error is retried.
      fake.sendError(grpc.status.UNAVAILABLE, { persist: true, rpc: 'FetchX509Bundles' });
      client.watchX509Bundles({ onUpdate: () => {} });
      fake.sendError(code, { persist: true, rpc: 'FetchX509SVID' });
      const rejections: WorkloadApiRejectedError[] = [];
      client.watchX509Svids({
        onUpdate: () => assert.fail('no update expected'),
        onRejected: (error) => rejections.push(error),
      });
      await waitUntil(() => rejections.length === 1, 5000, 'the rejection');
      await fake.waitForCalls('FetchX509Bundles', 4, 5000);
      // Twenty backoff units later there is still exactly one call.
      await delay(UNIT_MS * 20);
      assert.equal(fake.callsOf('FetchX509SVID').length, 1);
      assert.ok(rejections[0] instanceof WorkloadApiRejectedError);
      assert.equal(rejections[0].code, 'ERR_WORKLOAD_API_REJECTED');
      assert.match(rejections[0].message, new RegExp(grpc.status[code] as string));
      assert.equal(errorLines(sink, /rejected/).length, 1);
    });
  }
});

describe('WorkloadApiClient when it cannot connect', () => {
  test('says why in words and names the address: no socket there, or nothing listening', async () => {
    for (const [where, reason] of [
      [
        `unix://${join(tmpdir(), 'spike-no-such-dir', 'agent.sock')}`,
        /: the socket does not exist$/,
      ],
      ['tcp://127.0.0.1:1', /: nothing listens on it$/],
    ] as const) {
      const client = createWorkloadApiClient({
        address: where,
        logger: createLogger({ component: 'test', sink: createMemorySink() }),
        backoffUnitMs: UNIT_MS,
      });
      try {
        const errors: WorkloadApiUnavailableError[] = [];
        client.watchX509Svids({ onUpdate: () => {}, onError: (error) => errors.push(error) });
        await waitUntil(() => errors.length >= 1, 5000, 'the first failure');
        assert.ok(errors[0] instanceof WorkloadApiUnavailableError);
        assert.ok(
          errors[0].message.startsWith(`Cannot connect to the Workload API at ${where}: `),
          errors[0].message,
        );
        assert.match(errors[0].message, reason);
      } finally {
        client.close();
      }
    }
  });

  test('does not retry when the runtime refuses the socket (Deno without --allow-write)', async () => {
    const { fake, client } = await setup();
    // What grpc-js reports when Deno denies the connect() to the socket.
    const details =
      'No connection established. Last error: NotCapable: Requires write access to "/x/agent.sock", run again with the --allow-write flag. Resolution note: ';
    fake.sendError(grpc.status.UNAVAILABLE, { persist: true, details, rpc: 'FetchX509SVID' });
    const rejections: WorkloadApiRejectedError[] = [];
    client.watchX509Svids({
      onUpdate: () => assert.fail('no update expected'),
      onRejected: (error) => rejections.push(error),
    });
    await waitUntil(() => rejections.length === 1, 5000, 'the rejection');
    await delay(UNIT_MS * 20);
    assert.equal(fake.callsOf('FetchX509SVID').length, 1);
    assert.ok(rejections[0] instanceof WorkloadApiRejectedError);
    assert.equal(
      rejections[0].message,
      `The runtime does not allow connecting to the Workload API at ${fake.address}: Requires write access to "/x/agent.sock", run again with the --allow-write flag; not retrying`,
    );
  });
});

describe('WorkloadApiClient.watchX509Bundles()', () => {
  test('delivers bundles keyed by trust domain', async () => {
    const { fake, client } = await setup();
    fake.setX509Bundles({ bundles: rawBundleMap(ca, federatedCa) });
    const updates: X509BundlesUpdate[] = [];
    client.watchX509Bundles({ onUpdate: (update) => updates.push(update) });
    await waitUntil(() => updates.length === 1);
    const bundles = updates[0]?.bundles;
    assert.ok(bundles !== undefined);
    assert.equal(bundles.size, 2);
    assert.ok(bundles.get(ca.trustDomain)?.equals(ca.bundle()));
    assert.ok(bundles.get(federatedCa.trustDomain)?.equals(federatedCa.bundle()));
    assert.deepEqual(fake.callsOf('FetchX509Bundles')[0]?.header, ['true']);
  });

  test('discards a malformed bundles message and keeps the stream (barrier update)', async () => {
    const { fake, client, sink } = await setup();
    fake.setX509Bundles({ bundles: rawBundleMap(ca) });
    const updates: X509BundlesUpdate[] = [];
    client.watchX509Bundles({ onUpdate: (update) => updates.push(update) });
    await waitUntil(() => updates.length === 1);
    fake.setX509Bundles({}); // an empty bundle map is malformed
    fake.setX509Bundles({ bundles: { 'spiffe://partner.test/x': federatedCa.root.der } });
    fake.setX509Bundles({ bundles: rawBundleMap(ca, federatedCa) }); // barrier
    await waitUntil(() => updates.length >= 2);
    assert.equal(updates.length, 2);
    assert.equal(updates[1]?.bundles.size, 2);
    assert.ok(updates[1]?.bundles.get(ca.trustDomain)?.equals(ca.bundle()));
    const errors = errorLines(sink, /malformed/);
    assert.equal(errors.length, 2);
    assert.match(String(errors[0]?.error), /is empty/);
    assert.match(String(errors[1]?.error), /must be a trust domain ID/);
    assert.equal(fake.callsOf('FetchX509Bundles').length, 1, 'the stream survived');
  });
});

after(() => {
  assert.equal(open.length, 0);
});
