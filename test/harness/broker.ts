/**
 * A whole broker as real processes, for integration tests and the benchmark:
 * the embedded agent (one Workload API socket per identity), Keepers and
 * Nexus on a SQLite file in a temporary folder, or on PostgreSQL when a
 * database URL is given. Callers talk to Nexus through `call()` over real
 * mTLS with an SVID of the identity they name.
 *
 * Ports are chosen once, so a restarted Nexus or Keeper keeps its address.
 *
 * Leak scan: values made by `secretValue()` or registered with `sensitive()`
 * must never appear in what the broker writes or says. `stop()` scans every
 * process's output, every file in the broker's folder (logs, audit, and the
 * database files, which hold only ciphertext) and every non-2xx body that
 * `call()` saw, and fails when one holds such a value.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PATHS } from '../../shared/api/paths.ts';
import type { AuditEvent } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { isNexus } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain, type TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createX509Source, type X509Source } from '../../shared/spiffe/x509_source.ts';
import {
  describe as describeProgram,
  freePort,
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
  /** Node flags for every Nexus (e.g. `--cpu-prof`); ignored on Deno. */
  readonly nexusNodeFlags?: readonly string[];
  /** Start every program through its bin/ entry, as users do (see spawn.ts). */
  readonly viaBin?: boolean;
  /** Start Nexus and wait until it is ready (default true). */
  readonly startNexus?: boolean;
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
  call(name: string, method: string, path: string, body?: unknown): Promise<Reply>;
  /** Drops kept-alive connections (after a Nexus restart); sources stay. */
  closeClients(): void;
  startNexus(env?: Readonly<Record<string, string>>): RunningProgram;
  startKeeper(index: number): Promise<RunningProgram>;
  /** Polls the status route as the superuser until Nexus answers 200. */
  waitUntilReady(what: string, timeoutMs?: number): Promise<void>;
  auditEvents(): AuditEvent[];
  /** Logs of every process started, for failure messages. */
  logs(): string;
  /** A fresh secret value that the leak scan looks for. */
  secretValue(label?: string): string;
  /** Registers a value (a shard, a key) that must never leak. */
  sensitive(value: string): void;
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
  const sources = new Map<string, X509Source>();
  const clients = new Map<string, MtlsClient>();
  const logger = createLogger({ component: 'test', sink: createMemorySink() });
  const runtime = options.runtime;
  const viaBin = options.viaBin === true ? { viaBin: true } : {};
  const needles = new Set<string>();
  const errorBodies: string[] = [];

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
  started.push(agent);
  const keeperPorts: number[] = [];
  for (let i = 0; i < keeperCount; i += 1) keeperPorts.push(await freePort());
  const nexusPort = await freePort();
  const nexusUrl = `https://127.0.0.1:${nexusPort}`;

  const logs = () => started.map(describeProgram).join('\n');

  async function source(name: string): Promise<X509Source> {
    let made = sources.get(name);
    if (made === undefined) {
      made = await createX509Source({ address: socketOf(name), logger, timeoutMs: 10_000 });
      sources.set(name, made);
    }
    return made;
  }

  async function client(name: string): Promise<MtlsClient> {
    let made = clients.get(name);
    if (made === undefined) {
      made = new MtlsClient({
        source: await source(name),
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

  async function call(name: string, method: string, path: string, body?: unknown): Promise<Reply> {
    const res = await (await client(name)).request({
      method,
      url: new URL(`${nexusUrl}${path}`),
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = res.text();
    if (res.status >= 300) errorBodies.push(`${method} ${path} → ${res.status}: ${text}`);
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

  function startNexus(env: Readonly<Record<string, string>> = {}): RunningProgram {
    nexusRun = startProgram('nexus', {
      ...(runtime === undefined ? {} : { runtime }),
      ...viaBin,
      ...(options.nexusNodeFlags === undefined ? {} : { nodeFlags: options.nexusNodeFlags }),
      env: {
        ...identityEnv('nexus'),
        SPIKE_NEXUS_TLS_PORT: String(nexusPort),
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
    started.push(nexusRun);
    return nexusRun;
  }

  async function startKeeper(index: number): Promise<RunningProgram> {
    const port = keeperPorts[index];
    if (port === undefined) throw new Error(`No Keeper at index ${index}`);
    const keeper = startProgram('keeper', {
      ...(runtime === undefined ? {} : { runtime }),
      ...viaBin,
      env: { ...identityEnv(`keeper-${index + 1}`), SPIKE_KEEPER_TLS_PORT: String(port) },
    });
    started.push(keeper);
    keeperRuns[index] = keeper;
    await keeper.waitFor(/"msg":"Listening"/);
    return keeper;
  }

  async function waitUntilReady(what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if ((await call('pilot', 'GET', PATHS.status)).status === 200) return;
      } catch {
        // Not listening yet, or a kept-alive connection to a Nexus that is gone.
        closeClients();
      }
      if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}\n${logs()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  function filesUnder(folder: string): string[] {
    const found: string[] = [];
    for (const entry of readdirSync(folder)) {
      const path = join(folder, entry);
      const stat = statSync(path, { throwIfNoEntry: false });
      if (stat?.isDirectory()) found.push(...filesUnder(path));
      else if (stat?.isFile()) found.push(path);
    }
    return found;
  }

  function assertNoLeaks(): void {
    if (needles.size === 0) return;
    const places: [string, string][] = started.map((program, i) => [
      `output of ${program.program} #${i}`,
      program.stdout() + program.stderr(),
    ]);
    for (const file of filesUnder(dir)) places.push([file, readFileSync(file, 'latin1')]);
    errorBodies.forEach((body, i) => {
      places.push([`error body #${i}`, body]);
    });
    const hits: string[] = [];
    for (const [where, text] of places) {
      for (const needle of needles) {
        if (text.includes(needle)) hits.push(`${where} holds a registered secret`);
      }
    }
    if (hits.length > 0) throw new Error(`Secrets leaked:\n${[...new Set(hits)].join('\n')}`);
  }

  async function stop(): Promise<void> {
    closeClients();
    for (const made of sources.values()) made.close();
    sources.clear();
    await Promise.all([...started].reverse().map((program) => program.stop()));
    try {
      assertNoLeaks();
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
      return text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as AuditEvent);
    },
    logs,
    secretValue(label = 'secret') {
      const value = `${label}-canary-${crypto.randomUUID()}`;
      needles.add(value);
      return value;
    },
    sensitive(value) {
      if (value.length < 8) throw new Error('Too short to scan for without false hits');
      needles.add(value);
    },
    assertNoLeaks,
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
