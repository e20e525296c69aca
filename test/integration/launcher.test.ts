/**
 * spike-local end to end: the launcher as a subprocess on the current
 * runtime, with a temporary data folder and free ports. A secret written
 * through the printed Pilot socket survives a stop (SIGTERM, exit 0) and a
 * second start, which can unseal Nexus only through the development
 * recovery file, since its Keepers start empty.
 *
 * Leak scan: the secret value and every shard text of the recovery file
 * must appear nowhere else: not in the data folder (logs, audit, database;
 * the recovery file, which holds the shards by design, is left out), not in
 * what spike-local printed, not in an error body Nexus sent.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LOCK_FILE } from '../../launcher/data_dir_lock.ts';
import { DEV_SHARDS_FILE, DEV_SHARDS_WARNING, readDevShards } from '../../launcher/dev_shards.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { isNexus } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createX509Source } from '../../shared/spiffe/x509_source.ts';
import { createLeakScan, shardNeedles } from '../harness/leak_scan.ts';
import { freePort, type RunningProgram, startProgram, stopAll } from '../harness/spawn.ts';

const TD_NAME = 'launcher.test';
const START_TIMEOUT_MS = 120_000;
const INSTRUCTIONS_REGEXP =
  /export SPIFFE_ENDPOINT_SOCKET=(unix:\/\/\S+)[\s\S]*secret get app\/db\/creds/;

const leaks = createLeakScan();
let launches = 0;
let errorBodies = 0;
/**
 * The value written: it starts like the one in the printed example command
 * (`password=s3cret`), and is unique, so the leak scan can tell them apart.
 */
const SECRET = `s3cret-${crypto.randomUUID()}`;

/** The launcher as its documented command: `npm start` (bin/spike-local.js) or `deno task local`. */
function launch(env: Record<string, string>): RunningProgram {
  const running = startProgram('launcher', { env, viaBin: true });
  launches += 1;
  leaks.text(`output of spike-local (launch #${launches})`, () => running.output());
  return running;
}

/** Holds a port on the address the children listen on, as another program would. */
async function hold(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, resolve);
  });
  return server;
}

/** PUT or GET of a secret as Pilot, through the socket the launcher printed. */
async function asPilot(
  socket: string,
  nexusPort: number,
  request: { method: 'PUT' | 'GET'; body?: unknown },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const logger = createLogger({ component: 'test', sink: createMemorySink() });
  const source = await createX509Source({ address: socket, logger, timeoutMs: 10_000 });
  const client = new MtlsClient({
    source,
    authorizeServer: isNexus(parseTrustDomain(TD_NAME)),
    timeoutMs: 10_000,
  });
  try {
    const res = await client.request({
      method: request.method,
      url: new URL(`https://127.0.0.1:${nexusPort}/v1/secrets/data/app/db/creds`),
      ...(request.body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(request.body) }),
    });
    if (res.status >= 300) {
      errorBodies += 1;
      leaks.text(`error body #${errorBodies} (${request.method} → ${res.status})`, res.text());
    }
    return { status: res.status, body: res.json() as Record<string, unknown> };
  } finally {
    // Closed before the launcher stops the agent (docs/agent.md, Deno note).
    client.close();
    source.close();
  }
}

describe('spike-local, the one-command local broker', () => {
  let dir: string;
  let env: Record<string, string>;
  let nexusPort: number;
  let keeperPorts: number[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spike-local-'));
    leaks.needle(SECRET, 'the secret value');
    leaks.files(dir, {
      exclude: (path) =>
        path === join(dir, DEV_SHARDS_FILE) || path === join(dir, `${DEV_SHARDS_FILE}.tmp`),
    });
    nexusPort = await freePort();
    keeperPorts = [await freePort(), await freePort(), await freePort()];
    env = {
      SPIKE_TRUST_ROOT: TD_NAME,
      SPIKE_LOCAL_DATA_DIR: dir,
      SPIKE_NEXUS_TLS_PORT: String(nexusPort),
      SPIKE_LOCAL_KEEPER_PORTS: keeperPorts.join(','),
      SPIKE_LOCAL_RESTORE_AFTER: '2s',
      SPIKE_LOCAL_START_TIMEOUT: '100s',
    };
  });

  /** The shard texts of the recovery file: the scan looks for them everywhere else. */
  function registerShards(): void {
    for (const shard of readDevShards(join(dir, DEV_SHARDS_FILE))?.shards ?? []) {
      for (const needle of shardNeedles(shard)) leaks.needle(needle, 'a dev recovery shard');
    }
  }

  after(async () => {
    await stopAll();
    try {
      registerShards();
      leaks.assertNoLeaks();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad configuration exits 2 and names every problem', async () => {
    const bad = launch({ ...env, SPIKE_LOCAL_KEEPER_PORTS: '1,2', SPIKE_LOCAL_DATA_DIR: 'rel' });
    assert.equal(await bad.exited(30_000), 2);
    assert.match(bad.output(), /SPIKE_LOCAL_KEEPER_PORTS must list exactly 3 ports/);
    assert.match(bad.output(), /SPIKE_LOCAL_DATA_DIR must be an absolute path/);
  });

  test('a port in use is named with the variable that moves it, before anything starts', async () => {
    const busyDir = mkdtempSync(join(tmpdir(), 'spike-local-busy-'));
    const busy = [await hold(nexusPort), await hold(keeperPorts[1] as number)];
    try {
      const refused = launch({ ...env, SPIKE_LOCAL_DATA_DIR: busyDir });
      assert.equal(await refused.exited(30_000), 1, refused.output());
      assert.match(
        refused.output(),
        new RegExp(
          `Port ${nexusPort} \\(Nexus\\) is in use; set SPIKE_NEXUS_TLS_PORT to another port`,
        ),
      );
      assert.match(
        refused.output(),
        new RegExp(
          `Port ${keeperPorts[1]} \\(Keeper 2\\) is in use; set SPIKE_LOCAL_KEEPER_PORTS to three other ports`,
        ),
      );
      // Nothing started: no agent, no log of any child, and the lock is gone again.
      assert.doesNotMatch(refused.output(), /Agent serves|Started 3 Keepers/);
      assert.equal(existsSync(join(busyDir, 'logs', 'agent.log')), false);
      assert.equal(existsSync(join(busyDir, LOCK_FILE)), false);
    } finally {
      for (const server of busy) server.close();
      rmSync(busyDir, { recursive: true, force: true });
    }
  });

  test('starts, stores a secret, stops with exit 0, and reads it back after a restart', async () => {
    const first = launch(env);
    const [, socket = ''] = await first.waitFor(INSTRUCTIONS_REGEXP, START_TIMEOUT_MS);
    assert.equal(socket, `unix://${join(dir, 'agent', 'sockets', 'pilot.sock')}`);
    assert.match(
      first.output(),
      /npx spike secret put app\/db\/creds password=s3cret|deno task spike secret put/,
    );
    assert.match(first.output(), new RegExp(`logs are in ${join(dir, 'logs')}`));

    const written = await asPilot(socket, nexusPort, {
      method: 'PUT',
      body: { data: { password: SECRET } },
    });
    assert.equal(written.status, 200, JSON.stringify(written.body));
    const read = await asPilot(socket, nexusPort, { method: 'GET' });
    assert.deepEqual(read.body.data, { password: SECRET });

    // A second spike-local on the same folder refuses at once, before it
    // starts anything, and the first one keeps serving through its sockets.
    assert.ok(existsSync(join(dir, LOCK_FILE)));
    const intruder = launch(env);
    assert.equal(await intruder.exited(30_000), 1, intruder.output());
    assert.match(
      intruder.output(),
      new RegExp(
        `Another spike-local \\(PID ${first.child.pid}\\) is using the data folder ${dir}; stop it first, or set SPIKE_LOCAL_DATA_DIR to another folder`,
      ),
    );
    assert.doesNotMatch(intruder.output(), /Agent serves|Started 3 Keepers/);
    const still = await asPilot(socket, nexusPort, { method: 'GET' });
    assert.equal(still.status, 200, JSON.stringify(still.body));
    assert.deepEqual(still.body.data, { password: SECRET });

    const file = join(dir, DEV_SHARDS_FILE);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { warning: string; shards: string[] };
    assert.equal(saved.warning, DEV_SHARDS_WARNING);
    assert.equal(saved.shards.length, 3);
    registerShards();

    first.signal('SIGTERM');
    assert.equal(await first.exited(60_000), 0, first.output());
    assert.match(first.output(), /Stopped/);
    assert.equal(existsSync(join(dir, LOCK_FILE)), false, 'a clean stop releases the lock');

    const second = launch(env);
    await second.waitFor(INSTRUCTIONS_REGEXP, START_TIMEOUT_MS);
    assert.match(second.output(), /Restoring the root key from/);
    const again = await asPilot(socket, nexusPort, { method: 'GET' });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.deepEqual(again.body.data, { password: SECRET });
    // The stored split was refreshed after the restore.
    const refreshed = JSON.parse(readFileSync(file, 'utf8')) as { generation: number };
    registerShards();
    assert.notEqual(refreshed.generation, (saved as unknown as { generation: number }).generation);

    second.signal('SIGINT');
    assert.equal(await second.exited(60_000), 0, second.output());
    // Neither the shards nor the secret value reach a log or the terminal
    // (the printed example command is the only "s3cret"); the leak scan, in
    // after(), checks every file and output for each of them as well.
    const logs = ['nexus', 'keeper-1', 'agent', 'audit']
      .map((name) => readFileSync(join(dir, 'logs', `${name}.log`), 'utf8'))
      .join('\n');
    assert.doesNotMatch(logs, /spike-shard:v1|s3cret/);
    assert.doesNotMatch(first.output() + second.output(), /spike-shard:v1/);
  });
});
