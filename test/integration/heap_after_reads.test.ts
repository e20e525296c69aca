/**
 * No plaintext stays in Nexus's memory after the requests that carried it:
 * with the cache of sealed rows holding every path (each read twice, so each
 * is kept), a heap snapshot of the real Nexus process taken after the reads
 * (a snapshot collects garbage first) goes through the harness's leak scan,
 * which looks for every secret value written, raw, as hex and as base64. The
 * snapshot does hold the paths, which proves that it caught the cache.
 *
 * Node only: `--heapsnapshot-signal` is a Node flag; Deno runs the same code.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import type { SecretResponse } from '../../shared/api/secrets.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { currentRuntime } from '../harness/spawn.ts';

const TD_NAME = 'heap.test';
const SECRETS = 20;
const SNAPSHOT_TIMEOUT_MS = 60_000;

describe('the heap of Nexus after reads', {
  skip: currentRuntime() === 'deno' && '--heapsnapshot-signal is a Node flag',
}, () => {
  let broker: Broker;
  let snapshots: string;

  before(async () => {
    snapshots = mkdtempSync(join(tmpdir(), 'spike-heap-'));
    broker = await startBroker({
      trustDomain: TD_NAME,
      workloads: { app: '/apps/heap' },
      nexusNodeFlags: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshots}`],
    });
    const policy = await broker.call('pilot', 'PUT', `${PATHS.policies}/heap-app`, {
      spiffeIdPattern: `spiffe://${TD_NAME}/apps/heap`,
      pathPattern: 'heap/**',
      permissions: ['read', 'write'],
    });
    assert.equal(policy.status, 200, policy.text);
  });

  after(async () => {
    await broker?.stop();
    rmSync(snapshots, { recursive: true, force: true });
  });

  test('holds the cached paths and none of the values read or written', async () => {
    for (let i = 0; i < SECRETS; i++) {
      const path = `${PATHS.secretData}/heap/s${i}`;
      const value = broker.secretValue(`heap ${i}`);
      const put = await broker.call('app', 'PUT', path, { data: { password: value } });
      assert.equal(put.status, 200, put.text);
      // Read twice: the cache keeps a path from its second read.
      for (let read = 0; read < 2; read++) {
        const got = await broker.call('app', 'GET', path);
        assert.equal(got.status, 200, got.text);
        assert.equal((got.body as SecretResponse).data.password, value);
      }
    }
    broker.nexus().signal('SIGUSR2');
    const file = await snapshotWritten(snapshots);
    const heap = readFileSync(file, 'latin1');
    // The cache's keys are in the snapshot: it was taken with the cache full.
    for (let i = 0; i < SECRETS; i++) assert.ok(heap.includes(`heap/s${i}`), `no heap/s${i}`);
    // The values are searched by the harness's leak scan when the broker stops.
    broker.scan('the heap snapshot of Nexus after the reads', heap);
    broker.assertNoLeaks();
  });
});

/** The snapshot's path once Node has finished writing it (the file ends its JSON). */
async function snapshotWritten(dir: string): Promise<string> {
  const deadline = Date.now() + SNAPSHOT_TIMEOUT_MS;
  for (;;) {
    const name = readdirSync(dir).find((entry) => entry.endsWith('.heapsnapshot'));
    if (name !== undefined) {
      const file = join(dir, name);
      const size = statSync(file).size;
      if (size > 0 && readFileSync(file, 'latin1').trimEnd().endsWith('}')) return file;
    }
    assert.ok(Date.now() < deadline, `no complete heap snapshot in ${dir}`);
    await delay(100);
  }
}
