/**
 * `spike` as a user runs it: a subprocess (on the runtime of this test)
 * against real processes over real mTLS (the embedded agent, three Keepers
 * and Nexus on SQLite). Checks output, `--format json` fields, and the exit
 * status of every failure: access denied (an app identity), not found,
 * Nexus unreachable, invalid input. The harness's leak scan checks every
 * output, file and error body, and every `spike` run's output (but the
 * standard output of `secret get`), for the password and the shard texts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { VERSION } from '../../shared/api/version.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { shardNeedles } from '../harness/leak_scan.ts';
import { freePort, runProgram } from '../harness/spawn.ts';

const TD_NAME = 'pilot.test';
const WEB_ID = `spiffe://${TD_NAME}/apps/web`;
/** Commands whose standard output is a secret value by design. */
const REVEALING_COMMANDS_REGEXP = /^secret get$/;
const SHARD_REGEXP = /spike-shard:v1:[^\s"]+/g;

interface Result {
  readonly status: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

describe('spike CLI against a running broker', () => {
  let broker: Broker;
  /**
   * The test's own files that hold a value by design (the password file, the
   * shard files of `operator recover`), outside the broker's folder, which
   * the leak scan reads whole.
   */
  let scratch: string;
  let PASSWORD: string;
  let runs = 0;

  async function spike(
    args: readonly string[],
    options: { as?: string; nexusUrl?: string } = {},
  ): Promise<Result> {
    const result = await runProgram('pilot', {
      args,
      env: {
        ...broker.identityEnv(options.as ?? 'pilot'),
        SPIKE_NEXUS_API_URL: options.nexusUrl ?? broker.nexusUrl,
        SPIKE_PILOT_TIMEOUT: '5s',
      },
      timeoutMs: 30_000,
    });
    runs += 1;
    const run = `spike ${args.slice(0, 2).join(' ')} (run #${runs})`;
    broker.scan(`stderr of ${run}`, result.stderr);
    if (!REVEALING_COMMANDS_REGEXP.test(args.slice(0, 2).join(' '))) {
      broker.scan(`stdout of ${run}`, result.stdout);
    }
    return result;
  }

  const show = (result: Result) =>
    `status ${result.status}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;

  async function ok(args: readonly string[], as?: string): Promise<Result> {
    const result = await spike(args, as === undefined ? {} : { as });
    assert.equal(result.status, 0, `spike ${args.join(' ')}\n${show(result)}`);
    return result;
  }

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'spike-pilot-files-'));
    broker = await startBroker({
      trustDomain: TD_NAME,
      workloads: { recover: '/spike/pilot/role/recover', web: '/apps/web' },
    });
    PASSWORD = broker.secretValue('pw');
  });

  after(async () => {
    try {
      await broker?.stop();
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  test('spike --version prints the version', async () => {
    const result = await ok(['--version']);
    assert.equal(result.stdout.trim(), VERSION);
  });

  test('status shows ready, the caller and three Keepers', async () => {
    const report = JSON.parse((await ok(['status', '--format', 'json'])).stdout);
    assert.equal(report.state, 'ready');
    assert.equal(report.caller, `spiffe://${TD_NAME}/spike/pilot/role/superuser`);
    assert.equal(report.keepers.length, 3);
  });

  test('secret put (inline and @file), get, list and metadata', async () => {
    const file = join(scratch, 'password.txt');
    writeFileSync(file, PASSWORD, { mode: 0o600 });
    const put = await ok(['secret', 'put', 'app/web/db', 'user=web', `password=@${file}`]);
    assert.match(put.stdout, /Wrote "app\/web\/db" version 1/);
    assert.ok(!put.stdout.includes(PASSWORD) && !put.stderr.includes(PASSWORD));
    await ok(['secret', 'put', 'app/web/db', 'user=web2', `password=@${file}`, '--cas', '1']);
    await ok(['secret', 'put', 'app/other/api', 'token=t']);

    const got = JSON.parse((await ok(['secret', 'get', 'app/web/db', '-f', 'json'])).stdout);
    assert.deepEqual(
      { version: got.version, data: got.data },
      { version: 2, data: { user: 'web2', password: PASSWORD } },
    );
    const first = await ok(['secret', 'get', 'app/web/db', '--version', '1', '--field', 'user']);
    assert.equal(first.stdout, 'web\n');

    const listed = JSON.parse((await ok(['secret', 'list', 'app/', '-f', 'json'])).stdout);
    assert.deepEqual(listed, { paths: ['app/other/api', 'app/web/db'] });

    await ok([
      'secret',
      'metadata',
      'put',
      'app/web/db',
      '--max-versions',
      '5',
      '--custom',
      'owner=web',
    ]);
    const meta = JSON.parse(
      (await ok(['secret', 'metadata', 'get', 'app/web/db', '-f', 'json'])).stdout,
    );
    assert.equal(meta.currentVersion, 2);
    assert.equal(meta.maxVersions, 5);
    assert.deepEqual(meta.customMetadata, { owner: 'web' });
  });

  test('secret get --wait-newer-than waits, past SPIKE_PILOT_TIMEOUT, for the next write', async () => {
    await ok(['secret', 'put', 'app/web/waited', 'v=one']);
    const waiting = spike([
      'secret',
      'get',
      'app/web/waited',
      '--wait-newer-than',
      '1',
      '--wait',
      '30s',
      '-f',
      'json',
    ]);
    // Longer than the 5 s budget that every other run here has.
    await delay(6_000);
    await ok(['secret', 'put', 'app/web/waited', 'v=two']);
    const woken = await waiting;
    assert.equal(woken.status, 0, show(woken));
    assert.deepEqual(JSON.parse(woken.stdout).data, { v: 'two' });

    const quiet = await spike([
      'secret',
      'get',
      'app/web/waited',
      '--wait-newer-than',
      '2',
      '--wait',
      '1s',
    ]);
    assert.equal(quiet.status, 7, show(quiet));
    assert.match(quiet.stderr, /other than 2 came within 1000 ms .*ERR_UNAVAILABLE/);
    assert.equal(quiet.stdout, '');
  });

  test('secret delete and undelete, and a failed check-and-set (exit 5)', async () => {
    await ok(['secret', 'delete', 'app/web/db']);
    const deleted = await spike(['secret', 'get', 'app/web/db']);
    assert.equal(deleted.status, 4, show(deleted));
    await ok(['secret', 'undelete', 'app/web/db', '--versions', '2']);
    assert.equal((await ok(['secret', 'get', 'app/web/db', '--field', 'user'])).stdout, 'web2\n');
    const cas = await spike(['secret', 'put', 'app/web/db', 'user=x', '--cas', '1']);
    assert.equal(cas.status, 5, show(cas));
    assert.match(cas.stderr, /ERR_CONFLICT/);
  });

  test('policy apply, list, get; the app then reads only what the policy allows', async () => {
    const file = join(scratch, 'policy.yaml');
    writeFileSync(
      file,
      `- name: web-reads\n  spiffeIdPattern: ${WEB_ID}\n  pathPattern: app/web/**\n  permissions: [read, list]\n`,
    );
    const applied = JSON.parse(
      (await ok(['policy', 'apply', '--file', file, '-f', 'json'])).stdout,
    );
    assert.equal(applied.policies[0].name, 'web-reads');
    const listed = JSON.parse((await ok(['policy', 'list', '-f', 'json'])).stdout);
    assert.ok(listed.policies.some((p: { name: string }) => p.name === 'web-reads'));
    const got = JSON.parse((await ok(['policy', 'get', 'web-reads', '-f', 'json'])).stdout);
    assert.deepEqual(got.permissions, ['read', 'list']);

    const read = await ok(['secret', 'get', 'app/web/db', '--field', 'password'], 'web');
    assert.equal(read.stdout, `${PASSWORD}\n`);
    const denied = await spike(['secret', 'get', 'app/other/api'], { as: 'web' });
    assert.equal(denied.status, 3, show(denied));
    assert.match(denied.stderr, new RegExp(`Access denied for ${WEB_ID}`));
    assert.equal(denied.stdout, '');
    const write = await spike(['secret', 'put', 'app/web/db', 'user=evil'], { as: 'web' });
    assert.equal(write.status, 3, show(write));
  });

  test('policy create refuses an existing name; delete needs --yes off a terminal', async () => {
    const args = ['policy', 'create', '--name', 'web-reads', '--spiffeid-pattern', WEB_ID];
    const exists = await spike([...args, '--path-pattern', 'x/**', '--permissions', 'read']);
    assert.equal(exists.status, 5, show(exists));
    const refused = await spike(['policy', 'delete', 'web-reads']);
    assert.equal(refused.status, 2, show(refused));
    await ok(['policy', 'delete', 'web-reads', '--yes']);
    const gone = await spike(['policy', 'get', 'web-reads']);
    assert.equal(gone.status, 4, show(gone));
    assert.match(gone.stderr, /ERR_NOT_FOUND/);
  });

  test('not found, invalid input and an unreachable Nexus each have their exit status', async () => {
    const missing = await spike(['secret', 'get', 'app/none']);
    assert.equal(missing.status, 4, show(missing));
    assert.match(missing.stderr, /ERR_NOT_FOUND/);
    const invalid = await spike(['secret', 'put', 'app//x', 'a=b']);
    assert.equal(invalid.status, 2, show(invalid));
    const badPair = await spike(['secret', 'put', 'app/x', 'novalue']);
    assert.equal(badPair.status, 2, show(badPair));
    const port = await freePort();
    const down = await spike(['secret', 'list'], { nexusUrl: `https://127.0.0.1:${port}` });
    assert.equal(down.status, 7, show(down));
    assert.match(down.stderr, new RegExp(`unreachable at https://127\\.0\\.0\\.1:${port}`));
  });

  test('operator recover writes owner-only shard files (recover role)', async () => {
    const target = join(scratch, 'recovery');
    const result = await ok(['operator', 'recover', '--dir', target, '-f', 'json'], 'recover');
    const printed = JSON.parse(result.stdout);
    // The shard texts may be only in these files: the leak scan looks for them elsewhere.
    for (const file of printed.files as string[]) {
      for (const shard of readFileSync(file, 'utf8').match(SHARD_REGEXP) ?? []) {
        for (const needle of shardNeedles(shard)) broker.sensitive(needle);
      }
    }
    assert.equal(printed.dir, target);
    assert.equal(statSync(target).mode & 0o777, 0o700);
    assert.equal(readdirSync(target).length, printed.files.length);
    for (const file of printed.files) assert.equal(statSync(file).mode & 0o777, 0o600);
    const superuser = await spike(['operator', 'recover', '--dir', target]);
    assert.equal(superuser.status, 3, show(superuser));
  });
});
