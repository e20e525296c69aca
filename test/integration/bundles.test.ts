/**
 * The programs' bundles (scripts/build.sh, docs/decisions/0021): built into a
 * scratch folder of the checkout, they hold one file per program plus the
 * files read at run time, and a whole broker started from them (agent,
 * Keepers, Nexus on SQLite) serves `spike secret put` and `get` run from
 * the bundle. Also: npm's `prepare` builds nothing when npm runs it for
 * `npx spike`. Bundles are for Node; Deno runs the sources, so this file
 * skips itself there.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { VERSION } from '../../shared/api/version.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { currentRuntime, ROOT, runProgram } from '../harness/spawn.ts';

const PROGRAMS = ['spike', 'spike-nexus', 'spike-keeper', 'spike-agent', 'spike-local'];

function build(args: readonly string[], env: Readonly<Record<string, string>> = {}): void {
  execFileSync('bash', [join(ROOT, 'scripts/build.sh'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

describe('program bundles', { skip: currentRuntime() === 'deno' && 'bundles are for Node' }, () => {
  /** Inside the checkout, so that the external packages resolve from node_modules/. */
  let scratch: string;
  let bundles: string;
  let broker: Broker | undefined;

  before(() => {
    scratch = mkdtempSync(join(ROOT, '.bundles-test-'));
    bundles = join(scratch, 'dist');
    build([relative(ROOT, bundles)]);
  });

  after(async () => {
    await broker?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('one bundle per program, the files read at run time beside them, and the stamp', () => {
    for (const name of PROGRAMS) {
      assert.ok(existsSync(join(bundles, `${name}.js`)), `${name}.js`);
    }
    // The Workload API descriptor is inside the bundles: no .proto is read at run time.
    assert.ok(!existsSync(join(bundles, 'shared/spiffe/workload.proto')));
    assert.ok(existsSync(join(bundles, 'nexus/store/sqlite/migrations/meta/_journal.json')));
    assert.ok(existsSync(join(bundles, 'nexus/store/postgres/migrations/meta/_journal.json')));
    const stamp = JSON.parse(readFileSync(join(bundles, 'build-stamp.json'), 'utf8')) as {
      bundles: Record<string, { files: string[]; newestMs: number }>;
    };
    assert.deepEqual(Object.keys(stamp.bundles).sort(), [...PROGRAMS].sort());
    // What the staleness check compares: the program's own sources are listed.
    assert.ok(stamp.bundles.spike?.files.includes('pilot/main.ts'));
    assert.ok(stamp.bundles.spike?.files.includes('shared/spiffe/workload_proto.json'));
    assert.ok(stamp.bundles['spike-nexus']?.files.includes('nexus/store/sqlite/db.ts'));
  });

  test('a bundle stops being current once one of its files is newer than the build', () => {
    // bin/_start.js is plain JavaScript for Node: ask a child process.
    const isCurrent = (dir: string): boolean =>
      JSON.parse(
        execFileSync(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            `const { bundleIsCurrent } = await import(${JSON.stringify(join(ROOT, 'bin/_start.js'))});
             console.log(JSON.stringify(bundleIsCurrent('spike', ${JSON.stringify(dir)})));`,
          ],
          { encoding: 'utf8' },
        ),
      ) as boolean;
    assert.equal(isCurrent(bundles), true);
    // An edit after the build, as the stamp sees it: every file is newer.
    const edited = join(scratch, 'edited');
    mkdirSync(edited);
    const stamp = JSON.parse(readFileSync(join(bundles, 'build-stamp.json'), 'utf8')) as {
      bundles: Record<string, { newestMs: number }>;
    };
    const spike = stamp.bundles.spike;
    assert.ok(spike !== undefined);
    spike.newestMs = 0;
    writeFileSync(join(edited, 'build-stamp.json'), JSON.stringify(stamp));
    assert.equal(isCurrent(edited), false);
    // No stamp at all (no build) is not current either.
    assert.equal(isCurrent(join(scratch, 'nothing')), false);
  });

  test('spike --version runs from the bundle', async () => {
    const result = await runProgram('pilot', { bundles, args: ['--version'] });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout.trim(), VERSION);
    assert.equal(result.stderr, '');
  });

  test('a broker started from the bundles serves spike secret put and get from the bundle', async () => {
    broker = await startBroker({ trustDomain: 'bundles.test', bundles });
    const env = {
      ...broker.identityEnv('pilot'),
      SPIKE_NEXUS_API_URL: broker.nexusUrl,
      SPIKE_PILOT_TIMEOUT: '10s',
    };
    const value = broker.secretValue('bundle');
    const put = await runProgram('pilot', {
      bundles,
      env,
      args: ['secret', 'put', 'bundles/one', `value=${value}`],
    });
    assert.equal(put.status, 0, put.stderr);
    const get = await runProgram('pilot', {
      bundles,
      env,
      args: ['secret', 'get', 'bundles/one', '--format', 'json'],
    });
    assert.equal(get.status, 0, get.stderr);
    const answer = JSON.parse(get.stdout) as { data: Record<string, string> };
    assert.equal(answer.data.value, value);
    broker.scan('stderr of spike secret get', get.stderr);
  });

  test('npm prepare builds nothing when npm runs it for npx spike', () => {
    const target = join(scratch, 'prepare');
    build(['--prepare', relative(ROOT, target)], { npm_command: 'exec' });
    assert.equal(existsSync(target), false);
    build(['--prepare', relative(ROOT, target)], { npm_command: 'ci' });
    assert.ok(existsSync(join(target, 'spike.js')));
  });
});
