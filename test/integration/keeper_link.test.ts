/**
 * Nexus's side of the Keeper protocol against hostile Keepers, with real
 * processes over real mTLS: a real Keeper running with Keeper 2's SVID at
 * Keeper 1's address is given nothing and read from never, and a Keeper
 * stand-in whose answers never end fails only itself while Nexus recovers
 * from the others.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { keeperId } from '../../shared/spiffe/identities.ts';
import { matchId } from '../../shared/spiffe/match.ts';
import { serverTlsOptions } from '../../shared/spiffe/mtls.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { completeLines } from '../harness/lines.ts';
import { type RunningProgram, startProgram } from '../harness/spawn.ts';

/** Waits for a condition, failing with the broker's logs after the deadline. */
async function waitUntil(
  broker: Broker,
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}\n${broker.logs()}`);
    await delay(50);
  }
}

/** The JSON log lines of a program whose message is `msg`. */
function logsOf(program: RunningProgram, msg: string): Record<string, unknown>[] {
  return completeLines(program.stderr())
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === msg);
}

describe("a Keeper's SVID at another Keeper's address", () => {
  let broker: Broker;
  let impostor: RunningProgram | undefined;
  let impostorAudit: string;
  let keeperOne: string;

  before(async () => {
    broker = await startBroker({ trustDomain: 'keeper-identity.test', startNexus: false });
    keeperOne = `https://127.0.0.1:${broker.keeperPorts[0]}`;
    // Keeper 1 is replaced by a real Keeper that holds Keeper 2's SVID.
    await broker.keeper(0).stop();
    impostorAudit = join(broker.dir, 'impostor.audit.jsonl');
    impostor = startProgram('keeper', {
      env: {
        ...broker.identityEnv('keeper-2'),
        SPIKE_KEEPER_TLS_PORT: String(broker.keeperPorts[0]),
        SPIKE_KEEPER_AUDIT_LOG: impostorAudit,
      },
    });
    await impostor.waitFor(/"msg":"Listening"/);
  });

  after(async () => {
    await impostor?.stop();
    await broker?.stop();
  });

  /**
   * Every request the impostor received: its audit trail has one event per
   * request, and one `tls.connect` per handshake its client broke off (Nexus
   * refusing it), which carries no request.
   */
  const impostorRequests = () =>
    completeLines(readFileSync(impostorAudit, 'utf8'))
      .map((line) => JSON.parse(line) as { action: string; method: string | null })
      // Requests only: not refused connections, nor the audit chain's own lines.
      .filter((event) => !event.action.startsWith('audit.'))
      .filter((event) => event.action !== 'tls.connect' || event.method !== null);

  test('Nexus initialises with Keepers 2 and 3 and hands the impostor nothing', async () => {
    broker.startNexus();
    await broker.waitUntilReady('Nexus initialised its root key with Keepers 2 and 3');
    assert.deepEqual(impostorRequests(), []);
    const nexus = broker.nexus();
    const [refusal] = logsOf(
      nexus,
      'Refused the server at a Keeper address: it is not the Keeper registered there',
    );
    assert.ok(refusal !== undefined, nexus.stderr());
    assert.equal(refusal.keeper, keeperOne);
    assert.equal(refusal.expected, broker.idOf('keeper-1'));
    assert.match(
      String(refusal.error),
      new RegExp(`"${broker.idOf('keeper-2')}" is not the expected one`),
    );
    assert.deepEqual(
      logsOf(nexus, 'A Keeper did not take its shard').map((line) => line.index),
      [1],
    );
    const audited = broker
      .auditEvents()
      .filter((event) => event.action === 'keeper.connect' && event.resource === keeperOne);
    assert.ok(audited.length >= 1, JSON.stringify(broker.auditEvents()));
    assert.equal(audited[0]?.outcome, 'denied');
    assert.equal(audited[0]?.errorCode, 'ERR_SVID_INVALID');
  });

  test('a restarted Nexus recovers from Keepers 2 and 3 and reads nothing from the impostor', async () => {
    await broker.nexus().stop();
    broker.closeClients();
    broker.startNexus();
    await broker.waitUntilReady('Nexus recovered its root key from Keepers 2 and 3');
    assert.match(broker.nexus().stderr(), /Recovered the root key from the Keepers/);
    // Nexus checks all Keepers at once every 500 ms here: once Keeper 2 saw
    // a check, Keeper 1's address was asked too.
    const checksOfKeeperTwo = () =>
      (
        broker
          .keeper(1)
          .stdout()
          .match(/"action":"shard\.list"/g) ?? []
      ).length;
    const seen = checksOfKeeperTwo();
    await waitUntil(
      broker,
      'Nexus checked the Keepers twice',
      () => checksOfKeeperTwo() >= seen + 2,
    );
    assert.deepEqual(impostorRequests(), []);
    // The impostor holds no shard (asked as Nexus, knowing whom it asks).
    const asNexus = new MtlsClient({
      source: await broker.source('nexus'),
      authorizeServer: matchId(keeperId(broker.trustDomain, '2')),
      timeoutMs: 5_000,
    });
    try {
      const res = await asNexus.request({
        method: 'GET',
        url: new URL(PATHS.keeperShards, keeperOne),
      });
      assert.deepEqual(res.json(), { shards: [] });
    } finally {
      asNexus.close();
    }
  });
});

describe('a Keeper whose answers never end', () => {
  let broker: Broker;
  let fake: Server | undefined;
  /** What the stand-in sent in each answer, and whether the client closed it. */
  const answers: { what: string; sent: number; closed: boolean }[] = [];
  /** More than Nexus may read by far; the stand-in stops there for the test machine's sake. */
  const STREAMED_AT_MOST = 128 * 1024 * 1024;

  before(async () => {
    broker = await startBroker({ trustDomain: 'keeper-answers.test' });
    await broker.nexus().stop();
    broker.closeClients();
    await broker.keeper(0).stop();
    // Keeper 1's SVID, so only its answers are wrong: a listing that
    // announces 4 GiB, and every other answer chunked without end.
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    fake = createServer(serverTlsOptions(await broker.source('keeper-1')), (req, res) => {
      req.resume();
      const isListing = req.method === 'GET' && req.url === PATHS.keeperShards;
      const answer = { what: isListing ? 'content-length' : 'chunked', sent: 0, closed: false };
      answers.push(answer);
      res.writeHead(200, {
        'content-type': 'application/json',
        ...(isListing ? { 'content-length': String(4 * 1024 ** 3) } : {}),
      });
      res.on('close', () => {
        answer.closed = true;
      });
      const pump = () => {
        while (!res.destroyed && answer.sent < STREAMED_AT_MOST) {
          answer.sent += chunk.byteLength;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    await new Promise<void>((resolve) => fake?.listen(broker.keeperPorts[0], '127.0.0.1', resolve));
  });

  after(async () => {
    fake?.closeAllConnections();
    fake?.close();
    await broker?.stop();
  });

  test('fails that Keeper only, at once, and Nexus recovers from the others', async () => {
    broker.startNexus();
    await broker.waitUntilReady('Nexus recovered its root key from Keepers 2 and 3');
    assert.match(broker.nexus().stderr(), /Recovered the root key from the Keepers/);
    // After unsealing, Nexus re-splits (a PUT) and checks the Keepers (a GET):
    // both answered chunked.
    const closed = (what: string) => answers.some((a) => a.what === what && a.closed);
    await waitUntil(
      broker,
      'Nexus closed both kinds of answer',
      () => closed('content-length') && closed('chunked'),
    );
    for (const answer of answers.filter((a) => a.closed)) {
      // What the sockets' buffers took before Nexus closed: far below the stream.
      assert.ok(answer.sent < 32 * 1024 * 1024, `${answer.what}: ${answer.sent} bytes sent`);
    }
    const nexus = broker.nexus();
    const tooLarge = logsOf(nexus, 'A Keeper answered more than Nexus reads; the call failed');
    assert.ok(tooLarge.length >= 1, nexus.stderr());
    assert.equal(tooLarge[0]?.keeper, `https://127.0.0.1:${broker.keeperPorts[0]}`);
    assert.match(String(tooLarge[0]?.error), /is larger than 65536 bytes: stopped reading it/);
    await waitUntil(
      broker,
      'Nexus gave Keepers 2 and 3 a new generation',
      () => logsOf(nexus, 'Shards distributed').length >= 1,
    );
    assert.equal(broker.nexus().child.exitCode, null, 'Nexus is still running');
  });
});
