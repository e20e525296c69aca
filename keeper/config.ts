/** Keeper configuration: its port plus the identity settings every program reads. */
import { type IdentityConfig, readIdentityConfig } from '../shared/config/common.ts';
import { type Env, EnvReader } from '../shared/config/env.ts';

export const ENV_KEEPER_TLS_PORT = 'SPIKE_KEEPER_TLS_PORT';
export const DEFAULT_KEEPER_TLS_PORT = 8443;

export interface KeeperConfig {
  readonly identity: IdentityConfig;
  readonly port: number;
}

export function loadKeeperConfig(env: Env): KeeperConfig {
  const reader = new EnvReader(env);
  const identity = readIdentityConfig(reader);
  const port = reader.port(ENV_KEEPER_TLS_PORT, DEFAULT_KEEPER_TLS_PORT);
  return reader.finish({ identity, port });
}
