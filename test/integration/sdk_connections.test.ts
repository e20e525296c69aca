/**
 * The SDK's kept-alive connections against a real Nexus (real processes,
 * real mTLS): an answer after which Nexus closes the connection (a 413 for a
 * body over its limit, sent before the body is read) must not make the next
 * call of the same client fail on that dead connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createSpikeClient, type SpikeClient } from '../../sdk/client.ts';
import { PayloadTooLargeError } from '../../shared/errors/errors.ts';
import { type Broker, startBroker } from '../harness/broker.ts';

const TD_NAME = 'sdk-connections.test';
/** The smallest body limit Nexus accepts. */
const MAX_BODY_BYTES = 1024;
/**
 * Half a MiB: more than the socket buffers hold, so Nexus answers 413 before
 * the body is all sent and then closes the connection (a few KiB it would
 * read to the end and keep the connection open).
 */
const TOO_BIG = 'x'.repeat(512 * 1024);

describe('SDK connections to a real Nexus', () => {
  let broker: Broker;
  let client: SpikeClient;

  before(async () => {
    broker = await startBroker({
      trustDomain: TD_NAME,
      nexusEnv: { SPIKE_NEXUS_MAX_BODY_BYTES: String(MAX_BODY_BYTES) },
    });
    client = await createSpikeClient({
      nexusUrl: broker.nexusUrl,
      source: await broker.source('pilot'),
      timeoutMs: 10_000,
    });
  });

  after(async () => {
    client?.close();
    await broker?.stop();
  });

  test('the call after a 413 succeeds on the same client', async () => {
    const value = broker.secretValue('kept');
    await client.putSecret('app/kept', { value });

    for (let round = 1; round <= 3; round++) {
      await assert.rejects(
        client.putSecret('app/too-big', { value: TOO_BIG }),
        (err) => err instanceof PayloadTooLargeError,
      );
      const read = await client.getSecret('app/kept');
      assert.deepEqual(read.data, { value }, `round ${round}`);
      // A write right after the 413 as well: it is not retried by the SDK,
      // so it must go out on a live connection at the first attempt.
      await assert.rejects(
        client.putSecret('app/too-big', { value: TOO_BIG }),
        PayloadTooLargeError,
      );
      const written = await client.putSecret('app/kept', { value });
      assert.equal(written.currentVersion, round + 1);
    }
  });
});
