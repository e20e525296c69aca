/**
 * The embedded agent end to end: real gRPC over real unix sockets, read by the
 * broker's own Workload API client (`X509Source`) and by the one-shot fetch
 * Pilot uses (`fetchX509Source`), plus the `agent/main.ts`
 * process itself (summary on stdout, clean stop on SIGTERM, exit 2 on bad
 * configuration).
 */
import assert from 'node:assert/strict';
import { lstat, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { type RunningAgent, startAgent } from '../../agent/agent.ts';
import { loadAgentConfig } from '../../agent/config.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { fetchX509SvidOnce } from '../../shared/spiffe/workload_fetch_once.ts';
import {
  createX509Source,
  fetchX509Source,
  type X509Source,
} from '../../shared/spiffe/x509_source.ts';
import { verifyX509Svid } from '../../shared/spiffe/x509_svid.ts';
import { completeLines } from '../harness/lines.ts';
import { RawWorkloadClient } from '../harness/raw_workload_client.ts';
import { runProgram, startProgram, stopAll } from '../harness/spawn.ts';

const WAIT_MS = 10_000;
const WORKLOADS = 'nexus=/spike/nexus,keeper-1=/spike/keeper/1,pilot=/spike/pilot/role/superuser';

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Timed out after ${timeoutMs}ms: ${what}`)),
        timeoutMs,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

async function isGone(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined)) === undefined;
}

describe('embedded agent over the Workload API', () => {
  let root: string;
  let agent: RunningAgent;
  const sources: X509Source[] = [];
  const sink = createMemorySink();
  const logger = createLogger({ component: 'agent', level: 'debug', sink });
  const clientLogger = createLogger({
    component: 'test',
    level: 'error',
    sink: createMemorySink(),
  });

  async function sourceFor(name: string): Promise<X509Source> {
    const socket = agent.sockets.find((s) => s.name === name);
    assert.ok(socket, `no socket ${name}`);
    const source = await createX509Source({
      address: socket.address,
      logger: clientLogger,
      timeoutMs: WAIT_MS,
      backoffUnitMs: 50,
    });
    sources.push(source);
    return source;
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'spike-agent-it-'));
    const config = loadAgentConfig({
      SPIKE_TRUST_ROOT: 'example.org',
      SPIKE_AGENT_DATA_DIR: join(root, 'data'),
      SPIKE_AGENT_SVID_TTL: '10s',
      SPIKE_AGENT_WORKLOADS: WORKLOADS,
    });
    agent = await startAgent(config, logger);
  });

  after(async () => {
    for (const source of sources) {
      source.close();
    }
    await agent.close();
    await rm(root, { recursive: true, force: true });
  });

  test('serves one owner-only socket per registration in an owner-only directory', async () => {
    assert.deepEqual(
      agent.sockets.map((s) => [s.name, s.spiffeId.toString(), s.address]),
      [
        [
          'nexus',
          'spiffe://example.org/spike/nexus',
          `unix://${join(root, 'data', 'sockets', 'nexus.sock')}`,
        ],
        [
          'keeper-1',
          'spiffe://example.org/spike/keeper/1',
          `unix://${join(root, 'data', 'sockets', 'keeper-1.sock')}`,
        ],
        [
          'pilot',
          'spiffe://example.org/spike/pilot/role/superuser',
          `unix://${join(root, 'data', 'sockets', 'pilot.sock')}`,
        ],
      ],
    );
    assert.equal((await lstat(join(root, 'data', 'sockets'))).mode & 0o777, 0o700);
    assert.equal((await lstat(join(root, 'data'))).mode & 0o777, 0o700);
    for (const socket of agent.sockets) {
      const info = await lstat(socket.socketPath);
      assert.ok(info.isSocket(), socket.socketPath);
      assert.equal(info.mode & 0o777, 0o600, socket.socketPath);
    }
  });

  test('each socket hands out its own identity only, verifiable against the agent bundle', async () => {
    for (const socket of agent.sockets) {
      const source = await sourceFor(socket.name);
      const svid = source.getX509Svid();
      assert.ok(svid.id.equals(socket.spiffeId), `${socket.name} got ${svid.id.toString()}`);
      assert.equal(svid.chain.length, 1);
      const bundle = source.getX509Bundles().get(agent.trustDomain);
      assert.ok(bundle, 'bundle of the agent trust domain');
      assert.deepEqual(bundle.der(), [agent.bundleDer()]);
      const verified = verifyX509Svid(svid.chain, source.getX509Bundles());
      assert.ok(verified.id.equals(socket.spiffeId));
      // About the configured 10 s, plus the 10 s backdating.
      const lifetime = verified.notAfter.getTime() - verified.notBefore.getTime();
      assert.ok(lifetime >= 18_000 && lifetime <= 21_000, `lifetime ${lifetime}`);
    }
  });

  test("a one-shot fetch (Pilot's, without grpc-js) gets what the watching client gets", async () => {
    const socket = agent.sockets.find((s) => s.name === 'pilot');
    assert.ok(socket);
    const watched = await sourceFor('pilot');
    // Several at once, on their own connections, each cancelled after its first message.
    const fetched = await Promise.all(
      [1, 2, 3].map(() => fetchX509Source({ address: socket.address, timeoutMs: WAIT_MS })),
    );
    for (const source of fetched) {
      const svid = source.getX509Svid();
      const expected = watched.getX509Svid();
      assert.ok(svid.id.equals(expected.id));
      assert.deepEqual(svid.chain, expected.chain);
      assert.deepEqual(svid.privateKeyPkcs8, expected.privateKeyPkcs8);
      assert.ok(source.getX509Bundles().equals(watched.getX509Bundles()));
      source.close();
      assert.throws(() => source.getX509Svid(), /closed/);
    }
    // The agent goes on serving the watch and new calls.
    const again = await fetchX509SvidOnce({ address: socket.address, timeoutMs: WAIT_MS });
    assert.deepEqual(again.svids[0]?.chain, watched.getX509Svid().chain);
  });

  test('schedules rotation at about half the SVID lifetime', () => {
    const dueIn = agent.rotationDueAt('nexus').getTime() - Date.now();
    assert.ok(dueIn > 0 && dueIn <= 5_500 + 1_000, `due in ${dueIn}ms`);
  });

  test('a forced rotation is pushed to the client source', async () => {
    const source = await sourceFor('keeper-1');
    const before = source.getX509Svid();
    const updated = new Promise<void>((resolveUpdate) => {
      const off = source.onUpdate(() => {
        if (source.getX509Svid() !== before) {
          off();
          resolveUpdate();
        }
      });
    });
    const rotated = await agent.rotateNow('keeper-1');
    await withTimeout(updated, WAIT_MS, 'rotated SVID at the client');
    const after = source.getX509Svid();
    assert.ok(after.id.equals(before.id));
    const verified = verifyX509Svid(after.chain, source.getX509Bundles());
    assert.equal(verified.serialNumber, rotated.serialNumber.toLowerCase());
    assert.notDeepEqual(after.chain[0], before.chain[0]);
    assert.ok(
      sink.lines.some(
        (l) =>
          l.action === 'svid.issue' &&
          l.serialNumber === rotated.serialNumber &&
          l.spiffeId === 'spiffe://example.org/spike/keeper/1',
      ),
      'the rotation was audited',
    );
  });

  // Each raw client is closed before the agent stops: on Deno 2.9.6 a client
  // connection that cancelled a stream crashes the process when the server's
  // GOAWAY arrives (nghttp2 assertion, denoland/deno#36788).
  test('refuses a request without the security header with InvalidArgument', async () => {
    const client = new RawWorkloadClient(agent.sockets[0]?.address ?? '');
    try {
      const positive = client.stream('FetchX509SVID');
      await positive.next(WAIT_MS);
      positive.cancel();
      const result = await client.stream('FetchX509SVID', { header: [] }).status(WAIT_MS);
      assert.equal(result.code, status.INVALID_ARGUMENT);
      assert.equal(result.details, 'security header missing from request');
    } finally {
      client.close();
    }
  });

  test('answers FetchJWTSVID with Unimplemented', async () => {
    const client = new RawWorkloadClient(agent.sockets[0]?.address ?? '');
    try {
      const result = await client.unary('FetchJWTSVID', { audience: ['spike'] });
      assert.equal(result.code, status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
  });

  test('close() removes every socket; a restart reuses the stored CA', async () => {
    for (const source of sources.splice(0)) {
      source.close();
    }
    const bundle = agent.bundleDer();
    const paths = agent.sockets.map((s) => s.socketPath);
    await agent.close();
    for (const path of paths) {
      assert.ok(await isGone(path), `${path} still exists`);
    }
    agent = await startAgent(
      loadAgentConfig({
        SPIKE_TRUST_ROOT: 'example.org',
        SPIKE_AGENT_DATA_DIR: join(root, 'data'),
        SPIKE_AGENT_WORKLOADS: 'nexus=/spike/nexus',
      }),
      logger,
    );
    assert.deepEqual(agent.bundleDer(), bundle);
    const source = await sourceFor('nexus');
    assert.ok(source.getX509Svid().id.equals(agent.sockets[0]?.spiffeId ?? assert.fail()));
  });
});

describe('agent/main.ts', () => {
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'spike-agent-main-'));
  });
  after(async () => {
    await stopAll();
    await rm(root, { recursive: true, force: true });
  });

  test('prints what it serves, logs start-up, and removes its sockets on SIGTERM', async () => {
    const dataDir = join(root, 'run');
    const run = startProgram('agent', {
      env: {
        SPIKE_TRUST_ROOT: 'example.org',
        SPIKE_AGENT_DATA_DIR: dataDir,
        SPIKE_AGENT_WORKLOADS: 'nexus=/spike/nexus,pilot=/spike/pilot/role/superuser',
      },
    });
    await run.waitFor(/Press Ctrl-C/);
    const nexusSocket = join(dataDir, 'sockets', 'nexus.sock');
    const out = run.stdout();
    assert.match(out, /trust domain "example\.org"/);
    assert.ok(out.includes('spiffe://example.org/spike/nexus'));
    assert.ok(out.includes(`SPIFFE_ENDPOINT_SOCKET=unix://${nexusSocket}`));
    assert.ok(out.includes('spiffe://example.org/spike/pilot/role/superuser'));
    const started = completeLines(run.stderr())
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.msg === 'Agent started');
    assert.ok(started, `no start-up line in:\n${run.stderr()}`);
    assert.equal(started.trustDomain, 'example.org');
    assert.equal(typeof started.version, 'string');
    assert.ok((await lstat(nexusSocket)).isSocket());

    run.child.kill('SIGTERM');
    const code = await run.exited(15_000);
    // Deno's child_process reports the signal it sent instead of the child's
    // own exit status, so there the log line is the evidence of a clean stop.
    if (!('Deno' in globalThis)) {
      assert.equal(code, 0);
    }
    assert.match(run.stderr(), /"msg":"Agent stopped"/);
    assert.ok(await isGone(nexusSocket), 'socket removed');
    assert.ok(await isGone(join(dataDir, 'sockets', 'pilot.sock')), 'socket removed');
  });

  test('exits with status 2 and lists every configuration problem on stderr', async () => {
    const result = await runProgram('agent', {
      env: {
        SPIKE_AGENT_DATA_DIR: 'relative',
        SPIKE_AGENT_SVID_TTL: '1s',
        SPIKE_AGENT_WORKLOADS: 'x=/spike/agent',
      },
    });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /SPIKE_AGENT_DATA_DIR must be an absolute path/);
    assert.match(result.stderr, /SPIKE_AGENT_SVID_TTL must be at least/);
    assert.match(result.stderr, /SPIKE_AGENT_WORKLOADS .*reserved agent ID/);
    assert.equal(result.stdout, '');
  });
});
