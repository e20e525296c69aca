/**
 * A whole broker as real processes, for integration tests and the benchmark:
 * the embedded agent (one Workload API socket per identity), Keepers and
 * Nexus on a SQLite file in a temporary folder, or on PostgreSQL when a
 * database URL is given. Callers talk to Nexus through `call()` over real
 * mTLS with an SVID of the identity they name.
 *
 * Ports are chosen once, so a restarted Nexus or Keeper keeps its address.
 *
 * Leak scan (leak_scan.ts): values made by `secretValue()` or registered with
 * `sensitive()` must never appear in what the broker writes or says. `stop()`
 * scans every process's output, every file in the broker's folder (logs,
 * audit, and the database files, which hold only ciphertext), every row of
 * every table of the PostgreSQL database when there is one, every non-2xx
 * body that `call()` saw and every text added with `scan()`, and fails when
 * one holds such a value.
 */
import { Buffer } from 'node:buffer';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PATHS } from '../../shared/api/paths.ts';
import type { AuditEvent } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { isNexus } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain, type TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createX509Source, type X509Source } from '../../shared/spiffe/x509_source.ts';
import { createLeakScan } from './leak_scan.ts';
import { completeLines } from './lines.ts';
import {
  type DenoFlags,
  describe as describeProgram,
  freePorts,
  type RunningProgram,
  type Runtime,
  startProgram,
} from './spawn.ts';

export interface BrokerOptions {
  /** A name unique to the test file keeps audit lines and IDs apart. */
  readonly trustDomain: string;
  /** Extra identities: name → SPIFFE ID path, e.g. `{ web: '/apps/web' }`. */
  readonly workloads?: Readonly<Record<string, string>>;
  readonly keepers?: number;
  readonly runtime?: Runtime;
  /** PostgreSQL instead of a SQLite file. */
  readonly databaseUrl?: string;
  /** Extra environment for every Nexus (overrides the defaults below). */
  readonly nexusEnv?: Readonly<Record<string, string>>;
  readonly agentEnv?: Readonly<Record<string, string>>;
  /** Extra environment for every Keeper. */
  readonly keeperEnv?: Readonly<Record<string, string>>;
  /** Node flags for every Nexus (e.g. `--cpu-prof`); ignored on Deno. */
  readonly nexusNodeFlags?: readonly string[];
  /** What every Nexus on Deno adds to its task; ignored on Node. */
  readonly nexusDenoFlags?: DenoFlags;
  /** Start every program through its bin/ entry, as users do (see spawn.ts). */
  readonly viaBin?: boolean;
  /** Start every program from the bundles in this folder instead (see spawn.ts). */
  readonly bundles?: string;
  /** Start Nexus and wait until it is ready (default true). */
  readonly startNexus?: boolean;
}

export interface NexusOptions {
  /** The identity it runs as (default `nexus`), e.g. a replica's. */
  readonly identity?: string;
  /**
   * Its port (default the broker's `nexusPort`). Only a Nexus on the
   * default port becomes `nexus()`; one elsewhere is a replica on the same
   * store, which the caller stops.
   */
  readonly port?: number;
}

export interface CallOptions {
  /** The port of the Nexus to ask (default the broker's `nexusPort`). */
  readonly port?: number;
}

export interface Reply {
  readonly status: number;
  readonly text: string;
  /** The parsed JSON body, or undefined when the body was empty. */
  readonly body: unknown;
}

export interface Broker {
  readonly dir: string;
  readonly trustDomain: TrustDomain;
  readonly auditLog: string;
  readonly nexusPort: number;
  readonly keeperPorts: readonly number[];
  readonly nexusUrl: string;
  readonly agent: RunningProgram;
  /** The live Nexus (the last one started). */
  nexus(): RunningProgram;
  /** The live Keeper at an index (the last one started there). */
  keeper(index: number): RunningProgram;
  /** `unix://` address of an identity's Workload API socket. */
  socketOf(name: string): string;
  /** Environment that gives a child process the named identity. */
  identityEnv(name: string): Record<string, string>;
  /** The SPIFFE ID the agent issues to a named identity. */
  idOf(name: string): string;
  /** An X509Source for a named identity, made once and kept. */
  source(name: string): Promise<X509Source>;
  /** A keep-alive mTLS client to Nexus as a named identity, made once and kept. */
  client(name: string): Promise<MtlsClient>;
  /** One request to Nexus as a named identity. */
  call(
    name: string,
    method: string,
    path: string,
    body?: unknown,
    options?: CallOptions,
  ): Promise<Reply>;
  /** Drops kept-alive connections (after a Nexus restart); sources stay. */
  closeClients(): void;
  startNexus(env?: Readonly<Record<string, string>>, options?: NexusOptions): RunningProgram;
  startKeeper(index: number): Promise<RunningProgram>;
  /** Polls the status route as the superuser until Nexus answers 200. */
  waitUntilReady(what: string, timeoutMs?: number, options?: CallOptions): Promise<void>;
  auditEvents(): AuditEvent[];
  /** Logs of every process started, for failure messages. */
  logs(): string;
  /** A fresh secret value that the leak scan looks for. */
  secretValue(label?: string): string;
  /** Registers a value (a shard, a key) that must never leak. */
  sensitive(value: string): void;
  /**
   * Adds a text the test saw (a CLI run's output, an SDK error) to the leak
   * scan; a function is read at scan time.
   */
  scan(name: string, text: string | (() => string)): void;
  /** Fails with the places where a registered value appears (see the module comment). */
  assertNoLeaks(): void;
  /** Stops everything, runs the leak scan, and removes the folder. */
  stop(): Promise<void>;
}

const ROLE_WORKLOADS: Record<string, string> = {
  nexus: '/spike/nexus',
  pilot: '/spike/pilot/role/superuser',
};

export async function startBroker(options: BrokerOptions): Promise<Broker> {
  const td = options.trustDomain;
  const trustDomain = parseTrustDomain(td);
  const keeperCount = options.keepers ?? 3;
  const workloads: Record<string, string> = { ...ROLE_WORKLOADS };
  for (let i = 1; i <= keeperCount; i += 1) workloads[`keeper-${i}`] = `/spike/keeper/${i}`;
  Object.assign(workloads, options.workloads);

  const dir = mkdtempSync(join(tmpdir(), `spike-${td.replace(/\W/g, '-')}-`));
  const auditLog = join(dir, 'audit.jsonl');
  const started: RunningProgram[] = [];
  const keeperRuns: RunningProgram[] = [];
  let nexusRun: RunningProgram | undefined;
  // Promises, so that two calls at once for one identity share one source
  // (a second one would be left open, and keep the test process alive).
  const sources = new Map<string, Promise<X509Source>>();
  const clients = new Map<string, MtlsClient>();
  const logger = createLogger({ component: 'test', sink: createMemorySink() });
  const runtime = options.runtime;
  const viaBin = {
    ...(options.viaBin === true ? { viaBin: true } : {}),
    ...(options.bundles === undefined ? {} : { bundles: options.bundles }),
  };
  const leakScan = createLeakScan();
  let errorBodies = 0;
  let sensitiveCount = 0;
  leakScan.files(dir);

  const socketOf = (name: string) => `unix://${join(dir, 'sockets', `${name}.sock`)}`;
  const identityEnv = (name: string): Record<string, string> => ({
    SPIKE_TRUST_ROOT: td,
    SPIFFE_ENDPOINT_SOCKET: socketOf(name),
    SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
  });
  const idOf = (name: string) => {
    const path = workloads[name];
    if (path === undefined) throw new Error(`No workload named ${name}`);
    return `spiffe://${td}${path}`;
  };

  const agent = startProgram('agent', {
    ...(runtime === undefined ? {} : { runtime }),
    ...viaBin,
    env: {
      SPIKE_TRUST_ROOT: td,
      SPIKE_AGENT_DATA_DIR: dir,
      SPIKE_AGENT_WORKLOADS: Object.entries(workloads)
        .map(([name, path]) => `${name}=${path}`)
        .join(','),
      ...options.agentEnv,
    },
  });
  track(agent);
  const keeperPorts: number[] = [];
  // Picked together, so that no two programs are given the same port.
  const [nexusPort = 0, ...picked] = await freePorts(keeperCount + 1);
  keeperPorts.push(...picked);
  const nexusUrl = `https://127.0.0.1:${nexusPort}`;

  const logs = () => started.map(describeProgram).join('\n');

  /** Keeps a started program for stop(), logs() and the leak scan. */
  function track(program: RunningProgram): void {
    const name = `output of ${program.program} #${started.length}`;
    started.push(program);
    leakScan.text(name, () => program.stdout() + program.stderr());
  }

  function source(name: string): Promise<X509Source> {
    let made = sources.get(name);
    if (made === undefined) {
      made = createX509Source({ address: socketOf(name), logger, timeoutMs: 10_000 });
      sources.set(name, made);
      // A failed start is not kept: the next call tries again.
      made.catch(() => sources.delete(name));
    }
    return made;
  }

  async function client(name: string): Promise<MtlsClient> {
    const src = await source(name);
    let made = clients.get(name);
    if (made === undefined) {
      made = new MtlsClient({
        source: src,
        authorizeServer: isNexus(trustDomain),
        timeoutMs: 5_000,
      });
      clients.set(name, made);
    }
    return made;
  }

  function closeClients(): void {
    for (const made of clients.values()) made.close();
    clients.clear();
  }

  async function call(
    name: string,
    method: string,
    path: string,
    body?: unknown,
    options: CallOptions = {},
  ): Promise<Reply> {
    const res = await (await client(name)).request({
      method,
      url: new URL(`https://127.0.0.1:${options.port ?? nexusPort}${path}`),
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = res.text();
    if (res.status >= 300) {
      leakScan.text(`error body #${errorBodies} (${method} ${path} → ${res.status})`, text);
      errorBodies += 1;
    }
    let parsed: unknown;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    return { status: res.status, text, body: parsed };
  }

  function startNexus(
    env: Readonly<Record<string, string>> = {},
    nexusOptions: NexusOptions = {},
  ): RunningProgram {
    const port = nexusOptions.port ?? nexusPort;
    const run = startProgram('nexus', {
      ...(runtime === undefined ? {} : { runtime }),
      ...viaBin,
      ...(options.nexusNodeFlags === undefined ? {} : { nodeFlags: options.nexusNodeFlags }),
      ...(options.nexusDenoFlags === undefined ? {} : { denoFlags: options.nexusDenoFlags }),
      env: {
        ...identityEnv(nexusOptions.identity ?? 'nexus'),
        SPIKE_NEXUS_TLS_PORT: String(port),
        SPIKE_NEXUS_DATA_DIR: join(dir, 'nexus-data'),
        SPIKE_NEXUS_KEEPER_PEERS: keeperPorts.map((port) => `https://127.0.0.1:${port}`).join(','),
        SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: '500ms',
        SPIKE_NEXUS_RECOVERY_MAX_INTERVAL: '1s',
        SPIKE_NEXUS_KEEPER_TIMEOUT: '1s',
        SPIKE_NEXUS_AUDIT_LOG: auditLog,
        ...(options.databaseUrl === undefined
          ? {}
          : {
              SPIKE_NEXUS_BACKEND_STORE: 'postgres',
              SPIKE_NEXUS_DATABASE_URL: options.databaseUrl,
            }),
        ...options.nexusEnv,
        ...env,
      },
    });
    track(run);
    if (port === nexusPort) nexusRun = run;
    return run;
  }

  async function startKeeper(index: number): Promise<RunningProgram> {
    const port = keeperPorts[index];
    if (port === undefined) throw new Error(`No Keeper at index ${index}`);
    const keeper = startProgram('keeper', {
      ...(runtime === undefined ? {} : { runtime }),
      ...viaBin,
      env: {
        ...identityEnv(`keeper-${index + 1}`),
        SPIKE_KEEPER_TLS_PORT: String(port),
        ...options.keeperEnv,
      },
    });
    track(keeper);
    keeperRuns[index] = keeper;
    await keeper.waitFor(/"msg":"Listening"/);
    return keeper;
  }

  async function waitUntilReady(
    what: string,
    timeoutMs = 30_000,
    callOptions: CallOptions = {},
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if ((await call('pilot', 'GET', PATHS.status, undefined, callOptions)).status === 200) {
          return;
        }
      } catch {
        // Not listening yet, or a kept-alive connection to a Nexus that is gone.
        closeClients();
      }
      if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}\n${logs()}`);
      await delay(50);
    }
  }

  async function stop(): Promise<void> {
    closeClients();
    const opened = await Promise.allSettled(sources.values());
    for (const made of opened) if (made.status === 'fulfilled') made.value.close();
    sources.clear();
    await Promise.all([...started].reverse().map((program) => program.stop()));
    try {
      if (options.databaseUrl !== undefined) {
        for (const [table, text] of await readPostgresTables(options.databaseUrl)) {
          leakScan.text(`PostgreSQL table ${table}`, text);
        }
      }
      leakScan.assertNoLeaks();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const broker: Broker = {
    dir,
    trustDomain,
    auditLog,
    nexusPort,
    keeperPorts,
    nexusUrl,
    agent,
    nexus() {
      if (nexusRun === undefined) throw new Error('Nexus was not started');
      return nexusRun;
    },
    keeper(index) {
      const keeper = keeperRuns[index];
      if (keeper === undefined) throw new Error(`No Keeper at index ${index}`);
      return keeper;
    },
    socketOf,
    identityEnv,
    idOf,
    source,
    client,
    call,
    closeClients,
    startNexus,
    startKeeper,
    waitUntilReady,
    auditEvents() {
      let text = '';
      try {
        text = readFileSync(auditLog, 'utf8');
      } catch {
        return [];
      }
      // Events only: the chain's own lines (audit.open, audit.checkpoint…) are not requests.
      return completeLines(text)
        .map((line) => JSON.parse(line) as AuditEvent)
        .filter((event) => !event.action.startsWith('audit.'));
    },
    logs,
    secretValue(label = 'secret') {
      const value = `${label}-canary-${crypto.randomUUID()}`;
      leakScan.needle(value, `the secret value "${label}"`);
      return value;
    },
    sensitive(value) {
      sensitiveCount += 1;
      leakScan.needle(value, `sensitive value #${sensitiveCount}`);
    },
    scan(name, text) {
      leakScan.text(name, text);
    },
    assertNoLeaks() {
      leakScan.assertNoLeaks();
    },
    stop,
  };

  try {
    await agent.waitFor(/Press Ctrl-C to stop/);
    await Promise.all(keeperPorts.map((_, index) => startKeeper(index)));
    if (options.startNexus !== false) {
      startNexus();
      await waitUntilReady('Nexus initialised its root key');
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return broker;
}

/**
 * Every row of every table in the database's public schema, as text per
 * table (byte columns as the bytes they hold), for the leak scan.
 */
async function readPostgresTables(url: string): Promise<[string, string][]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const tables = await client.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name",
    );
    const texts: [string, string][] = [];
    for (const { name } of tables.rows) {
      const rows = await client.query<Record<string, unknown>>(
        `SELECT * FROM "${name.replace(/"/g, '""')}"`,
      );
      const text = rows.rows
        .map((row) =>
          Object.values(row)
            .map((value) =>
              value instanceof Uint8Array
                ? Buffer.from(value).toString('utf8')
                : typeof value === 'object' && value !== null
                  ? JSON.stringify(value)
                  : String(value),
            )
            .join('\t'),
        )
        .join('\n');
      texts.push([name, text]);
    }
    return texts;
  } finally {
    await client.end();
  }
}
