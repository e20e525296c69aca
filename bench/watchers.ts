/**
 * What idle watchers cost Nexus (issue 14: 1,000 of them under 50 MB and no
 * measurable CPU while idle): `count` long-poll reads of one path, each on
 * its own connection as HTTP/1.1 makes them, through the SDK. Measured from
 * outside the process (/proc): resident memory and the CPU time Nexus uses
 * over `sampleMs`, without the watchers and with them; then how long one
 * write takes to wake them all (reported only).
 *
 * Both states are measured the same way: resident memory once garbage is
 * gone. (Not after a first round of watchers that came and went: the
 * allocator keeps what they freed for the next ones, which would then look
 * free.) Nexus runs with collect_on_signal.mjs, and
 * the figure sends it a full collection every COLLECT_PAUSE_MS for
 * COLLECT_MS: V8 gives back the young generation that a burst of
 * handshakes grew only some seconds after a major collection (its memory
 * reducer), so a single collection, or none, leaves the figure to chance
 * (+4 to +55 MiB for the same 1,000 watchers). The resident memory right
 * after the last watcher connected, garbage and all, is reported beside it.
 * The bare baseline is measured the same way.
 */
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { Agent, get as httpsGet } from 'node:https';
import { createSpikeClient, type SecretResponse, type SpikeClient } from '../sdk/index.ts';
import { TooManyWatchesError } from '../shared/errors/errors.ts';
import { delay } from '../shared/runtime/delay.ts';
import type { Broker } from '../test/harness/broker.ts';

/** Watchers opened at once, then a pause: 100 new connections a second. */
const RAMP_BATCH = 25;
const RAMP_PAUSE_MS = 250;
/** How long the baseline's last connections get to arrive. */
const HOLD_SETTLE_MS = 3_000;
/** A memory figure's full collections: one every COLLECT_PAUSE_MS, for COLLECT_MS. */
const COLLECT_PAUSE_MS = 2_000;
const COLLECT_MS = 12_000;
/** Each watch's wait: past the ramp, the collections and the CPU sample. */
const WATCH_WAIT_MS = 60_000;

/** What each idle-watch figure measures, whatever shape its watches have. */
export interface IdleFigures {
  readonly sampleMs: number;
  /** Collected, with what is watched written and read, before any watch. */
  readonly rssBeforeMiB: number;
  /** Right after the last watch was opened, nothing collected. */
  readonly rssRampMiB: number;
  /** Collected, with every watch waiting. */
  readonly rssWaitingMiB: number;
  /** CPU time (user + system) of Nexus over `sampleMs`, without and with the watches. */
  readonly cpuIdleMs: number;
  readonly cpuWatchingMs: number;
  /** From the acknowledgement of the writes that wake them until every watch had its answer. */
  readonly wakeAllMs: number;
}

/** The steps of one shape of idle watches, which `measureIdle()` measures between. */
interface WatchShape<T> {
  /** Writes (and reads) what is watched, at version 1. */
  prepare(client: SpikeClient): Promise<void>;
  /**
   * Opens every watch and resolves, with their answers to come, once all of
   * them wait in Nexus; aborting `signal` ends them.
   */
  open(client: SpikeClient, signal: AbortSignal): Promise<Promise<T>[]>;
  /** Writes what wakes every watch. */
  wake(client: SpikeClient): Promise<void>;
  /** Throws unless every watch woke with what `wake` wrote. */
  check(answers: readonly T[]): void;
}

/**
 * Measures one shape on `broker`'s Nexus, with the SVID of `identity`:
 * memory and CPU before the watches and while they wait, then how long
 * one round of writes takes to wake them all.
 */
async function measureIdle<T>(
  options: { readonly broker: Broker; readonly identity: string; readonly sampleMs: number },
  shape: WatchShape<T>,
): Promise<IdleFigures> {
  const { broker, sampleMs } = options;
  const pid = broker.nexus().child.pid;
  const client = await benchClient(broker, options.identity);
  const stop = new AbortController();
  try {
    await shape.prepare(client);
    const rssBeforeMiB = await collectedMiB(pid);
    const cpuIdleMs = await cpuOver(pid, sampleMs);

    const waiting = await shape.open(client, stop.signal);
    const rssRampMiB = residentMiB(pid);
    const rssWaitingMiB = await collectedMiB(pid);
    const cpuWatchingMs = await cpuOver(pid, sampleMs);
    await shape.wake(client);
    const wokenFrom = performance.now();
    const answers = await Promise.all(waiting);
    const wakeAllMs = performance.now() - wokenFrom;
    shape.check(answers);
    return {
      sampleMs,
      rssBeforeMiB,
      rssRampMiB,
      rssWaitingMiB,
      cpuIdleMs,
      cpuWatchingMs,
      wakeAllMs,
    };
  } finally {
    stop.abort();
    client.close();
  }
}

/**
 * `count` one-path long-polls of `path`, each on its own connection. The
 * Nexus's watch limits must be exactly `count` per identity (the probe that
 * tells when all wait relies on it).
 */
export async function measureWatchers(options: {
  readonly broker: Broker;
  /** A workload that may read and write `path`. */
  readonly identity: string;
  readonly path: string;
  readonly count: number;
  readonly sampleMs: number;
}): Promise<IdleFigures> {
  const { path, count } = options;
  return await measureIdle(options, {
    async prepare(client) {
      await client.putSecret(path, { value: 'first' });
      await client.getSecret(path);
    },
    open: (client, signal) => openWatchers(client, path, count, signal),
    async wake(client) {
      await client.putSecret(path, { value: 'second' });
    },
    check(answers) {
      if (answers.some((answer) => answer?.version !== 2)) {
        throw new Error('A watcher did not wake with version 2');
      }
    },
  });
}

/**
 * What `paths` watched paths cost Nexus when they are watched as `spike
 * agent` and `spike run --watch` watch theirs: long-polls over several
 * paths (`waitForVersions`, `perWatch` paths each, so `paths / perWatch`
 * connections), each path its own secret; one write per long-poll (its
 * first path) wakes them. The per-identity watch limit must be exactly
 * `paths / perWatch`.
 */
export async function measureWatchedPaths(options: {
  readonly broker: Broker;
  /** A workload that may read and write under `prefix`. */
  readonly identity: string;
  readonly prefix: string;
  readonly paths: number;
  readonly perWatch: number;
  readonly sampleMs: number;
}): Promise<IdleFigures> {
  const { paths, perWatch } = options;
  const groups: Map<string, number>[] = [];
  for (let first = 0; first < paths; first += perWatch) {
    const group = new Map<string, number>();
    for (let i = first; i < Math.min(first + perWatch, paths); i++) {
      group.set(`${options.prefix}/${i}`, 1);
    }
    groups.push(group);
  }
  const written = groups.map((group) => [...group.keys()][0] as string);
  return await measureIdle(options, {
    async prepare(client) {
      // Written (and read) a group at a time: each is version 1.
      for (const group of groups) {
        await Promise.all(
          [...group.keys()].map((path) => client.putSecret(path, { value: 'first' })),
        );
        await client.waitForVersions(new Map([...group].map(([path]) => [path, 0])), {
          waitMs: 1,
        });
      }
    },
    async open(client, signal) {
      setMaxListeners(groups.length + 10, signal);
      const waiting = groups.map((group) =>
        client.waitForVersions(group, { waitMs: WATCH_WAIT_MS, signal }),
      );
      let early: unknown;
      for (const watch of waiting) {
        watch.then(
          (answer) => {
            if (!signal.aborted) {
              early ??= new Error(`A watch answered before any write: ${String(answer)}`);
            }
          },
          (err: unknown) => {
            if (!signal.aborted) early ??= err;
          },
        );
      }
      const probed = groups[0] ?? new Map<string, number>();
      await untilOneMoreIsRefused(
        () => client.waitForVersions(probed, { waitMs: 1 }),
        () => early,
        `${groups.length} watches`,
      );
      return waiting;
    },
    async wake(client) {
      await Promise.all(written.map((path) => client.putSecret(path, { value: 'second' })));
    },
    check(answers) {
      answers.forEach((answer, i) => {
        if (answer?.get(written[i] as string) !== 2) {
          throw new Error(`Watch ${i + 1} did not wake with version 2 of its first path`);
        }
      });
    },
  });
}

/**
 * Opens `count` watches of `path` (which is at version 1) and resolves, with
 * their answers to come, once all of them wait in Nexus: when one more is
 * refused, since the per-identity limit is `count`. Aborting `signal` ends
 * them (their answer is then undefined).
 */
async function openWatchers(
  client: SpikeClient,
  path: string,
  count: number,
  signal: AbortSignal,
): Promise<Promise<SecretResponse | undefined>[]> {
  // One abort listener per watcher's request.
  setMaxListeners(count + 10, signal);
  const failures: unknown[] = [];
  const watchers: Promise<SecretResponse | undefined>[] = [];
  // Opened a batch at a time: each is a new connection, and a thousand TLS
  // handshakes at once outlast Nexus's handshake timeout on a small machine.
  while (watchers.length < count) {
    for (let i = 0; i < RAMP_BATCH && watchers.length < count; i++) {
      watchers.push(
        client
          .getSecretNewerThan(path, 1, { waitMs: WATCH_WAIT_MS, signal })
          .catch((err: unknown) => {
            if (!signal.aborted) failures.push(err);
            return undefined;
          }),
      );
    }
    await delay(RAMP_PAUSE_MS);
  }
  await untilOneMoreIsRefused(
    () => client.getSecretNewerThan(path, 1, { waitMs: 1 }),
    () => failures[0],
    `${count} watchers`,
  );
  return watchers;
}

/**
 * Resolves once `probe`, one more watch of the same identity, is refused
 * with ERR_TOO_MANY_WATCHES: every watch opened before it then waits in
 * Nexus, since the per-identity limit is their number. Throws what
 * `failure()` returns (a watch that failed, or answered too early), any
 * other outcome of the probe, or after two minutes.
 */
async function untilOneMoreIsRefused(
  probe: () => Promise<unknown>,
  failure: () => unknown,
  what: string,
): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const refusal = await probe().then(
      () => undefined,
      (err: unknown) => err,
    );
    const failed = failure();
    if (failed !== undefined) throw failed;
    if (refusal instanceof TooManyWatchesError) return;
    if (refusal !== undefined) throw refusal;
    if (Date.now() > deadline) throw new Error(`${what} never all waited`);
    await delay(50);
  }
}

/** The SDK client the watchers use, with the SVID of `identity`. */
async function benchClient(broker: Broker, identity: string): Promise<SpikeClient> {
  return await createSpikeClient({
    source: await broker.source(identity),
    nexusUrl: broker.nexusUrl,
    trustDomain: broker.trustDomain,
    timeoutMs: 30_000,
  });
}

/**
 * The baseline: what `count` requests held open cost a bare node:https
 * server with the same TLS settings (baseline_server.ts `hold`), each on its
 * own connection as the watchers' are, measured as the watchers are. Its
 * clients present themselves as the SDK's do: with the trust bundle as `ca`,
 * Node's TLS client sends the bundle's root after its SVID (Node turns
 * OpenSSL's automatic chain on; docs/performance.md, "Idle watchers"), and
 * every server keeps the chain its peer sent for as long as the connection
 * lives. They trust the server blindly: it is a local baseline, not Nexus.
 */
export async function measureHeldConnections(options: {
  readonly url: string;
  readonly pid: number | undefined;
  readonly count: number;
  readonly certFile: string;
  readonly keyFile: string;
  /** The trust bundle the SDK's clients are given. */
  readonly caFile: string;
}): Promise<{ readonly rssBeforeMiB: number; readonly rssHoldingMiB: number }> {
  const { pid } = options;
  const rssBeforeMiB = await collectedMiB(pid);
  const agent = await holdConnections(options);
  try {
    return { rssBeforeMiB, rssHoldingMiB: await collectedMiB(pid) };
  } finally {
    agent.destroy();
  }
}

/** Opens `count` requests that the hold server never answers; destroy the agent to end them. */
async function holdConnections(options: {
  readonly url: string;
  readonly count: number;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}): Promise<Agent> {
  const agent = new Agent({
    cert: readFileSync(options.certFile),
    key: readFileSync(options.keyFile),
    ca: readFileSync(options.caFile),
    rejectUnauthorized: false,
    keepAlive: true,
    maxSockets: Number.POSITIVE_INFINITY,
  });
  let answered = 0;
  for (let opened = 0; opened < options.count; ) {
    for (let i = 0; i < RAMP_BATCH && opened < options.count; i++, opened++) {
      const request = httpsGet(options.url, { agent }, () => {
        answered += 1;
      });
      request.on('error', () => undefined);
    }
    await delay(RAMP_PAUSE_MS);
  }
  // Nothing tells when the server holds them all: give the last handshakes time.
  await delay(HOLD_SETTLE_MS);
  if (answered > 0) {
    agent.destroy();
    throw new Error('The hold baseline answered a request');
  }
  return agent;
}

/**
 * Resident memory after COLLECT_MS of full collections, which `pid` runs on
 * SIGUSR2 (collect_on_signal.mjs; without it, the signal would end it).
 */
async function collectedMiB(pid: number | undefined): Promise<number> {
  if (pid === undefined) throw new Error('The process measured has no PID');
  for (let waited = 0; waited < COLLECT_MS; waited += COLLECT_PAUSE_MS) {
    process.kill(pid, 'SIGUSR2');
    await delay(COLLECT_PAUSE_MS);
  }
  return residentMiB(pid);
}

function residentMiB(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

/** User plus system CPU time of the process so far, in ms (clock ticks of 10 ms). */
function cpuMs(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces), from field 3 on.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 10;
}

async function cpuOver(pid: number | undefined, sampleMs: number): Promise<number> {
  const before = cpuMs(pid);
  await delay(sampleMs);
  return cpuMs(pid) - before;
}
