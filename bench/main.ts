/**
 * `npm run bench`: starts the broker (agent, three Keepers, Nexus on SQLite,
 * or on PostgreSQL with --database-url), seeds it, loads it from a separate
 * process with a client SVID, and reports every figure next to its baseline
 * measured in the same run. It reports; it never fails on a missed goal.
 *
 *   npm run bench                          full run (about 20 minutes on 2 cores)
 *   npm run bench -- --quick               smoke run with tiny sizes (CI)
 *   npm run bench -- --profile             also CPU profiles of Nexus on Node
 *                                          (bench/results/profiles/, for DevTools)
 *   npm run bench -- --database-url URL    also the PostgreSQL figures, on a
 *                                          scratch database it creates there
 *
 * Results go to bench/results/<date>.json and .md; docs/performance.md holds
 * a committed run and what limits each figure.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openSecretData, secretDataAad, serializeMap } from '../nexus/store/secret_cipher.ts';
import { PATHS } from '../shared/api/paths.ts';
import { parseSecretPath } from '../shared/api/secret_path.ts';
import { AEAD_KEY_BYTES, open, seal } from '../shared/crypto/aead.ts';
import { randomBytes } from '../shared/crypto/bytes.ts';
import { type Broker, startBroker } from '../test/harness/broker.ts';
import { createScratchDatabase, dropScratchDatabases } from '../test/harness/postgres.ts';
import {
  freePort,
  ROOT,
  type Runtime,
  runProgram,
  startProgram,
  withDenoFlags,
} from '../test/harness/spawn.ts';
import { type LoadResult, type LoadSpec, median, runLoad, stopLoads } from './load.ts';
import {
  denoVersion,
  describeMachine,
  type Goal,
  type LoadRow,
  printLoad,
  printLoadHeader,
  writeReport,
} from './report.ts';
import { measureHeldConnections, measureWatchedPaths, measureWatchers } from './watchers.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    'database-url': { type: 'string' },
    'no-deno': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    /** Only the idle watchers' figures (`--watchers-only`): a quick look at their memory. */
    'watchers-only': { type: 'boolean', default: false },
    out: { type: 'string', default: join(ROOT, 'bench/results') },
  },
});

const QUICK = args.quick === true;
const OUT = args.out ?? join(ROOT, 'bench/results');
const SETTINGS = {
  durationS: Number(args.duration ?? (QUICK ? 1 : 10)),
  small: QUICK ? 100 : 1_000,
  large: QUICK ? 1_000 : 100_000,
  restarts: QUICK ? 2 : 5,
  cliRuns: QUICK ? 2 : 5,
  aeadRounds: QUICK ? 1_000 : 50_000,
  /** Idle watchers (long-poll reads), and how long their CPU is sampled. */
  watchers: QUICK ? 50 : 1_000,
  /** Paths in one long-poll over several (at most MAX_WATCH_PATHS), for the watched paths' figures. */
  pathsPerWatch: QUICK ? 10 : 100,
  watchSampleMs: QUICK ? 1_000 : 5_000,
  /** The whole run is bounded: past this, everything is stopped. */
  deadlineMs: (QUICK ? 5 : 30) * 60_000,
};
const DATABASE_URL = args['database-url'] ?? process.env.SPIKE_BENCH_DATABASE_URL;
const DENO = join(ROOT, '.tools/node_modules/.bin/deno');
const VALUE_BYTES = 1024;
/**
 * One identity sends the whole load: the per-identity rate limit would
 * measure itself, not the broker's capacity. The `bench` namespace holds
 * 100,000 paths, beyond the default storage quota of 10,000.
 */
const BENCH_NEXUS_ENV = {
  SPIKE_NEXUS_RATE_LIMIT_PER_SECOND: '0',
  SPIKE_NEXUS_QUOTA_OVERRIDES: 'bench=unlimited:unlimited',
} as const;
/**
 * Every SQLite Nexus syncs each commit, named rather than left to the
 * default, so that the write figure is the durable one. Nexus checks the
 * pragma after setting it and refuses to start if it did not hold. Only the
 * bulk load of the large set overrides it (see nodeFigures).
 */
const SQLITE_NEXUS_ENV = { SPIKE_NEXUS_SQLITE_SYNCHRONOUS: 'full' } as const;
/**
 * What the processes of the watchers' memory figures run with, on Node and on
 * Deno: a full collection on SIGUSR2 (collect_on_signal.mjs).
 */
const COLLECT_ON_SIGNAL = ['--expose-gc', '--import', join(ROOT, 'bench/collect_on_signal.mjs')];
const DENO_COLLECT_ON_SIGNAL = {
  v8: ['--expose-gc'],
  preload: [join(ROOT, 'bench/collect_on_signal.mjs')],
} as const;
/** The share of writes in the mixed load of reads right after writes. */
const MIXED_WRITE_SHARE = 0.1;
const TD = 'bench.spike.test';

const log = (line: string) => process.stdout.write(`${line}\n`);
const loads: LoadRow[] = [];
const goals: Goal[] = [];
const brokers: Broker[] = [];
const work = mkdtempSync(join(tmpdir(), 'spike-bench-'));

const ms = (value: number) => `${value.toFixed(value < 10 ? 2 : 0)} ms`;
const rate = (value: number) => `${value.toFixed(0)}/s`;
const ratio = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : '–');
const percent = (share: number) => `${(share * 100).toFixed(2)} %`;

function goal(entry: Goal): void {
  goals.push(entry);
  const met = entry.met === undefined ? '' : entry.met ? '  [met]' : '  [missed]';
  log(`  → ${entry.figure}: ${entry.value} vs ${entry.baseline} = ${entry.ratio}${met}`);
}

async function load(
  name: string,
  spec: Omit<LoadSpec, 'certFile' | 'keyFile' | 'durationS'> & {
    durationS?: number;
  },
): Promise<LoadResult> {
  const result = await runLoad({
    durationS: SETTINGS.durationS,
    certFile: join(work, 'client.pem'),
    keyFile: join(work, 'client.key'),
    ...spec,
  });
  const row = { name, ...result };
  loads.push(row);
  printLoad(row, log);
  return result;
}

/**
 * The client SVID of the benchmark app as PEM files that only we can read,
 * and the trust bundle that the SDK's clients are given (client-ca.pem).
 */
async function writeClientPem(broker: Broker): Promise<void> {
  const source = await broker.source('app');
  const svid = source.getX509Svid();
  const bundle = source.getX509Bundles().get(svid.id.trustDomain);
  if (bundle === undefined) throw new Error('The benchmark app has no trust bundle');
  writeFileSync(join(work, 'client-ca.pem'), bundle.pem());
  writeFileSync(join(work, 'client.pem'), svid.certificatePem(), { mode: 0o600 });
  writeFileSync(join(work, 'client.key'), svid.privateKeyPem(), { mode: 0o600 });
  chmodSync(join(work, 'client.key'), 0o600);
}

function residentMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  return kib / 1024;
}

async function startBenchBroker(
  runtime: Runtime,
  databaseUrl?: string,
  extraEnv: Readonly<Record<string, string>> = {},
  collectOnSignal = false,
): Promise<Broker> {
  const broker = await startBroker({
    trustDomain: TD,
    runtime,
    viaBin: true,
    workloads: { app: '/apps/bench', baseline: '/bench/baseline' },
    nexusEnv: {
      ...(databaseUrl === undefined
        ? { ...BENCH_NEXUS_ENV, ...SQLITE_NEXUS_ENV }
        : BENCH_NEXUS_ENV),
      ...extraEnv,
    },
    nexusNodeFlags: [
      ...(collectOnSignal ? COLLECT_ON_SIGNAL : []),
      ...(args.profile === true && runtime === 'node'
        ? ['--cpu-prof', `--cpu-prof-dir=${join(OUT, 'profiles')}`]
        : []),
    ],
    ...(collectOnSignal && { nexusDenoFlags: DENO_COLLECT_ON_SIGNAL }),
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
  });
  brokers.push(broker);
  const policy = await broker.call('pilot', 'PUT', `${PATHS.policies}/bench-app`, {
    spiffeIdPattern: `spiffe://${TD}/apps/bench`,
    pathPattern: 'bench/**',
    permissions: ['read', 'list', 'write'],
  });
  if (policy.status !== 200) throw new Error(`Could not create the policy: ${policy.text}`);
  const keys = await broker.call('pilot', 'PUT', `${PATHS.policies}/bench-keys`, {
    spiffeIdPattern: `spiffe://${TD}/apps/bench`,
    pathPattern: `sys/keys/${BENCH_KEY}`,
    permissions: ['encrypt', 'decrypt'],
  });
  if (keys.status !== 200) throw new Error(`Could not create the key policy: ${keys.text}`);
  await writeClientPem(broker);
  return broker;
}

const secretBody = JSON.stringify({ data: { value: 'v'.repeat(VALUE_BYTES) } });

/** The named key of the encryption figures, and 1 KiB of plaintext for it. */
const BENCH_KEY = 'bench';
const encryptBody = JSON.stringify({
  plaintext: Buffer.from('p'.repeat(VALUE_BYTES)).toString('base64'),
});

/**
 * Encrypt and decrypt of 1 KiB through Nexus under a named key, 16 conn, run
 * right after the secret read they are compared with.
 */
async function transitLoads(broker: Broker): Promise<{ encrypt: LoadResult; decrypt: LoadResult }> {
  const created = await broker.call('pilot', 'POST', `${PATHS.transitKeys}/${BENCH_KEY}`);
  if (created.status !== 200) throw new Error(`Could not create the key: ${created.text}`);
  const sealed = await broker.call(
    'app',
    'POST',
    `${PATHS.transitEncrypt}/${BENCH_KEY}`,
    JSON.parse(encryptBody),
  );
  const { ciphertext } = sealed.body as { ciphertext: string };
  const encrypt = {
    url: `${broker.nexusUrl}${PATHS.transitEncrypt}/${BENCH_KEY}`,
    method: 'POST' as const,
    body: encryptBody,
    connections: 16,
  };
  const decrypt = {
    url: `${broker.nexusUrl}${PATHS.transitDecrypt}/${BENCH_KEY}`,
    method: 'POST' as const,
    body: JSON.stringify({ ciphertext }),
    connections: 16,
  };
  await warmUp(encrypt);
  return {
    encrypt: await load('encrypt 1 KiB under a named key, 16 conn', encrypt),
    decrypt: await load('decrypt 1 KiB under a named key, 16 conn', decrypt),
  };
}

/** A load whose result is not a figure: it only warms the server up. */
async function warmUp(spec: Omit<LoadSpec, 'certFile' | 'keyFile' | 'durationS'>): Promise<void> {
  await runLoad({
    durationS: QUICK ? 1 : 3,
    certFile: join(work, 'client.pem'),
    keyFile: join(work, 'client.key'),
    ...spec,
  });
}

/** Writes `count` new paths `<prefix>/<n>` with 1 KiB values. */
async function seed(broker: Broker, prefix: string, count: number, name: string) {
  return load(name, {
    url: `${broker.nexusUrl}${PATHS.secretData}/${prefix}/1`,
    method: 'PUT',
    body: secretBody,
    pathTemplate: `${PATHS.secretData}/${prefix}/{n}`,
    pick: 'sequence',
    pathCount: count,
    connections: 16,
    amount: count,
  });
}

function readSpec(broker: Broker, prefix: string, count: number, connections: number) {
  return {
    url: `${broker.nexusUrl}${PATHS.secretData}/${prefix}/1`,
    method: 'GET' as const,
    pathTemplate: `${PATHS.secretData}/${prefix}/{n}`,
    pick: 'random' as const,
    pathCount: count,
    connections,
  };
}

/**
 * Starts a baseline server as its own process, on Node unless `runtime` says
 * otherwise; returns its URL and a stop function. `collectOnSignal`: it runs a
 * full collection on SIGUSR2, as the Nexus measured beside it does.
 */
async function startBaseline(
  broker: Broker,
  kind: 'bare' | 'hono' | 'hold',
  bodyBytes: number,
  options: { readonly runtime?: Runtime; readonly collectOnSignal?: boolean } = {},
) {
  const port = await freePort();
  const script = join(ROOT, 'bench/baseline_server.ts');
  const serverArgs = [kind, String(port), String(bodyBytes)];
  const collect = options.collectOnSignal === true;
  const [cmd, argv] =
    options.runtime === 'deno'
      ? [
          DENO,
          [
            'run',
            '--quiet',
            '--no-check',
            ...withDenoFlags(['--allow-all', script], collect ? DENO_COLLECT_ON_SIGNAL : {}),
            ...serverArgs,
          ],
        ]
      : [
          process.execPath,
          [...(collect ? COLLECT_ON_SIGNAL : []), '--import', 'tsx', script, ...serverArgs],
        ];
  const child = spawn(cmd, argv, {
    cwd: ROOT,
    env: { ...process.env, ...broker.identityEnv('baseline') },
    stdio: 'pipe',
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} baseline did not start`)), 30_000);
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      if (text.includes('Listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', () => reject(new Error(`${kind} baseline exited`)));
  });
  return {
    kind,
    pid: child.pid,
    url: `https://127.0.0.1:${port}/v1/secrets/data/bench/small/1`,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Stops Nexus and starts it again with extra environment; returns the wall time to ready. */
async function restartNexus(
  broker: Broker,
  env: Readonly<Record<string, string>> = {},
): Promise<number> {
  await broker.nexus().stop();
  broker.closeClients();
  const started = performance.now();
  broker.startNexus(env);
  await broker.waitUntilReady('Nexus restarted');
  return performance.now() - started;
}

/** Median wall time of restarting Nexus until its status route answers 200. */
async function restartToReady(broker: Broker, rounds: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i += 1) times.push(await restartNexus(broker));
  return times;
}

/** Wall time of whole processes, median of several runs. */
async function processWall(rounds: number, run: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i += 1) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  return median(times);
}

/**
 * µs per `open()` of shared/crypto/aead.ts, the function each read of Nexus
 * calls, run in this process on Node as Nexus is. It opens one version sealed
 * as the store seals it: the 1 KiB map of the benchmark's secrets, serialised
 * by the store, under the AAD of a secret version. The median of five
 * batches, after a warm-up and a check that the store opens it too.
 */
function aeadOpenMicros(rounds: number): number {
  const key = randomBytes(AEAD_KEY_BYTES);
  const path = parseSecretPath('bench/small/1');
  const aad = secretDataAad(path, 1);
  const sealed = seal(key, serializeMap({ value: 'v'.repeat(VALUE_BYTES) }), aad);
  if (openSecretData(key, path, 1, sealed).value?.length !== VALUE_BYTES) {
    throw new Error('The AEAD figure measures something the store cannot open');
  }
  const batch = Math.max(1, Math.floor(rounds / 5));
  for (let i = 0; i < batch; i += 1) open(key, sealed, aad);
  const batches: number[] = [];
  for (let b = 0; b < 5; b += 1) {
    const started = performance.now();
    for (let i = 0; i < batch; i += 1) open(key, sealed, aad);
    batches.push(((performance.now() - started) * 1000) / batch);
  }
  return median(batches);
}

async function nodeFigures(): Promise<{ read16: LoadResult }> {
  log(`\n## Node, SQLite: broker with ${SETTINGS.small} then ${SETTINGS.large} secrets`);
  const broker = await startBenchBroker('node');
  const idleMiB = residentMiB(broker.nexus().child.pid);
  printLoadHeader(log);
  await seed(broker, 'bench/small', SETTINGS.small, `seed ${SETTINGS.small} paths (16 conn)`);

  const sample = await broker.call('app', 'GET', `${PATHS.secretData}/bench/small/1`);
  const bodyBytes = Buffer.byteLength(sample.text);

  // Each figure runs right after its baselines, at the same connection
  // count, so that a change in the machine's load between them is small.
  const base: Record<string, LoadResult> = {};
  const read: Record<number, LoadResult> = {};
  const servers = [
    await startBaseline(broker, 'bare', bodyBytes),
    await startBaseline(broker, 'hono', bodyBytes),
  ];
  try {
    // Every server first serves a short unrecorded load, so that no figure
    // is taken while its JIT, the cache of sealed rows (which admits a path
    // from its second miss) or the connection pools are still warming up.
    for (const server of servers) {
      await warmUp({ url: server.url, method: 'GET', connections: 16 });
    }
    await warmUp(readSpec(broker, 'bench/small', SETTINGS.small, 16));
    for (const connections of [16, 64]) {
      for (const server of servers) {
        base[`${server.kind}${connections}`] = await load(
          `${server.kind} node:https, ${connections} conn`,
          { url: server.url, method: 'GET', connections },
        );
      }
      read[connections] = await load(
        `read 1 KiB of ${SETTINGS.small}, ${connections} conn`,
        readSpec(broker, 'bench/small', SETTINGS.small, connections),
      );
    }
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
  const transit = await transitLoads(broker);
  // Durable writes (sync full), each connection on a path no other request
  // in flight has, in turn over the small set: concurrent commits that group
  // commit can batch, not a queue on one row.
  const write = await load('write new version, sync full, 16 conn', {
    url: `${broker.nexusUrl}${PATHS.secretData}/bench/small/1`,
    method: 'PUT',
    body: secretBody,
    pathTemplate: `${PATHS.secretData}/bench/small/{n}`,
    pick: 'sequence',
    pathCount: SETTINGS.small,
    connections: 16,
  });
  // Reads right after writes over the same paths: what a cache of sealed rows
  // must keep right. The load generator checks every read against the writes
  // it saw acknowledged before sending it.
  const mixed = await load(`mixed ${MIXED_WRITE_SHARE * 100} % writes, 16 conn`, {
    ...readSpec(broker, 'bench/small', SETTINGS.small, 16),
    body: secretBody,
    writeShare: MIXED_WRITE_SHARE,
  });

  // Bulk loading: with one fsync per commit (the default, measured above)
  // 100 000 writes take about ten minutes here, so this Nexus runs with
  // SPIKE_NEXUS_SQLITE_SYNCHRONOUS=normal. Reads do not depend on it, and the
  // restarts below return to the default.
  const rest = SETTINGS.large - SETTINGS.small;
  await restartNexus(broker, { SPIKE_NEXUS_SQLITE_SYNCHRONOUS: 'normal' });
  await seed(broker, 'bench/large', rest, `seed ${rest} more paths, sync normal`);
  const readLarge = await load(
    `read 1 KiB of ${SETTINGS.large}, 16 conn`,
    readSpec(broker, 'bench/large', rest, 16),
  );
  // The same working set as the read of the small set above, now with the
  // large set stored beside it: whether the store's size slows a read. The
  // uniform read above measures something else, a working set larger than
  // the cache of sealed rows (SPIKE_NEXUS_CACHE_ENTRIES, 10 000 by default).
  const readHot = await load(
    `read 1 KiB of ${SETTINGS.small} with ${SETTINGS.large} stored, 16 conn`,
    readSpec(broker, 'bench/small', SETTINGS.small, 16),
  );
  const list = await load(`list 1 page of ${rest}, 16 conn`, {
    url: `${broker.nexusUrl}${PATHS.secretList}?prefix=bench/large/`,
    method: 'GET',
    connections: 16,
  });
  const fullMiB = residentMiB(broker.nexus().child.pid);

  const restarts = await restartToReady(broker, SETTINGS.restarts);
  // A Nexus that starts with the large set and serves reads from it, as in
  // production, rather than one that has just bulk-loaded it.
  await load(
    `read 1 KiB of ${SETTINGS.large} after a restart, 16 conn`,
    readSpec(broker, 'bench/large', rest, 16),
  );
  const servingMiB = residentMiB(broker.nexus().child.pid);
  const versionWall = await processWall(SETTINGS.cliRuns, async () => {
    await runProgram('pilot', { runtime: 'node', viaBin: true, args: ['--version'] });
  });
  const pilotEnv = {
    ...broker.identityEnv('pilot'),
    SPIKE_NEXUS_API_URL: broker.nexusUrl,
  };
  const getWall = await processWall(SETTINGS.cliRuns, async () => {
    const result = await runProgram('pilot', {
      runtime: 'node',
      viaBin: true,
      args: ['secret', 'get', 'bench/small/1'],
      env: pilotEnv,
    });
    if (result.status !== 0) throw new Error(`spike secret get failed: ${result.stderr}`);
  });
  const nodeOnly = await processWall(SETTINGS.cliRuns, () => runNode(['-e', '']));
  writeFileSync(join(work, 'empty.ts'), 'export {};\n');
  const tsxOnly = await processWall(SETTINGS.cliRuns, () =>
    runNode(['--import', 'tsx', join(work, 'empty.ts')]),
  );
  const aeadMicros = aeadOpenMicros(SETTINGS.aeadRounds);

  for (const connections of [16, 64] as const) {
    const bare = base[`bare${connections}`];
    const hono = base[`hono${connections}`];
    const mine = read[connections];
    if (bare === undefined || hono === undefined || mine === undefined) continue;
    goal({
      figure: `secret read, ${connections} conn ÷ bare node:https`,
      value: `${rate(mine.rate)}, p99 ${ms(mine.p99Ms)}`,
      baseline: `bare ${rate(bare.rate)} (p99 ${ms(bare.p99Ms)}); Hono ${rate(hono.rate)}`,
      ratio: `${ratio(mine.rate / bare.rate)} (Hono alone ${ratio(hono.rate / bare.rate)})`,
      goal: '≥ 0.5',
      met: mine.rate / bare.rate >= 0.5,
    });
  }
  const read16 = read[16] as LoadResult;
  for (const [what, result] of Object.entries(transit)) {
    goal({
      figure: `${what} 1 KiB through Nexus under a named key ÷ secret read, 16 conn`,
      value: `${rate(result.rate)}, p99 ${ms(result.p99Ms)}; ${percent(result.successRatio)} success`,
      baseline: `read ${rate(read16.rate)}, p99 ${ms(read16.p99Ms)}`,
      ratio: ratio(result.rate / read16.rate),
      goal: 'reported',
      met: undefined,
    });
  }
  const writeGoalRatio = write.rate / read16.rate;
  goal({
    figure: 'secret write (new version, sync full, distinct paths) ÷ read, 16 conn',
    value: `${rate(write.rate)}, p99 ${ms(write.p99Ms)}`,
    baseline: `read ${rate(read16.rate)}`,
    ratio: ratio(writeGoalRatio),
    goal: '≥ 0.25',
    met: writeGoalRatio >= 0.25,
  });
  const checked =
    mixed.staleReads === undefined
      ? 'reads unchecked'
      : `${mixed.staleReads} stale of ${mixed.checkedReads} reads, ${mixed.readsAfterWrites} of them after a write of their path`;
  goal({
    figure: `reads right after writes: ${100 - MIXED_WRITE_SHARE * 100} % reads, ${MIXED_WRITE_SHARE * 100} % writes over ${SETTINGS.small} paths, 16 conn`,
    value: `${rate(mixed.rate)}, p99 ${ms(mixed.p99Ms)}; ${percent(mixed.successRatio)} success; ${checked}`,
    baseline: `read ${rate(read16.rate)}; write ${rate(write.rate)}`,
    ratio: ratio(mixed.rate / read16.rate),
    goal: 'reported (100 % success, 0 stale)',
    met: undefined,
  });
  goal({
    figure: `read of ${SETTINGS.small} paths with ${SETTINGS.large} stored ÷ with ${SETTINGS.small} stored`,
    value: `${rate(readHot.rate)}, p99 ${ms(readHot.p99Ms)}`,
    baseline: `${rate(read16.rate)}, p99 ${ms(read16.p99Ms)}`,
    ratio: `${ratio(readHot.rate / read16.rate)} (p99 ×${ratio(readHot.p99Ms / read16.p99Ms)})`,
    goal: '≥ 0.9, p99 ≤ 1.3×',
    met: readHot.rate / read16.rate >= 0.9 && readHot.p99Ms / read16.p99Ms <= 1.3,
  });
  goal({
    figure: `read uniformly over all ${SETTINGS.large} ÷ read of ${SETTINGS.small}`,
    value: `${rate(readLarge.rate)}, p99 ${ms(readLarge.p99Ms)}`,
    baseline: `${rate(read16.rate)}, p99 ${ms(read16.p99Ms)}`,
    ratio: `${ratio(readLarge.rate / read16.rate)} (p99 ×${ratio(readLarge.p99Ms / read16.p99Ms)})`,
    goal: 'reported (a working set larger than the cache)',
    met: undefined,
  });
  goal({
    figure: `list one page (100) under a prefix of ${rest}, p99 ÷ read p99`,
    value: `p99 ${ms(list.p99Ms)}, ${rate(list.rate)}`,
    baseline: `read p99 ${ms(readLarge.p99Ms)}`,
    ratio: ratio(list.p99Ms / readLarge.p99Ms),
    goal: '< 10',
    met: list.p99Ms / readLarge.p99Ms < 10,
  });
  const restartMedian = median(restarts);
  goal({
    figure: `Nexus restart → ready, median of ${SETTINGS.restarts}`,
    value: ms(restartMedian),
    baseline: `node -e '' ${ms(nodeOnly)}`,
    ratio: ratio(restartMedian / nodeOnly),
    goal: '< 1 s',
    met: restartMedian < 1000,
  });
  const readCostMicros = 1e6 / read16.rate;
  goal({
    figure: 'AEAD open of 1 KiB ÷ whole read cost',
    value: `${aeadMicros.toFixed(1)} µs`,
    baseline: `read ${readCostMicros.toFixed(0)} µs (1 ÷ rate at 16 conn)`,
    ratio: `${((aeadMicros / readCostMicros) * 100).toFixed(1)} %`,
    goal: '< 5 %',
    met: aeadMicros / readCostMicros < 0.05,
  });
  goal({
    figure: 'spike --version, whole process',
    value: ms(versionWall),
    baseline: `node -e '' ${ms(nodeOnly)}; empty .ts via tsx ${ms(tsxOnly)}`,
    ratio: ratio(versionWall / nodeOnly),
    goal: 'reported',
    met: undefined,
  });
  goal({
    figure: 'spike secret get, whole process',
    value: ms(getWall),
    baseline: `node -e '' ${ms(nodeOnly)}; empty .ts via tsx ${ms(tsxOnly)}`,
    ratio: ratio(getWall / nodeOnly),
    goal: '< 0.25 s',
    met: getWall < 250,
  });
  goal({
    figure: `Nexus resident memory, idle → ${SETTINGS.large} secrets`,
    value: `${idleMiB.toFixed(0)} MiB idle; ${servingMiB.toFixed(0)} MiB serving ${SETTINGS.large} (${fullMiB.toFixed(0)} MiB right after loading them)`,
    baseline: '–',
    ratio: ratio(servingMiB / idleMiB),
    goal: '< 200 MB with 100 000',
    met: servingMiB * 1.048576 < 200,
  });
  return { read16 };
}

/**
 * Idle watchers (bench/watchers.ts) on a Nexus of their own on `runtime`,
 * whose limits admit exactly that many per identity and the connections they
 * hold; beside them, a bare server of the same runtime holding as many
 * requests from clients that present themselves as the SDK's do.
 */
async function watcherFigures(runtime: Runtime): Promise<void> {
  const count = SETTINGS.watchers;
  const on = runtime === 'deno' ? 'Deno' : 'Node';
  log(`\n${count} idle watchers (long-poll reads), Nexus on ${on} and SQLite`);
  const connections = String(4 * count);
  const broker = await startBenchBroker(
    runtime,
    undefined,
    {
      SPIKE_NEXUS_MAX_WATCHES: String(2 * count),
      SPIKE_NEXUS_MAX_WATCHES_PER_IDENTITY: String(count),
      SPIKE_NEXUS_MAX_CONNECTIONS: connections,
      SPIKE_NEXUS_MAX_CONNECTIONS_PER_ADDRESS: connections,
      SPIKE_NEXUS_MAX_CONNECTIONS_PER_IDENTITY: connections,
    },
    true,
  );
  const figures = await measureWatchers({
    broker,
    identity: 'app',
    path: 'bench/watched',
    count,
    sampleMs: SETTINGS.watchSampleMs,
  });
  const hold = await startBaseline(broker, 'hold', 0, { runtime, collectOnSignal: true });
  const held = await measureHeldConnections({
    url: hold.url,
    pid: hold.pid,
    count,
    certFile: join(work, 'client.pem'),
    keyFile: join(work, 'client.key'),
    caFile: join(work, 'client-ca.pem'),
  });
  await hold.stop();
  await stopBroker(broker);
  const grownMiB = figures.rssWaitingMiB - figures.rssBeforeMiB;
  const heldMiB = held.rssHoldingMiB - held.rssBeforeMiB;
  goal({
    figure: `Nexus resident memory, ${count} idle watchers, Nexus on ${on}`,
    value: `${grownText(grownMiB)} collected (${figures.rssBeforeMiB.toFixed(0)} → ${figures.rssWaitingMiB.toFixed(0)} MiB; ${grownText(figures.rssRampMiB - figures.rssBeforeMiB)} right after they connected)`,
    baseline: `bare node:https on ${on} holding ${count} requests ${grownText(heldMiB)}`,
    ratio: ratio(grownMiB / heldMiB),
    goal: '< 50 MB for 1 000',
    met: grownMiB * 1.048576 < 50,
  });
  idleGoals(
    `${count} idle watchers, Nexus on ${on}`,
    `one write wakes ${count} watchers (${on})`,
    figures,
  );
}

/**
 * The same number of idle watched paths, watched as `spike agent` and `spike
 * run --watch` watch theirs: long-polls over several paths, on a Nexus of
 * their own whose per-identity watch limit is exactly their number.
 */
async function watchedPathFigures(): Promise<void> {
  const paths = SETTINGS.watchers;
  const perWatch = SETTINGS.pathsPerWatch;
  const watches = Math.ceil(paths / perWatch);
  log(
    `\n${paths} idle watched paths, ${perWatch} per long-poll (${watches} connections), Nexus on SQLite`,
  );
  const broker = await startBenchBroker(
    'node',
    undefined,
    { SPIKE_NEXUS_MAX_WATCHES_PER_IDENTITY: String(watches) },
    true,
  );
  const figures = await measureWatchedPaths({
    broker,
    identity: 'app',
    prefix: 'bench/watched-paths',
    paths,
    perWatch,
    sampleMs: SETTINGS.watchSampleMs,
  });
  await stopBroker(broker);
  const grownMiB = figures.rssWaitingMiB - figures.rssBeforeMiB;
  goal({
    figure: `Nexus resident memory, ${paths} idle watched paths, ${perWatch} per long-poll`,
    value: `${grownText(grownMiB)} collected (${figures.rssBeforeMiB.toFixed(0)} → ${figures.rssWaitingMiB.toFixed(0)} MiB)`,
    baseline: 'without them',
    ratio: '–',
    goal: '< 50 MB for 1 000',
    met: (grownMiB * 1.048576 * 1000) / paths < 50,
  });
  idleGoals(
    `${paths} idle watched paths, ${perWatch} per long-poll`,
    `one write per long-poll wakes all ${watches}`,
    figures,
  );
}

/** The idle CPU goal of a watchers' figure, and how long one write took to wake them (reported). */
function idleGoals(
  watching: string,
  waking: string,
  figures: {
    readonly sampleMs: number;
    readonly cpuIdleMs: number;
    readonly cpuWatchingMs: number;
    readonly wakeAllMs: number;
  },
): void {
  const share = (cpu: number) => cpu / figures.sampleMs;
  const more = share(figures.cpuWatchingMs - figures.cpuIdleMs);
  goal({
    figure: `Nexus CPU over ${figures.sampleMs / 1000} s, ${watching}`,
    value: `${figures.cpuWatchingMs} ms (${percent(share(figures.cpuWatchingMs))} of a core)`,
    baseline: `${figures.cpuIdleMs} ms without`,
    ratio: `${more >= 0 ? '+' : ''}${percent(more)}`,
    goal: 'not measurable (< 1 % of a core more)',
    met: more < 0.01,
  });
  goal({
    figure: `${waking}, until the last answer`,
    value: ms(figures.wakeAllMs),
    baseline: '–',
    ratio: '–',
    goal: 'reported',
    met: undefined,
  });
}

/** A growth in MiB with its sign (a collected reading may be a little lower). */
function grownText(mib: number): string {
  return `${mib < 0 ? '' : '+'}${mib.toFixed(1)} MiB`;
}

/** Runs Node with these arguments to its end (for start-up baselines). */
function runNode(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: 'ignore' });
    child.once('exit', () => resolve());
    child.once('error', reject);
  });
}

async function denoFigures(nodeRead: LoadResult): Promise<void> {
  log(`\n## Deno: the same broker, ${SETTINGS.small} secrets`);
  const broker = await startBenchBroker('deno');
  printLoadHeader(log);
  await seed(broker, 'bench/small', SETTINGS.small, `deno: seed ${SETTINGS.small} paths`);
  const read = await load(
    'deno: read 1 KiB, 16 conn',
    readSpec(broker, 'bench/small', SETTINGS.small, 16),
  );
  goal({
    figure: 'Deno ÷ Node read throughput, 16 conn',
    value: `${rate(read.rate)}, p99 ${ms(read.p99Ms)}`,
    baseline: `Node ${rate(nodeRead.rate)}`,
    ratio: ratio(read.rate / nodeRead.rate),
    goal: 'reported',
    met: undefined,
  });
  await stopBroker(broker);
}

/**
 * On a scratch database created on the given server, dropped at the end.
 * `sqliteRead` is the Node SQLite read at 16 connections of this run, the
 * baseline of the PostgreSQL read.
 */
async function postgresFigures(serverUrl: string, sqliteRead: LoadResult): Promise<void> {
  log(`\n## PostgreSQL: one Nexus, then two on the same database`);
  const databaseUrl = await createScratchDatabase(serverUrl);
  try {
    await postgresLoads(databaseUrl, sqliteRead);
  } finally {
    await dropScratchDatabases();
  }
}

async function postgresLoads(databaseUrl: string, sqliteRead: LoadResult): Promise<void> {
  const broker = await startBenchBroker('node', databaseUrl);
  printLoadHeader(log);
  const prefix = `bench/pg-${Date.now()}`;
  await seed(broker, prefix, SETTINGS.small, `pg: seed ${SETTINGS.small} paths`);
  const one = await load(
    'pg: one Nexus, read, 16 conn',
    readSpec(broker, prefix, SETTINGS.small, 16),
  );
  goal({
    figure: 'PostgreSQL ÷ SQLite reads, one Nexus on Node, 16 conn',
    value: `${rate(one.rate)}, p99 ${ms(one.p99Ms)}`,
    baseline: `SQLite ${rate(sqliteRead.rate)}, p99 ${ms(sqliteRead.p99Ms)} ("read 1 KiB of ${SETTINGS.small}, 16 conn" above)`,
    ratio: ratio(one.rate / sqliteRead.rate),
    goal: '≥ 0.5',
    met: one.rate / sqliteRead.rate >= 0.5,
  });

  const secondPort = await freePort();
  const second = startProgram('nexus', {
    runtime: 'node',
    viaBin: true,
    env: {
      ...broker.identityEnv('nexus'),
      SPIKE_NEXUS_TLS_PORT: String(secondPort),
      SPIKE_NEXUS_DATA_DIR: join(broker.dir, 'nexus-2'),
      SPIKE_NEXUS_KEEPER_PEERS: broker.keeperPorts.map((p) => `https://127.0.0.1:${p}`).join(','),
      SPIKE_NEXUS_BACKEND_STORE: 'postgres',
      SPIKE_NEXUS_DATABASE_URL: databaseUrl,
      ...BENCH_NEXUS_ENV,
    },
  });
  try {
    const client = await broker.client('pilot');
    const deadline = Date.now() + 30_000;
    for (;;) {
      const status = await client
        .request({ method: 'GET', url: new URL(`https://127.0.0.1:${secondPort}${PATHS.status}`) })
        .then((res) => res.status)
        .catch(() => 0);
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error('The second Nexus did not become ready');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const secondUrl = `https://127.0.0.1:${secondPort}`;
    const [a, b] = await Promise.all([
      load('pg: two Nexus, read via #1, 8 conn', readSpec(broker, prefix, SETTINGS.small, 8)),
      load('pg: two Nexus, read via #2, 8 conn', {
        ...readSpec(broker, prefix, SETTINGS.small, 8),
        url: `${secondUrl}${PATHS.secretData}/${prefix}/1`,
      }),
    ]);
    goal({
      figure: 'two Nexus on one PostgreSQL ÷ one Nexus (reads, 16 conn in all)',
      value: `${rate(a.rate + b.rate)}`,
      baseline: `one Nexus ${rate(one.rate)}`,
      ratio: ratio((a.rate + b.rate) / one.rate),
      goal: 'reported',
      met: undefined,
    });
  } finally {
    await second.stop();
    await stopBroker(broker);
  }
}

async function stopBroker(broker: Broker): Promise<void> {
  brokers.splice(brokers.indexOf(broker), 1);
  await broker.stop();
}

async function stopEverything(): Promise<void> {
  stopLoads();
  await Promise.all(brokers.splice(0).map((broker) => broker.stop().catch(() => {})));
  rmSync(work, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const deno = args['no-deno'] === true ? 'skipped' : denoVersion(DENO);
  const machine = describeMachine({
    store: DATABASE_URL === undefined ? 'SQLite' : 'SQLite + PostgreSQL',
    mode: QUICK ? 'quick (smoke, sizes too small to judge goals)' : 'full',
    deno,
  });
  log(`spike-ts benchmark: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, ${deno}`);
  log(`${SETTINGS.durationS} s per load; ${SETTINGS.small} and ${SETTINGS.large} secrets of 1 KiB`);
  const hasDeno = deno !== 'skipped' && deno !== 'absent';
  if (args['watchers-only'] === true) {
    await watcherFigures('node');
    if (hasDeno) await watcherFigures('deno');
    await watchedPathFigures();
    log(`\nWrote ${writeReport(OUT, machine, loads, goals).join(' and ')}`);
    return;
  }
  const { read16 } = await nodeFigures();
  for (const broker of brokers.splice(0)) await broker.stop();
  await watcherFigures('node');
  if (hasDeno) await watcherFigures('deno');
  await watchedPathFigures();
  if (hasDeno) await denoFigures(read16);
  if (DATABASE_URL !== undefined) await postgresFigures(DATABASE_URL, read16);
  else log('\n(PostgreSQL figures skipped: no --database-url or SPIKE_BENCH_DATABASE_URL)');
  const written = writeReport(OUT, machine, loads, goals);
  log(`\nWrote ${written.join(' and ')}`);
}

const watchdog = setTimeout(() => {
  log(`The benchmark passed its ${SETTINGS.deadlineMs / 60_000} min bound; stopping.`);
  void stopEverything().finally(() => process.exit(1));
}, SETTINGS.deadlineMs);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void stopEverything().finally(() => process.exit(130)));
}

try {
  await main();
  process.exitCode = 0;
} catch (error) {
  log(
    `Benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  );
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await stopEverything();
}
