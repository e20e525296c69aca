/** Keeper configuration: where it listens, plus the identity settings every program reads. */
import {
  type IdentityConfig,
  type ListenConfig,
  readIdentityConfig,
  readListenConfig,
} from '../shared/config/common.ts';
import { type Env, EnvReader } from '../shared/config/env.ts';

export const ENV_KEEPER_TLS_HOST = 'SPIKE_KEEPER_TLS_HOST';
export const ENV_KEEPER_TLS_PORT = 'SPIKE_KEEPER_TLS_PORT';
export const DEFAULT_KEEPER_TLS_PORT = 8443;

export interface KeeperConfig {
  readonly identity: IdentityConfig;
  readonly listen: ListenConfig;
}

export function loadKeeperConfig(env: Env): KeeperConfig {
  const reader = new EnvReader(env);
  const identity = readIdentityConfig(reader);
  const listen = readListenConfig(
    reader,
    { host: ENV_KEEPER_TLS_HOST, port: ENV_KEEPER_TLS_PORT },
    DEFAULT_KEEPER_TLS_PORT,
  );
  return reader.finish({ identity, listen });
}
