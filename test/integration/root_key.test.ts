/**
 * The root key with real processes over real mTLS: the embedded agent, three
 * Keepers and Nexus on a real SQLite file. Nexus initialises, recovers by
 * itself after a restart, re-supplies Keepers that restart, and after a total
 * loss comes back only through break-glass recover/restore. The harness's
 * leak scan checks every output, file and error body for the secret value
 * and the recovered shard texts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RecoverResponse, RestoreResponse } from '../../shared/api/operator.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { isKeeper } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { waitUntilBroker } from '../harness/broker_wait.ts';
import { shardNeedles } from '../harness/leak_scan.ts';
import { freePort, type RunningProgram } from '../harness/spawn.ts';

const TD_NAME = 'root-key.test';

describe('root key across restarts, with real processes', () => {
  let broker: Broker;
  let nexus: RunningProgram | undefined;
  /** Nexus's own identity towards the Keepers (the harness's clients talk to Nexus). */
  let toKeepers: MtlsClient | undefined;
  let beforeDisaster: { password: string };

  const keeperUrls = () => broker.keeperPorts.map((port) => `https://127.0.0.1:${port}`);
  const keeper = (i: number) => broker.keeper(i);
  const startKeeper = async (i: number) => {
    await broker.startKeeper(i);
  };
  /** Nexus as the harness starts it (audit on stdout, see before()), or a replica. */
  const startNexus = (options: { identity?: string; port?: number } = {}) =>
    broker.startNexus({}, options);

  async function status(port = broker.nexusPort) {
    const reply = await broker.call('pilot', 'GET', '/v1/status', undefined, { port });
    return { status: reply.status, state: (reply.body as { state?: string }).state };
  }

  const waitUntil = (what: string, check: () => Promise<boolean>, timeoutMs = 20_000) =>
    waitUntilBroker(broker, what, check, timeoutMs);

  const isReady = async (port = broker.nexusPort) => (await status(port)).status === 200;

  async function generationsOf(i: number): Promise<number[]> {
    if (toKeepers === undefined) {
      toKeepers = new MtlsClient({
        source: await broker.source('nexus'),
        authorizeServer: isKeeper(broker.trustDomain),
        timeoutMs: 3_000,
      });
    }
    const res = await toKeepers.request({
      method: 'GET',
      url: new URL(`${keeperUrls()[i]}/v1/shards/generations`),
    });
    return (res.json() as { generations: number[] }).generations;
  }

  async function operator(name: 'pilot' | 'recover' | 'restore', path: string, body?: unknown) {
    const reply = await broker.call(name, 'POST', path, body);
    return { status: reply.status, body: reply.body as Record<string, unknown> };
  }

  before(async () => {
    broker = await startBroker({
      trustDomain: TD_NAME,
      workloads: {
        'nexus-2': '/spike/nexus/replica-2',
        recover: '/spike/pilot/role/recover',
        restore: '/spike/pilot/role/restore',
      },
      // The audit trail on stdout, its default, as the last test expects.
      nexusEnv: { SPIKE_NEXUS_AUDIT_LOG: '-' },
      startNexus: false,
    });
    beforeDisaster = { password: broker.secretValue('written-before-the-disaster') };
  });

  after(async () => {
    toKeepers?.close();
    await broker?.stop();
  });

  test('two Nexus starting at once on an empty store initialise exactly once', async () => {
    const otherPort = await freePort();
    nexus = startNexus();
    const second = startNexus({ identity: 'nexus-2', port: otherPort });
    await waitUntil('both are ready', async () => (await isReady()) && (await isReady(otherPort)));
    const initialised = [nexus, second].filter((p) =>
      p.stderr().includes('Initialising a new root key'),
    );
    assert.equal(initialised.length, 1, 'exactly one initialises');
    await second.stop();
    for (const i of [0, 1, 2]) {
      assert.ok((await generationsOf(i)).length > 0, `keeper-${i + 1} holds a shard`);
    }
  });

  test('a restarted Nexus is sealed (503) until it recovers the key from the Keepers by itself', async () => {
    // Pause two Keepers so that one shard is not enough, then restart Nexus.
    keeper(0).pause();
    keeper(1).pause();
    await nexus?.stop();
    nexus = startNexus();
    await waitUntil('Nexus answers sealed', async () => (await status()).status === 503);
    assert.equal((await status()).state, 'sealed');
    keeper(0).resume();
    keeper(1).resume();
    await waitUntil('Nexus is ready again', () => isReady());
    assert.match(nexus.stderr(), /Recovered the root key from the Keepers/);
  });

  test('a Keeper that restarts is re-supplied within seconds', async () => {
    await keeper(2).stop();
    await startKeeper(2);
    assert.deepEqual(await generationsOf(2), []);
    await waitUntil(
      'keeper-3 holds a shard again',
      async () => (await generationsOf(2)).length > 0,
      10_000,
    );
  });

  test('all Keepers restarted while Nexus runs are all re-supplied', async () => {
    await Promise.all([0, 1, 2].map((i) => keeper(i).stop()));
    await Promise.all([0, 1, 2].map(startKeeper));
    await waitUntil(
      'every Keeper holds a shard again',
      async () => (await Promise.all([0, 1, 2].map(generationsOf))).every((g) => g.length > 0),
      10_000,
    );
  });

  test('only the recover role may export shards; a superuser may not', async () => {
    assert.equal((await operator('pilot', '/v1/operator/recover')).status, 403);
    assert.equal((await operator('restore', '/v1/operator/recover')).status, 403);
    const shard = 'spike-shard:v1:1:1:2:AAAA:00000000';
    assert.equal((await operator('pilot', '/v1/operator/restore', { shard })).status, 403);
    assert.equal((await operator('recover', '/v1/operator/restore', { shard })).status, 403);
  });

  async function secretRequest(method: string, path: string, body?: unknown) {
    const reply = await broker.call('pilot', method, `/v1/secrets/data/${path}`, body);
    return { status: reply.status, body: reply.body as Record<string, unknown> };
  }

  test('after Nexus and every Keeper are lost, only break-glass restore brings the key back', async () => {
    const written = await secretRequest('PUT', 'app/before-disaster', {
      data: beforeDisaster,
    });
    assert.equal(written.status, 200);
    const recovered = await operator('recover', '/v1/operator/recover');
    assert.equal(recovered.status, 200);
    const split = recovered.body as unknown as RecoverResponse;
    for (const needle of split.shards.flatMap(shardNeedles)) broker.sensitive(needle);
    assert.equal(split.shards.length, 3);
    assert.equal(split.threshold, 2);
    // Restore is refused while Nexus is unsealed.
    const early = await operator('restore', '/v1/operator/restore', { shard: split.shards[0] });
    assert.equal(early.status, 409);
    assert.equal((early.body.error as { code: string }).code, 'ERR_ALREADY_UNSEALED');

    await nexus?.stop();
    await Promise.all([0, 1, 2].map((i) => keeper(i).stop()));
    await Promise.all([0, 1, 2].map(startKeeper));
    nexus = startNexus();
    await waitUntil('Nexus answers sealed', async () => (await status()).status === 503);
    // Sealed for good: the Keepers are empty.
    await delay(1500);
    assert.equal((await status()).state, 'sealed');

    const first = await operator('restore', '/v1/operator/restore', { shard: split.shards[0] });
    assert.equal(first.status, 200);
    assert.deepEqual(pick(first.body as unknown as RestoreResponse), {
      collected: 1,
      remaining: 1,
      restored: false,
    });
    const again = await operator('restore', '/v1/operator/restore', { shard: split.shards[0] });
    assert.deepEqual(pick(again.body as unknown as RestoreResponse), {
      collected: 1,
      remaining: 1,
      restored: false,
    });
    const bad = await operator('restore', '/v1/operator/restore', { shard: 'not a shard' });
    assert.equal(bad.status, 400);
    const second = await operator('restore', '/v1/operator/restore', { shard: split.shards[2] });
    assert.equal(second.status, 200);
    assert.equal((second.body as unknown as RestoreResponse).restored, true);
    await waitUntil('Nexus is ready', () => isReady());
    // The secret written before the disaster is readable again.
    const read = await secretRequest('GET', 'app/before-disaster');
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.data, beforeDisaster);
    await waitUntil(
      'every Keeper holds a shard again',
      async () => (await Promise.all([0, 1, 2].map(generationsOf))).every((g) => g.length > 0),
      10_000,
    );
    // The key is the one from before: a restarted Nexus recovers it from the
    // re-supplied Keepers and it opens the same sealed keyring.
    await nexus.stop();
    nexus = startNexus();
    await waitUntil('Nexus is ready after one more restart', () => isReady());
    const afterRestart = await secretRequest('GET', 'app/before-disaster');
    assert.deepEqual(afterRestart.body.data, beforeDisaster);
  });

  test('no process logged shard bytes', () => {
    const logs = broker.logs();
    assert.doesNotMatch(logs, /spike-shard:v1/);
    assert.doesNotMatch(logs, /"shard":"/);
    // The audit trail (stdout by default) records the request, never the value.
    assert.match(nexus?.stdout() ?? '', /"action":"secret.read"/);
    assert.doesNotMatch(logs, /written-before-the-disaster/);
    // The harness's leak scan, at stop(), also checks the files and error
    // bodies for the value and for every shard text that recover returned.
  });
});

function pick(progress: RestoreResponse) {
  return {
    collected: progress.collected,
    remaining: progress.remaining,
    restored: progress.restored,
  };
}
