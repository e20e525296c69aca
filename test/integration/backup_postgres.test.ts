/**
 * The PostgreSQL backup drill of docs/backup.md, with the real `pg_dump`
 * and `pg_restore` against real processes (the embedded agent, three Keepers,
 * Nexus on PostgreSQL): a dump taken while Nexus runs, more writes, then
 * `pg_restore --clean` with Nexus stopped brings back exactly the dump's
 * state; the same dump restored into a new database under a new broker
 * stays sealed until the old broker's break-glass shards unseal it.
 *
 * Skipped with the reason when `SPIKE_TEST_DATABASE_URL` is not set or the
 * PostgreSQL client programs are not installed (`scripts/postgres.sh`
 * installs both).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { RecoverResponse } from '../../shared/api/operator.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { createScratchDatabase, dropScratchDatabases, postgresSkip } from '../harness/postgres.ts';

after(dropScratchDatabases);

const ROLES = {
  recover: '/spike/pilot/role/recover',
  restore: '/spike/pilot/role/restore',
};

/** Why the drill cannot run here, or false. */
function skipReason(): string | false {
  const noDatabase = postgresSkip();
  if (noDatabase !== false) return noDatabase;
  for (const program of ['pg_dump', 'pg_restore']) {
    if (spawnSync(program, ['--version']).status !== 0) {
      return `${program} is not installed; "sudo bash scripts/postgres.sh" installs it`;
    }
  }
  return false;
}

function run(program: string, args: readonly string[]): void {
  const result = spawnSync(program, args, { encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, `${program} ${args.join(' ')}\n${result.stderr}`);
}

async function put(broker: Broker, path: string, data: Record<string, string>): Promise<void> {
  const reply = await broker.call('pilot', 'PUT', `${PATHS.secretData}/${path}`, { data });
  assert.equal(reply.status, 200, reply.text);
}

async function stateOf(broker: Broker) {
  const listed = await broker.call('pilot', 'GET', `${PATHS.secretList}?prefix=&limit=1000`);
  const secrets: Record<string, unknown> = {};
  for (const path of (listed.body as { paths: string[] }).paths) {
    const data = await broker.call('pilot', 'GET', `${PATHS.secretData}/${path}`);
    secrets[path] = data.body;
  }
  return secrets;
}

async function statusOf(broker: Broker): Promise<number | undefined> {
  try {
    return (await broker.call('pilot', 'GET', PATHS.status)).status;
  } catch {
    broker.closeClients();
    return undefined;
  }
}

describe('the PostgreSQL backup drill (pg_dump, pg_restore)', { skip: skipReason() }, () => {
  let broker: Broker | undefined;
  let fresh: Broker | undefined;

  after(async () => {
    await fresh?.stop();
    await broker?.stop();
  });

  test('dump, write more, restore: exactly the dump; a new database unseals with the old shards', async () => {
    const url = await createScratchDatabase();
    broker = await startBroker({
      trustDomain: 'backup-pg.test',
      databaseUrl: url,
      workloads: ROLES,
    });
    const b = broker;
    await put(b, 'app/db', { password: b.secretValue('one') });
    await put(b, 'app/db', { password: b.secretValue('two') });
    await put(b, 'app/api', { token: b.secretValue('token') });
    const recovered = await b.call('recover', 'POST', PATHS.operatorRecover);
    assert.equal(recovered.status, 200, recovered.text);
    const shards = (recovered.body as RecoverResponse).shards;
    for (const shard of shards) b.sensitive(shard);

    // Online: pg_dump reads one consistent snapshot of the database.
    const dump = join(b.dir, 'spike.dump');
    run('pg_dump', ['--format=custom', `--file=${dump}`, url]);
    const dumped = await stateOf(b);

    await put(b, 'app/db', { password: b.secretValue('three') });
    await put(b, 'app/new', { key: b.secretValue('new') });
    assert.notDeepEqual(await stateOf(b), dumped);

    // Offline: every Nexus on the database stopped, then the dump back.
    await b.nexus().stop();
    b.closeClients();
    run('pg_restore', [
      '--clean',
      '--if-exists',
      '--no-owner',
      '--single-transaction',
      `--dbname=${url}`,
      dump,
    ]);
    b.startNexus();
    await b.waitUntilReady('Nexus recovers the key of the restored database from its Keepers');
    assert.deepEqual(await stateOf(b), dumped, 'exactly the dump');

    // A new broker on a new database: sealed until the old shards come.
    const other = await createScratchDatabase();
    run('pg_restore', ['--no-owner', `--dbname=${other}`, dump]);
    fresh = await startBroker({
      trustDomain: 'backup-pg-fresh.test',
      databaseUrl: other,
      workloads: ROLES,
      startNexus: false,
    });
    const f = fresh;
    f.startNexus();
    const deadline = Date.now() + 30_000;
    while ((await statusOf(f)) !== 503) {
      assert.ok(Date.now() < deadline, `the new Nexus never answered sealed\n${f.logs()}`);
      await delay(50);
    }
    assert.equal((await f.call('pilot', 'GET', `${PATHS.secretData}/app/db`)).status, 503);
    await f.call('restore', 'POST', PATHS.operatorRestore, { shard: shards[1] });
    const last = await f.call('restore', 'POST', PATHS.operatorRestore, { shard: shards[2] });
    assert.equal((last.body as { restored: boolean }).restored, true, last.text);
    await f.waitUntilReady('the new broker is unsealed with the old shards');
    assert.deepEqual(await stateOf(f), dumped);
  });
});
