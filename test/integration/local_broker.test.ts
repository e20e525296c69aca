/**
 * The local broker end to end, as a newcomer uses it: spike-local as a
 * subprocess (temporary data folder, free ports), `spike` as a subprocess
 * for put / get / list / delete / policy create, the example application
 * (docs/examples/) reading its password under its own SPIFFE ID and being
 * refused elsewhere, then a stop (SIGTERM, exit 0), a second start, and the
 * secrets read back. Every child runs on the runtime of this test.
 *
 * Leak scan: the two passwords and the shard texts of the development
 * recovery file must appear nowhere but where they belong: not in the data
 * folder (logs, audit, database; the recovery file holds the shards by
 * design and is left out), not in what spike-local printed, not in any
 * `spike` or example output (but the standard output of `secret get`).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEV_SHARDS_FILE, readDevShards } from '../../launcher/dev_shards.ts';
import { createLeakScan, shardNeedles } from '../harness/leak_scan.ts';
import {
  currentRuntime,
  freePort,
  ROOT,
  type RunningProgram,
  runProgram,
  startProgram,
  stopAll,
} from '../harness/spawn.ts';

const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 60_000;
const COMMAND_TIMEOUT_MS = 60_000;
const EXAMPLE = 'docs/examples/read_db_password.ts';
const APP_ID = 'spiffe://spike.ist/apps/example';
const PILOT_SOCKET_REGEXP = /export SPIFFE_ENDPOINT_SOCKET=(unix:\/\/\S+)/;
const NEXUS_URL_REGEXP = /export SPIKE_NEXUS_API_URL=(https:\/\/\S+)/;
const APP_SOCKET_REGEXP = /is served at (unix:\/\/\S+\/app\.sock)/;
const READY_REGEXP = /Press Ctrl-C to stop/;
const OPS_URL_REGEXP = /^ {2}(nexus|keeper-\d|agent) +(http:\/\/127\.0\.0\.1:\d+)$/gm;
/** The Deno command the example's README documents. */
const DENO_EXAMPLE_REGEXP = /deno run ((?:--allow-[a-z]+ )+)docs\/examples\/read_db_password\.ts/;

const DB_PASSWORD = `db-${crypto.randomUUID()}`;
const CREDS_PASSWORD = `creds-${crypto.randomUUID()}`;

interface Result {
  readonly status: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

const leaks = createLeakScan();
/** Commands whose standard output is a secret value by design. */
const REVEALING_COMMANDS_REGEXP = /^secret get$/;
let runs = 0;

/** Adds a finished subprocess's output to the leak scan. */
function scanResult(what: string, result: Result, options: { revealing?: boolean } = {}): void {
  runs += 1;
  leaks.text(`stderr of ${what} (run #${runs})`, result.stderr);
  if (options.revealing !== true) leaks.text(`stdout of ${what} (run #${runs})`, result.stdout);
}

function show(result: Result): string {
  return `status ${result.status}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

/** Rejects after `timeoutMs` with `message`, unless `promise` settles first. */
function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** spike-local as `npm start` (bin/spike-local.js) runs it, or as `deno task local` does. */
function launch(env: Record<string, string>): RunningProgram {
  const running = startProgram('launcher', { env, viaBin: true });
  runs += 1;
  leaks.text(`output of spike-local (run #${runs})`, () => running.output());
  return running;
}

/** The example application as a subprocess, with the documented command of this runtime. */
function runExample(socket: string, nexusUrl: string, args: readonly string[]): Promise<Result> {
  let cmd: string;
  let baseArgs: string[];
  if (currentRuntime() === 'deno') {
    const readme = readFileSync(join(ROOT, 'docs/examples/README.md'), 'utf8');
    const [, permissions = ''] = readme.match(DENO_EXAMPLE_REGEXP) ?? [];
    assert.notEqual(permissions, '', 'docs/examples/README.md documents the Deno command');
    cmd = join(ROOT, '.tools/node_modules/.bin/deno');
    baseArgs = ['run', '--quiet', '--no-check', ...permissions.trim().split(/\s+/), EXAMPLE];
  } else {
    cmd = process.execPath;
    baseArgs = ['--import', 'tsx', EXAMPLE];
  }
  const child = spawn(cmd, [...baseArgs, ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      SPIFFE_ENDPOINT_SOCKET: socket,
      SPIKE_NEXUS_API_URL: nexusUrl,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<Result>((resolveRun) => {
    child.on('close', (code, signal) => {
      resolveRun({ status: code ?? signal ?? 'unknown', stdout, stderr });
    });
  });
  return withTimeout(done, COMMAND_TIMEOUT_MS, () => {
    child.kill('SIGKILL');
    return `The example did not finish in time\n${stdout}\n${stderr}`;
  });
}

describe('the local broker, end to end with spike and the example app', () => {
  let dir: string;
  let env: Record<string, string>;
  let broker: RunningProgram;
  let pilotSocket: string;
  let appSocket: string;
  let nexusUrl: string;

  async function spike(args: readonly string[]): Promise<Result> {
    const result = await runProgram('pilot', {
      args,
      env: { SPIFFE_ENDPOINT_SOCKET: pilotSocket, SPIKE_NEXUS_API_URL: nexusUrl },
      timeoutMs: COMMAND_TIMEOUT_MS,
    });
    const command = args.slice(0, 2).join(' ');
    scanResult(`spike ${command}`, result, {
      revealing: REVEALING_COMMANDS_REGEXP.test(command),
    });
    return result;
  }

  async function example(args: readonly string[]): Promise<Result> {
    const result = await runExample(appSocket, nexusUrl, args);
    scanResult('the example app', result);
    return result;
  }

  /** The shard texts of the development recovery file: the scan looks for them elsewhere. */
  function registerShards(): void {
    for (const shard of readDevShards(join(dir, DEV_SHARDS_FILE))?.shards ?? []) {
      for (const needle of shardNeedles(shard)) leaks.needle(needle, 'a dev recovery shard');
    }
  }

  async function ok(args: readonly string[]): Promise<Result> {
    const result = await spike(args);
    assert.equal(result.status, 0, `spike ${args.join(' ')}\n${show(result)}`);
    return result;
  }

  /** Starts spike-local and reads what it printed: the sockets and Nexus's URL. */
  async function start(): Promise<RunningProgram> {
    const running = launch(env);
    await running.waitFor(READY_REGEXP, START_TIMEOUT_MS);
    const output = running.output();
    pilotSocket = output.match(PILOT_SOCKET_REGEXP)?.[1] ?? '';
    nexusUrl = output.match(NEXUS_URL_REGEXP)?.[1] ?? '';
    appSocket = output.match(APP_SOCKET_REGEXP)?.[1] ?? '';
    assert.equal(pilotSocket, `unix://${join(dir, 'agent', 'sockets', 'pilot.sock')}`, output);
    assert.equal(appSocket, `unix://${join(dir, 'agent', 'sockets', 'app.sock')}`, output);
    assert.match(nexusUrl, /^https:\/\/(localhost|127\.0\.0\.1):\d+$/, output);
    registerShards();
    return running;
  }

  before(async () => {
    // The default trust domain (spike.ist), so the README's policy is tested as written.
    dir = mkdtempSync(join(tmpdir(), 'spike-lb-'));
    leaks.needle(DB_PASSWORD, 'the example db password');
    leaks.needle(CREDS_PASSWORD, 'the app/db/creds password');
    leaks.files(dir, {
      exclude: (path) =>
        path === join(dir, DEV_SHARDS_FILE) || path === join(dir, `${DEV_SHARDS_FILE}.tmp`),
    });
    const keeperPorts = [await freePort(), await freePort(), await freePort()];
    env = {
      SPIKE_LOCAL_DATA_DIR: dir,
      SPIKE_NEXUS_TLS_PORT: String(await freePort()),
      SPIKE_LOCAL_KEEPER_PORTS: keeperPorts.join(','),
      SPIKE_LOCAL_RESTORE_AFTER: '2s',
      SPIKE_LOCAL_START_TIMEOUT: '100s',
    };
  });

  after(async () => {
    await stopAll();
    try {
      registerShards();
      leaks.assertNoLeaks();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('spike-local starts and prints the sockets and the Nexus URL', async () => {
    broker = await start();
  });

  test('spike-local prints where each program serves probes, and Nexus answers ready there without a certificate', async () => {
    const printed = new Map(
      [...broker.output().matchAll(OPS_URL_REGEXP)].map((match) => [match[1], match[2]]),
    );
    assert.deepEqual([...printed.keys()], ['nexus', 'keeper-1', 'keeper-2', 'keeper-3', 'agent']);
    for (const url of printed.values()) {
      assert.equal((await fetch(`${url}/live`)).status, 200, url);
    }
    const ready = await fetch(`${printed.get('nexus')}/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready' });
  });

  test('spike puts, gets, lists and deletes secrets', async () => {
    await ok(['secret', 'put', 'app/db/creds', 'user=app', `password=${CREDS_PASSWORD}`]);
    const got = JSON.parse(
      (await ok(['secret', 'get', 'app/db/creds', '--format', 'json'])).stdout,
    );
    assert.equal(got.path, 'app/db/creds');
    assert.equal(got.version, 1);
    assert.deepEqual(got.data, { user: 'app', password: CREDS_PASSWORD });

    await ok(['secret', 'put', 'tmp/scratch', 'note=temporary']);
    const listed = (await ok(['secret', 'list'])).stdout.split('\n').filter((line) => line !== '');
    assert.deepEqual(listed.sort(), ['app/db/creds', 'tmp/scratch']);

    await ok(['secret', 'delete', 'tmp/scratch']);
    const deleted = await spike(['secret', 'get', 'tmp/scratch']);
    assert.equal(deleted.status, 4, show(deleted));
    assert.match(deleted.stderr, /ERR_NOT_FOUND/);
  });

  test('a policy lets the example app read app/example/db and nothing else', async () => {
    await ok([
      'policy',
      'create',
      '--name',
      'example-db',
      '--spiffeid-pattern',
      APP_ID,
      '--path-pattern',
      'app/example/db',
      '--permissions',
      'read',
    ]);
    await ok(['secret', 'put', 'app/example/db', 'user=example', `password=${DB_PASSWORD}`]);

    const read = await example([]);
    assert.equal(read.status, 0, show(read));
    assert.equal(
      read.stdout.trim(),
      `${APP_ID} read "app/example/db" (version 1): a ${DB_PASSWORD.length}-character password`,
    );
    assert.doesNotMatch(read.stdout + read.stderr, new RegExp(DB_PASSWORD));

    for (const other of ['app/db/creds', 'app/example/other']) {
      const refused = await example([other]);
      assert.notEqual(refused.status, 0, show(refused));
      assert.match(refused.stderr, /\[ERR_ACCESS_DENIED\]/, show(refused));
      assert.match(refused.stderr, new RegExp(`${APP_ID} could not read "${other}"`));
      assert.doesNotMatch(refused.stdout + refused.stderr, new RegExp(CREDS_PASSWORD));
    }
  });

  test('after a stop (SIGTERM, exit 0) and a second start, the secrets and the policy are back', async () => {
    broker.signal('SIGTERM');
    assert.equal(await broker.exited(STOP_TIMEOUT_MS), 0, broker.output());
    assert.match(broker.output(), /Stopped/);

    broker = await start();
    assert.match(broker.output(), /Restoring the root key from/);

    const got = JSON.parse(
      (await ok(['secret', 'get', 'app/db/creds', '--format', 'json'])).stdout,
    );
    assert.deepEqual(got.data, { user: 'app', password: CREDS_PASSWORD });
    const field = await ok(['secret', 'get', 'app/example/db', '--field', 'password']);
    assert.equal(field.stdout.trim(), DB_PASSWORD);
    const deleted = await spike(['secret', 'get', 'tmp/scratch']);
    assert.equal(deleted.status, 4, show(deleted));

    const read = await example([]);
    assert.equal(read.status, 0, show(read));
    assert.match(read.stdout, /read "app\/example\/db" \(version 1\)/);

    broker.signal('SIGTERM');
    assert.equal(await broker.exited(STOP_TIMEOUT_MS), 0, broker.output());
    // No secret value reaches the launcher's terminal output or a log.
    const logs = ['nexus', 'agent', 'audit']
      .map((name) => readFileSync(join(dir, 'logs', `${name}.log`), 'utf8'))
      .join('\n');
    assert.doesNotMatch(broker.output() + logs, new RegExp(`${DB_PASSWORD}|${CREDS_PASSWORD}`));
  });
});
