/** Pilot configuration: the identity settings every program reads. */
import { type IdentityConfig, readIdentityConfig } from '../shared/config/common.ts';
import { type Env, EnvReader } from '../shared/config/env.ts';

export interface PilotConfig {
  readonly identity: IdentityConfig;
}

export function loadPilotConfig(env: Env): PilotConfig {
  const reader = new EnvReader(env);
  const identity = readIdentityConfig(reader);
  return reader.finish({ identity });
}
