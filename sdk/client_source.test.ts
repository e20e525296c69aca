/**
 * Who owns the client's SVID source, against an in-process Workload API: a
 * client made from `workloadApiAddress` opens its own source and closes it on
 * close(); a client given `source` borrows it and leaves it open; both at once
 * are refused. No Nexus is needed: creating a client sends no request.
 */
import assert from 'node:assert/strict';
import { afterEach, before, describe, test } from 'node:test';
import { ConfigError, WorkloadApiUnavailableError } from '../shared/errors/errors.ts';
import { createLogger, createMemorySink } from '../shared/log/logger.ts';
import { createX509Source, type X509Source } from '../shared/spiffe/x509_source.ts';
import {
  type FakeWorkloadApi,
  rawSvid,
  startFakeWorkloadApi,
  waitUntil,
} from '../test/harness/fake_workload_api.ts';
import { createTestCa, type TestCa, type TestSvid } from '../test/harness/pki.ts';
import { createSpikeClient, type SpikeClient, type SpikeClientOptions } from './index.ts';

const NEXUS_URL = 'https://127.0.0.1:1';
const WEB_ID = 'spiffe://example.org/apps/web';

describe('createSpikeClient() and its SVID source', () => {
  let ca: TestCa;
  let web: TestSvid;
  const fakes: FakeWorkloadApi[] = [];
  const clients: SpikeClient[] = [];
  const sources: X509Source[] = [];
  const logger = createLogger({ component: 'test', level: 'error', sink: createMemorySink() });

  before(async () => {
    ca = await createTestCa('example.org');
    web = await ca.issueSvid(WEB_ID);
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const source of sources.splice(0)) source.close();
    for (const fake of fakes.splice(0)) await fake.close();
  });

  /** A Workload API that serves `web`, or nothing at all. */
  async function workloadApi(options: { silent?: boolean } = {}): Promise<FakeWorkloadApi> {
    const fake = await startFakeWorkloadApi();
    fakes.push(fake);
    if (options.silent !== true) fake.setX509SvidResponse({ svids: [rawSvid(web, ca)] });
    return fake;
  }

  test('from workloadApiAddress, the client owns its source and closes it on close()', async () => {
    const api = await workloadApi();
    const client = await createSpikeClient({
      nexusUrl: NEXUS_URL,
      workloadApiAddress: api.address,
      logger,
    });
    clients.push(client);
    assert.equal(client.spiffeId().toString(), WEB_ID);
    assert.equal(api.openStreams('FetchX509SVID'), 1);
    client.close();
    await waitUntil(() => api.openStreams('FetchX509SVID') === 0, 5000, 'the stream to close');
  });

  test('a source passed in is borrowed: close() leaves it open', async () => {
    const api = await workloadApi();
    const source = await createX509Source({ address: api.address, logger });
    sources.push(source);
    const client = await createSpikeClient({ nexusUrl: NEXUS_URL, source });
    assert.equal(client.spiffeId().toString(), WEB_ID);
    client.close();
    // Give a wrongly closed stream the time to end before looking.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(api.openStreams('FetchX509SVID'), 1);
    assert.equal(source.getX509Svid().id.toString(), WEB_ID);
  });

  test('workloadApiTimeoutMs bounds the wait for the first SVID', async () => {
    const api = await workloadApi({ silent: true });
    const started = Date.now();
    await assert.rejects(
      createSpikeClient({
        nexusUrl: NEXUS_URL,
        workloadApiAddress: api.address,
        workloadApiTimeoutMs: 300,
        logger,
      }),
      WorkloadApiUnavailableError,
    );
    assert.ok(Date.now() - started < 5_000, 'waited far longer than workloadApiTimeoutMs');
    await waitUntil(() => api.openStreams('FetchX509SVID') === 0, 5000, 'the stream to close');
  });

  test('a source and a Workload API address together are refused, as is a bad timeout', async () => {
    const api = await workloadApi();
    const source = await createX509Source({ address: api.address, logger });
    sources.push(source);
    // The option types rule this out; plain JavaScript callers can still write it.
    const both = {
      nexusUrl: NEXUS_URL,
      source,
      workloadApiAddress: api.address,
    } as unknown as SpikeClientOptions;
    await assert.rejects(createSpikeClient(both), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.deepEqual(err.problems, [
        'give either source (borrowed) or workloadApiAddress (owned by the client), not both',
      ]);
      return true;
    });
    await assert.rejects(
      createSpikeClient({ workloadApiAddress: api.address, workloadApiTimeoutMs: 0 }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.problems.length, 1);
        assert.match(err.problems[0] ?? '', /^workloadApiTimeoutMs must be a positive number/);
        return true;
      },
    );
  });
});
