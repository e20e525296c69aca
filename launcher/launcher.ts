/**
 * The one-command local broker: the embedded agent, three Keepers and Nexus
 * on SQLite as children of this process, all data in one folder. It waits
 * until Nexus is ready, unsealing it from the development recovery file when
 * every Keeper started empty, and saves a fresh recovery split on each start.
 * It talks to Nexus through the SDK, as Pilot and applications do.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createSpikeClient, type SpikeClient } from '../sdk/index.ts';
import type { RecoverResponse, RestoreResponse } from '../shared/api/operator.ts';
import {
  ENV_ENDPOINT_SOCKET,
  ENV_SYSTEM_LOG_LEVEL,
  ENV_TRUST_ROOT,
} from '../shared/config/common.ts';
import type { Env } from '../shared/config/env.ts';
import { AlreadyUnsealedError, type BrokerError, isBrokerError } from '../shared/errors/errors.ts';
import { statusForCode } from '../shared/errors/http_status.ts';
import { delay } from '../shared/runtime/delay.ts';
import { type FetchedX509Source, fetchX509Source } from '../shared/spiffe/x509_source.ts';
import { Child, type ChildRuntime, type Program } from './child.ts';
import { KEEPER_COUNT, type LauncherConfig, socketDirOf } from './config.ts';
import { acquireDataDirLock, type DataDirLock } from './data_dir_lock.ts';
import { devShardsPath, readDevShards, writeDevShards } from './dev_shards.ts';
import { checkPortsFree, LOCAL_HOST, pickFreePorts, plannedPorts } from './ports.ts';

/** The identities the agent serves, one socket each. */
export const LOCAL_WORKLOADS: readonly (readonly [string, string])[] = Object.freeze([
  ['nexus', '/spike/nexus'],
  ['keeper-1', '/spike/keeper/1'],
  ['keeper-2', '/spike/keeper/2'],
  ['keeper-3', '/spike/keeper/3'],
  ['pilot', '/spike/pilot/role/superuser'],
  // Break-glass roles, used by the launcher itself only.
  ['recover', '/spike/pilot/role/recover'],
  ['restore', '/spike/pilot/role/restore'],
  ['app', '/apps/example'],
]);

/** Nexus's audit trail in the logs folder; each Keeper's is `<name>.audit.log`. */
export const NEXUS_AUDIT_LOG_FILE = 'audit.log';

const AGENT_READY_REGEXP = /Press Ctrl-C to stop/;
const POLL_INTERVAL_MS = 250;
const REQUEST_TIMEOUT_MS = 3_000;

export interface LauncherOptions {
  readonly config: LauncherConfig;
  readonly runtime: ChildRuntime['runtime'];
  readonly execPath: string;
  readonly rootDir: string;
  /** The launcher's environment: children inherit it minus every SPIKE_/SPIFFE_ variable. */
  readonly env: Env;
  /** One plain line of progress for the person at the terminal. */
  readonly say: (line: string) => void;
}

/** A program the launcher starts once the agent serves: a Keeper or Nexus. */
export interface ServiceSpec {
  /** Also the name of its socket and of its log file. */
  readonly name: string;
  readonly program: Program;
  /** Its own variables, on top of the ones every child gets. */
  readonly env: Readonly<Record<string, string>>;
}

/** The port of each child's operations listener (probes, metrics), by child name. */
export type OpsPorts = Readonly<Record<string, number>>;

/**
 * The Keepers, then Nexus, with their own variables. Each writes its audit
 * trail to a file of its own in the logs folder, so that audit events never
 * mix with its operational log (`<name>.log`): Nexus to `audit.log`, Keeper N
 * to `keeper-N.audit.log`. Each serves probes and metrics on its port of
 * `opsPorts`, when it has one.
 */
export function serviceSpecs(
  config: LauncherConfig,
  dirs: { readonly logsDir: string; readonly socketDir: string },
  opsPorts: OpsPorts = {},
): ServiceSpec[] {
  const specs: ServiceSpec[] = [];
  for (let i = 0; i < KEEPER_COUNT; i++) {
    const name = `keeper-${i + 1}`;
    specs.push({
      name,
      program: 'keeper',
      env: {
        [ENV_ENDPOINT_SOCKET]: socketAddress(dirs.socketDir, name),
        SPIKE_KEEPER_TLS_HOST: LOCAL_HOST,
        SPIKE_KEEPER_TLS_PORT: String(config.keeperPorts[i]),
        SPIKE_KEEPER_AUDIT_LOG: join(dirs.logsDir, `${name}.audit.log`),
        ...opsAddress('SPIKE_KEEPER_OPS_ADDR', opsPorts[name]),
      },
    });
  }
  specs.push({
    name: 'nexus',
    program: 'nexus',
    env: {
      [ENV_ENDPOINT_SOCKET]: socketAddress(dirs.socketDir, 'nexus'),
      SPIKE_NEXUS_TLS_HOST: LOCAL_HOST,
      SPIKE_NEXUS_TLS_PORT: String(config.nexusPort),
      SPIKE_NEXUS_KEEPER_PEERS: config.keeperPorts
        .map((port) => `https://${LOCAL_HOST}:${port}`)
        .join(','),
      SPIKE_NEXUS_BACKEND_STORE: 'sqlite',
      SPIKE_NEXUS_DATA_DIR: join(config.dataDir, 'nexus'),
      SPIKE_NEXUS_AUDIT_LOG: join(dirs.logsDir, NEXUS_AUDIT_LOG_FILE),
      ...opsAddress('SPIKE_NEXUS_OPS_ADDR', opsPorts.nexus),
    },
  });
  return specs;
}

function opsAddress(variable: string, port: number | undefined): Record<string, string> {
  return port === undefined ? {} : { [variable]: `${LOCAL_HOST}:${port}` };
}

/** The children that serve probes and metrics, in the order the summary lists them. */
export const OPS_CHILDREN: readonly string[] = Object.freeze([
  'nexus',
  'keeper-1',
  'keeper-2',
  'keeper-3',
  'agent',
]);

/** What the summary needs once Nexus is ready. */
export interface LocalBrokerInfo {
  readonly nexusUrl: string;
  readonly socketDir: string;
  readonly logsDir: string;
  readonly dataDir: string;
  readonly restored: boolean;
  /** `http://127.0.0.1:<port>` of each child's operations listener, by name (`OPS_CHILDREN`). */
  readonly opsUrls: Readonly<Record<string, string>>;
}

export class LocalBroker {
  readonly #options: LauncherOptions;
  readonly #children: Child[] = [];
  /** Each SDK client with the SVID source it borrows, closed together. */
  readonly #clients: { readonly client: SpikeClient; readonly source: FetchedX509Source }[] = [];
  readonly #logsDir: string;
  readonly #socketDir: string;
  readonly #nexusUrl: string;
  /** Held from the start of start() until every child has stopped. */
  #lock: DataDirLock | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: LauncherOptions) {
    this.#options = options;
    this.#logsDir = join(options.config.dataDir, 'logs');
    this.#socketDir = socketDirOf(options.config.dataDir);
    this.#nexusUrl = `https://${LOCAL_HOST}:${options.config.nexusPort}`;
  }

  /** Which child ended on its own, once one has (a running broker is then broken). */
  async firstExit(): Promise<Child> {
    return Promise.race(this.#children.map((child) => child.exited.then(() => child)));
  }

  /**
   * Starts everything and resolves once Nexus is ready; rejects with the
   * reason (a child's log tail included) or the abort reason. The caller
   * calls stop() either way.
   *
   * Before any child starts, it takes the data folder's lock (a second
   * spike-local on the folder refuses here and changes nothing) and checks
   * that every port it will use is free.
   */
  async start(signal: AbortSignal): Promise<LocalBrokerInfo> {
    const { config, say } = this.#options;
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const lock = acquireDataDirLock(config.dataDir);
    this.#lock = lock;
    if (lock.staleFrom !== undefined) {
      say(`Took over the lock of a spike-local that is gone (PID ${lock.staleFrom})`);
    }
    const planned = plannedPorts(config);
    await checkPortsFree(planned);
    const picked = await pickFreePorts(
      OPS_CHILDREN.length,
      planned.map((entry) => entry.port),
    );
    const opsPorts: Record<string, number> = {};
    const opsUrls: Record<string, string> = {};
    OPS_CHILDREN.forEach((name, i) => {
      opsPorts[name] = picked[i] as number;
      opsUrls[name] = `http://${LOCAL_HOST}:${picked[i]}`;
    });
    mkdirSync(this.#logsDir, { recursive: true, mode: 0o700 });
    say(
      `Data folder ${config.dataDir}; each program logs to ${this.#logsDir}/<name>.log, and audits to ${NEXUS_AUDIT_LOG_FILE} (Nexus) or <name>.audit.log (Keepers) beside it`,
    );

    const agent = this.#spawn('agent', 'agent', {
      SPIKE_AGENT_DATA_DIR: join(config.dataDir, 'agent'),
      SPIKE_AGENT_SOCKET_DIR: this.#socketDir,
      SPIKE_AGENT_WORKLOADS: LOCAL_WORKLOADS.map(([name, path]) => `${name}=${path}`).join(','),
      ...opsAddress('SPIKE_AGENT_OPS_ADDR', opsPorts.agent),
    });
    await agent.waitForOutput(AGENT_READY_REGEXP, {
      timeoutMs: config.startTimeoutMs,
      signal,
    });
    say(`Agent serves ${LOCAL_WORKLOADS.length} identities in ${this.#socketDir}`);

    for (const spec of serviceSpecs(
      config,
      { logsDir: this.#logsDir, socketDir: this.#socketDir },
      opsPorts,
    )) {
      this.#spawn(spec.name, spec.program, spec.env);
    }
    say(
      `Started 3 Keepers (ports ${config.keeperPorts.join(', ')}) and Nexus (port ${config.nexusPort})`,
    );

    const restored = await this.#waitUntilReady(signal);
    await this.#saveRecoverySplit();
    // The launcher needs no identity while the broker runs.
    this.#closeClients();
    return {
      nexusUrl: this.#nexusUrl,
      socketDir: this.#socketDir,
      logsDir: this.#logsDir,
      dataDir: config.dataDir,
      restored,
      opsUrls,
    };
  }

  /** Stops Nexus, then the Keepers, then the agent; safe to call more than once. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stopAll();
    return this.#stopping;
  }

  async #stopAll(): Promise<void> {
    // Clients first, so that none is mid-request when Nexus goes.
    this.#closeClients();
    const byName = (prefix: string) => this.#children.filter((c) => c.name.startsWith(prefix));
    for (const group of [byName('nexus'), byName('keeper-'), byName('agent')]) {
      await Promise.all(group.map((child) => child.stop()));
    }
    this.#lock?.release();
  }

  #closeClients(): void {
    for (const { client, source } of this.#clients.splice(0)) {
      client.close();
      source.close();
    }
  }

  #socket(name: string): string {
    return socketAddress(this.#socketDir, name);
  }

  #spawn(name: string, program: Program, own: Readonly<Record<string, string>>): Child {
    const { config, env } = this.#options;
    const childEnv: Record<string, string | undefined> = {};
    for (const [key, value] of Object.entries(env)) {
      if (!key.startsWith('SPIKE_') && !key.startsWith('SPIFFE_')) childEnv[key] = value;
    }
    Object.assign(childEnv, {
      [ENV_TRUST_ROOT]: config.trustDomain.name,
      [ENV_SYSTEM_LOG_LEVEL]: config.logLevel,
      NO_COLOR: '1',
      ...own,
    });
    const child = new Child(
      { name, program, env: childEnv },
      {
        runtime: this.#options.runtime,
        execPath: this.#options.execPath,
        rootDir: this.#options.rootDir,
        logsDir: this.#logsDir,
      },
    );
    this.#children.push(child);
    return child;
  }

  /**
   * An SDK client under one of the agent's identities, from an SVID fetched
   * once: the launcher needs an identity only while it starts the broker,
   * long before an SVID rotates. A one-shot fetch also leaves no gRPC stream
   * to cancel, whose cancel an agent on Deno can die of (docs/agent.md).
   */
  async #client(name: 'pilot' | 'recover' | 'restore'): Promise<SpikeClient> {
    const source = await fetchX509Source({
      address: this.#socket(name),
      timeoutMs: REQUEST_TIMEOUT_MS * 3,
    });
    const client = await createSpikeClient({
      nexusUrl: this.#nexusUrl,
      source,
      trustDomain: this.#options.config.trustDomain,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
    this.#clients.push({ client, source });
    return client;
  }

  /**
   * Polls `GET /v1/status` as Pilot until 200. A Nexus that stays sealed for
   * `restoreAfterMs` has Keepers that started empty: the saved split unseals
   * it. Returns whether it did.
   */
  async #waitUntilReady(signal: AbortSignal): Promise<boolean> {
    const { config, say } = this.#options;
    const pilot = await this.#client('pilot');
    const deadline = Date.now() + config.startTimeoutMs;
    const file = devShardsPath(config.dataDir);
    let sealedSince: number | undefined;
    let restored = false;
    let hasSaidNoFile = false;
    for (;;) {
      signal.throwIfAborted();
      const ended = this.#children.find((child) => child.status !== undefined);
      if (ended !== undefined) {
        throw ended.failure(`ended (status ${ended.status}) before Nexus was ready`);
      }
      const status = await statusOf(pilot);
      if (status === 200) {
        say(
          restored
            ? 'Nexus is ready: restored from the development recovery file'
            : 'Nexus is ready',
        );
        return restored;
      }
      if (status === 503) {
        sealedSince ??= Date.now();
        if (Date.now() - sealedSince >= config.restoreAfterMs) {
          const saved = readDevShards(file);
          if (saved !== undefined) {
            say(
              `Nexus is still sealed after ${config.restoreAfterMs}ms: its Keepers started empty. Restoring the root key from ${file} (development mode only)`,
            );
            restored = await this.#restore(saved.shards, file);
          } else if (!hasSaidNoFile) {
            hasSaidNoFile = true;
            say(
              `Nexus is still sealed and ${file} does not exist: if it keeps data from before, restore it by hand (docs/root-key.md), or delete ${join(config.dataDir, 'nexus')} to start over`,
            );
          }
        }
      }
      if (Date.now() > deadline) {
        const nexus = this.#children.find((child) => child.name === 'nexus');
        throw (
          nexus?.failure(`was not ready within ${config.startTimeoutMs}ms`) ??
          new Error(`Nexus was not ready within ${config.startTimeoutMs}ms`)
        );
      }
      await delay(POLL_INTERVAL_MS, { signal });
    }
  }

  /** Submits shards until Nexus says restored (or already unsealed). */
  async #restore(shards: readonly string[], file: string): Promise<boolean> {
    const restore = await this.#client('restore');
    for (const shard of shards) {
      let progress: RestoreResponse;
      try {
        progress = await restore.restore(shard);
      } catch (err) {
        if (err instanceof AlreadyUnsealedError) return true;
        throw refusal(
          err,
          (answer) =>
            `Nexus refused a shard from ${file} (${answer}): it does not hold the root key of this Nexus; restore by hand (docs/root-key.md) or delete ${this.#options.config.dataDir} to start over`,
        );
      }
      this.#options.say(
        `Restore: ${progress.collected} of ${progress.threshold} shards submitted${progress.restored ? ', Nexus is unsealed' : ''}`,
      );
      if (progress.restored) return true;
    }
    throw new Error(`The shards in ${file} were not enough to unseal Nexus`);
  }

  /**
   * A fresh break-glass split on every start, so the file always matches the
   * current root key (even when the database was deleted and a new key made).
   */
  async #saveRecoverySplit(): Promise<void> {
    const { config, say } = this.#options;
    const recover = await this.#client('recover');
    let split: RecoverResponse;
    try {
      split = await recover.recover();
    } catch (err) {
      throw refusal(err, (answer) => `Nexus refused to export a recovery split (${answer})`);
    }
    const file = devShardsPath(config.dataDir);
    writeDevShards(file, split, { trustDomain: config.trustDomain.name });
    say(`Saved the development recovery split (generation ${split.generation}) to ${file}`);
  }
}

/** The Workload API address of the agent's socket `name`. */
function socketAddress(socketDir: string, name: string): string {
  return `unix://${join(socketDir, `${name}.sock`)}`;
}

/** 200 ready, 503 sealed, 0 when Nexus does not answer (with a status) yet. */
async function statusOf(client: SpikeClient): Promise<number> {
  try {
    return (await client.status()).httpStatus;
  } catch {
    return 0;
  }
}

/**
 * What Nexus's refusal becomes on the terminal: the message names its answer
 * (`HTTP 400, ERR_SHAMIR_INVALID_SHARDS`). An unreachable Nexus, or anything
 * else that is no answer, is thrown as it is.
 */
function refusal(err: unknown, message: (answer: string) => string): unknown {
  if (!isBrokerError(err) || err.code === 'ERR_UNAVAILABLE') return err;
  return new Error(message(answerOf(err)), { cause: err });
}

function answerOf(err: BrokerError): string {
  return `HTTP ${statusForCode(err.code)}, ${err.code}`;
}
