/**
 * Two Nexus processes on one PostgreSQL database, with real processes over
 * real mTLS (the embedded agent, three Keepers): a secret written through one
 * is read through the other at once, and check-and-set holds across them.
 *
 * Skipped, with a notice, unless SPIKE_TEST_DATABASE_URL is set.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { isNexus } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createX509Source, type X509Source } from '../../shared/spiffe/x509_source.ts';
import {
  createScratchDatabase,
  dropScratchDatabases,
  postgresSkip,
  TEST_DATABASE_URL_ENV,
} from '../harness/postgres.ts';
import {
  describe as describeProgram,
  freePort,
  type RunningProgram,
  startProgram,
  stopAll,
} from '../harness/spawn.ts';

const TD_NAME = 'postgres.test';
const TD = parseTrustDomain(TD_NAME);
const WORKLOADS = [
  'nexus=/spike/nexus',
  'nexus-2=/spike/nexus/replica-2',
  'keeper-1=/spike/keeper/1',
  'keeper-2=/spike/keeper/2',
  'keeper-3=/spike/keeper/3',
  'pilot=/spike/pilot/role/superuser',
].join(',');

const skip = postgresSkip();

if (skip !== false) {
  test(`two Nexus processes on one PostgreSQL (${TEST_DATABASE_URL_ENV})`, { skip }, () => {});
} else {
  describe('two Nexus processes on one PostgreSQL database', () => {
    let dir: string;
    let databaseUrl: string;
    let pilot: MtlsClient;
    let source: X509Source;
    const nexusPorts: number[] = [];
    const programs: RunningProgram[] = [];
    const logger = createLogger({ component: 'test', sink: createMemorySink() });

    const socketOf = (name: string) => `unix://${join(dir, 'sockets', `${name}.sock`)}`;
    const identityEnv = (name: string) => ({
      SPIKE_TRUST_ROOT: TD_NAME,
      SPIFFE_ENDPOINT_SOCKET: socketOf(name),
      SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
    });

    async function call(
      nexus: 0 | 1,
      method: 'GET' | 'PUT',
      path: string,
      body?: unknown,
    ): Promise<{ status: number; body: Record<string, unknown> }> {
      const res = await pilot.request({
        method,
        url: new URL(`https://127.0.0.1:${nexusPorts[nexus]}${path}`),
        ...(body === undefined
          ? {}
          : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
      return { status: res.status, body: res.json() as Record<string, unknown> };
    }

    async function waitUntilReady(port: number, timeoutMs = 30_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          const res = await pilot.request({
            method: 'GET',
            url: new URL(`https://127.0.0.1:${port}/v1/status`),
          });
          if (res.status === 200) return;
        } catch {
          // not yet listening
        }
        if (Date.now() > deadline) {
          throw new Error(
            `Nexus on ${port} never became ready\n${programs.map(describeProgram).join('\n')}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'spike-postgres-'));
      databaseUrl = await createScratchDatabase();
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
      await Promise.all(
        keeperPorts.map(async (port, i) => {
          const keeper = startProgram('keeper', {
            env: { ...identityEnv(`keeper-${i + 1}`), SPIKE_KEEPER_TLS_PORT: String(port) },
          });
          programs.push(keeper);
          await keeper.waitFor(/"msg":"Listening"/);
        }),
      );
      source = await createX509Source({ address: socketOf('pilot'), logger, timeoutMs: 10_000 });
      pilot = new MtlsClient({ source, authorizeServer: isNexus(TD), timeoutMs: 5_000 });
      for (const name of ['nexus', 'nexus-2']) {
        const port = await freePort();
        nexusPorts.push(port);
        programs.push(
          startProgram('nexus', {
            env: {
              ...identityEnv(name),
              SPIKE_NEXUS_TLS_PORT: String(port),
              SPIKE_NEXUS_BACKEND_STORE: 'postgres',
              SPIKE_NEXUS_DATABASE_URL: databaseUrl,
              // Unused by the postgres backend; a private directory all the same.
              SPIKE_NEXUS_DATA_DIR: join(dir, `${name}-data`),
              SPIKE_NEXUS_KEEPER_PEERS: keeperPorts
                .map((keeperPort) => `https://127.0.0.1:${keeperPort}`)
                .join(','),
              SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: '500ms',
              SPIKE_NEXUS_RECOVERY_MAX_INTERVAL: '1s',
              SPIKE_NEXUS_KEEPER_TIMEOUT: '1s',
            },
          }),
        );
      }
      await Promise.all(nexusPorts.map((port) => waitUntilReady(port)));
    });

    after(async () => {
      pilot?.close();
      source?.close();
      await stopAll();
      await dropScratchDatabases();
      rmSync(dir, { recursive: true, force: true });
    });

    test('both log the database with its password masked', () => {
      const password = new URL(databaseUrl).password;
      for (const program of programs.filter((p) => p.program === 'nexus')) {
        const logs = program.stdout() + program.stderr();
        assert.match(logs, /"database":"postgres:\/\/[^"]*\*\*\*@/);
        if (password !== '') assert.ok(!logs.includes(`:${password}@`), 'password in the log');
      }
    });

    test('a secret written through one Nexus is read through the other at once', async () => {
      const put = await call(0, 'PUT', '/v1/secrets/data/app/db/creds', {
        data: { user: 'app', password: 'first' },
      });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const read = await call(1, 'GET', '/v1/secrets/data/app/db/creds');
      assert.equal(read.status, 200, JSON.stringify(read.body));
      assert.deepEqual(read.body.data, { user: 'app', password: 'first' });
      assert.equal(read.body.version, 1);

      assert.equal(
        (await call(1, 'PUT', '/v1/secrets/data/app/db/creds', { data: { v: '2' } })).status,
        200,
      );
      const back = await call(0, 'GET', '/v1/secrets/data/app/db/creds');
      assert.deepEqual(back.body.data, { v: '2' });
      assert.equal(back.body.version, 2);
    });

    test('a check-and-set write through the second with a stale version fails with 409', async () => {
      const path = '/v1/secrets/data/app/cas';
      assert.equal((await call(0, 'PUT', path, { data: { v: '1' }, cas: 0 })).status, 200);
      assert.equal((await call(0, 'PUT', path, { data: { v: '2' }, cas: 1 })).status, 200);
      const stale = await call(1, 'PUT', path, { data: { v: 'stale' }, cas: 1 });
      assert.equal(stale.status, 409);
      assert.equal((stale.body.error as { code?: string } | undefined)?.code, 'ERR_CONFLICT');
      const current = await call(0, 'GET', path);
      assert.deepEqual(current.body.data, { v: '2' });
      assert.equal((await call(1, 'PUT', path, { data: { v: '3' }, cas: 2 })).status, 200);
      assert.deepEqual((await call(0, 'GET', path)).body.data, { v: '3' });
    });
  });
}
