/**
 * The SDK against real processes over real mTLS: the embedded agent, three
 * Keepers and Nexus on SQLite. The superuser uses every secret and policy
 * call, an app gets typed errors, an unreachable Nexus is named in the
 * error, and after a restart with frozen Keepers (so Nexus stays sealed) a
 * client with a retry deadline waits until Nexus is ready.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AccessDeniedError,
  ConfigError,
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  NotReadyError,
  UnavailableError,
} from '../shared/errors/errors.ts';
import { createLogger, createMemorySink } from '../shared/log/logger.ts';
import { createX509Source } from '../shared/spiffe/x509_source.ts';
import {
  describe as describeProgram,
  freePort,
  type RunningProgram,
  startProgram,
  stopAll,
} from '../test/harness/spawn.ts';
import { createSpikeClient, type SpikeClient, type SpikeClientOptions } from './index.ts';

const TD_NAME = 'sdk.test';
const WORKLOADS = [
  'nexus=/spike/nexus',
  'keeper-1=/spike/keeper/1',
  'keeper-2=/spike/keeper/2',
  'keeper-3=/spike/keeper/3',
  'pilot=/spike/pilot/role/superuser',
  'web=/apps/web',
].join(',');
const PILOT_ID = `spiffe://${TD_NAME}/spike/pilot/role/superuser`;
const WEB_ID = `spiffe://${TD_NAME}/apps/web`;

describe('SpikeClient against a running broker', () => {
  let dir: string;
  let nexusUrl: string;
  let keeperPorts: number[] = [];
  let nexus: RunningProgram | undefined;
  const keepers: RunningProgram[] = [];
  const programs: RunningProgram[] = [];
  const clients: SpikeClient[] = [];
  const logger = createLogger({ component: 'test', sink: createMemorySink() });

  const socketOf = (name: string) => `unix://${join(dir, 'sockets', `${name}.sock`)}`;
  const logs = () => programs.map(describeProgram).join('\n');

  async function client(
    name: string,
    options: Partial<SpikeClientOptions> = {},
  ): Promise<SpikeClient> {
    const made = await createSpikeClient({
      nexusUrl,
      workloadApiAddress: socketOf(name),
      timeoutMs: 5_000,
      logger,
      ...options,
    });
    clients.push(made);
    return made;
  }

  function startNexus(): RunningProgram {
    const started = startProgram('nexus', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIFFE_ENDPOINT_SOCKET: socketOf('nexus'),
        SPIKE_NEXUS_TLS_PORT: new URL(nexusUrl).port,
        SPIKE_NEXUS_DATA_DIR: join(dir, 'nexus-data'),
        SPIKE_NEXUS_KEEPER_PEERS: keeperPorts.map((port) => `https://127.0.0.1:${port}`).join(','),
        SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: '500ms',
        SPIKE_NEXUS_RECOVERY_MAX_INTERVAL: '500ms',
        SPIKE_NEXUS_KEEPER_TIMEOUT: '500ms',
        SPIKE_NEXUS_AUDIT_LOG: join(dir, 'audit.jsonl'),
      },
    });
    programs.push(started);
    return started;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spike-sdk-'));
    const agent = startProgram('agent', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIKE_AGENT_DATA_DIR: dir,
        SPIKE_AGENT_WORKLOADS: WORKLOADS,
      },
    });
    programs.push(agent);
    await agent.waitFor(/Press Ctrl-C to stop/);
    keeperPorts = [await freePort(), await freePort(), await freePort()];
    nexusUrl = `https://127.0.0.1:${await freePort()}`;
    await Promise.all(
      keeperPorts.map(async (port, i) => {
        const keeper = startProgram('keeper', {
          env: {
            SPIKE_TRUST_ROOT: TD_NAME,
            SPIFFE_ENDPOINT_SOCKET: socketOf(`keeper-${i + 1}`),
            SPIKE_KEEPER_TLS_PORT: String(port),
          },
        });
        keepers.push(keeper);
        programs.push(keeper);
        await keeper.waitFor(/"msg":"Listening"/);
      }),
    );
    nexus = startNexus();
    // The first write waits, through the SDK's own retry, until Nexus has its key.
    const su = await client('pilot', { retryDeadlineMs: 60_000 });
    const written = await su.putSecret('app/web/db', { password: 'first' }).catch((err) => {
      throw new Error(`${String(err)}\n${logs()}`);
    });
    assert.equal(written.currentVersion, 1);
  });

  after(async () => {
    for (const made of clients) made.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the superuser writes, reads, lists and versions secrets', async () => {
    const su = await client('pilot');
    const second = await su.putSecret('app/web/db', { password: 'second' }, { cas: 1 });
    assert.equal(second.currentVersion, 2);
    await assert.rejects(su.putSecret('app/web/db', { password: 'stale' }, { cas: 1 }), (err) => {
      assert.ok(err instanceof ConflictError, String(err));
      return true;
    });
    await su.putSecret('app/other/db', { password: 'other' }, { cas: 0 });

    const current = await su.getSecret('app/web/db');
    assert.deepEqual(current.data, { password: 'second' });
    assert.equal(current.version, 2);
    assert.deepEqual((await su.getSecret('app/web/db', { version: 1 })).data, {
      password: 'first',
    });

    assert.deepEqual((await su.listSecrets({ prefix: 'app/' })).paths, [
      'app/other/db',
      'app/web/db',
    ]);
    const page = await su.listSecrets({ prefix: 'app/', limit: 1 });
    assert.deepEqual(page, { paths: ['app/other/db'], next: 'app/other/db' });
    assert.deepEqual((await su.listSecrets({ prefix: 'app/', after: page.next as string })).paths, [
      'app/web/db',
    ]);
  });

  test('the superuser deletes, undeletes, destroys and edits metadata', async () => {
    const su = await client('pilot');
    const deleted = await su.deleteSecret('app/web/db', { versions: [2] });
    assert.notEqual(deleted.versions.find((v) => v.version === 2)?.deletedAt, null);
    await assert.rejects(su.getSecret('app/web/db', { version: 2 }), NotFoundError);
    const undeleted = await su.undeleteSecret('app/web/db');
    assert.equal(undeleted.versions.find((v) => v.version === 2)?.deletedAt, null);
    assert.deepEqual((await su.getSecret('app/web/db')).data, { password: 'second' });

    const destroyed = await su.destroySecret('app/web/db', [1]);
    assert.equal(destroyed.versions.find((v) => v.version === 1)?.destroyed, true);
    await assert.rejects(su.getSecret('app/web/db', { version: 1 }), NotFoundError);

    const updated = await su.putMetadata('app/web/db', {
      maxVersions: 5,
      customMetadata: { owner: 'team-web' },
    });
    assert.equal(updated.maxVersionsOverride, 5);
    const metadata = await su.getMetadata('app/web/db');
    assert.deepEqual(metadata.customMetadata, { owner: 'team-web' });
    assert.equal(metadata.maxVersions, 5);

    await su.putSecret('app/tmp/x', { v: '1' });
    await su.deletePath('app/tmp/x');
    await assert.rejects(su.getMetadata('app/tmp/x'), NotFoundError);
  });

  test('the superuser manages policies', async () => {
    const su = await client('pilot');
    const policy = await su.putPolicy({
      name: 'web-reads',
      spiffeIdPattern: WEB_ID,
      pathPattern: 'app/web/**',
      permissions: ['read', 'list'],
    });
    assert.equal(policy.name, 'web-reads');
    assert.deepEqual(policy.permissions, ['read', 'list']);
    await su.putPolicy({
      name: 'scratch',
      spiffeIdPattern: WEB_ID,
      pathPattern: 'scratch/**',
      permissions: ['read'],
    });
    assert.equal((await su.getPolicy('web-reads')).pathPattern, 'app/web/**');
    assert.deepEqual(
      (await su.listPolicies()).policies.map((p) => p.name),
      ['scratch', 'web-reads'],
    );
    await su.deletePolicy('scratch');
    await assert.rejects(su.getPolicy('scratch'), NotFoundError);
    await assert.rejects(su.deletePolicy('scratch'), NotFoundError);
  });

  test('an app reads what a policy allows and gets typed errors otherwise', async () => {
    // An explicit source: the client uses it and leaves it open on close().
    const source = await createX509Source({ address: socketOf('web'), logger });
    try {
      const web = await createSpikeClient({ nexusUrl, source });
      assert.equal(web.spiffeId().toString(), WEB_ID);
      assert.deepEqual((await web.getSecret('app/web/db')).data, { password: 'second' });
      assert.deepEqual((await web.listSecrets()).paths, ['app/web/db']);
      await assert.rejects(web.getSecret('app/web/missing'), (err: unknown) => {
        assert.ok(err instanceof NotFoundError, String(err));
        assert.equal(err.code, 'ERR_NOT_FOUND');
        return true;
      });
      for (const refused of [
        () => web.getSecret('app/other/db'),
        () => web.putSecret('app/web/db', { password: 'mine' }),
        () => web.deletePath('app/web/db'),
        () => web.listPolicies(),
        () => web.status(),
      ]) {
        await assert.rejects(refused(), (err: unknown) => {
          assert.ok(err instanceof AccessDeniedError, String(err));
          assert.equal(err.code, 'ERR_ACCESS_DENIED');
          return true;
        });
      }
      web.close();
      web.close();
      assert.equal(source.getX509Svid().id.toString(), WEB_ID);
      await assert.rejects(web.getSecret('app/web/db'), TypeError);
    } finally {
      source.close();
    }
  });

  test('paths, versions and names are validated before any request', async () => {
    // Nothing listens here: a request would fail with UnavailableError instead.
    const offline = await client('pilot', { nexusUrl: `https://127.0.0.1:${await freePort()}` });
    for (const bad of [
      () => offline.getSecret('/app/web'),
      () => offline.getSecret('app/../etc'),
      () => offline.getSecret('app/web', { version: 0 }),
      () => offline.putSecret('app//web', { k: 'v' }),
      () => offline.destroySecret('app/web', []),
      () => offline.listSecrets({ limit: 5000 }),
      () => offline.getPolicy('no/slash'),
      () => offline.restore(''),
    ]) {
      await assert.rejects(bad(), InvalidRequestError);
    }
  });

  test('an unreachable Nexus gives UnavailableError naming its URL, also after retrying', async () => {
    const url = `https://127.0.0.1:${await freePort()}`;
    const once = await client('pilot', { nexusUrl: url });
    await assert.rejects(once.getSecret('app/web/db'), (err: unknown) => {
      assert.ok(err instanceof UnavailableError, String(err));
      assert.equal(err.code, 'ERR_UNAVAILABLE');
      assert.match(err.message, new RegExp(`^Nexus is unreachable at ${url}`));
      return true;
    });
    const retrying = await client('pilot', { nexusUrl: url, retryDeadlineMs: 600 });
    const started = Date.now();
    await assert.rejects(retrying.putSecret('app/web/db', { k: 'v' }), UnavailableError);
    assert.ok(Date.now() - started >= 500, 'gave up before the deadline');
  });

  test('a Nexus outside the expected trust domain is refused', async () => {
    const wrong = await client('pilot', { trustDomain: 'elsewhere.test' });
    await assert.rejects(wrong.getSecret('app/web/db'), (err: unknown) => {
      assert.equal((err as { code?: unknown }).code, 'ERR_SVID_INVALID', String(err));
      return true;
    });
  });

  test('a client created while Nexus is sealed waits with retryDeadlineMs until it is ready', async () => {
    // Frozen Keepers answer nothing, so the restarted Nexus stays sealed.
    for (const keeper of keepers) keeper.pause();
    const killed = nexus;
    assert.ok(killed !== undefined);
    killed.child.kill('SIGKILL');
    await killed.exited(10_000);
    nexus = startNexus();
    await nexus.waitFor(/"msg":"Listening"/);

    const impatient = await client('pilot');
    assert.equal(impatient.spiffeId().toString(), PILOT_ID);
    const sealed = await impatient.status();
    assert.equal(sealed.httpStatus, 503);
    assert.equal(sealed.state, 'sealed');
    await assert.rejects(impatient.getSecret('app/web/db'), (err: unknown) => {
      assert.ok(err instanceof NotReadyError, String(err));
      assert.equal(err.code, 'ERR_NOT_READY');
      return true;
    });

    const retries = createMemorySink();
    const patient = await client('pilot', {
      retryDeadlineMs: 60_000,
      logger: createLogger({ component: 'test', level: 'debug', sink: retries }),
    });
    const read = patient.getSecret('app/web/db');
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const keeper of keepers) keeper.resume();
    const secret = await read.catch((err: unknown) => {
      throw new Error(`${String(err)}\n${logs()}`);
    });
    assert.deepEqual(secret.data, { password: 'second' });
    const retried = retries.lines.filter(
      (line) => line.msg === 'Nexus did not serve the request; retrying',
    );
    assert.ok(retried.length > 0, 'the read was never retried');
    assert.ok(retried.every((line) => line.code === 'ERR_NOT_READY'));
    const ready = await patient.status();
    assert.equal(ready.httpStatus, 200);
    assert.equal(ready.state, 'ready');
    assert.equal(ready.keepers.length, 3);
  });

  test('invalid options are refused together', async () => {
    await assert.rejects(
      createSpikeClient({ nexusUrl: 'http://nexus:8553/x', timeoutMs: 0 }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.problems.length, 4);
        return true;
      },
    );
  });
});
