/**
 * Rotation of the data key (issue 15) with real processes over real mTLS:
 * the embedded agent, Keepers and Nexus on a real SQLite file. A new keyring
 * term over many secrets (100,000 on Node; fewer on Deno, whose client is
 * slower to seed them) while writers and readers keep going, and not one of
 * their requests may fail. Nexus is killed with SIGKILL in the middle of the
 * sweep; after the restart the sweep resumes and finishes, and every secret
 * reads back what was written.
 *
 * The root key's rotation to a new shape is in root_key_shape.test.ts, and
 * the data key's across two Nexus in data_key_replicas.test.ts: each file
 * has the test runner's time budget to itself.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { KeyringStatusResponse } from '../../shared/api/keyring.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { waitUntilBroker } from '../harness/broker_wait.ts';
import { currentRuntime } from '../harness/spawn.ts';

const SECRETS = currentRuntime() === 'deno' ? 10_000 : 100_000;
const SEED_WORKERS = 16;

let brokers: Broker[] = [];
after(async () => {
  for (const broker of brokers) await broker.stop();
  brokers = [];
});

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
    await waitUntilBroker(broker, 'the sweep is under way', async () => {
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
    await waitUntilBroker(
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
});
