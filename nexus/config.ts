/** Nexus configuration: where it listens, plus the identity settings every program reads. */
import {
  type IdentityConfig,
  type ListenConfig,
  readIdentityConfig,
  readListenConfig,
} from '../shared/config/common.ts';
import { type Env, EnvReader } from '../shared/config/env.ts';

export const ENV_NEXUS_TLS_HOST = 'SPIKE_NEXUS_TLS_HOST';
export const ENV_NEXUS_TLS_PORT = 'SPIKE_NEXUS_TLS_PORT';
export const DEFAULT_NEXUS_TLS_PORT = 8553;

export interface NexusConfig {
  readonly identity: IdentityConfig;
  readonly listen: ListenConfig;
}

export function loadNexusConfig(env: Env): NexusConfig {
  const reader = new EnvReader(env);
  const identity = readIdentityConfig(reader);
  const listen = readListenConfig(
    reader,
    { host: ENV_NEXUS_TLS_HOST, port: ENV_NEXUS_TLS_PORT },
    DEFAULT_NEXUS_TLS_PORT,
  );
  return reader.finish({ identity, listen });
}
