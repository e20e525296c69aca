/**
 * Rotation of the root key (issue 15) with real processes: a rotation to a
 * new shape (threshold 4 of 5), proved by a restart that stays sealed with
 * three Keepers and unseals with a fourth; then a rotation down to 2 of 3,
 * proved by a restart with only Keepers 1–3 up. Recovery shards exported
 * before a rotation are reported stale.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import { type Broker, startBroker } from '../harness/broker.ts';

let brokers: Broker[] = [];
after(async () => {
  for (const broker of brokers) await broker.stop();
  brokers = [];
});

describe('root-key rotation with real processes', () => {
  test('a root-key rotation to a new shape holds across restarts, and stales older recovery shards', async () => {
    const broker = await startBroker({
      trustDomain: 'root-key-rotation.test',
      keepers: 5,
      workloads: { recover: '/spike/pilot/role/recover' },
      nexusEnv: { SPIKE_NEXUS_SHAMIR_SHARES: '5', SPIKE_NEXUS_SHAMIR_THRESHOLD: '3' },
    });
    brokers.push(broker);
    const secret = broker.secretValue('before-the-rotations');
    const put = await broker.call('pilot', 'PUT', `${PATHS.secretData}/keep/me`, {
      data: { v: secret },
    });
    assert.equal(put.status, 200, put.text);
    const recovered = await broker.call('recover', 'POST', PATHS.operatorRecover);
    assert.equal(recovered.status, 200, recovered.text);
    for (const shard of (recovered.body as { shards: string[] }).shards) broker.sensitive(shard);

    const rotate = async (body: unknown) => {
      const reply = await broker.call('pilot', 'POST', PATHS.operatorRootKeyRotate, body);
      assert.equal(reply.status, 200, reply.text);
      return reply.body as { generation: number; shares: number; threshold: number };
    };
    const readSecret = async () => {
      const reply = await broker.call('pilot', 'GET', `${PATHS.secretData}/keep/me`);
      assert.equal(reply.status, 200, reply.text);
      assert.equal((reply.body as { data: { v: string } }).data.v, secret);
    };
    const restartNexus = async () => {
      await broker.nexus().stop();
      broker.closeClients();
      return broker.startNexus();
    };
    const isReady = async () => (await broker.call('pilot', 'GET', PATHS.status)).status === 200;

    // 4 of 5: three Keepers are not enough after a restart, four are.
    const four = await rotate({ threshold: 4 });
    assert.equal(four.shares, 5);
    assert.equal(four.threshold, 4);
    const status = await broker.call('pilot', 'GET', PATHS.status);
    const rootKey = (status.body as { rootKey?: Record<string, unknown> }).rootKey;
    assert.equal(rootKey?.threshold, 4);
    assert.equal(
      (rootKey?.lastRecoveryExport as { stale?: boolean } | undefined)?.stale,
      true,
      JSON.stringify(rootKey),
    );
    broker.keeper(3).pause();
    broker.keeper(4).pause();
    const nexus = await restartNexus();
    await nexus.waitFor(/Still sealed/, 30_000);
    assert.equal(await isReady().catch(() => false), false, 'sealed with three of five');
    broker.keeper(3).resume();
    await broker.waitUntilReady('Nexus with four Keepers', 60_000);
    await readSecret();
    broker.keeper(4).resume();

    // Down to 2 of 3: Keepers 1–3 alone bring it back.
    const small = await rotate({ shares: 3, threshold: 2 });
    assert.equal(small.shares, 3);
    assert.equal(small.threshold, 2);
    assert.ok(small.generation > four.generation);
    for (const i of [1, 2, 3, 4]) broker.keeper(i).pause();
    const restarted = await restartNexus();
    await restarted.waitFor(/Still sealed/, 30_000);
    assert.equal(await isReady().catch(() => false), false, 'sealed with one of three');
    broker.keeper(1).resume();
    await broker.waitUntilReady('Nexus with two of Keepers 1 to 3', 60_000);
    await readSecret();
    for (const i of [2, 3, 4]) broker.keeper(i).resume();
  });
});
