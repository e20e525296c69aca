/**
 * Two Nexus processes on one PostgreSQL database, with real processes over
 * real mTLS (the embedded agent, three Keepers): a secret written through one
 * is read through the other at once, and check-and-set holds across them.
 * The harness's leak scan checks every output, file and error body for the
 * values and the database password.
 *
 * Skipped, with a notice, unless SPIKE_TEST_DATABASE_URL is set.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Broker, startBroker } from '../harness/broker.ts';
import {
  createScratchDatabase,
  dropScratchDatabases,
  postgresSkip,
  TEST_DATABASE_URL_ENV,
} from '../harness/postgres.ts';
import { freePort, type RunningProgram } from '../harness/spawn.ts';

const TD_NAME = 'postgres.test';

const skip = postgresSkip();

if (skip !== false) {
  test(`two Nexus processes on one PostgreSQL (${TEST_DATABASE_URL_ENV})`, { skip }, () => {});
} else {
  describe('two Nexus processes on one PostgreSQL database', () => {
    let broker: Broker | undefined;
    let databaseUrl: string;
    const nexusPorts: number[] = [];
    const programs: RunningProgram[] = [];
    /** Fresh values that the harness's leak scan looks for. */
    const secret = (label: string) => (broker as Broker).secretValue(label);

    async function call(
      nexus: 0 | 1,
      method: 'GET' | 'PUT',
      path: string,
      body?: unknown,
    ): Promise<{ status: number; body: Record<string, unknown> }> {
      const reply = await (broker as Broker).call('pilot', method, path, body, {
        port: nexusPorts[nexus] as number,
      });
      return { status: reply.status, body: reply.body as Record<string, unknown> };
    }

    before(async () => {
      databaseUrl = await createScratchDatabase();
      broker = await startBroker({
        trustDomain: TD_NAME,
        workloads: { 'nexus-2': '/spike/nexus/replica-2' },
        databaseUrl,
        startNexus: false,
      });
      // The password of the database URL is a key the test sees.
      const password = decodeURIComponent(new URL(databaseUrl).password);
      if (password.length >= 8) broker.sensitive(password);
      const started = broker;
      nexusPorts.push(started.nexusPort, await freePort());
      for (const [i, identity] of ['nexus', 'nexus-2'].entries()) {
        programs.push(
          started.startNexus(
            // Unused by the postgres backend; a private directory all the same.
            { SPIKE_NEXUS_DATA_DIR: join(started.dir, `${identity}-data`) },
            { identity, port: nexusPorts[i] as number },
          ),
        );
      }
      await Promise.all(
        nexusPorts.map((port) =>
          started.waitUntilReady(`Nexus on ${port} is ready`, 30_000, { port }),
        ),
      );
    });

    after(async () => {
      // The replica is not the harness's to stop; then the harness stops the
      // rest and runs its leak scan.
      await programs[1]?.stop();
      try {
        await broker?.stop();
      } finally {
        await dropScratchDatabases();
      }
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
      const first = { user: 'app', password: secret('first') };
      const put = await call(0, 'PUT', '/v1/secrets/data/app/db/creds', { data: first });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const read = await call(1, 'GET', '/v1/secrets/data/app/db/creds');
      assert.equal(read.status, 200, JSON.stringify(read.body));
      assert.deepEqual(read.body.data, first);
      assert.equal(read.body.version, 1);

      const second = { v: secret('second') };
      assert.equal(
        (await call(1, 'PUT', '/v1/secrets/data/app/db/creds', { data: second })).status,
        200,
      );
      const back = await call(0, 'GET', '/v1/secrets/data/app/db/creds');
      assert.deepEqual(back.body.data, second);
      assert.equal(back.body.version, 2);
    });

    test('a check-and-set write through the second with a stale version fails with 409', async () => {
      const path = '/v1/secrets/data/app/cas';
      const [v1, v2, stalest, v3] = ['cas-1', 'cas-2', 'cas-stale', 'cas-3'].map(secret);
      assert.equal((await call(0, 'PUT', path, { data: { v: v1 }, cas: 0 })).status, 200);
      assert.equal((await call(0, 'PUT', path, { data: { v: v2 }, cas: 1 })).status, 200);
      const stale = await call(1, 'PUT', path, { data: { v: stalest }, cas: 1 });
      assert.equal(stale.status, 409);
      assert.equal((stale.body.error as { code?: string } | undefined)?.code, 'ERR_CONFLICT');
      const current = await call(0, 'GET', path);
      assert.deepEqual(current.body.data, { v: v2 });
      assert.equal((await call(1, 'PUT', path, { data: { v: v3 }, cas: 2 })).status, 200);
      assert.deepEqual((await call(0, 'GET', path)).body.data, { v: v3 });
    });
  });
}
