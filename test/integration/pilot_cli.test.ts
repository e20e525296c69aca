/**
 * `spike` as a user runs it: a subprocess (on the runtime of this test)
 * against real processes over real mTLS (the embedded agent, three Keepers
 * and Nexus on SQLite). Checks output, `--format json` fields, and the exit
 * status of every failure: access denied (an app identity), not found,
 * Nexus unreachable, invalid input.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { VERSION } from '../../shared/api/version.ts';
import {
  describe as describeProgram,
  freePort,
  type RunningProgram,
  runProgram,
  startProgram,
  stopAll,
} from '../harness/spawn.ts';

const TD_NAME = 'pilot.test';
const WORKLOADS = [
  'nexus=/spike/nexus',
  'keeper-1=/spike/keeper/1',
  'keeper-2=/spike/keeper/2',
  'keeper-3=/spike/keeper/3',
  'pilot=/spike/pilot/role/superuser',
  'recover=/spike/pilot/role/recover',
  'web=/apps/web',
].join(',');
const WEB_ID = `spiffe://${TD_NAME}/apps/web`;
const PASSWORD = `pw-${crypto.randomUUID()}`;

interface Result {
  readonly status: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

describe('spike CLI against a running broker', () => {
  let dir: string;
  let nexusPort: number;
  const programs: RunningProgram[] = [];

  function spike(
    args: readonly string[],
    options: { as?: string; nexusUrl?: string } = {},
  ): Promise<Result> {
    return runProgram('pilot', {
      args,
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIFFE_ENDPOINT_SOCKET: `unix://${join(dir, 'sockets', `${options.as ?? 'pilot'}.sock`)}`,
        SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
        SPIKE_NEXUS_API_URL: options.nexusUrl ?? `https://127.0.0.1:${nexusPort}`,
        SPIKE_PILOT_TIMEOUT: '5s',
      },
      timeoutMs: 30_000,
    });
  }

  const show = (result: Result) =>
    `status ${result.status}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;

  async function ok(args: readonly string[], as?: string): Promise<Result> {
    const result = await spike(args, as === undefined ? {} : { as });
    assert.equal(result.status, 0, `spike ${args.join(' ')}\n${show(result)}`);
    return result;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spike-pilot-'));
    const agent = startProgram('agent', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIKE_AGENT_DATA_DIR: dir,
        SPIKE_AGENT_WORKLOADS: WORKLOADS,
      },
    });
    programs.push(agent);
    await agent.waitFor(/Press Ctrl-C to stop/);
    const keeperPorts = [await freePort(), await freePort(), await freePort()];
    nexusPort = await freePort();
    const identityEnv = (name: string) => ({
      SPIKE_TRUST_ROOT: TD_NAME,
      SPIFFE_ENDPOINT_SOCKET: `unix://${join(dir, 'sockets', `${name}.sock`)}`,
      SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
    });
    await Promise.all(
      keeperPorts.map(async (port, i) => {
        const keeper = startProgram('keeper', {
          env: { ...identityEnv(`keeper-${i + 1}`), SPIKE_KEEPER_TLS_PORT: String(port) },
        });
        programs.push(keeper);
        await keeper.waitFor(/"msg":"Listening"/);
      }),
    );
    programs.push(
      startProgram('nexus', {
        env: {
          ...identityEnv('nexus'),
          SPIKE_NEXUS_TLS_PORT: String(nexusPort),
          SPIKE_NEXUS_DATA_DIR: join(dir, 'nexus-data'),
          SPIKE_NEXUS_KEEPER_PEERS: keeperPorts
            .map((port) => `https://127.0.0.1:${port}`)
            .join(','),
          SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: '500ms',
          SPIKE_NEXUS_AUDIT_LOG: join(dir, 'audit.jsonl'),
        },
      }),
    );
    // `spike status` exits 0 only once Nexus answers and is ready.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const status = await spike(['status']);
      if (status.status === 0) break;
      if (Date.now() > deadline) {
        throw new Error(
          `Nexus never became ready\n${show(status)}\n${programs.map(describeProgram).join('\n')}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });

  after(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
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
    const file = join(dir, 'password.txt');
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
    const file = join(dir, 'policy.yaml');
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
    const target = join(dir, 'recovery');
    const result = await ok(['operator', 'recover', '--dir', target, '-f', 'json'], 'recover');
    const printed = JSON.parse(result.stdout);
    assert.equal(printed.dir, target);
    assert.equal(statSync(target).mode & 0o777, 0o700);
    assert.equal(readdirSync(target).length, printed.files.length);
    for (const file of printed.files) assert.equal(statSync(file).mode & 0o777, 0o600);
    const superuser = await spike(['operator', 'recover', '--dir', target]);
    assert.equal(superuser.status, 3, show(superuser));
  });
});
