/**
 * The root key with real processes over real mTLS: the embedded agent, three
 * Keepers and Nexus on a real SQLite file. Nexus initialises, recovers by
 * itself after a restart, re-supplies Keepers that restart, and after a total
 * loss comes back only through break-glass recover/restore.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RecoverResponse, RestoreResponse } from '../../shared/api/operator.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { isKeeper, isNexus } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createX509Source, type X509Source } from '../../shared/spiffe/x509_source.ts';
import {
  describe as describeProgram,
  freePort,
  type RunningProgram,
  startProgram,
  stopAll,
} from '../harness/spawn.ts';

const TD_NAME = 'root-key.test';
const TD = parseTrustDomain(TD_NAME);
const WORKLOADS = [
  'nexus=/spike/nexus',
  'nexus-2=/spike/nexus/replica-2',
  'keeper-1=/spike/keeper/1',
  'keeper-2=/spike/keeper/2',
  'keeper-3=/spike/keeper/3',
  'pilot=/spike/pilot/role/superuser',
  'recover=/spike/pilot/role/recover',
  'restore=/spike/pilot/role/restore',
].join(',');

describe('root key across restarts, with real processes', () => {
  let dir: string;
  let agent: RunningProgram;
  let nexus: RunningProgram | undefined;
  const keepers: (RunningProgram | undefined)[] = [];
  let keeperPorts: number[] = [];
  let nexusPort: number;
  const sources: X509Source[] = [];
  const clients = new Map<string, MtlsClient>();
  const logger = createLogger({ component: 'test', sink: createMemorySink() });

  const socketOf = (name: string) => `unix://${join(dir, 'sockets', `${name}.sock`)}`;
  const identityEnv = (name: string) => ({
    SPIKE_TRUST_ROOT: TD_NAME,
    SPIFFE_ENDPOINT_SOCKET: socketOf(name),
    SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
  });
  const keeperUrls = () => keeperPorts.map((port) => `https://127.0.0.1:${port}`);

  async function client(name: string, server: 'nexus' | 'keeper'): Promise<MtlsClient> {
    const key = `${name}->${server}`;
    const known = clients.get(key);
    if (known !== undefined) return known;
    const source = await createX509Source({ address: socketOf(name), logger, timeoutMs: 10_000 });
    sources.push(source);
    const made = new MtlsClient({
      source,
      authorizeServer: server === 'nexus' ? isNexus(TD) : isKeeper(TD),
      timeoutMs: 3_000,
    });
    clients.set(key, made);
    return made;
  }

  async function startKeeper(i: number): Promise<void> {
    const keeper = startProgram('keeper', {
      env: { ...identityEnv(`keeper-${i + 1}`), SPIKE_KEEPER_TLS_PORT: String(keeperPorts[i]) },
    });
    keepers[i] = keeper;
    await keeper.waitFor(/"msg":"Listening"/);
  }

  function startNexus(name = 'nexus', port = nexusPort): RunningProgram {
    return startProgram('nexus', {
      env: {
        ...identityEnv(name),
        SPIKE_NEXUS_TLS_PORT: String(port),
        SPIKE_NEXUS_DATA_DIR: join(dir, 'nexus-data'),
        SPIKE_NEXUS_KEEPER_PEERS: keeperUrls().join(','),
        SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: '500ms',
        SPIKE_NEXUS_RECOVERY_MAX_INTERVAL: '1s',
        SPIKE_NEXUS_KEEPER_TIMEOUT: '1s',
      },
    });
  }

  async function status(port = nexusPort): Promise<{ status: number; state: string | undefined }> {
    const res = await (await client('pilot', 'nexus')).request({
      method: 'GET',
      url: new URL(`https://127.0.0.1:${port}/v1/status`),
    });
    return { status: res.status, state: (res.json() as { state?: string }).state };
  }

  async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (await check()) return;
      } catch {
        // not yet reachable
      }
      if (Date.now() > deadline) {
        const logs = [nexus, ...keepers].flatMap((p) =>
          p === undefined ? [] : [describeProgram(p)],
        );
        throw new Error(`Timed out waiting until ${what}\n${logs.join('\n')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  const isReady = async (port = nexusPort) => (await status(port)).status === 200;

  async function generationsOf(i: number): Promise<number[]> {
    const res = await (await client('nexus', 'keeper')).request({
      method: 'GET',
      url: new URL(`${keeperUrls()[i]}/v1/shards/generations`),
    });
    return (res.json() as { generations: number[] }).generations;
  }

  async function operator(name: 'pilot' | 'recover' | 'restore', path: string, body?: unknown) {
    const res = await (await client(name, 'nexus')).request({
      method: 'POST',
      url: new URL(`https://127.0.0.1:${nexusPort}${path}`),
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return { status: res.status, body: res.json() as Record<string, unknown> };
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spike-root-key-'));
    agent = startProgram('agent', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIKE_AGENT_DATA_DIR: dir,
        SPIKE_AGENT_WORKLOADS: WORKLOADS,
      },
    });
    await agent.waitFor(/Press Ctrl-C to stop/);
    keeperPorts = [await freePort(), await freePort(), await freePort()];
    nexusPort = await freePort();
    await Promise.all([0, 1, 2].map(startKeeper));
  });

  after(async () => {
    for (const made of clients.values()) made.close();
    for (const source of sources) source.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test('two Nexus starting at once on an empty store initialise exactly once', async () => {
    const otherPort = await freePort();
    nexus = startNexus();
    const second = startNexus('nexus-2', otherPort);
    await waitUntil('both are ready', async () => (await isReady()) && (await isReady(otherPort)));
    const initialised = [nexus, second].filter((p) =>
      p.stderr().includes('Initialising a new root key'),
    );
    assert.equal(initialised.length, 1, 'exactly one initialises');
    await second.stop();
    for (const i of [0, 1, 2]) {
      assert.ok((await generationsOf(i)).length > 0, `keeper-${i + 1} holds a shard`);
    }
  });

  test('a restarted Nexus is sealed (503) until it recovers the key from the Keepers by itself', async () => {
    // Pause two Keepers so that one shard is not enough, then restart Nexus.
    keepers[0]?.pause();
    keepers[1]?.pause();
    await nexus?.stop();
    nexus = startNexus();
    await waitUntil('Nexus answers sealed', async () => (await status()).status === 503);
    assert.equal((await status()).state, 'sealed');
    keepers[0]?.resume();
    keepers[1]?.resume();
    await waitUntil('Nexus is ready again', () => isReady());
    assert.match(nexus.stderr(), /Recovered the root key from the Keepers/);
  });

  test('a Keeper that restarts is re-supplied within seconds', async () => {
    await keepers[2]?.stop();
    await startKeeper(2);
    assert.deepEqual(await generationsOf(2), []);
    await waitUntil(
      'keeper-3 holds a shard again',
      async () => (await generationsOf(2)).length > 0,
      10_000,
    );
  });

  test('all Keepers restarted while Nexus runs are all re-supplied', async () => {
    await Promise.all([0, 1, 2].map((i) => keepers[i]?.stop()));
    await Promise.all([0, 1, 2].map(startKeeper));
    await waitUntil(
      'every Keeper holds a shard again',
      async () => (await Promise.all([0, 1, 2].map(generationsOf))).every((g) => g.length > 0),
      10_000,
    );
  });

  test('only the recover role may export shards; a superuser may not', async () => {
    assert.equal((await operator('pilot', '/v1/operator/recover')).status, 403);
    assert.equal((await operator('restore', '/v1/operator/recover')).status, 403);
    const shard = 'spike-shard:v1:1:1:2:AAAA:00000000';
    assert.equal((await operator('pilot', '/v1/operator/restore', { shard })).status, 403);
    assert.equal((await operator('recover', '/v1/operator/restore', { shard })).status, 403);
  });

  async function secretRequest(method: string, path: string, body?: unknown) {
    const res = await (await client('pilot', 'nexus')).request({
      method,
      url: new URL(`https://127.0.0.1:${nexusPort}/v1/secrets/data/${path}`),
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return { status: res.status, body: res.json() as Record<string, unknown> };
  }

  test('after Nexus and every Keeper are lost, only break-glass restore brings the key back', async () => {
    const written = await secretRequest('PUT', 'app/before-disaster', {
      data: { password: 'written-before-the-disaster' },
    });
    assert.equal(written.status, 200);
    const recovered = await operator('recover', '/v1/operator/recover');
    assert.equal(recovered.status, 200);
    const split = recovered.body as unknown as RecoverResponse;
    assert.equal(split.shards.length, 3);
    assert.equal(split.threshold, 2);
    // Restore is refused while Nexus is unsealed.
    const early = await operator('restore', '/v1/operator/restore', { shard: split.shards[0] });
    assert.equal(early.status, 409);
    assert.equal((early.body.error as { code: string }).code, 'ERR_ALREADY_UNSEALED');

    await nexus?.stop();
    await Promise.all([0, 1, 2].map((i) => keepers[i]?.stop()));
    await Promise.all([0, 1, 2].map(startKeeper));
    nexus = startNexus();
    await waitUntil('Nexus answers sealed', async () => (await status()).status === 503);
    // Sealed for good: the Keepers are empty.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal((await status()).state, 'sealed');

    const first = await operator('restore', '/v1/operator/restore', { shard: split.shards[0] });
    assert.equal(first.status, 200);
    assert.deepEqual(pick(first.body as unknown as RestoreResponse), {
      collected: 1,
      remaining: 1,
      restored: false,
    });
    const again = await operator('restore', '/v1/operator/restore', { shard: split.shards[0] });
    assert.deepEqual(pick(again.body as unknown as RestoreResponse), {
      collected: 1,
      remaining: 1,
      restored: false,
    });
    const bad = await operator('restore', '/v1/operator/restore', { shard: 'not a shard' });
    assert.equal(bad.status, 400);
    const second = await operator('restore', '/v1/operator/restore', { shard: split.shards[2] });
    assert.equal(second.status, 200);
    assert.equal((second.body as unknown as RestoreResponse).restored, true);
    await waitUntil('Nexus is ready', () => isReady());
    // The secret written before the disaster is readable again.
    const read = await secretRequest('GET', 'app/before-disaster');
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.data, { password: 'written-before-the-disaster' });
    await waitUntil(
      'every Keeper holds a shard again',
      async () => (await Promise.all([0, 1, 2].map(generationsOf))).every((g) => g.length > 0),
      10_000,
    );
    // The key is the one from before: a restarted Nexus recovers it from the
    // re-supplied Keepers and it opens the same sealed keyring.
    await nexus.stop();
    nexus = startNexus();
    await waitUntil('Nexus is ready after one more restart', () => isReady());
    const afterRestart = await secretRequest('GET', 'app/before-disaster');
    assert.deepEqual(afterRestart.body.data, { password: 'written-before-the-disaster' });
  });

  test('no process logged shard bytes', () => {
    const logs = [agent, nexus, ...keepers]
      .flatMap((p) => (p === undefined ? [] : [p.stdout(), p.stderr()]))
      .join('\n');
    assert.doesNotMatch(logs, /spike-shard:v1/);
    assert.doesNotMatch(logs, /"shard":"/);
    // The audit trail (stdout by default) records the request, never the value.
    assert.match(nexus?.stdout() ?? '', /"action":"secret.read"/);
    assert.doesNotMatch(logs, /written-before-the-disaster/);
  });
});

function pick(progress: RestoreResponse) {
  return {
    collected: progress.collected,
    remaining: progress.remaining,
    restored: progress.restored,
  };
}
