/**
 * Rotation of the data key across two Nexus on one PostgreSQL database
 * (issue 15), with real processes: a rotation on one is taken up by the
 * other before the new term seals anything, so each reads what the other
 * wrote under it, and both see the sweep's end.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { KeyringStatusResponse } from '../../shared/api/keyring.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { waitUntilBroker } from '../harness/broker_wait.ts';
import { createScratchDatabase, dropScratchDatabases, postgresSkip } from '../harness/postgres.ts';
import { freePort } from '../harness/spawn.ts';

let brokers: Broker[] = [];
after(async () => {
  for (const broker of brokers) await broker.stop();
  brokers = [];
  await dropScratchDatabases();
});

describe('data-key rotation across two Nexus', () => {
  test('on PostgreSQL, a data-key rotation on one Nexus is taken up by the other before it seals anything', {
    skip: postgresSkip(),
  }, async () => {
    const broker = await startBroker({
      trustDomain: 'data-key-replicas.test',
      databaseUrl: await createScratchDatabase(),
      workloads: { 'nexus-2': '/spike/nexus/replica-2' },
    });
    brokers.push(broker);
    const otherPort = await freePort();
    const replica = broker.startNexus({}, { identity: 'nexus-2', port: otherPort });
    try {
      await broker.waitUntilReady('the replica', 60_000, { port: otherPort });
      const on = (port: number) => ({ port });
      const mark = broker.secretValue('replicated');
      for (let n = 1; n <= 50; n++) {
        const reply = await broker.call('pilot', 'PUT', `${PATHS.secretData}/rep/${n}`, {
          data: { v: `${mark}-${n}` },
        });
        assert.equal(reply.status, 200, reply.text);
      }
      const rotated = await broker.call('pilot', 'POST', PATHS.operatorKeyringRotate);
      assert.equal(rotated.status, 200, rotated.text);
      const term = (rotated.body as { term: { term: number; activeFrom: string } }).term;
      assert.equal(term.term, 2);
      // Not active at once: the other Nexus has its Keeper checks to take it up.
      assert.ok(Date.parse(term.activeFrom) > Date.now() - 100);
      await waitUntilBroker(broker, 'the replica holds term 2', async () => {
        const reply = await broker.call('pilot', 'GET', PATHS.operatorKeyring, undefined, {
          port: otherPort,
        });
        const status = reply.body as KeyringStatusResponse;
        return status.terms.some((t) => t.term === 2);
      });
      await delay(Math.max(0, Date.parse(term.activeFrom) - Date.now()) + 100);
      // Each writes under term 2 now, and each reads the other's rows.
      for (const [writer, reader] of [
        [broker.nexusPort, otherPort],
        [otherPort, broker.nexusPort],
      ] as const) {
        const path = `${PATHS.secretData}/rep/after-${writer}`;
        const put = await broker.call('pilot', 'PUT', path, { data: { v: mark } }, on(writer));
        assert.equal(put.status, 200, put.text);
        const got = await broker.call('pilot', 'GET', path, undefined, on(reader));
        assert.equal(got.status, 200, got.text);
        assert.equal((got.body as { data: { v: string } }).data.v, mark);
      }
      for (const port of [broker.nexusPort, otherPort]) {
        await waitUntilBroker(broker, `the sweep is done as seen from port ${port}`, async () => {
          const reply = await broker.call('pilot', 'GET', PATHS.operatorKeyring, undefined, {
            port,
          });
          const status = reply.body as KeyringStatusResponse;
          return status.activeTerm === 2 && status.sweep.remaining === 0;
        });
        const reply = await broker.call('pilot', 'GET', `${PATHS.secretData}/rep/7`, undefined, {
          port,
        });
        assert.equal((reply.body as { data: { v: string } }).data.v, `${mark}-7`);
      }
    } finally {
      await replica.stop();
    }
  });
});
