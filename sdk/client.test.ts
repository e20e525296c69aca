/**
 * The SDK against real processes over real mTLS: the embedded agent, three
 * Keepers and Nexus on SQLite. The superuser uses every secret and policy
 * call, an app gets typed errors, an unreachable Nexus is named in the
 * error, and after a restart with frozen Keepers (so Nexus stays sealed) a
 * client with a retry deadline waits until Nexus is ready. The harness's leak
 * scan checks every output, file and error body, the SDK's log and the
 * errors it threw, for the secret values.
 */
import assert from 'node:assert/strict';
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
import { type Broker, startBroker } from '../test/harness/broker.ts';
import { freePort, type RunningProgram } from '../test/harness/spawn.ts';
import { createSpikeClient, type OwnedSourceOptions, type SpikeClient } from './index.ts';

const TD_NAME = 'sdk.test';
const PILOT_ID = `spiffe://${TD_NAME}/spike/pilot/role/superuser`;
const WEB_ID = `spiffe://${TD_NAME}/apps/web`;
const VALUE_NAMES = ['first', 'second', 'stale', 'other', 'mine', 'tmp', 'nowhere'] as const;

describe('SpikeClient against a running broker', () => {
  let broker: Broker;
  let nexusUrl: string;
  let nexus: RunningProgram | undefined;
  const clients: SpikeClient[] = [];
  /** What the SDK logged (retries) and the errors it threw: the leak scan reads both. */
  const logSink = createMemorySink();
  const logger = createLogger({ component: 'test', level: 'debug', sink: logSink });
  const errors: string[] = [];
  /** Secret values, made once the harness (which scans for them) is up. */
  let V: Record<(typeof VALUE_NAMES)[number], string>;

  const socketOf = (name: string) => broker.socketOf(name);
  const logs = () => broker.logs();

  /** Keeps an error the SDK threw for the leak scan, and returns true for assert.rejects. */
  function seen(err: unknown): true {
    errors.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    return true;
  }

  /** assert.rejects() with an error class, keeping the error for the leak scan. */
  async function rejectsWith(
    promise: Promise<unknown>,
    type: new (...args: never[]) => Error,
  ): Promise<void> {
    await assert.rejects(promise, (err: unknown) => {
      assert.ok(err instanceof type, String(err));
      return seen(err);
    });
  }

  async function client(name: string, options: OwnedSourceOptions = {}): Promise<SpikeClient> {
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

  before(async () => {
    broker = await startBroker({
      trustDomain: TD_NAME,
      workloads: { web: '/apps/web' },
      nexusEnv: {
        SPIKE_NEXUS_RECOVERY_MAX_INTERVAL: '500ms',
        SPIKE_NEXUS_KEEPER_TIMEOUT: '500ms',
      },
      startNexus: false,
    });
    V = Object.fromEntries(
      VALUE_NAMES.map((name) => [name, broker.secretValue(`sdk-${name}`)]),
    ) as typeof V;
    broker.scan("the SDK clients' log", () => JSON.stringify(logSink.lines));
    broker.scan('errors the SDK threw', () => errors.join('\n'));
    nexusUrl = broker.nexusUrl;
    nexus = broker.startNexus();
    // The first write waits, through the SDK's own retry, until Nexus has its key.
    const su = await client('pilot', { retryDeadlineMs: 60_000 });
    const written = await su.putSecret('app/web/db', { password: V.first }).catch((err) => {
      throw new Error(`${String(err)}\n${logs()}`);
    });
    assert.equal(written.currentVersion, 1);
  });

  after(async () => {
    // Closed before the harness stops the agent (Deno, docs/agent.md).
    for (const made of clients) made.close();
    await broker?.stop();
  });

  test('the superuser writes, reads, lists and versions secrets', async () => {
    const su = await client('pilot');
    const second = await su.putSecret('app/web/db', { password: V.second }, { cas: 1 });
    assert.equal(second.currentVersion, 2);
    await assert.rejects(su.putSecret('app/web/db', { password: V.stale }, { cas: 1 }), (err) => {
      assert.ok(err instanceof ConflictError, String(err));
      return seen(err);
    });
    await su.putSecret('app/other/db', { password: V.other }, { cas: 0 });

    const current = await su.getSecret('app/web/db');
    assert.deepEqual(current.data, { password: V.second });
    assert.equal(current.version, 2);
    assert.deepEqual((await su.getSecret('app/web/db', { version: 1 })).data, {
      password: V.first,
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
    await rejectsWith(su.getSecret('app/web/db', { version: 2 }), NotFoundError);
    const undeleted = await su.undeleteSecret('app/web/db');
    assert.equal(undeleted.versions.find((v) => v.version === 2)?.deletedAt, null);
    assert.deepEqual((await su.getSecret('app/web/db')).data, { password: V.second });

    const destroyed = await su.destroySecret('app/web/db', [1]);
    assert.equal(destroyed.versions.find((v) => v.version === 1)?.destroyed, true);
    await rejectsWith(su.getSecret('app/web/db', { version: 1 }), NotFoundError);

    const updated = await su.putMetadata('app/web/db', {
      maxVersions: 5,
      customMetadata: { owner: 'team-web' },
    });
    assert.equal(updated.maxVersionsOverride, 5);
    const metadata = await su.getMetadata('app/web/db');
    assert.deepEqual(metadata.customMetadata, { owner: 'team-web' });
    assert.equal(metadata.maxVersions, 5);

    await su.putSecret('app/tmp/x', { v: V.tmp });
    await su.deletePath('app/tmp/x');
    await rejectsWith(su.getMetadata('app/tmp/x'), NotFoundError);
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
    await rejectsWith(su.getPolicy('scratch'), NotFoundError);
    await rejectsWith(su.deletePolicy('scratch'), NotFoundError);
  });

  test('an app reads what a policy allows and gets typed errors otherwise', async () => {
    // An explicit source: the client uses it and leaves it open on close().
    const source = await createX509Source({ address: socketOf('web'), logger });
    try {
      const web = await createSpikeClient({ nexusUrl, source });
      assert.equal(web.spiffeId().toString(), WEB_ID);
      assert.deepEqual((await web.getSecret('app/web/db')).data, { password: V.second });
      assert.deepEqual((await web.listSecrets()).paths, ['app/web/db']);
      await assert.rejects(web.getSecret('app/web/missing'), (err: unknown) => {
        assert.ok(err instanceof NotFoundError, String(err));
        assert.equal(err.code, 'ERR_NOT_FOUND');
        return seen(err);
      });
      for (const refused of [
        () => web.getSecret('app/other/db'),
        () => web.putSecret('app/web/db', { password: V.mine }),
        () => web.deletePath('app/web/db'),
        () => web.listPolicies(),
        () => web.status(),
      ]) {
        await assert.rejects(refused(), (err: unknown) => {
          assert.ok(err instanceof AccessDeniedError, String(err));
          assert.equal(err.code, 'ERR_ACCESS_DENIED');
          return seen(err);
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
      () => offline.putSecret('app//web', { k: V.nowhere }),
      () => offline.destroySecret('app/web', []),
      () => offline.listSecrets({ limit: 5000 }),
      () => offline.getPolicy('no/slash'),
      () => offline.restore(''),
    ]) {
      await rejectsWith(bad(), InvalidRequestError);
    }
  });

  test('an unreachable Nexus gives UnavailableError naming its URL, also after retrying', async () => {
    const url = `https://127.0.0.1:${await freePort()}`;
    const once = await client('pilot', { nexusUrl: url });
    await assert.rejects(once.getSecret('app/web/db'), (err: unknown) => {
      assert.ok(err instanceof UnavailableError, String(err));
      assert.equal(err.code, 'ERR_UNAVAILABLE');
      assert.match(err.message, new RegExp(`^Nexus is unreachable at ${url}`));
      return seen(err);
    });
    const retrying = await client('pilot', { nexusUrl: url, retryDeadlineMs: 600 });
    const started = Date.now();
    await rejectsWith(retrying.putSecret('app/web/db', { k: V.nowhere }), UnavailableError);
    assert.ok(Date.now() - started >= 500, 'gave up before the deadline');
  });

  test('a Nexus outside the expected trust domain is refused', async () => {
    const wrong = await client('pilot', { trustDomain: 'elsewhere.test' });
    await assert.rejects(wrong.getSecret('app/web/db'), (err: unknown) => {
      assert.equal((err as { code?: unknown }).code, 'ERR_SERVER_UNTRUSTED', String(err));
      return seen(err);
    });
  });

  test('a client created while Nexus is sealed waits with retryDeadlineMs until it is ready', async () => {
    // Frozen Keepers answer nothing, so the restarted Nexus stays sealed.
    const keepers = [0, 1, 2].map((i) => broker.keeper(i));
    for (const keeper of keepers) keeper.pause();
    const killed = nexus;
    assert.ok(killed !== undefined);
    killed.child.kill('SIGKILL');
    await killed.exited(10_000);
    nexus = broker.startNexus();
    await nexus.waitFor(/"msg":"Listening"/);

    const impatient = await client('pilot');
    assert.equal(impatient.spiffeId().toString(), PILOT_ID);
    const sealed = await impatient.status();
    assert.equal(sealed.httpStatus, 503);
    assert.equal(sealed.state, 'sealed');
    await assert.rejects(impatient.getSecret('app/web/db'), (err: unknown) => {
      assert.ok(err instanceof NotReadyError, String(err));
      assert.equal(err.code, 'ERR_NOT_READY');
      return seen(err);
    });

    const retries = createMemorySink();
    broker.scan("the patient client's log", () => JSON.stringify(retries.lines));
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
    assert.deepEqual(secret.data, { password: V.second });
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
        return seen(err);
      },
    );
  });
});
