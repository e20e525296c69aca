/**
 * Configuration of the one-command local broker (`spike-local`): where its
 * data folder is, which ports Nexus and the three Keepers take, and how long
 * it waits. Read once from an environment record, validated as a whole and
 * frozen. Every other setting of the children is fixed by the launcher.
 */
import { isAbsolute, join } from 'node:path';
import { DEFAULT_NEXUS_PORT } from '../shared/api/nexus_address.ts';
import { ENV_TRUST_ROOT, readLogLevel } from '../shared/config/common.ts';
import { type Env, EnvReader } from '../shared/config/env.ts';
import type { LogLevel } from '../shared/log/logger.ts';
import { DEFAULT_TRUST_DOMAIN_NAME } from '../shared/spiffe/identities.ts';
import { parseTrustDomain, type TrustDomain } from '../shared/spiffe/spiffe_id.ts';

export const ENV_LOCAL_DATA_DIR = 'SPIKE_LOCAL_DATA_DIR';
export const ENV_LOCAL_NEXUS_PORT = 'SPIKE_NEXUS_TLS_PORT';
export const ENV_LOCAL_KEEPER_PORTS = 'SPIKE_LOCAL_KEEPER_PORTS';
export const ENV_LOCAL_RESTORE_AFTER = 'SPIKE_LOCAL_RESTORE_AFTER';
export const ENV_LOCAL_START_TIMEOUT = 'SPIKE_LOCAL_START_TIMEOUT';

export const DEFAULT_KEEPER_PORTS: readonly number[] = Object.freeze([8443, 8444, 8445]);
export const KEEPER_COUNT = 3;
export const DEFAULT_RESTORE_AFTER_MS = 5_000;
export const DEFAULT_START_TIMEOUT_MS = 120_000;

/**
 * `sun_path` holds 104 bytes on macOS (108 on Linux) with the final NUL; the
 * agent refuses longer socket paths (agent/registrations.ts), so the data
 * folder is checked here too, with a message that names our variable.
 */
const MAX_SOCKET_PATH_BYTES = 103;
/** The longest socket name the launcher registers (`keeper-1`… are shorter). */
const LONGEST_SOCKET_NAME = 'restore.sock';

export interface LauncherConfig {
  readonly trustDomain: TrustDomain;
  /** Holds everything: agent/, nexus/, logs/ and the dev recovery shards. Absolute. */
  readonly dataDir: string;
  readonly nexusPort: number;
  /** One port per Keeper, in Keeper order. */
  readonly keeperPorts: readonly number[];
  /** How long a sealed Nexus may take to unseal by itself before the dev restore. */
  readonly restoreAfterMs: number;
  /** How long start-up may take until Nexus is ready. */
  readonly startTimeoutMs: number;
  /** Forwarded to every child. */
  readonly logLevel: LogLevel;
}

export function loadLauncherConfig(env: Env): LauncherConfig {
  const reader = new EnvReader(env);
  const trustDomain = reader.parsed(ENV_TRUST_ROOT, DEFAULT_TRUST_DOMAIN_NAME, parseTrustDomain);
  const dataDir = readDataDir(reader, env);
  // A fixed port (not 0): the printed commands and SPIKE_NEXUS_API_URL name it.
  const nexusPort = reader.port(ENV_LOCAL_NEXUS_PORT, DEFAULT_NEXUS_PORT, { min: 1 });
  const keeperPorts = readKeeperPorts(reader);
  if (keeperPorts.includes(nexusPort)) {
    reader.problem(
      ENV_LOCAL_KEEPER_PORTS,
      keeperPorts.join(','),
      `must not include the Nexus port (${ENV_LOCAL_NEXUS_PORT}=${nexusPort})`,
    );
  }
  const restoreAfterMs = reader.durationMs(ENV_LOCAL_RESTORE_AFTER, DEFAULT_RESTORE_AFTER_MS, {
    min: 100,
  });
  const startTimeoutMs = reader.durationMs(ENV_LOCAL_START_TIMEOUT, DEFAULT_START_TIMEOUT_MS, {
    min: 1_000,
  });
  const logLevel = readLogLevel(reader);
  if (trustDomain === undefined || dataDir === undefined) {
    // Each undefined above recorded a problem, so this throws the ConfigError.
    reader.finish({});
    throw new TypeError('loadLauncherConfig() lost track of a problem');
  }
  return reader.finish({
    trustDomain,
    dataDir,
    nexusPort,
    keeperPorts: Object.freeze(keeperPorts),
    restoreAfterMs,
    startTimeoutMs,
    logLevel,
  });
}

/** `<data dir>/agent/sockets`: the sockets of every registered identity. */
export function socketDirOf(dataDir: string): string {
  return join(dataDir, 'agent', 'sockets');
}

function readDataDir(reader: EnvReader, env: Env): string | undefined {
  const value = reader.raw(ENV_LOCAL_DATA_DIR);
  let dir: string;
  if (value === undefined) {
    const home = env.HOME?.trim();
    if (home === undefined || home === '') {
      reader.problem(ENV_LOCAL_DATA_DIR, undefined, 'must be set because HOME is not set');
      return undefined;
    }
    dir = join(home, '.spike', 'local');
  } else if (!isAbsolute(value)) {
    reader.problem(ENV_LOCAL_DATA_DIR, value, 'must be an absolute path');
    return undefined;
  } else {
    dir = value;
  }
  const longest = join(socketDirOf(dir), LONGEST_SOCKET_NAME);
  if (new TextEncoder().encode(longest).length > MAX_SOCKET_PATH_BYTES) {
    reader.problem(
      ENV_LOCAL_DATA_DIR,
      dir,
      `is too long: the socket path "${longest}" would exceed ${MAX_SOCKET_PATH_BYTES} bytes; choose a shorter folder`,
    );
    return undefined;
  }
  return dir;
}

/** Exactly three distinct ports, one per Keeper. */
function readKeeperPorts(reader: EnvReader): number[] {
  const raw = reader.raw(ENV_LOCAL_KEEPER_PORTS);
  if (raw === undefined) {
    return [...DEFAULT_KEEPER_PORTS];
  }
  const entries = reader.list(ENV_LOCAL_KEEPER_PORTS, []);
  const ports: number[] = [];
  for (const entry of entries) {
    const port = /^\d+$/.test(entry) ? Number(entry) : Number.NaN;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      reader.problem(ENV_LOCAL_KEEPER_PORTS, raw, `has "${entry}", not a port from 1 to 65535`);
    } else {
      ports.push(port);
    }
  }
  if (entries.length !== KEEPER_COUNT) {
    reader.problem(
      ENV_LOCAL_KEEPER_PORTS,
      raw,
      `must list exactly ${KEEPER_COUNT} ports, one per Keeper, comma-separated`,
    );
  }
  return ports;
}
