/**
 * A Keeper as a real process over real mTLS, with its SVID from the embedded
 * agent: Nexus stores, reads and prunes shards; every other peer (Pilot, an
 * application, a foreign trust domain) is refused at the TLS layer before a
 * handler runs; a restart loses every shard (memory only); and no log line
 * carries shard bytes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  parseGenerationsResponse,
  parseListShardsResponse,
  shardToWire,
} from '../../shared/api/keeper.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { encodeBase64 } from '../../shared/crypto/base64.ts';
import { SHARD_VALUE_BYTES, type Shard } from '../../shared/crypto/shard.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { isKeeper } from '../../shared/spiffe/identities.ts';
import { MtlsClient, type MtlsResponse } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createX509Source, type X509Source } from '../../shared/spiffe/x509_source.ts';
import { createTestCa } from '../harness/pki.ts';
import {
  describe as describeProgram,
  type RunningProgram,
  startProgram,
  stopAll,
} from '../harness/spawn.ts';

const TD_NAME = 'keeper.test';
const TD = parseTrustDomain(TD_NAME);
const LISTENING_REGEXP = /"address":"(https:\/\/[^"]+)"[^\n]*"msg":"Listening"/;
const REFUSED = 'Refused a TLS peer';

function shard(generation: number, seed: number): Shard {
  return {
    generation,
    index: 1,
    threshold: 2,
    value: Uint8Array.from({ length: SHARD_VALUE_BYTES }, (_, i) => (seed * 41 + i * 11 + 3) & 255),
  };
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

async function eventually(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('Timed out waiting for a condition');
    await delay(25);
  }
}

let sourcesUsed = 0;

/**
 * A loopback address no earlier connection came from (Linux routes all of
 * 127/8 to lo): refusals after the first from one address in a minute are
 * only counted, into a summary written when that minute ends, so each
 * refusal these tests look for in the log comes from its own address.
 */
function freshSource(): string {
  sourcesUsed += 1;
  return `127.2.${Math.floor(sourcesUsed / 250)}.${(sourcesUsed % 250) + 1}`;
}

/**
 * One request with raw node:https and the given client credentials, from a
 * fresh loopback address; never follows redirects.
 */
function rawRequest(
  url: URL,
  credentials: { key: string; cert: string } | undefined,
  method = 'GET',
): Promise<{ status?: number; error?: Error }> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        method,
        agent: false,
        localAddress: freshSource(),
        ...credentials,
        // The server's identity is not what this test is about.
        rejectUnauthorized: false,
        timeout: 5_000,
      },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (error) => resolve({ error }));
    req.end();
  });
}

describe('a Keeper process', () => {
  let dir: string;
  let agent: RunningProgram;
  let keeper: RunningProgram;
  let keeperUrl: URL;
  /** Every Keeper process started, for the log checks. */
  const keepers: RunningProgram[] = [];
  const sources: X509Source[] = [];
  const clients: MtlsClient[] = [];
  const logger = createLogger({ component: 'test', sink: createMemorySink() });
  const sent: Shard[] = [];

  const socketOf = (name: string) => `unix://${join(dir, 'sockets', `${name}.sock`)}`;

  async function clientFor(name: string): Promise<MtlsClient> {
    const source = await createX509Source({ address: socketOf(name), logger, timeoutMs: 10_000 });
    sources.push(source);
    const client = new MtlsClient({ source, authorizeServer: isKeeper(TD), timeoutMs: 5_000 });
    clients.push(client);
    return client;
  }

  async function startKeeper(): Promise<void> {
    keeper = startProgram('keeper', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIFFE_ENDPOINT_SOCKET: socketOf('keeper-1'),
        SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
        SPIKE_KEEPER_TLS_PORT: '0',
        SPIKE_SYSTEM_LOG_LEVEL: 'debug',
      },
    });
    keepers.push(keeper);
    keeperUrl = new URL((await keeper.waitFor(LISTENING_REGEXP))[1] as string);
  }

  function put(client: MtlsClient, value: Shard): Promise<MtlsResponse> {
    sent.push(value);
    return client.request({
      method: 'PUT',
      url: new URL(PATHS.keeperShards, keeperUrl),
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(shardToWire(value)),
    });
  }

  function get(client: MtlsClient, path: string): Promise<MtlsResponse> {
    return client.request({ method: 'GET', url: new URL(path, keeperUrl) });
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spike-keeper-'));
    agent = startProgram('agent', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIKE_AGENT_DATA_DIR: dir,
        SPIKE_AGENT_WORKLOADS:
          'nexus=/spike/nexus,keeper-1=/spike/keeper/1,pilot=/spike/pilot/role/superuser,web=/apps/web',
      },
    });
    await agent.waitFor(/Press Ctrl-C to stop/);
    await startKeeper();
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const source of sources) source.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test('Nexus stores, lists and prunes shards', async () => {
    const nexus = await clientFor('nexus');
    const first = await put(nexus, shard(1, 1));
    assert.equal(first.status, 200, first.text());
    assert.deepEqual(parseGenerationsResponse(first.json()), [1]);
    const again = await put(nexus, shard(1, 1));
    assert.equal(again.status, 200);
    const second = await put(nexus, shard(2, 2));
    assert.deepEqual(parseGenerationsResponse(second.json()), [1, 2]);

    const conflict = await put(nexus, shard(2, 3));
    assert.equal(conflict.status, 409);
    assert.equal((conflict.json() as { error: { code: string } }).error.code, 'ERR_CONFLICT');

    const listed = await get(nexus, PATHS.keeperShards);
    assert.equal(listed.status, 200);
    assert.equal(listed.headers['cache-control'], 'no-store');
    assert.deepEqual(parseListShardsResponse(listed.json()), [shard(1, 1), shard(2, 2)]);

    const pruned = await nexus.request({
      method: 'POST',
      url: new URL(PATHS.keeperPrune, keeperUrl),
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ keepFrom: 2 }),
    });
    assert.equal(pruned.status, 200, pruned.text());
    assert.deepEqual(parseGenerationsResponse(pruned.json()), [2]);
    const generations = await get(nexus, PATHS.keeperGenerations);
    assert.deepEqual(parseGenerationsResponse(generations.json()), [2]);
  });

  for (const [who, name] of [
    ['Pilot superuser', 'pilot'],
    ['an application SVID', 'web'],
  ] as const) {
    test(`${who} can neither read nor write a shard: refused at TLS`, async () => {
      const source = await createX509Source({ address: socketOf(name), logger, timeoutMs: 10_000 });
      sources.push(source);
      const svid = source.getX509Svid();
      const credentials = { key: svid.privateKeyPem(), cert: svid.certificatePem() };
      const refusedBefore = count(keeper.stderr(), REFUSED);
      const written = await rawRequest(new URL(PATHS.keeperShards, keeperUrl), credentials, 'PUT');
      const read = await rawRequest(new URL(PATHS.keeperShards, keeperUrl), credentials);
      assert.equal(written.status, undefined, `expected a refusal, got ${written.status}`);
      assert.equal(read.status, undefined, `expected a refusal, got ${read.status}`);
      await eventually(() => count(keeper.stderr(), REFUSED) >= refusedBefore + 2);
      assert.match(keeper.stderr(), new RegExp(name === 'pilot' ? 'role/superuser' : 'apps/web'));
    });
  }

  test('a certificate of a foreign trust domain, or none, is refused at TLS', async () => {
    const foreign = await createTestCa('foreign.test');
    const svid = await foreign.issueSvid('spiffe://foreign.test/spike/nexus');
    const refusedBefore = count(keeper.stderr(), REFUSED);
    const withForeign = await rawRequest(new URL(PATHS.keeperShards, keeperUrl), {
      key: svid.privateKeyPem,
      cert: svid.certificatePem,
    });
    assert.equal(withForeign.status, undefined, `expected a refusal, got ${withForeign.status}`);
    assert.ok(withForeign.error);
    const withNone = await rawRequest(new URL(PATHS.keeperShards, keeperUrl), undefined);
    assert.equal(withNone.status, undefined, `expected a refusal, got ${withNone.status}`);
    await eventually(() => count(keeper.stderr(), REFUSED) >= refusedBefore + 2);
  });

  test('refused peers never reached a handler and changed nothing', async () => {
    const log = keeper.stderr();
    assert.equal(count(log, '"msg":"Access denied"'), 0, describeProgram(keeper));
    assert.doesNotMatch(log, /"generation":9/);
    const nexus = await clientFor('nexus');
    const generations = await get(nexus, PATHS.keeperGenerations);
    assert.deepEqual(parseGenerationsResponse(generations.json()), [2]);
  });

  test('a restarted Keeper holds nothing: shards live in memory only', async () => {
    await keeper.stop();
    await startKeeper();
    const nexus = await clientFor('nexus');
    const generations = await get(nexus, PATHS.keeperGenerations);
    assert.equal(generations.status, 200);
    assert.deepEqual(parseGenerationsResponse(generations.json()), []);
    const listed = await get(nexus, PATHS.keeperShards);
    assert.deepEqual(parseListShardsResponse(listed.json()), []);
    const stored = await put(nexus, shard(3, 4));
    assert.deepEqual(parseGenerationsResponse(stored.json()), [3]);
  });

  test('no Keeper log line carries shard bytes', async () => {
    assert.ok(sent.length > 0);
    for (const process of keepers) {
      // The answer can arrive before this process has read the Keeper's pipes.
      await eventually(() => /"msg":"Stored a shard"/.test(process.stdout() + process.stderr()));
      const output = process.stdout() + process.stderr();
      for (const value of sent) {
        assert.ok(!output.includes(encodeBase64(value.value)), 'a shard appears in the log');
      }
    }
  });
});
