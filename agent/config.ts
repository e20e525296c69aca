/**
 * Configuration of the embedded SPIFFE agent, read once from an environment
 * record, validated as a whole (every problem is reported at once) and
 * frozen. Paths become `Registration`s with parsed SPIFFE IDs here, so no
 * other agent module ever reads the environment.
 */
import { isAbsolute, join } from 'node:path';
import { type ListenConfig, readLogLevel, readOpsAddress } from '../shared/config/common.ts';
import { type Env, EnvReader } from '../shared/config/env.ts';
import type { LogLevel } from '../shared/log/logger.ts';
import { DEFAULT_TRUST_DOMAIN_NAME } from '../shared/spiffe/identities.ts';
import { parseTrustDomain, type TrustDomain } from '../shared/spiffe/spiffe_id.ts';
import { DEFAULT_REGISTRATIONS, parseRegistrations, type Registration } from './registrations.ts';

export const ENV_TRUST_ROOT = 'SPIKE_TRUST_ROOT';
export const ENV_AGENT_DATA_DIR = 'SPIKE_AGENT_DATA_DIR';
export const ENV_AGENT_SOCKET_DIR = 'SPIKE_AGENT_SOCKET_DIR';
export const ENV_AGENT_SVID_TTL = 'SPIKE_AGENT_SVID_TTL';
export const ENV_AGENT_CA_TTL = 'SPIKE_AGENT_CA_TTL';
export const ENV_AGENT_WORKLOADS = 'SPIKE_AGENT_WORKLOADS';
export const ENV_SYSTEM_LOG_LEVEL = 'SPIKE_SYSTEM_LOG_LEVEL';
export const ENV_AGENT_OPS_ADDR = 'SPIKE_AGENT_OPS_ADDR';

/** Every variable the agent reads, for documentation checks. */
export const AGENT_ENV_NAMES: readonly string[] = Object.freeze([
  ENV_TRUST_ROOT,
  ENV_AGENT_DATA_DIR,
  ENV_AGENT_SOCKET_DIR,
  ENV_AGENT_SVID_TTL,
  ENV_AGENT_CA_TTL,
  ENV_AGENT_WORKLOADS,
  ENV_SYSTEM_LOG_LEVEL,
  ENV_AGENT_OPS_ADDR,
]);

const HOUR_MS = 3_600_000;
export const DEFAULT_SVID_TTL_MS = HOUR_MS;
/** Below this a rotation at half-life would come every few seconds. */
export const MIN_SVID_TTL_MS = 10_000;
export const DEFAULT_CA_TTL_MS = 8760 * HOUR_MS;
/**
 * 100 years (876000h). The CA TTL only sets a certificate date, never a
 * timer, so it may pass setTimeout's limit; this cap keeps notAfter a sane
 * X.509 date.
 */
export const MAX_CA_TTL_MS = 100 * 8760 * HOUR_MS;

export interface AgentConfig {
  readonly trustDomain: TrustDomain;
  /** Holds the CA key and certificate. Absolute. */
  readonly dataDir: string;
  /** Holds one Workload API socket per registration. Absolute. */
  readonly socketDir: string;
  readonly svidTtlMs: number;
  /** Lifetime of a newly created CA; a loaded CA keeps its own. */
  readonly caTtlMs: number;
  readonly registrations: readonly Registration[];
  readonly logLevel: LogLevel;
  /** The operations listener (probes, metrics; plain HTTP), or undefined when off. */
  readonly opsAddress: ListenConfig | undefined;
}

export function loadAgentConfig(env: Env): AgentConfig {
  const reader = new EnvReader(env);
  const trustDomain = reader.parsed(ENV_TRUST_ROOT, DEFAULT_TRUST_DOMAIN_NAME, parseTrustDomain);

  const dataDir = readDir(reader, ENV_AGENT_DATA_DIR, defaultDataDir(env));
  // Without a usable data dir its problem is already recorded; an unset
  // socket dir then needs no second one.
  const socketDir = readDir(
    reader,
    ENV_AGENT_SOCKET_DIR,
    dataDir === undefined ? '' : join(dataDir, 'sockets'),
  );

  const svidTtlMs = reader.durationMs(ENV_AGENT_SVID_TTL, DEFAULT_SVID_TTL_MS, {
    min: MIN_SVID_TTL_MS,
  });
  const caTtlMs = reader.durationMs(ENV_AGENT_CA_TTL, DEFAULT_CA_TTL_MS, {
    min: MIN_SVID_TTL_MS,
    max: MAX_CA_TTL_MS,
  });
  if (caTtlMs <= svidTtlMs) {
    reader.problem(
      ENV_AGENT_CA_TTL,
      reader.raw(ENV_AGENT_CA_TTL),
      `must be longer than ${ENV_AGENT_SVID_TTL} (${svidTtlMs}ms)`,
    );
  }

  // Check the registrations even when the trust domain is bad, against the
  // default one, so that their problems are reported in the same run.
  const workloads = reader.raw(ENV_AGENT_WORKLOADS) ?? DEFAULT_REGISTRATIONS;
  const parsed = parseRegistrations(workloads, {
    trustDomain: trustDomain ?? parseTrustDomain(DEFAULT_TRUST_DOMAIN_NAME),
    socketDir: socketDir ?? '/',
  });
  for (const problem of parsed.problems) {
    reader.problem(ENV_AGENT_WORKLOADS, workloads, problem);
  }

  const logLevel = readLogLevel(reader);
  const opsAddress = readOpsAddress(reader, ENV_AGENT_OPS_ADDR);

  if (trustDomain === undefined || dataDir === undefined || socketDir === undefined) {
    // Each undefined above recorded a problem, so this throws the ConfigError.
    reader.finish({});
    throw new TypeError('loadAgentConfig() lost track of a problem');
  }
  return reader.finish({
    trustDomain,
    dataDir,
    socketDir,
    svidTtlMs,
    caTtlMs,
    registrations: parsed.registrations,
    logLevel,
    opsAddress,
  });
}

function defaultDataDir(env: Env): string | undefined {
  const home = env.HOME?.trim();
  return home === undefined || home === '' ? undefined : join(home, '.spike', 'agent');
}

/**
 * An absolute directory path. Unset, it takes the fallback; an undefined
 * fallback is a problem, an empty one means "already reported elsewhere".
 */
function readDir(
  reader: EnvReader,
  name: string,
  fallback: string | undefined,
): string | undefined {
  const value = reader.raw(name);
  if (value === undefined) {
    if (fallback === undefined) {
      reader.problem(name, undefined, 'must be set because HOME is not set');
    }
    return fallback === '' ? undefined : fallback;
  }
  if (!isAbsolute(value)) {
    reader.problem(name, value, 'must be an absolute path');
    return undefined;
  }
  return value;
}
