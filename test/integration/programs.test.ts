/**
 * The programs as real processes: the embedded agent serves real unix-socket
 * Workload APIs, Nexus and a Keeper fetch their SVIDs from it and serve real
 * mTLS, and callers are admitted or refused by SPIFFE ID. The agent rotates
 * SVIDs every few seconds here, so the suite also proves that a running
 * server picks up a pushed rotation without a failed request.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { isKeeper, isNexus } from '../../shared/spiffe/identities.ts';
import { clientAgentOptions } from '../../shared/spiffe/mtls.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createX509Source, type X509Source } from '../../shared/spiffe/x509_source.ts';
import {
  describe as describeProgram,
  type RunningProgram,
  runProgram,
  startProgram,
  stopAll,
} from '../harness/spawn.ts';

const TD_NAME = 'programs.test';
const TD = parseTrustDomain(TD_NAME);
/** What this sealed Nexus answers on /v1/health: an answer over mTLS, not a failure. */
const SEALED = 503;
const LISTENING_REGEXP = /"address":"(https:\/\/[^"]+)"[^\n]*"msg":"Listening"/;

describe('the programs over the embedded agent', () => {
  let dir: string;
  let agent: RunningProgram;
  let nexus: RunningProgram;
  let keeper: RunningProgram;
  let nexusUrl: URL;
  let keeperUrl: URL;
  const sources: X509Source[] = [];
  const clients: MtlsClient[] = [];
  const logger = createLogger({ component: 'test', sink: createMemorySink() });

  const socketOf = (name: string) => `unix://${join(dir, 'sockets', `${name}.sock`)}`;
  const identityEnv = (name: string) => ({
    SPIKE_TRUST_ROOT: TD_NAME,
    SPIFFE_ENDPOINT_SOCKET: socketOf(name),
    SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
  });

  async function sourceFor(name: string): Promise<X509Source> {
    const source = await createX509Source({ address: socketOf(name), logger, timeoutMs: 10_000 });
    sources.push(source);
    return source;
  }

  async function clientFor(name: string, server: 'nexus' | 'keeper'): Promise<MtlsClient> {
    const client = new MtlsClient({
      source: await sourceFor(name),
      authorizeServer: server === 'nexus' ? isNexus(TD) : isKeeper(TD),
      timeoutMs: 5_000,
    });
    clients.push(client);
    return client;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spike-programs-'));
    agent = startProgram('agent', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIKE_AGENT_DATA_DIR: dir,
        SPIKE_AGENT_SVID_TTL: '10s',
        SPIKE_AGENT_WORKLOADS:
          'nexus=/spike/nexus,keeper-1=/spike/keeper/1,pilot=/spike/pilot/role/superuser,web=/apps/web',
      },
    });
    await agent.waitFor(/Press Ctrl-C to stop/);
    keeper = startProgram('keeper', {
      env: { ...identityEnv('keeper-1'), SPIKE_KEEPER_TLS_PORT: '0' },
    });
    nexus = startProgram('nexus', {
      env: {
        ...identityEnv('nexus'),
        SPIKE_NEXUS_TLS_PORT: '0',
        SPIKE_NEXUS_DATA_DIR: join(dir, 'nexus'),
        // Nexus stays sealed here (no Keeper holds shards): these tests are
        // about identities; test/integration/root_key.test.ts is about keys.
        SPIKE_NEXUS_KEEPER_PEERS: 'https://127.0.0.1:9,https://127.0.0.1:10,https://127.0.0.1:11',
        // The rotation test below sends requests back to back for seconds,
        // as fast as Nexus answers; the per-identity limit is another suite's.
        SPIKE_NEXUS_RATE_LIMIT_PER_SECOND: '0',
      },
    });
    keeperUrl = new URL((await keeper.waitFor(LISTENING_REGEXP))[1] as string);
    nexusUrl = new URL((await nexus.waitFor(LISTENING_REGEXP))[1] as string);
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const source of sources) source.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test('each program logs its own SPIFFE ID and SVID expiry at start', () => {
    assert.match(nexus.stderr(), /"spiffeId":"spiffe:\/\/programs\.test\/spike\/nexus"/);
    assert.match(keeper.stderr(), /"spiffeId":"spiffe:\/\/programs\.test\/spike\/keeper\/1"/);
    assert.match(nexus.stderr(), /"svidNotAfter":"\d{4}-/);
  });

  test('the agent logs every SVID it issues without key material', () => {
    const issued = agent
      .stderr()
      .split('\n')
      .filter((line) => line.includes('/spike/nexus'));
    assert.ok(issued.length > 0);
    assert.doesNotMatch(agent.stderr(), /PRIVATE KEY/);
  });

  test('Pilot reaches Nexus over mTLS with its superuser SVID', async () => {
    const client = await clientFor('pilot', 'nexus');
    const res = await client.request({ method: 'GET', url: new URL('/v1/health', nexusUrl) });
    // This Nexus stays sealed (see before()), and its health says so.
    assert.equal(res.status, SEALED);
    assert.deepEqual(res.json(), { status: 'sealed', component: 'nexus' });
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  test('an application SVID of the trust domain reaches Nexus too', async () => {
    const client = await clientFor('web', 'nexus');
    const res = await client.request({ method: 'GET', url: new URL('/v1/health', nexusUrl) });
    assert.equal(res.status, SEALED);
  });

  test('only Nexus may connect to a Keeper', async () => {
    const asNexus = await clientFor('nexus', 'keeper');
    const ok = await asNexus.request({ method: 'GET', url: new URL('/v1/health', keeperUrl) });
    assert.equal(ok.status, 200);
    const asPilot = await clientFor('pilot', 'keeper');
    await assert.rejects(asPilot.request({ method: 'GET', url: new URL('/v1/health', keeperUrl) }));
    await keeper.waitFor(/"msg":"Refused a TLS peer"/, 5_000);
    assert.match(keeper.stderr(), /spike\/pilot\/role\/superuser/);
  });

  test('a client that expects a Keeper refuses to talk to Nexus', async () => {
    const client = await clientFor('pilot', 'keeper');
    await assert.rejects(
      client.request({ method: 'GET', url: new URL('/v1/health', nexusUrl) }),
      /not the expected one/,
    );
  });

  test('a program started under the wrong identity refuses to run', async () => {
    const result = await runProgram('keeper', {
      env: { ...identityEnv('pilot'), SPIKE_KEEPER_TLS_PORT: '0' },
    });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /is not allowed for it/);
  });

  test('bad configuration is reported all at once with exit status 2', async () => {
    const result = await runProgram('nexus', {
      env: {
        SPIKE_TRUST_ROOT: 'Bad Domain',
        SPIFFE_ENDPOINT_SOCKET: 'unix://relative/path',
        SPIKE_NEXUS_TLS_PORT: '70000',
      },
    });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /SPIKE_TRUST_ROOT/);
    assert.match(result.stderr, /SPIFFE_ENDPOINT_SOCKET/);
    assert.match(result.stderr, /SPIKE_NEXUS_TLS_PORT/);
  });

  test('spike whoami prints the caller SPIFFE ID from the Workload API', async () => {
    const result = await runProgram('pilot', {
      env: identityEnv('pilot'),
      args: ['--format', 'json', 'whoami'],
    });
    assert.equal(result.status, 0, result.stderr);
    const out = JSON.parse(result.stdout) as { spiffeId: string };
    assert.equal(out.spiffeId, 'spiffe://programs.test/spike/pilot/role/superuser');
  });

  test('spike fails with a specific message when no Workload API answers', async () => {
    const result = await runProgram('pilot', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIFFE_ENDPOINT_SOCKET: `unix://${join(dir, 'missing.sock')}`,
        SPIKE_SPIFFE_SOURCE_TIMEOUT: '1s',
      },
      args: ['whoami'],
    });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /ERR_WORKLOAD_API_UNAVAILABLE/);
  });

  test('Nexus picks up a pushed SVID rotation without a failed request', async () => {
    const client = await clientFor('pilot', 'nexus');
    // The serial of the certificate Nexus presents on a new connection.
    const serialOf = async () => {
      const source = await sourceFor('pilot');
      return new Promise<string>((resolve, reject) => {
        const req = request(
          new URL('/v1/health', nexusUrl),
          { ...clientAgentOptions(source, isNexus(TD)), agent: false },
          (res) => {
            const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
            res.resume();
            res.on('end', () => resolve(serial));
          },
        );
        req.on('error', reject);
        req.end();
      });
    };
    const before = await serialOf();
    const swapsBefore = countSwaps(nexus.stderr());
    const failures: unknown[] = [];
    let requests = 0;
    // SVIDs live 10 s here, so Nexus rotates within about 6 s.
    const deadline = Date.now() + 20_000;
    const oneRequest = async () => {
      try {
        const res = await client.request({ method: 'GET', url: new URL('/v1/health', nexusUrl) });
        if (res.status !== SEALED) failures.push(res.status);
      } catch (err) {
        failures.push(err);
      }
      requests += 1;
    };
    while (countSwaps(nexus.stderr()) === swapsBefore && Date.now() < deadline) {
      await oneRequest();
    }
    assert.ok(
      countSwaps(nexus.stderr()) > swapsBefore,
      `Nexus did not rotate in time\n${describeProgram(nexus)}\n${describeProgram(agent)}`,
    );
    for (let i = 0; i < 20; i++) {
      await oneRequest();
    }
    assert.deepEqual(failures, []);
    assert.ok(requests > 20);
    assert.notEqual(await serialOf(), before);
  });
});

function countSwaps(log: string): number {
  return log.split('Swapped the TLS credentials').length - 1;
}
