/**
 * Suite 4 of issue 7, rotation under load: the agent rotates every SVID
 * (Nexus's, each Keeper's and each client's) about every 5 s, since
 * `SPIKE_AGENT_SVID_TTL` is at its 10 s minimum and SVIDs renew at half-life,
 * while clients write and read at full speed. Not one request may fail, every
 * read must return what its worker wrote last, and the rotations must really
 * have happened: the clients saw several SVIDs, Nexus's status shows a later
 * SVID expiry, and the agent issued new SVIDs to the Keepers, whose links
 * to Nexus stay up.
 *
 * The clients are the harness's kept-alive `MtlsClient`s (as Pilot uses) and
 * the SDK's `SpikeClient`, each on its own X509Source.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createSpikeClient, type SpikeClient } from '../../sdk/client.ts';
import type { StatusResponse } from '../../shared/api/operator.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, startBroker } from '../harness/broker.ts';

const TD = 'rotation-load.test';
const SVID_TTL = '10s';
/** A minute of load, on Node and Deno alike. */
const LOAD_MS = 60_000;
const WORKERS_PER_CLIENT = 3;
/** Rotations at about 5 s: at least this many SVIDs per identity over the run. */
const MIN_SVIDS_SEEN = Math.floor(LOAD_MS / 10_000) + 1;

interface Tally {
  ops: number;
  readonly failures: string[];
  /** Status answers in which a Keeper was unreachable (reported, not a failure). */
  unreachable?: number;
}

describe('SVID rotation under load', () => {
  let broker: Broker;
  let sdk: SpikeClient | undefined;

  before(async () => {
    broker = await startBroker({
      trustDomain: TD,
      workloads: { 'app-a': '/apps/a', 'app-b': '/apps/b' },
      agentEnv: { SPIKE_AGENT_SVID_TTL: SVID_TTL },
      // Full speed is far above the default per-identity rate; this suite is
      // about rotation, so the limit is off (resource_limits tests it).
      nexusEnv: { SPIKE_NEXUS_RATE_LIMIT_PER_SECOND: '0' },
    });
    for (const name of ['app-a', 'app-b']) {
      const policy = await broker.call('pilot', 'PUT', `${PATHS.policies}/${name}`, {
        spiffeIdPattern: broker.idOf(name),
        pathPattern: `load/${name}/**`,
        permissions: ['read', 'write'],
      });
      assert.equal(policy.status, 200, policy.text);
    }
  });

  after(async () => {
    sdk?.close();
    await broker?.stop();
  });

  async function status(): Promise<StatusResponse> {
    const reply = await broker.call('pilot', 'GET', PATHS.status);
    assert.equal(reply.status, 200, reply.text);
    return reply.body as StatusResponse;
  }

  /** Records each distinct SVID (by its notAfter) a source hands out. */
  async function watchSvids(name: string): Promise<Set<string>> {
    const source = await broker.source(name);
    const seen = new Set<string>([source.getX509Svid().notAfter.toISOString()]);
    source.onUpdate(() => {
      seen.add(source.getX509Svid().notAfter.toISOString());
    });
    return seen;
  }

  /** Writes a fresh value, reads it back and checks it, until the deadline. */
  async function harnessWorker(name: string, worker: number, until: number, tally: Tally) {
    const path = `load/${name}/w${worker}`;
    while (Date.now() < until) {
      const value = broker.secretValue(`${name}-w${worker}`);
      try {
        const put = await broker.call(name, 'PUT', `${PATHS.secretData}/${path}`, {
          data: { value },
        });
        if (put.status !== 200) tally.failures.push(`${name} PUT → ${put.status}`);
        const got = await broker.call(name, 'GET', `${PATHS.secretData}/${path}`);
        const data = (got.body as { data?: { value?: string } } | undefined)?.data;
        if (got.status !== 200) tally.failures.push(`${name} GET → ${got.status}`);
        else if (data?.value !== value) tally.failures.push(`${name} GET returned another value`);
        tally.ops += 2;
      } catch (err) {
        tally.failures.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  async function sdkWorker(client: SpikeClient, worker: number, until: number, tally: Tally) {
    const path = `load/app-b/sdk${worker}`;
    while (Date.now() < until) {
      const value = broker.secretValue(`sdk-w${worker}`);
      try {
        await client.putSecret(path, { value });
        const got = await client.getSecret(path);
        if (got.data.value !== value) tally.failures.push('SDK getSecret returned another value');
        tally.ops += 2;
      } catch (err) {
        tally.failures.push(`SDK: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** The superuser polls the status route: Nexus must stay ready with every Keeper reachable. */
  async function statusWorker(until: number, tally: Tally) {
    while (Date.now() < until) {
      try {
        const reply = await broker.call('pilot', 'GET', PATHS.status);
        const body = reply.body as StatusResponse | undefined;
        if (reply.status !== 200) tally.failures.push(`status → ${reply.status}`);
        tally.ops += 1;
        if (body?.keepers.some((keeper) => !keeper.reachable)) {
          tally.unreachable = (tally.unreachable ?? 0) + 1;
        }
      } catch (err) {
        tally.failures.push(`status: ${err instanceof Error ? err.message : String(err)}`);
      }
      await delay(200);
    }
  }

  test('clients read and write at full speed while every SVID rotates, and no request fails', async () => {
    const before = await status();
    const seenA = await watchSvids('app-a');
    const seenB = await watchSvids('app-b');
    const seenPilot = await watchSvids('pilot');
    const sdkSource = await broker.source('app-b');
    sdk = await createSpikeClient({
      nexusUrl: broker.nexusUrl,
      source: sdkSource,
      timeoutMs: 5_000,
    });

    const tally: Tally = { ops: 0, failures: [] };
    const until = Date.now() + LOAD_MS;
    const client = sdk;
    await Promise.all([
      ...Array.from({ length: WORKERS_PER_CLIENT }, (_, i) =>
        harnessWorker('app-a', i, until, tally),
      ),
      ...Array.from({ length: WORKERS_PER_CLIENT }, (_, i) =>
        harnessWorker('app-b', i, until, tally),
      ),
      ...Array.from({ length: WORKERS_PER_CLIENT }, (_, i) => sdkWorker(client, i, until, tally)),
      statusWorker(until, tally),
    ]);
    const afterLoad = await status();

    assert.deepEqual(
      tally.failures.slice(0, 20),
      [],
      `${tally.failures.length} of ${tally.ops} requests failed`,
    );
    assert.ok(tally.ops > 100, `only ${tally.ops} requests in ${LOAD_MS} ms`);

    // The clients rotated: each saw several SVIDs.
    for (const [name, seen] of [
      ['app-a', seenA],
      ['app-b', seenB],
      ['pilot', seenPilot],
    ] as const) {
      assert.ok(seen.size >= MIN_SVIDS_SEEN, `${name} saw ${seen.size} SVIDs`);
    }
    // Nexus rotated: it serves with an SVID that expires later.
    const expiryMoved = Date.parse(afterLoad.svidNotAfter) - Date.parse(before.svidNotAfter);
    assert.ok(expiryMoved >= LOAD_MS / 2, `Nexus's SVID expiry moved by ${expiryMoved} ms`);
    assert.notEqual(afterLoad.svidNotAfter, before.svidNotAfter);
    // The Keepers rotated, and Nexus reached each of them at the end.
    const agentLog = broker.agent.stderr();
    for (let i = 1; i <= 3; i += 1) {
      const rotations = agentLog
        .split('\n')
        .filter(
          (line) =>
            line.includes('"action":"svid.issue"') &&
            line.includes(`"registration":"keeper-${i}"`) &&
            line.includes('"reason":"rotation"'),
        ).length;
      assert.ok(rotations >= MIN_SVIDS_SEEN - 1, `keeper-${i} rotated ${rotations} times`);
    }
    assert.ok(
      afterLoad.keepers.every((keeper) => keeper.reachable),
      JSON.stringify(afterLoad.keepers),
    );
  });
});
