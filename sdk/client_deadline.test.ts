/**
 * The SDK's `deadline` (one time budget for a one-shot program) and how it
 * names what went wrong, against stand-ins over real mTLS: a server that
 * never answers ends the call by the deadline, whatever `timeoutMs` says; a
 * deadline that has passed sends nothing; the wait for an owned source's
 * first SVID ends by it too. A server of another CA is a trust problem
 * (`ServerUntrustedError`), not an unreachable Nexus. No assertion is about
 * how long anything took: a call that ignored the deadline would outlast
 * the test's own timeout.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  ConfigError,
  ServerUntrustedError,
  UnavailableError,
  WorkloadApiUnavailableError,
} from '../shared/errors/errors.ts';
import { serverTlsOptions } from '../shared/spiffe/mtls.ts';
import { StaticX509Source } from '../shared/spiffe/x509_source.ts';
import { type FakeWorkloadApi, startFakeWorkloadApi } from '../test/harness/fake_workload_api.ts';
import { bundleSetOf, createTestCa } from '../test/harness/pki.ts';
import { createSpikeClient, type SpikeClient } from './index.ts';

const TD = 'example.org';
/** Far beyond the test runner's timeout: only the deadline can end these calls. */
const NEVER_MS = 10 * 60_000;

describe('SpikeClient with a deadline', () => {
  let clientSource: StaticX509Source;
  let impostorSource: StaticX509Source;
  const servers: Array<NetServer | HttpsServer> = [];
  const held: Socket[] = [];
  const clients: SpikeClient[] = [];
  const fakes: FakeWorkloadApi[] = [];

  before(async () => {
    const ca = await createTestCa(TD);
    clientSource = new StaticX509Source(
      (await ca.issueSvid(`spiffe://${TD}/spike/pilot/role/superuser`)).x509Svid(),
      bundleSetOf(ca),
    );
    // Same trust domain name, another CA: its Nexus ID proves nothing.
    const other = await createTestCa(TD);
    impostorSource = new StaticX509Source(
      (await other.issueSvid(`spiffe://${TD}/spike/nexus`)).x509Svid(),
      bundleSetOf(other),
    );
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const socket of held) socket.destroy();
    for (const server of servers) server.close();
    for (const fake of fakes) await fake.close();
  });

  function listen(server: NetServer | HttpsServer): Promise<string> {
    servers.push(server);
    return new Promise((resolve) => {
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(`https://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`);
      });
    });
  }

  /** Accepts connections and never says a word; counts them. */
  async function silentServer(): Promise<{ url: string; connections: () => number }> {
    let connections = 0;
    const server = createNetServer((socket) => {
      connections += 1;
      held.push(socket);
    });
    return { url: await listen(server), connections: () => connections };
  }

  async function client(nexusUrl: string, deadline: Date): Promise<SpikeClient> {
    const made = await createSpikeClient({
      source: clientSource,
      nexusUrl,
      timeoutMs: NEVER_MS,
      deadline,
    });
    clients.push(made);
    return made;
  }

  test('a server that never answers ends the call by the deadline, not by timeoutMs', async () => {
    const silent = await silentServer();
    const made = await client(silent.url, new Date(Date.now() + 300));
    await assert.rejects(made.getSecret('app/web/db'), (err: unknown) => {
      assert.ok(err instanceof UnavailableError, String(err));
      assert.match(err.message, /timed out/);
      return true;
    });
  });

  test('a deadline that has passed sends nothing', async () => {
    const silent = await silentServer();
    const made = await client(silent.url, new Date(Date.now() - 1));
    await assert.rejects(made.listSecrets(), (err: unknown) => {
      assert.ok(err instanceof UnavailableError, String(err));
      assert.match(err.message, /deadline has passed/);
      return true;
    });
    assert.equal(silent.connections(), 0);
  });

  test('an invalid deadline is a configuration error', async () => {
    await assert.rejects(
      createSpikeClient({ source: clientSource, deadline: new Date(Number.NaN) }),
      (err: unknown) => err instanceof ConfigError && /deadline/.test(err.message),
    );
  });

  test('the wait for an owned source’s first SVID ends by the deadline', async () => {
    const fake = await startFakeWorkloadApi();
    fakes.push(fake);
    await assert.rejects(
      createSpikeClient({
        workloadApiAddress: fake.address,
        workloadApiTimeoutMs: NEVER_MS,
        deadline: new Date(Date.now() + 200),
      }),
      (err: unknown) => err instanceof WorkloadApiUnavailableError,
    );
  });

  test('a server of another CA is not trusted, and is not called unreachable', async () => {
    const url = await listen(
      createHttpsServer(serverTlsOptions(impostorSource), (_req, res) => {
        res.end('{"paths":[]}');
      }),
    );
    const made = await client(url, new Date(Date.now() + NEVER_MS));
    await assert.rejects(made.listSecrets(), (err: unknown) => {
      assert.ok(err instanceof ServerUntrustedError, String(err));
      assert.equal(err.code, 'ERR_SERVER_UNTRUSTED');
      assert.match(err.message, new RegExp(`^The server at ${url} is not trusted: `));
      assert.doesNotMatch(err.message, /unreachable/);
      return true;
    });
  });
});
