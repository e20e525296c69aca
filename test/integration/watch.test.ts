/**
 * Long-poll reads with real processes over real mTLS (the embedded agent,
 * three Keepers, Nexus on a SQLite file), through the SDK: a watcher wakes
 * on a write, a wait that ends answers 304 even when it is longer than
 * Nexus's request timeout (which must not cut it), each is audited once when
 * it answers, and a Nexus that stops answers a waiting watch at once instead
 * of holding its stop. The harness's leak scan checks every output and file
 * for the values.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createSpikeClient, type SpikeClient } from '../../sdk/index.ts';
import { TooManyWatchesError } from '../../shared/errors/errors.ts';
import { type Broker, startBroker } from '../harness/broker.ts';

const TD_NAME = 'watch.test';

describe('long-poll reads with real processes', () => {
  let broker: Broker;
  let spike: SpikeClient;

  before(async () => {
    broker = await startBroker({
      trustDomain: TD_NAME,
      nexusEnv: {
        // Shorter than the waits below: a long-poll must outlive it.
        SPIKE_NEXUS_HEADERS_TIMEOUT: '500ms',
        SPIKE_NEXUS_REQUEST_TIMEOUT: '1s',
        // One waiting read per identity: a second one tells that the first waits.
        SPIKE_NEXUS_MAX_WATCHES_PER_IDENTITY: '1',
      },
    });
    await broker.waitUntilReady('Nexus is ready');
    spike = await createSpikeClient({
      source: await broker.source('pilot'),
      nexusUrl: broker.nexusUrl,
      trustDomain: TD_NAME,
    });
  });

  after(async () => {
    spike?.close();
    await broker?.stop();
  });

  /** Returns once a second watch of this identity is refused: its one watch waits in Nexus. */
  async function untilRefused(path: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const probe = await spike.getSecretNewerThan(path, 1, { waitMs: 1 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      if (probe instanceof TooManyWatchesError) return;
      assert.equal(probe, undefined, String(probe));
      assert.ok(Date.now() < deadline, 'the first watch never waited');
    }
  }

  test('a watcher wakes with the version written after the one it has', async () => {
    const first = { password: broker.secretValue('watch-1') };
    const second = { password: broker.secretValue('watch-2') };
    await spike.putSecret('app/watched', first);
    const watch = spike.watch('app/watched', { newerThan: 1 });
    const next = watch.next();
    await spike.putSecret('app/watched', second);
    const woken = (await next).value;
    assert.equal(woken?.version, 2);
    assert.deepEqual(woken?.data, second);
    await watch.return();
  });

  test('a long-poll over several paths answers the paths that changed, and is audited once naming them all', async () => {
    for (const path of ['app/set-a', 'app/set-b']) {
      await spike.putSecret(path, { password: broker.secretValue(path) });
    }
    const known = new Map([
      ['app/set-a', 1],
      ['app/set-b', 1],
    ]);
    const before = broker.auditEvents().length;
    const waiting = spike.waitForVersions(known, { waitMs: 60_000 });
    await untilRefused('app/set-a');
    await spike.putSecret('app/set-b', { password: broker.secretValue('set-b, again') });
    assert.deepEqual(await waiting, new Map([['app/set-b', 2]]));
    known.set('app/set-b', 2);
    assert.equal(await spike.waitForVersions(known, { waitMs: 1 }), undefined);
    const events = broker
      .auditEvents()
      .slice(before)
      .filter((event) => event.action === 'secret.watch' && event.resource?.includes(','));
    assert.deepEqual(
      events.map((event) => [event.status, event.resource]),
      [
        [200, 'app/set-a,app/set-b'],
        [304, 'app/set-a,app/set-b'],
      ],
    );
  });

  test('a wait longer than the request timeout ends with 304, audited once', async () => {
    await spike.putSecret('app/quiet', { password: broker.secretValue('quiet') });
    const before = broker.auditEvents().length;
    assert.equal(await spike.getSecretNewerThan('app/quiet', 1, { waitMs: 2_000 }), undefined);
    const events = broker
      .auditEvents()
      .slice(before)
      .filter((event) => event.action === 'secret.watch');
    assert.deepEqual(
      events.map((event) => [event.status, event.outcome, event.resource]),
      [[304, 'allowed', 'app/quiet']],
    );
  });

  test('a client that goes away frees its watch at once', async () => {
    await spike.putSecret('app/left', { password: broker.secretValue('left') });
    const gone = new AbortController();
    const waiting = spike
      .getSecretNewerThan('app/left', 1, { waitMs: 60_000, signal: gone.signal })
      .catch(() => undefined);
    await untilRefused('app/left');
    gone.abort();
    await waiting;
    // With its only slot free again, this identity's next watch waits (and times out).
    const deadline = Date.now() + 15_000;
    for (;;) {
      const probe = await spike.getSecretNewerThan('app/left', 1, { waitMs: 1 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      if (probe === undefined) break;
      assert.ok(probe instanceof TooManyWatchesError, String(probe));
      assert.ok(Date.now() < deadline, 'the watch of a client that went away was never freed');
    }
  });

  test('a Nexus that stops answers a waiting watch 304 at once', async () => {
    await spike.putSecret('app/stopping', { password: broker.secretValue('stopping') });
    const waiting = spike.getSecretNewerThan('app/stopping', 1, { waitMs: 60_000 });
    await untilRefused('app/stopping');
    const nexus = broker.nexus();
    nexus.signal('SIGTERM');
    // Cut by the drain's grace period instead, it would fail with a reset.
    assert.equal(await waiting, undefined);
    assert.equal(await nexus.exited(15_000), 0);
  });
});
