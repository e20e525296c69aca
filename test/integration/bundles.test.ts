/**
 * The programs' bundles (scripts/build.sh, docs/decisions/0021): built into a
 * scratch folder of the checkout, they hold one file per program plus the
 * files read at run time, and a whole broker started from them (agent,
 * Keepers, Nexus on SQLite) serves `spike secret put` and `get` run from
 * the bundle. What `spike` compiles before it knows its command, and what
 * it can ever load, leave out the heavy packages it does not need (ADR
 * 0022), and `spike secret get` loads no gRPC client (ADR 0023). Also:
 * npm's `prepare` builds nothing when npm runs it for `npx spike`. Bundles
 * are for Node; Deno runs the sources, so this file skips itself there.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
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

/**
 * The bundle files Node loads with `file` before any of its code runs: the
 * file and the chunks it imports statically (`import "./chunk-X.js"`, or
 * `} from "./chunk-X.js";`), recursively. With `lazy`, the chunks it imports
 * with `import()` too.
 */
function closureOf(
  dir: string,
  file: string,
  lazy: boolean,
  seen = new Set<string>(),
): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const text = readFileSync(join(dir, file), 'utf8');
  const pattern = lazy
    ? /"\.\/(chunk-\w+\.js)"/g
    : /^(?:import |.*\bfrom )"\.\/(chunk-\w+\.js)";$/gm;
  for (const match of text.matchAll(pattern)) {
    closureOf(dir, match[1] as string, lazy, seen);
  }
  return seen;
}

/** The packages in some bundle files, by the `// node_modules/<package>/…` comments esbuild writes. */
function packagesIn(dir: string, files: Iterable<string>): Set<string> {
  const packages = new Set<string>();
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    for (const match of text.matchAll(/^\/\/ node_modules\/((?:@[^/]+\/)?[^/]+)\//gm)) {
      packages.add(match[1] as string);
    }
  }
  return packages;
}

/**
 * A module for `node --import` that appends the URL of every ES module the
 * process loads to `log`, through a load hook (module.register); returns its path.
 */
function loadRecorder(dir: string, log: string): string {
  const hooks = [
    "import { appendFileSync } from 'node:fs';",
    'export async function load(url, context, next) {',
    `  appendFileSync(${JSON.stringify(log)}, url + '\\n');`,
    '  return next(url, context);',
    '}',
  ].join('\n');
  const path = join(dir, 'record_loads.mjs');
  writeFileSync(
    path,
    `import { register } from 'node:module';\nregister(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});\n`,
  );
  return path;
}

/** The files of a bundle folder among the module URLs of a load log. */
function bundleFilesIn(log: string, dir: string): string[] {
  const prefix = pathToFileURL(`${dir}/`).href;
  return log
    .split('\n')
    .filter((url) => url.startsWith(prefix) && !url.slice(prefix.length).includes('/'))
    .map((url) => url.slice(prefix.length));
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

  test('spike compiles no YAML, gRPC, protobuf or X.509 code before it knows its command, and never @peculiar/x509 or a .proto parser', () => {
    const eager = packagesIn(bundles, closureOf(bundles, 'spike.js', false));
    for (const name of ['yaml', '@grpc/grpc-js', 'protobufjs', 'asn1js', '@peculiar/asn1-x509']) {
      assert.ok(!eager.has(name), `spike.js loads ${name} before its command runs`);
    }
    assert.ok(eager.has('commander'), 'the comments name the packages');
    // spike run and spike agent (pilot/deliver/) are compiled only when one of them runs.
    const eagerText = [...closureOf(bundles, 'spike.js', false)]
      .map((file) => readFileSync(join(bundles, file), 'utf8'))
      .join('\n');
    assert.ok(!eagerText.includes('template-agent'), 'spike.js compiles spike agent at start');
    assert.ok(!eagerText.includes('restarting'), 'spike.js compiles spike run at start');
    // So are the data commands of spike cipher (pilot/cipher/run.ts).
    assert.ok(!eagerText.includes('(--json-in)'), 'spike.js compiles spike cipher at start');
    const all = closureOf(bundles, 'spike.js', true);
    const reachable = packagesIn(bundles, all);
    assert.ok(reachable.has('@grpc/grpc-js') && reachable.has('@peculiar/asn1-x509'));
    for (const name of ['@peculiar/x509', 'tsyringe', 'reflect-metadata', '@grpc/proto-loader']) {
      assert.ok(!reachable.has(name), `spike can load ${name}`);
    }
    const text = [...all].map((file) => readFileSync(join(bundles, file), 'utf8')).join('\n');
    assert.ok(!text.includes('// node_modules/protobufjs/src/parse.js'), 'a .proto parser');
    assert.ok(
      text.includes('template-agent') && text.includes('restarting'),
      'spike run and agent',
    );
    assert.ok(text.includes('(--json-in)'), 'spike cipher');
  });

  test('spike --version runs from the bundle', async () => {
    const result = await runProgram('pilot', { bundles, args: ['--version'] });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout.trim(), VERSION);
    assert.equal(result.stderr, '');
  });

  test('a broker started from the bundles serves spike secret put and get from the bundle; get loads no gRPC client', async () => {
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
    const loads = join(scratch, 'loads.txt');
    const get = await runProgram('pilot', {
      bundles,
      env,
      args: ['secret', 'get', 'bundles/one', '--format', 'json'],
      nodeFlags: ['--import', loadRecorder(scratch, loads)],
    });
    assert.equal(get.status, 0, get.stderr);
    const answer = JSON.parse(get.stdout) as { data: Record<string, string> };
    assert.equal(answer.data.value, value);
    broker.scan('stderr of spike secret get', get.stderr);
    // Its identity comes from a one-shot fetch over node:http2 (ADR 0023).
    const loaded = packagesIn(bundles, bundleFilesIn(readFileSync(loads, 'utf8'), bundles));
    assert.ok(loaded.has('commander') && loaded.has('@peculiar/asn1-x509'), [...loaded].join());
    for (const name of ['@grpc/grpc-js', 'yaml']) {
      assert.ok(!loaded.has(name), `spike secret get loads ${name}`);
    }
    // YAML comes from a chunk loaded only for it.
    const yaml = await runProgram('pilot', {
      bundles,
      env,
      args: ['secret', 'get', 'bundles/one', '--format', 'yaml'],
    });
    assert.equal(yaml.status, 0, yaml.stderr);
    assert.match(yaml.stdout, new RegExp(`^  value: ${value}$`, 'm'));
  });

  test('npm prepare builds nothing when npm runs it for npx spike', () => {
    const target = join(scratch, 'prepare');
    build(['--prepare', relative(ROOT, target)], { npm_command: 'exec' });
    assert.equal(existsSync(target), false);
    build(['--prepare', relative(ROOT, target)], { npm_command: 'ci' });
    assert.ok(existsSync(join(target, 'spike.js')));
  });
});
