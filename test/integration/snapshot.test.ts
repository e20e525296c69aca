/**
 * Snapshots as an operator takes them (issue 16), with `spike` as a
 * subprocess against real processes over real mTLS (the embedded agent,
 * three Keepers, Nexus on a SQLite file):
 *
 * - save, write more, restore: the state is exactly the snapshot's, online,
 *   and Nexus stays ready (same root key);
 * - a damaged or truncated file is refused with ERR_SNAPSHOT_CORRUPT by
 *   Pilot and by Nexus, and changes nothing;
 * - a snapshot restored into a new broker (a new data folder, new Keepers)
 *   is refused without --force; with it Nexus seals, and the old broker's
 *   break-glass shards unseal it with the old data.
 *
 * The snapshot files sit in the broker's folder, so the leak scan reads
 * them too: they hold ciphertext only.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RecoverResponse } from '../../shared/api/operator.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { runProgram } from '../harness/spawn.ts';

interface Result {
  readonly status: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

const ROLES = {
  recover: '/spike/pilot/role/recover',
  restore: '/spike/pilot/role/restore',
};

const show = (result: Result) =>
  `status ${result.status}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;

async function spike(broker: Broker, args: readonly string[], as = 'pilot'): Promise<Result> {
  const result = await runProgram('pilot', {
    args,
    env: {
      ...broker.identityEnv(as),
      SPIKE_NEXUS_API_URL: broker.nexusUrl,
      SPIKE_PILOT_TIMEOUT: '20s',
    },
    timeoutMs: 60_000,
  });
  broker.scan(`output of spike ${args.slice(0, 3).join(' ')}`, result.stdout + result.stderr);
  return result;
}

async function ok(broker: Broker, args: readonly string[], as = 'pilot'): Promise<Result> {
  const result = await spike(broker, args, as);
  assert.equal(result.status, 0, `spike ${args.join(' ')}\n${show(result)}`);
  return result;
}

async function put(broker: Broker, path: string, data: Record<string, string>): Promise<void> {
  const reply = await broker.call('pilot', 'PUT', `${PATHS.secretData}/${path}`, { data });
  assert.equal(reply.status, 200, reply.text);
}

/** Every path with its metadata's versions and its current data, and every policy. */
async function stateOf(broker: Broker) {
  const listed = await broker.call('pilot', 'GET', `${PATHS.secretList}?prefix=&limit=1000`);
  const paths = (listed.body as { paths: string[] }).paths;
  const secrets: Record<string, unknown> = {};
  for (const path of paths) {
    const metadata = (await broker.call('pilot', 'GET', `${PATHS.secretMetadata}/${path}`))
      .body as { currentVersion: number; versions: unknown[] };
    const data = await broker.call('pilot', 'GET', `${PATHS.secretData}/${path}`);
    secrets[path] = {
      currentVersion: metadata.currentVersion,
      versions: metadata.versions,
      data: data.status === 200 ? (data.body as { data: unknown }).data : data.status,
    };
  }
  const policies = (
    (await broker.call('pilot', 'GET', PATHS.policies)).body as {
      policies: { name: string; pathPattern: string }[];
    }
  ).policies.map(({ name, pathPattern }) => ({ name, pathPattern }));
  return { secrets, policies };
}

describe('spike operator snapshot against running brokers', () => {
  let broker: Broker;
  let fresh: Broker | undefined;

  before(async () => {
    broker = await startBroker({ trustDomain: 'snapshot.test', workloads: ROLES });
  });

  after(async () => {
    await fresh?.stop();
    await broker?.stop();
  });

  test('save, write more, restore: the state is exactly the snapshot; a new broker unseals it with the old shards', async () => {
    const first = broker.secretValue('first');
    const second = broker.secretValue('second');
    const later = broker.secretValue('later');
    await put(broker, 'app/db', { password: first });
    await put(broker, 'app/db', { password: second });
    await put(broker, 'app/api', { token: broker.secretValue('token') });
    await ok(broker, [
      'policy',
      'create',
      '--name',
      'web-reads',
      '--spiffeid-pattern',
      'spiffe://snapshot.test/apps/web',
      '--path-pattern',
      'app/**',
      '--permissions',
      'read',
    ]);
    const recovered = await broker.call('recover', 'POST', PATHS.operatorRecover);
    assert.equal(recovered.status, 200, recovered.text);
    const shards = (recovered.body as RecoverResponse).shards;
    for (const shard of shards) broker.sensitive(shard);

    const file = join(broker.dir, 'first.snapshot');
    const saved = JSON.parse(
      (await ok(broker, ['operator', 'snapshot', 'save', file, '-f', 'json'])).stdout,
    );
    assert.equal(saved.backend, 'sqlite');
    assert.match(saved.sha256, /^[0-9a-f]{64}$/);
    const snapshotState = await stateOf(broker);
    await ok(broker, ['operator', 'snapshot', 'verify', file]);

    // Write more: a new version, a new path, a removed path, another policy.
    await put(broker, 'app/db', { password: later });
    await put(broker, 'app/new', { key: broker.secretValue('new') });
    const removed = await broker.call('pilot', 'DELETE', `${PATHS.secretMetadata}/app/api`);
    assert.equal(removed.status, 204);
    await ok(broker, ['policy', 'delete', 'web-reads', '--yes']);
    const changedState = await stateOf(broker);
    assert.notDeepEqual(changedState, snapshotState);

    // Damaged files change nothing: Pilot refuses them before sending, and
    // Nexus refuses them when sent as they are.
    const bytes = new Uint8Array(readFileSync(file));
    const truncated = join(broker.dir, 'truncated.snapshot');
    writeFileSync(truncated, bytes.subarray(0, bytes.byteLength - 100));
    const refused = await spike(broker, ['operator', 'snapshot', 'restore', truncated, '--yes']);
    assert.equal(refused.status, 2, show(refused));
    assert.match(refused.stderr, /truncated.*\[ERR_SNAPSHOT_CORRUPT\]/);
    const flipped = bytes.slice();
    flipped[flipped.byteLength - 5] = (flipped[flipped.byteLength - 5] ?? 0) ^ 0x01;
    for (const body of [flipped, bytes.subarray(0, bytes.byteLength - 100)]) {
      const res = await (await broker.client('pilot')).request({
        method: 'PUT',
        url: new URL(`${broker.nexusUrl}${PATHS.operatorSnapshot}`),
        headers: { 'content-type': 'application/octet-stream' },
        body,
      });
      assert.equal(res.status, 400, res.text());
      assert.equal((res.json() as { error: { code: string } }).error.code, 'ERR_SNAPSHOT_CORRUPT');
    }
    assert.deepEqual(await stateOf(broker), changedState, 'nothing changed');

    const restored = JSON.parse(
      (await ok(broker, ['operator', 'snapshot', 'restore', file, '--yes', '-f', 'json'])).stdout,
    );
    assert.equal(restored.state, 'ready');
    assert.equal(restored.sameKey, true);
    assert.deepEqual(await stateOf(broker), snapshotState, 'exactly the snapshot');
    const db = (await broker.call('pilot', 'GET', `${PATHS.secretData}/app/db`)).body as {
      data: Record<string, string>;
    };
    assert.deepEqual(db.data, { password: second });
    // Writes go on after a restore.
    await put(broker, 'app/after', { k: broker.secretValue('after') });
    const audited = broker.auditEvents().filter((event) => event.action === 'snapshot.restore');
    assert.deepEqual(
      audited.map((event) => event.outcome),
      ['error', 'error', 'allowed'],
    );

    // A new broker: its own data folder, Keepers and root key.
    fresh = await startBroker({ trustDomain: 'snapshot-fresh.test', workloads: ROLES });
    const copy = join(fresh.dir, 'first.snapshot');
    writeFileSync(copy, bytes);
    const conflict = await spike(fresh, ['operator', 'snapshot', 'restore', copy, '--yes']);
    assert.equal(conflict.status, 5, show(conflict));
    assert.match(conflict.stderr, /another root key.*\[ERR_CONFLICT\]/);
    const forced = JSON.parse(
      (await ok(fresh, ['operator', 'snapshot', 'restore', copy, '--yes', '--force', '-f', 'json']))
        .stdout,
    );
    assert.deepEqual([forced.state, forced.sameKey], ['sealed', false]);
    const sealed = await fresh.call('pilot', 'GET', `${PATHS.secretData}/app/db`);
    assert.equal(sealed.status, 503);
    // The old broker's break-glass shards, submitted by the restore role.
    const firstShard = await fresh.call('restore', 'POST', PATHS.operatorRestore, {
      shard: shards[0],
    });
    assert.equal(firstShard.status, 200, firstShard.text);
    const lastShard = await fresh.call('restore', 'POST', PATHS.operatorRestore, {
      shard: shards[2],
    });
    assert.equal((lastShard.body as { restored: boolean }).restored, true, lastShard.text);
    await fresh.waitUntilReady('the fresh broker is unsealed with the old shards');
    const old = (await fresh.call('pilot', 'GET', `${PATHS.secretData}/app/db`)).body as {
      data: Record<string, string>;
    };
    assert.deepEqual(old.data, { password: second });
    // It re-split the old key for its own Keepers: a restart recovers it from them.
    await fresh.nexus().stop();
    fresh.closeClients();
    fresh.startNexus();
    await fresh.waitUntilReady('the fresh broker recovers the old key from its Keepers');
    assert.equal(
      (await fresh.call('pilot', 'GET', `${PATHS.secretData}/app/db`)).status,
      200,
      fresh.logs(),
    );
  });

  test('secret export and import move a prefix between brokers through the API, encrypted', async () => {
    const target = fresh;
    assert.ok(target !== undefined, 'runs after the test above');
    const passphrase = join(broker.dir, 'passphrase');
    writeFileSync(passphrase, 'a passphrase for the move\n', { mode: 0o600 });
    const file = join(broker.dir, 'app.export');
    const exported = JSON.parse(
      (
        await ok(broker, [
          'secret',
          'export',
          'app/',
          file,
          '--passphrase-file',
          passphrase,
          '-f',
          'json',
        ])
      ).stdout,
    );
    assert.deepEqual([exported.encrypted, exported.secrets, exported.policies], [true, 3, 1]);
    const copy = join(target.dir, 'app.export');
    const copyPassphrase = join(target.dir, 'passphrase');
    writeFileSync(copy, readFileSync(file));
    writeFileSync(copyPassphrase, readFileSync(passphrase), { mode: 0o600 });

    const dry = JSON.parse(
      (
        await ok(target, [
          'secret',
          'import',
          copy,
          '--passphrase-file',
          copyPassphrase,
          '--dry-run',
          '-f',
          'json',
        ])
      ).stdout,
    );
    assert.deepEqual(dry.secrets, [
      { path: 'app/after', action: 'create' },
      { path: 'app/api', action: 'unchanged' },
      { path: 'app/db', action: 'unchanged' },
    ]);
    assert.equal((await target.call('pilot', 'GET', `${PATHS.secretData}/app/after`)).status, 404);
    await ok(target, ['secret', 'import', copy, '--passphrase-file', copyPassphrase]);
    const dataOf = async (b: Broker) =>
      ((await b.call('pilot', 'GET', `${PATHS.secretData}/app/after`)).body as { data: unknown })
        .data;
    assert.deepEqual(await dataOf(target), await dataOf(broker));
    // Written through the API: the target's audit trail has the write.
    const writes = target
      .auditEvents()
      .filter((event) => event.action === 'secret.write' && event.resource === 'app/after');
    assert.equal(writes.length, 1);
    assert.equal(writes[0]?.peer, target.idOf('pilot'));
  });
});
