/**
 * Two Nexus processes on one PostgreSQL database, with real processes over
 * real mTLS (the embedded agent, three Keepers): a secret written through one
 * is read through the other, check-and-set holds across them, and each one's
 * cache of sealed rows never serves a version older than one acknowledged by
 * the other once the change feed's bound has passed, also when its listening
 * connection is killed; and a watcher (a long-poll read, through the SDK) on
 * one wakes within 2 s of a write through the other.
 * The harness's leak scan checks every output, file and error body for the
 * values and the database password.
 *
 * Skipped, with a notice, unless SPIKE_TEST_DATABASE_URL is set.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { CHANGE_FEED_BOUND_MS } from '../../nexus/store/postgres/change_feed.ts';
import { createSpikeClient } from '../../sdk/index.ts';
import { TooManyWatchesError } from '../../shared/errors/errors.ts';
import { delay } from '../../shared/runtime/delay.ts';
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

    /**
     * Reads `path` through `nexus` until it returns `version`; a read issued
     * once the bound has passed since `ackedAt` (when the write was
     * acknowledged) must never return an older one.
     */
    async function readUntilVersion(
      nexus: 0 | 1,
      path: string,
      version: number,
      ackedAt: number,
    ): Promise<Record<string, unknown>> {
      const deadline = ackedAt + 15_000;
      for (;;) {
        const issuedAt = performance.now();
        const read = await call(nexus, 'GET', path);
        assert.equal(read.status, 200, JSON.stringify(read.body));
        const got = read.body.version as number;
        if (got === version) return read.body;
        assert.ok(got < version, `read version ${got} beyond ${version}`);
        assert.ok(
          issuedAt - ackedAt < CHANGE_FEED_BOUND_MS,
          `Nexus ${nexus + 1} returned version ${got} ${Math.round(issuedAt - ackedAt)} ms after version ${version} was acknowledged`,
        );
        assert.ok(performance.now() < deadline, `Nexus ${nexus + 1} never returned ${version}`);
      }
    }

    /** The change feed's listening connections Nexus `nexus` reported, in order (its log, on stderr). */
    function feedBackends(nexus: 0 | 1): number[] {
      return (programs[nexus] as RunningProgram)
        .stderr()
        .split('\n')
        .flatMap((line) => {
          try {
            const entry = JSON.parse(line) as { msg?: string; backendPid?: number };
            return entry.msg?.startsWith('The change feed is listening') === true &&
              typeof entry.backendPid === 'number'
              ? [entry.backendPid]
              : [];
          } catch {
            return [];
          }
        });
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
            {
              // Unused by the postgres backend; a private directory all the same.
              SPIKE_NEXUS_DATA_DIR: join(started.dir, `${identity}-data`),
              // One waiting read per identity: a second one tells that the first waits.
              SPIKE_NEXUS_MAX_WATCHES_PER_IDENTITY: '1',
            },
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
      // The first Nexus has version 2 cached: it returns 3 within the bound.
      const after = await readUntilVersion(0, path, 3, performance.now());
      assert.deepEqual(after.data, { v: v3 });
    });

    test('a read through B returns the version acknowledged by A once the bound has passed', async () => {
      const path = '/v1/secrets/data/app/cached';
      assert.equal((await call(0, 'PUT', path, { data: { v: secret('cached-1') } })).status, 200);
      await readUntilVersion(1, path, 1, performance.now());
      for (let version = 2; version <= 6; version++) {
        // B serves version - 1 from its cache (warm) until the change arrives.
        await call(1, 'GET', path);
        const value = secret(`cached-${version}`);
        const put = await call(0, 'PUT', path, { data: { v: value } });
        const ackedAt = performance.now();
        assert.equal(put.status, 200);
        const read = await readUntilVersion(1, path, version, ackedAt);
        assert.deepEqual(read.data, { v: value });
      }
    });

    test('a watcher on B wakes within 2 s of a write through A', async () => {
      const path = 'app/watched';
      const route = `/v1/secrets/data/${path}`;
      assert.equal((await call(0, 'PUT', route, { data: { v: secret('watched-1') } })).status, 200);
      const onB = await createSpikeClient({
        source: await (broker as Broker).source('pilot'),
        nexusUrl: `https://127.0.0.1:${nexusPorts[1]}`,
        trustDomain: TD_NAME,
      });
      try {
        const watch = onB.watch(path, { newerThan: 1, waitMs: 60_000 });
        const woken = watch.next();
        // Once a second watch of this identity is refused, the first one waits in B.
        const deadline = Date.now() + 15_000;
        for (;;) {
          const probe = await onB.getSecretNewerThan(path, 1, { waitMs: 1 }).then(
            () => undefined,
            (err: unknown) => err,
          );
          if (probe instanceof TooManyWatchesError) break;
          assert.equal(probe, undefined, String(probe));
          assert.ok(Date.now() < deadline, 'the watch never waited in B');
        }
        const value = secret('watched-2');
        assert.equal((await call(0, 'PUT', route, { data: { v: value } })).status, 200);
        // The bound, from the write's acknowledgement.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('B did not wake within 2 s')), 2_000);
        });
        const next = await Promise.race([woken, late]).finally(() => clearTimeout(timer));
        assert.equal(next.value?.version, 2);
        assert.deepEqual(next.value?.data, { v: value });
        await watch.return();
      } finally {
        onB.close();
      }
    });

    test('a long-poll over several paths on B wakes within 2 s of a write of one through A', async () => {
      const paths = ['app/many-1', 'app/many-2', 'app/many-3'];
      for (const path of paths) {
        const put = await call(0, 'PUT', `/v1/secrets/data/${path}`, { data: { v: secret(path) } });
        assert.equal(put.status, 200);
      }
      const known = new Map(paths.map((path) => [path, 1]));
      const onB = await createSpikeClient({
        source: await (broker as Broker).source('pilot'),
        nexusUrl: `https://127.0.0.1:${nexusPorts[1]}`,
        trustDomain: TD_NAME,
      });
      try {
        // A probe below may reach B before this watch and hold the identity's
        // one slot for its millisecond: then this one is refused, and sent again.
        const woken = (async () => {
          for (;;) {
            try {
              return await onB.waitForVersions(known, { waitMs: 60_000 });
            } catch (err) {
              if (!(err instanceof TooManyWatchesError)) throw err;
              await delay(20);
            }
          }
        })();
        // Once a probe is refused, this watch waits in B: probes go one at a
        // time, so the slot can only be held by it.
        const deadline = Date.now() + 15_000;
        for (;;) {
          const probe = await onB.waitForVersions(known, { waitMs: 1 }).then(
            () => undefined,
            (err: unknown) => err,
          );
          if (probe instanceof TooManyWatchesError) break;
          assert.equal(probe, undefined, String(probe));
          assert.ok(Date.now() < deadline, 'the watch never waited in B');
        }
        const put = await call(0, 'PUT', '/v1/secrets/data/app/many-2', {
          data: { v: secret('many-2, again') },
        });
        assert.equal(put.status, 200);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('B did not wake within 2 s')), 2_000);
        });
        const changed = await Promise.race([woken, late]).finally(() => clearTimeout(timer));
        assert.deepEqual(changed, new Map([['app/many-2', 2]]));
      } finally {
        onB.close();
      }
    });

    test("when B's listening connection is killed, B stops serving from its cache, reads fresh data and listens again", async () => {
      const path = '/v1/secrets/data/app/killed';
      assert.equal((await call(0, 'PUT', path, { data: { v: secret('killed-1') } })).status, 200);
      await readUntilVersion(1, path, 1, performance.now());
      await call(1, 'GET', path);
      const before = feedBackends(1);
      const listening = before.at(-1);
      assert.ok(listening !== undefined, 'B never reported its change feed');
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      try {
        const { rows } = await admin.query('SELECT pg_terminate_backend($1) AS ok', [listening]);
        assert.deepEqual(rows, [{ ok: true }]);
      } finally {
        await admin.end();
      }
      const value = secret('killed-2');
      assert.equal((await call(0, 'PUT', path, { data: { v: value } })).status, 200);
      const read = await readUntilVersion(1, path, 2, performance.now());
      assert.deepEqual(read.data, { v: value });
      const b = programs[1] as RunningProgram;
      await b.waitFor(/The change feed lost its connection; reads skip the cache/, 15_000);
      const deadline = Date.now() + 15_000;
      while (feedBackends(1).length === before.length) {
        assert.ok(Date.now() < deadline, 'B never listened again');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.notEqual(feedBackends(1).at(-1), listening);
      // Listening again, B follows A's writes again.
      const third = secret('killed-3');
      assert.equal((await call(0, 'PUT', path, { data: { v: third } })).status, 200);
      assert.deepEqual((await readUntilVersion(1, path, 3, performance.now())).data, { v: third });
    });
  });
}
