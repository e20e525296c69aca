/**
 * Rotation of the data key and of the root key (issue 15) with real
 * processes over real mTLS: the embedded agent, Keepers and Nexus on a real
 * SQLite file.
 *
 * - Data key: a new keyring term over many secrets (100,000 on Node; fewer
 *   on Deno, whose client is slower to seed them) while writers and readers
 *   keep going, and not one of their requests may fail. Nexus is killed with
 *   SIGKILL in the middle of the sweep; after the restart the sweep resumes
 *   and finishes, and every secret reads back what was written.
 * - Two Nexus on one PostgreSQL database: a rotation on one is taken up by
 *   the other before the new term seals anything, so each reads what the
 *   other wrote under it, and both see the sweep's end.
 * - Root key: a rotation to a new shape (threshold 4 of 5), proved by a
 *   restart that stays sealed with three Keepers and unseals with a fourth;
 *   then a rotation down to 2 of 3, proved by a restart with only Keepers
 *   1–3 up. Recovery shards exported before a rotation are reported stale.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { KeyringStatusResponse } from '../../shared/api/keyring.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { createScratchDatabase, dropScratchDatabases, postgresSkip } from '../harness/postgres.ts';
import { currentRuntime, freePort } from '../harness/spawn.ts';

const SECRETS = currentRuntime() === 'deno' ? 10_000 : 100_000;
const SEED_WORKERS = 16;

let brokers: Broker[] = [];
after(async () => {
  for (const broker of brokers) await broker.stop();
  brokers = [];
  await dropScratchDatabases();
});

async function waitUntil(
  broker: Broker,
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // Not reachable yet, or a kept-alive connection to a Nexus that is gone.
      broker.closeClients();
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting until ${what}\n${broker.logs().slice(-4000)}`);
    }
    await delay(50);
  }
}

/** Writers and readers that run until stopped, tallying every answer that is not a success. */
function startLoad(broker: Broker, seeded: number, value: (n: number) => string) {
  const failures: string[] = [];
  const latest = new Map<string, string>();
  let ops = 0;
  let running = true;
  async function writer(id: number) {
    for (let n = 1; running; n++) {
      const path = `load/w${id}`;
      const data = { v: `${value(id)}-${n}` };
      const reply = await broker.call('pilot', 'PUT', `${PATHS.secretData}/${path}`, { data });
      ops++;
      if (reply.status !== 200) failures.push(`PUT ${path}: ${reply.status} ${reply.text}`);
      else latest.set(path, data.v);
    }
  }
  async function reader(id: number) {
    for (let i = 0; running; i++) {
      const n = 1 + ((i * 7919 + id * 104_729) % seeded);
      const reply = await broker.call('pilot', 'GET', `${PATHS.secretData}/sweep/${n}`);
      ops++;
      const got = (reply.body as { data?: { v?: string } } | undefined)?.data?.v;
      if (reply.status !== 200 || got !== value(n)) {
        failures.push(`GET sweep/${n}: ${reply.status} ${reply.text.slice(0, 200)}`);
      }
    }
  }
  const workers = [writer(1), writer(2), reader(1), reader(2)];
  return {
    failures,
    latest,
    get ops() {
      return ops;
    },
    async stop() {
      running = false;
      await Promise.allSettled(workers);
    },
  };
}

async function keyring(broker: Broker): Promise<KeyringStatusResponse> {
  const reply = await broker.call('pilot', 'GET', PATHS.operatorKeyring);
  assert.equal(reply.status, 200, reply.text);
  return reply.body as KeyringStatusResponse;
}

describe('key rotation with real processes', () => {
  test(`a data-key rotation over ${SECRETS} secrets finishes under load and survives a kill -9 mid-sweep`, async () => {
    const broker = await startBroker({
      trustDomain: 'data-key-rotation.test',
      nexusEnv: {
        SPIKE_NEXUS_RATE_LIMIT_PER_SECOND: '0',
        SPIKE_NEXUS_QUOTA_PATHS: String(SECRETS + 100),
        // A gentle sweep, so the kill below lands in its middle.
        SPIKE_NEXUS_KEYRING_SWEEP_PAUSE: '10ms',
      },
    });
    brokers.push(broker);
    const mark = broker.secretValue('swept');
    const value = (n: number) => `${mark}-${n}`;

    let next = 1;
    await Promise.all(
      Array.from({ length: SEED_WORKERS }, async () => {
        for (let n = next++; n <= SECRETS; n = next++) {
          const reply = await broker.call('pilot', 'PUT', `${PATHS.secretData}/sweep/${n}`, {
            data: { v: value(n) },
          });
          assert.equal(reply.status, 200, reply.text);
        }
      }),
    );
    const before = await keyring(broker);
    assert.equal(before.activeTerm, 1);
    assert.equal(before.rowsByTerm['1'], SECRETS);

    // Rotation under load: no request may fail.
    let load = startLoad(broker, SECRETS, value);
    const rotated = await broker.call('pilot', 'POST', PATHS.operatorKeyringRotate);
    assert.equal(rotated.status, 200, rotated.text);
    assert.equal((rotated.body as { term: { term: number } }).term.term, 2);
    let midway: KeyringStatusResponse | undefined;
    await waitUntil(broker, 'the sweep is under way', async () => {
      const status = await keyring(broker);
      if (status.sweep.rewrapped > 0 && status.sweep.remaining > SECRETS / 4) midway = status;
      return midway !== undefined;
    });
    await load.stop();
    assert.deepEqual(load.failures, [], 'no request failed during the rotation');
    assert.ok(load.ops > 0);
    assert.equal(midway?.activeTerm, 2);
    assert.ok((midway?.rowsByTerm['2'] ?? 0) > 0, 'new writes and swept rows are under term 2');
    const written = new Map(load.latest);

    // Killed in the middle of the sweep.
    broker.nexus().child.kill('SIGKILL');
    await broker.nexus().exited();
    broker.closeClients();
    broker.startNexus();
    await broker.waitUntilReady('Nexus after the kill', 60_000);

    load = startLoad(broker, SECRETS, value);
    let done: KeyringStatusResponse | undefined;
    await waitUntil(
      broker,
      'the sweep has finished after the restart',
      async () => {
        const status = await keyring(broker);
        if (status.sweep.remaining === 0 && status.sweep.finishedAt !== null) done = status;
        return done !== undefined;
      },
      300_000,
    );
    await load.stop();
    assert.deepEqual(load.failures, [], 'no request failed while the sweep resumed');
    assert.deepEqual(Object.keys(done?.rowsByTerm ?? {}), ['2'], 'every row is under term 2');
    assert.equal(done?.sweep.failed, 0);
    assert.deepEqual(
      done?.terms.map((term) => term.term),
      [1, 2],
    );

    // Every secret written reads back as it was last written.
    for (const [path, v] of new Map([...written, ...load.latest])) {
      const reply = await broker.call('pilot', 'GET', `${PATHS.secretData}/${path}`);
      assert.equal(reply.status, 200, reply.text);
      assert.equal((reply.body as { data: { v: string } }).data.v, v);
    }
    const step = Math.max(1, Math.floor(SECRETS / 2_000));
    for (let n = 1; n <= SECRETS; n += step) {
      const reply = await broker.call('pilot', 'GET', `${PATHS.secretData}/sweep/${n}`);
      assert.equal(reply.status, 200, reply.text);
      assert.equal((reply.body as { data: { v: string } }).data.v, value(n));
    }
  });

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

  test('on PostgreSQL, a data-key rotation on one Nexus is taken up by the other before it seals anything', {
    skip: postgresSkip(),
  }, async () => {
    const broker = await startBroker({
      trustDomain: 'data-key-replicas.test',
      databaseUrl: await createScratchDatabase(),
      workloads: { 'nexus-2': '/spike/nexus/replica-2' },
    });
    brokers.push(broker);
    const otherPort = await freePort();
    const replica = broker.startNexus({}, { identity: 'nexus-2', port: otherPort });
    try {
      await broker.waitUntilReady('the replica', 60_000, { port: otherPort });
      const on = (port: number) => ({ port });
      const mark = broker.secretValue('replicated');
      for (let n = 1; n <= 50; n++) {
        const reply = await broker.call('pilot', 'PUT', `${PATHS.secretData}/rep/${n}`, {
          data: { v: `${mark}-${n}` },
        });
        assert.equal(reply.status, 200, reply.text);
      }
      const rotated = await broker.call('pilot', 'POST', PATHS.operatorKeyringRotate);
      assert.equal(rotated.status, 200, rotated.text);
      const term = (rotated.body as { term: { term: number; activeFrom: string } }).term;
      assert.equal(term.term, 2);
      // Not active at once: the other Nexus has its Keeper checks to take it up.
      assert.ok(Date.parse(term.activeFrom) > Date.now() - 100);
      await waitUntil(broker, 'the replica holds term 2', async () => {
        const reply = await broker.call('pilot', 'GET', PATHS.operatorKeyring, undefined, {
          port: otherPort,
        });
        const status = reply.body as KeyringStatusResponse;
        return status.terms.some((t) => t.term === 2);
      });
      await delay(Math.max(0, Date.parse(term.activeFrom) - Date.now()) + 100);
      // Each writes under term 2 now, and each reads the other's rows.
      for (const [writer, reader] of [
        [broker.nexusPort, otherPort],
        [otherPort, broker.nexusPort],
      ] as const) {
        const path = `${PATHS.secretData}/rep/after-${writer}`;
        const put = await broker.call('pilot', 'PUT', path, { data: { v: mark } }, on(writer));
        assert.equal(put.status, 200, put.text);
        const got = await broker.call('pilot', 'GET', path, undefined, on(reader));
        assert.equal(got.status, 200, got.text);
        assert.equal((got.body as { data: { v: string } }).data.v, mark);
      }
      for (const port of [broker.nexusPort, otherPort]) {
        await waitUntil(broker, `the sweep is done as seen from port ${port}`, async () => {
          const reply = await broker.call('pilot', 'GET', PATHS.operatorKeyring, undefined, {
            port,
          });
          const status = reply.body as KeyringStatusResponse;
          return status.activeTerm === 2 && status.sweep.remaining === 0;
        });
        const reply = await broker.call('pilot', 'GET', `${PATHS.secretData}/rep/7`, undefined, {
          port,
        });
        assert.equal((reply.body as { data: { v: string } }).data.v, `${mark}-7`);
      }
    } finally {
      await replica.stop();
    }
  });
});
