/**
 * The `spike` commands added for issue 12 as a user runs them: a subprocess
 * against real processes over real mTLS (the embedded agent, three Keepers
 * and Nexus on SQLite). Usage errors are one line with ERR_USAGE before
 * anything connects; `secret patch` merges into the current version; `secret
 * purge` removes only emptied paths, through the metadata route, and only
 * those the caller may read and delete; `secret metadata delete` removes a
 * path. The harness's leak scan reads every run's output.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Broker, startBroker } from '../harness/broker.ts';
import { runProgram } from '../harness/spawn.ts';

interface Result {
  readonly status: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

describe('spike secret patch, purge and metadata delete against a running broker', () => {
  let broker: Broker;
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
    if (args[1] !== 'get') broker.scan(`stdout of ${run}`, result.stdout);
    return result;
  }

  const show = (result: Result) =>
    `status ${result.status}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;

  async function ok(args: readonly string[]): Promise<Result> {
    const result = await spike(args);
    assert.equal(result.status, 0, `spike ${args.join(' ')}\n${show(result)}`);
    return result;
  }

  before(async () => {
    broker = await startBroker({
      trustDomain: 'pilot-commands.test',
      workloads: { web: '/apps/web' },
    });
  });

  after(async () => {
    await broker?.stop();
  });

  test('usage errors are one line with ERR_USAGE, exit 2, before any connection', async () => {
    for (const args of [['sekret'], ['secret', 'get', 'app/x', '--bogus'], ['secret', 'get']]) {
      const result = await spike(args, { nexusUrl: 'https://127.0.0.1:1' });
      assert.equal(result.status, 2, show(result));
      assert.equal(result.stdout, '');
      assert.match(
        result.stderr,
        /^spike: [^\n]+; see 'spike[a-z ]*--help' \[ERR_USAGE\]\n$/,
        show(result),
      );
    }
  });

  test('secret patch, purge and metadata delete against Nexus', async () => {
    await ok(['secret', 'put', 'app/patch/db', 'user=a', 'pass=b']);
    const patched = JSON.parse(
      (await ok(['secret', 'patch', 'app/patch/db', 'pass=c', '-f', 'json'])).stdout,
    );
    assert.equal(patched.currentVersion, 2);
    const got = JSON.parse((await ok(['secret', 'get', 'app/patch/db', '-f', 'json'])).stdout);
    assert.deepEqual(got.data, { user: 'a', pass: 'c' });
    const missing = await spike(['secret', 'patch', 'app/patch/none', 'a=b']);
    assert.equal(missing.status, 4, show(missing));

    await ok(['secret', 'put', 'app/purge/gone', 'a=1']);
    await ok(['secret', 'put', 'app/purge/gone', 'a=2']);
    await ok(['secret', 'delete', 'app/purge/gone', '--versions', '1,2']);
    await ok(['secret', 'put', 'app/purge/live', 'a=1']);
    const dry = JSON.parse(
      (await ok(['secret', 'purge', 'app/purge/', '--dry-run', '-f', 'json'])).stdout,
    );
    assert.deepEqual(dry, { dryRun: true, paths: ['app/purge/gone'], skipped: [] });
    const denied = await spike(['secret', 'purge', 'app/purge/gone', '--yes'], { as: 'web' });
    assert.equal(denied.status, 3, show(denied));
    const refused = await spike(['secret', 'purge', 'app/purge/']);
    assert.equal(refused.status, 2, show(refused));
    await ok(['secret', 'purge', 'app/purge/', '--yes']);
    const listed = JSON.parse((await ok(['secret', 'list', 'app/purge/', '-f', 'json'])).stdout);
    assert.deepEqual(listed, { paths: ['app/purge/live'] });

    await ok(['secret', 'metadata', 'delete', 'app/purge/live', '--yes']);
    const gone = await spike(['secret', 'metadata', 'get', 'app/purge/live']);
    assert.equal(gone.status, 4, show(gone));
  });
});
