/**
 * Keeper and Nexus faults under load (issue 7, suite 5), with real processes
 * over real mTLS. Applications read and write continuously through the SDK
 * (`sdk/index.ts`, with `retryDeadlineMs`), as a workload that a policy
 * allows, while:
 *
 * 1. two Keepers are killed (SIGKILL) at once, leaving fewer than the
 *    threshold, and restarted: the running Nexus keeps its key and stays
 *    ready the whole time, re-supplies them, and clients see no error and not
 *    one retry;
 * 2. the third Keeper is killed (exactly the threshold up), then Nexus is
 *    killed and restarted: it unseals from the two left;
 * 3. Nexus is stopped gracefully (SIGTERM) and restarted: it answers every
 *    request it took before it goes;
 * 4. two Keepers are frozen (SIGSTOP) and Nexus is killed: the new one stays
 *    sealed until they thaw, and clients get 503 meanwhile.
 *
 * Clients meet 503 `ERR_NOT_READY` (seen through the SDK's retry log) only
 * between the moment Nexus goes down and the moment it is ready again, and
 * recover on their own. The only failures a client may see at all are writes
 * in flight when Nexus was killed, which the SDK refuses to resend (their
 * outcome is unknown, and the test settles each one). Afterwards every
 * acknowledged write is read back at its version, and every version that
 * exists holds the data sent for it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BrokerError,
  createSpikeClient,
  type Logger,
  type SpikeClient,
  UnavailableError,
} from '../../sdk/index.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, startBroker } from '../harness/broker.ts';

const TD = 'faults.test';
const CLIENTS = 4;
/** Every version is kept, so every acknowledged one can be read back. */
const MAX_VERSIONS = 1000;
/** A response may reach the client a little after the ready Nexus was seen. */
const SLACK_MS = 300;

interface Window {
  readonly what: string;
  readonly from: number;
  to: number;
}

interface Seen {
  readonly at: number;
  readonly client: number;
  readonly what: string;
}

interface Ledger {
  /** `path#version` → data sent for it (JSON). */
  readonly sent: Map<string, Set<string>>;
  /** `path#version` → data acknowledged (JSON). */
  readonly acked: Map<string, string>;
  /** Retries the SDK logged (code, method), with when. */
  readonly retries: Seen[];
  /** Errors that reached the application, with when. */
  readonly thrown: Seen[];
  /** Writes whose answer never came (the SDK does not resend them). */
  readonly unknown: Seen[];
  /** What became of each unanswered write. */
  readonly settled: string[];
  /** Status polls that did not answer 200 ready. */
  readonly notReady: Seen[];
  /** Reads that returned something other than the newest acknowledged data. */
  readonly badReads: string[];
  /** Per client, when its last successful call returned. */
  readonly lastSuccess: number[];
  calls: number;
}

const keyOf = (path: string, version: number) => `${path}#${version}`;

/** A logger that records the SDK's retries and drops everything else. */
function retryRecorder(client: number, ledger: Ledger): Logger {
  const logger: Logger = {
    debug(message, fields) {
      if (message.startsWith('Nexus did not serve the request')) {
        ledger.retries.push({
          at: Date.now(),
          client,
          what: `${String(fields?.code)} ${String(fields?.method)} ${String(fields?.route)}`,
        });
      }
    },
    info() {},
    warn() {},
    error() {},
    child: () => logger,
  };
  return logger;
}

/** One application: writes with check-and-set on its own path, reads it back, forever. */
async function application(
  spike: SpikeClient,
  ledger: Ledger,
  options: { id: number; base: string; isRunning: () => boolean },
): Promise<void> {
  const { id, base, isRunning } = options;
  const path = `load/app-${id}`;
  let version = 0;
  let isInDoubt = false;
  for (let seq = 0; isRunning(); seq += 1) {
    try {
      if (isInDoubt) {
        // The last write got no answer: learn whether it landed.
        const current = (await spike.getMetadata(path)).currentVersion;
        ledger.settled.push(current > version ? 'landed' : 'not landed');
        version = current;
        isInDoubt = false;
      }
      const next = version + 1;
      const data = { value: `${base}:${next}:${seq}` };
      const key = keyOf(path, next);
      const sent = ledger.sent.get(key) ?? new Set<string>();
      sent.add(JSON.stringify(data));
      ledger.sent.set(key, sent);
      let metadata: Awaited<ReturnType<SpikeClient['putSecret']>>;
      try {
        metadata = await spike.putSecret(path, data, { cas: version });
      } catch (err) {
        if (err instanceof UnavailableError) {
          ledger.unknown.push({ at: Date.now(), client: id, what: `${key}: ${err.message}` });
          isInDoubt = true;
          continue;
        }
        throw err;
      }
      ledger.calls += 1;
      if (metadata.currentVersion !== next) {
        ledger.badReads.push(`${key} acknowledged as version ${metadata.currentVersion}`);
      }
      ledger.acked.set(key, JSON.stringify(data));
      version = next;
      const read = await spike.getSecret(path);
      ledger.calls += 1;
      if (read.version !== version || JSON.stringify(read.data) !== JSON.stringify(data)) {
        ledger.badReads.push(`${key}: read back version ${read.version}`);
      }
      ledger.lastSuccess[id] = Date.now();
    } catch (err) {
      const code = err instanceof BrokerError ? err.code : 'not a BrokerError';
      const now = Date.now();
      const retried = ledger.retries
        .filter((event) => event.client === id && now - event.at < 30_000)
        .map((event) => `${event.what} ${now - event.at} ms before`);
      ledger.thrown.push({
        at: now,
        client: id,
        what: `${code}: ${err instanceof Error ? err.message : String(err)} (retries before it: ${retried.join('; ') || 'none'})`,
      });
      isInDoubt = true;
      await delay(50);
    }
  }
}

/** Polls the status route; every answer but 200 ready is recorded. */
async function monitor(broker: Broker, ledger: Ledger, isRunning: () => boolean): Promise<void> {
  while (isRunning()) {
    let what: string | undefined;
    try {
      const reply = await broker.call('pilot', 'GET', '/v1/status');
      const state = (reply.body as { state?: unknown } | undefined)?.state;
      if (reply.status !== 200 || state !== 'ready') what = `${reply.status} ${String(state)}`;
    } catch (err) {
      what = `no answer: ${err instanceof Error ? err.message : String(err)}`;
      broker.closeClients();
    }
    if (what !== undefined) ledger.notReady.push({ at: Date.now(), client: -1, what });
    await delay(100);
  }
}

/** The newest generation any Keeper holds, as Nexus last saw it. */
async function newestGeneration(broker: Broker): Promise<number> {
  const reply = await broker.call('pilot', 'GET', '/v1/status');
  const keepers = (reply.body as { keepers: { generations: number[] }[] }).keepers;
  return Math.max(0, ...keepers.flatMap((keeper) => keeper.generations));
}

/** Waits until every Keeper is reachable and holds a generation newer than `after`. */
async function waitUntilKeepersHoldNewer(broker: Broker, after: number): Promise<number> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const reply = await broker.call('pilot', 'GET', '/v1/status');
      const keepers = (reply.body as { keepers: { reachable: boolean; generations: number[] }[] })
        .keepers;
      const newest = Math.max(0, ...keepers.flatMap((keeper) => keeper.generations));
      if (
        reply.status === 200 &&
        newest > after &&
        keepers.every((keeper) => keeper.reachable && keeper.generations.includes(newest))
      ) {
        return newest;
      }
    } catch {
      broker.closeClients();
    }
    if (Date.now() > deadline) {
      throw new Error(`Keepers were not re-supplied past generation ${after}\n${broker.logs()}`);
    }
    await delay(100);
  }
}

/** Fails listing the events when there are any (and keeps the array's type). */
function assertNone(events: readonly Seen[], message: string): void {
  assert.deepEqual(
    events.map((event) => `client ${event.client}: ${event.what}`),
    [],
    message,
  );
}

function within(windows: readonly Window[], at: number): boolean {
  return windows.some((window) => at >= window.from && at <= window.to + SLACK_MS);
}

describe('Keeper and Nexus faults under load', () => {
  test('clients ride out Keeper kills and Nexus restarts without losing an acknowledged write', async (t) => {
    const broker = await startBroker({
      trustDomain: TD,
      workloads: { app: '/apps/load' },
      nexusEnv: {
        SPIKE_NEXUS_MAX_SECRET_VERSIONS: String(MAX_VERSIONS),
        // The four clients share one SPIFFE ID and send without pause: on a
        // fast machine they outrun the default per-identity limit (500/s), and
        // its 429s would read as retries. This suite is about faults.
        SPIKE_NEXUS_RATE_LIMIT_PER_SECOND: '0',
      },
    });
    const clients: SpikeClient[] = [];
    try {
      const policy = await broker.call('pilot', 'PUT', '/v1/policies/load', {
        name: 'load',
        spiffeIdPattern: `spiffe://${TD}/apps/load`,
        pathPattern: 'load/**',
        permissions: ['read', 'write'],
      });
      assert.equal(policy.status, 200, policy.text);

      const ledger: Ledger = {
        sent: new Map(),
        acked: new Map(),
        retries: [],
        thrown: [],
        unknown: [],
        settled: [],
        notReady: [],
        badReads: [],
        lastSuccess: Array.from({ length: CLIENTS }, () => 0),
        calls: 0,
      };
      const source = await broker.source('app');
      for (let id = 0; id < CLIENTS; id += 1) {
        clients.push(
          await createSpikeClient({
            source,
            nexusUrl: broker.nexusUrl,
            timeoutMs: 5_000,
            retryDeadlineMs: 30_000,
            logger: retryRecorder(id, ledger),
          }),
        );
      }
      let isRunning = true;
      const running = () => isRunning;
      const apps = clients.map((spike, id) =>
        application(spike, ledger, {
          id,
          base: broker.secretValue(`app-${id}`),
          isRunning: running,
        }),
      );
      const watcher = monitor(broker, ledger, running);
      /** When Nexus was down or sealed: from just before it went down until it was seen ready. */
      const nexusDown: Window[] = [];
      const phases: string[] = [];

      try {
        await delay(500);
        // 1. Two Keepers at once: Nexus holds its key and stays ready.
        let generation = await newestGeneration(broker);
        for (const group of [[0, 1]]) {
          const started = Date.now();
          const callsBefore = ledger.calls;
          for (const index of group) {
            const keeper = broker.keeper(index);
            keeper.child.kill('SIGKILL');
            await keeper.exited(10_000);
          }
          await delay(400);
          await Promise.all(group.map((index) => broker.startKeeper(index)));
          generation = await waitUntilKeepersHoldNewer(broker, generation);
          phases.push(
            `keepers ${group.join('+')}: ${ledger.calls - callsBefore} calls, re-supplied in ${Date.now() - started} ms`,
          );
          assert.ok(
            ledger.calls > callsBefore,
            `no call succeeded while Keepers ${group} restarted`,
          );
        }
        assertNone(ledger.notReady, 'Nexus stayed ready while Keepers died');
        assertNone(ledger.retries, 'no client had to retry while Keepers died');
        assertNone(ledger.thrown, 'no client saw an error while Keepers died');
        assertNone(ledger.unknown, 'no write went unanswered while Keepers died');

        // 2. Exactly the threshold of Keepers up, and Nexus killed: it unseals from those two.
        const lonely = broker.keeper(2);
        lonely.child.kill('SIGKILL');
        await lonely.exited(10_000);
        const killed: Window = { what: 'SIGKILL with two Keepers', from: Date.now(), to: Infinity };
        nexusDown.push(killed);
        const nexus = broker.nexus();
        nexus.child.kill('SIGKILL');
        await nexus.exited(10_000);
        broker.startNexus();
        await broker.waitUntilReady('Nexus unsealed from two Keepers', 40_000);
        killed.to = Date.now();
        phases.push(`Nexus SIGKILL: ready again after ${killed.to - killed.from} ms`);
        await broker.startKeeper(2);
        generation = await waitUntilKeepersHoldNewer(broker, generation);

        // 3. A graceful restart under load.
        const stopped: Window = { what: 'SIGTERM', from: Date.now(), to: Infinity };
        nexusDown.push(stopped);
        await broker.nexus().stop();
        broker.startNexus();
        await broker.waitUntilReady('Nexus unsealed after a graceful restart', 40_000);
        stopped.to = Date.now();
        phases.push(`Nexus SIGTERM: ready again after ${stopped.to - stopped.from} ms`);
        generation = await waitUntilKeepersHoldNewer(broker, generation);

        // 4. Sealed: two Keepers frozen (SIGSTOP) and Nexus killed. The new
        // Nexus cannot gather the threshold and stays sealed; clients get 503
        // and wait through the SDK's retry until the Keepers thaw.
        const sealed: Window = { what: 'sealed', from: Date.now(), to: Infinity };
        nexusDown.push(sealed);
        broker.keeper(1).pause();
        broker.keeper(2).pause();
        const frozenOut = broker.nexus();
        frozenOut.child.kill('SIGKILL');
        await frozenOut.exited(10_000);
        broker.startNexus();
        const sealedUntil = Date.now() + 20_000;
        while (
          !ledger.retries.some((e) => e.at > sealed.from && e.what.startsWith('ERR_NOT_READY'))
        ) {
          if (Date.now() > sealedUntil)
            throw new Error(`No client met a sealed Nexus\n${broker.logs()}`);
          await delay(50);
        }
        await delay(500);
        broker.keeper(1).resume();
        broker.keeper(2).resume();
        await broker.waitUntilReady('Nexus unsealed once the Keepers thawed', 40_000);
        sealed.to = Date.now();
        phases.push(`sealed: ready again after ${sealed.to - sealed.from} ms`);
        await waitUntilKeepersHoldNewer(broker, generation);
        await delay(700);
      } finally {
        isRunning = false;
        await Promise.all([...apps, watcher]);
      }
      const lastUp = nexusDown.reduce((latest, window) => Math.max(latest, window.to), 0);
      t.diagnostic(
        `${ledger.calls} calls, ${ledger.acked.size} writes acknowledged, ${ledger.retries.length} retries, ${ledger.unknown.length} writes unanswered (${ledger.settled.join(', ')}); ${phases.join('; ')}`,
      );

      for (const window of nexusDown) {
        const inside = (seen: readonly Seen[]) =>
          seen.filter((event) => event.at >= window.from && event.at <= window.to + SLACK_MS);
        const codes = new Map<string, number>();
        for (const event of inside(ledger.retries)) {
          const code = event.what.split(' ')[0] as string;
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
        t.diagnostic(
          `${window.what}: retries ${JSON.stringify(Object.fromEntries(codes))}; unanswered writes: ${inside(
            ledger.unknown,
          )
            .map((event) => event.what)
            .join(' | ')}`,
        );
      }

      // Clients see 503 (and any other trouble) only while Nexus is down or sealed.
      const outside = (seen: readonly Seen[]) =>
        seen
          .filter((event) => !within(nexusDown, event.at))
          .map((event) => `${event.client}: ${event.what}`);
      assert.deepEqual(outside(ledger.retries), [], 'retries outside a Nexus restart');
      assert.deepEqual(outside(ledger.notReady), [], 'Nexus not ready outside a restart');
      assert.deepEqual(outside(ledger.unknown), [], 'unanswered writes outside a restart');
      // A graceful stop answers every request it took; only a kill leaves writes in doubt.
      assertNone(
        ledger.unknown.filter((event) =>
          within(
            nexusDown.filter((window) => window.what === 'SIGTERM'),
            event.at,
          ),
        ),
        'writes a graceful restart left unanswered',
      );
      assert.ok(
        ledger.retries.some((event) => event.what.startsWith('ERR_UNAVAILABLE')),
        'the restarts were felt by the clients (as retries)',
      );
      // The only errors an application sees: nothing at all, the SDK retried the rest.
      assert.deepEqual(
        ledger.thrown.map((event) => `${event.client}: ${event.what}`),
        [],
        'errors that reached an application',
      );
      assert.deepEqual(ledger.badReads, [], 'reads after writes');
      // Every client recovered on its own after the last restart.
      for (const [id, at] of ledger.lastSuccess.entries()) {
        assert.ok(at > lastUp, `client ${id} made no progress after the last restart`);
      }

      // Zero lost acknowledged writes; no version holds data nobody sent for it.
      const reader = clients[0] as SpikeClient;
      const problems: string[] = [];
      for (let id = 0; id < CLIENTS; id += 1) {
        const path = `load/app-${id}`;
        const { currentVersion } = await reader.getMetadata(path);
        for (let version = 1; version <= currentVersion; version += 1) {
          const key = keyOf(path, version);
          const json = JSON.stringify((await reader.getSecret(path, { version })).data);
          if (!ledger.sent.get(key)?.has(json)) problems.push(`${key}: data nobody sent`);
          const acked = ledger.acked.get(key);
          if (acked !== undefined && acked !== json) problems.push(`${key}: lost its write`);
        }
        for (const key of ledger.acked.keys()) {
          if (key.startsWith(`${path}#`) && Number(key.split('#')[1]) > currentVersion) {
            problems.push(`${key}: acknowledged, but the path is at ${currentVersion}`);
          }
        }
      }
      assert.deepEqual(problems, [], 'acknowledged writes after the faults');
    } finally {
      for (const spike of clients) spike.close();
      await broker.stop();
    }
  });
});
