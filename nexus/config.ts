/** Nexus configuration: its port plus the identity settings every program reads. */
import {
  type IdentityConfig,
  parseListenHost,
  readIdentityConfig,
} from '../shared/config/common.ts';
import { type Env, EnvReader } from '../shared/config/env.ts';

export const ENV_NEXUS_TLS_PORT = 'SPIKE_NEXUS_TLS_PORT';
export const ENV_NEXUS_TLS_HOST = 'SPIKE_NEXUS_TLS_HOST';
/** Loopback by default: set 0.0.0.0 (or an address) to serve other hosts. */
export const DEFAULT_NEXUS_TLS_HOST = '127.0.0.1';
export const DEFAULT_NEXUS_TLS_PORT = 8553;

export interface NexusConfig {
  readonly identity: IdentityConfig;
  readonly port: number;
  readonly host: string;
}

export function loadNexusConfig(env: Env): NexusConfig {
  const reader = new EnvReader(env);
  const identity = readIdentityConfig(reader);
  const port = reader.port(ENV_NEXUS_TLS_PORT, DEFAULT_NEXUS_TLS_PORT);
  const host = reader.parsed(ENV_NEXUS_TLS_HOST, DEFAULT_NEXUS_TLS_HOST, parseListenHost);
  return reader.finish({ identity, port, host: host as string });
}
