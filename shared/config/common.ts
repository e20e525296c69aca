/**
 * Settings every program that holds an SVID reads: its trust domain, where
 * the Workload API is, how long to wait for a first SVID, and the log level.
 * Names are SPIKE's where SPIKE has them.
 */
import { isIP } from 'node:net';
import { LOG_LEVELS, type LogLevel } from '../log/logger.ts';
import { DEFAULT_TRUST_DOMAIN_NAME } from '../spiffe/identities.ts';
import { parseTrustDomain, type TrustDomain } from '../spiffe/spiffe_id.ts';
import { parseWorkloadApiAddress, type WorkloadApiAddress } from '../spiffe/workload_address.ts';
import type { EnvReader } from './env.ts';

export const ENV_TRUST_ROOT = 'SPIKE_TRUST_ROOT';
export const ENV_ENDPOINT_SOCKET = 'SPIFFE_ENDPOINT_SOCKET';
export const ENV_SOURCE_TIMEOUT = 'SPIKE_SPIFFE_SOURCE_TIMEOUT';
export const ENV_SYSTEM_LOG_LEVEL = 'SPIKE_SYSTEM_LOG_LEVEL';

/** SPIRE's default agent socket, as SPIKE uses it. */
export const DEFAULT_ENDPOINT_SOCKET = 'unix:///tmp/spire-agent/public/api.sock';
export const DEFAULT_SOURCE_TIMEOUT_MS = 30_000;

export interface IdentityConfig {
  readonly trustDomain: TrustDomain;
  readonly workloadApiAddress: WorkloadApiAddress;
  readonly sourceTimeoutMs: number;
  readonly logLevel: LogLevel;
}

export function readIdentityConfig(reader: EnvReader): IdentityConfig {
  const trustDomain = reader.parsed(ENV_TRUST_ROOT, DEFAULT_TRUST_DOMAIN_NAME, parseTrustDomain);
  const workloadApiAddress = reader.parsed(
    ENV_ENDPOINT_SOCKET,
    DEFAULT_ENDPOINT_SOCKET,
    parseWorkloadApiAddress,
  );
  const sourceTimeoutMs = reader.durationMs(ENV_SOURCE_TIMEOUT, DEFAULT_SOURCE_TIMEOUT_MS, {
    min: 1,
  });
  const logLevel = readLogLevel(reader);
  // When a value was bad, `finish()` throws before these placeholders are used.
  return {
    trustDomain: trustDomain as TrustDomain,
    workloadApiAddress: workloadApiAddress as WorkloadApiAddress,
    sourceTimeoutMs,
    logLevel,
  };
}

/** `SPIKE_SYSTEM_LOG_LEVEL`: SPIKE writes `DEBUG`, `INFO`, `WARN`, `ERROR`; any case is taken. */
export function readLogLevel(reader: EnvReader): LogLevel {
  return reader.oneOf(ENV_SYSTEM_LOG_LEVEL, LOG_LEVELS, 'info', { ignoreCase: true });
}

export interface ListenConfig {
  readonly host: string;
  readonly port: number;
}

/** Loopback by default: a multi-host deployment sets the host (e.g. 0.0.0.0). */
export const DEFAULT_LISTEN_HOST = '127.0.0.1';

/** Reads a server's address from its `<PREFIX>_TLS_HOST` and `<PREFIX>_TLS_PORT`. */
export function readListenConfig(
  reader: EnvReader,
  names: { readonly host: string; readonly port: string },
  defaultPort: number,
): ListenConfig {
  const host = reader.parsed(names.host, DEFAULT_LISTEN_HOST, parseListenHost);
  const port = reader.port(names.port, defaultPort, { hostVariable: names.host });
  return { host: host as string, port };
}

/** An address to listen on: an IPv4 or IPv6 literal, or `localhost`. */
export function parseListenHost(value: string): string {
  if (value === 'localhost' || isIP(value) !== 0) {
    return value;
  }
  throw new Error('must be an IP address (e.g. 127.0.0.1, 0.0.0.0, ::) or localhost');
}

/**
 * The address of a program's operations listener (probes and metrics, plain
 * HTTP), `host:port` with an IPv6 host in brackets (`[::1]:9090`); unset,
 * the listener is off. Port 0 asks the system for a free one.
 */
export function readOpsAddress(reader: EnvReader, name: string): ListenConfig | undefined {
  const value = reader.raw(name);
  if (value === undefined) {
    return undefined;
  }
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (match === null) {
    reader.problem(name, value, 'must be host:port, e.g. 127.0.0.1:9090 or [::1]:9090');
    return undefined;
  }
  const host = (match[1] ?? match[2]) as string;
  const port = Number(match[3]);
  let parsedHost: string;
  try {
    parsedHost = parseListenHost(host);
  } catch (err) {
    reader.problem(name, value, `has a host that ${err instanceof Error ? err.message : err}`);
    return undefined;
  }
  if (port > 65535) {
    reader.problem(name, value, 'must have a port of at most 65535');
    return undefined;
  }
  return { host: parsedHost, port };
}
