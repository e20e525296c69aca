/**
 * Pilot configuration: the identity settings every program reads, where
 * Nexus is, and where break-glass recovery shards are written.
 */
import { isAbsolute, join } from 'node:path';
import { DEFAULT_NEXUS_URL } from '../shared/api/nexus_address.ts';
import { type IdentityConfig, readIdentityConfig } from '../shared/config/common.ts';
import { type Env, EnvReader } from '../shared/config/env.ts';

export const ENV_NEXUS_API_URL = 'SPIKE_NEXUS_API_URL';
export const ENV_PILOT_RECOVERY_DIR = 'SPIKE_PILOT_RECOVERY_DIR';
export const ENV_PILOT_TIMEOUT = 'SPIKE_PILOT_TIMEOUT';

export const DEFAULT_PILOT_TIMEOUT_MS = 30_000;

export interface PilotConfig {
  readonly identity: IdentityConfig;
  /** Nexus's base URL: `https:`, no credentials, path, query or fragment. */
  readonly nexusUrl: URL;
  /** Where `spike operator recover` writes shard files unless `--dir` is given. */
  readonly recoveryDir: string;
  /** The whole wait of one run: our SVID, every connection and request to Nexus. */
  readonly timeoutMs: number;
}

export function loadPilotConfig(env: Env): PilotConfig {
  const reader = new EnvReader(env);
  const identity = readIdentityConfig(reader);
  const nexusUrl = reader.parsed(ENV_NEXUS_API_URL, DEFAULT_NEXUS_URL, parseNexusUrl);
  const home = reader.raw('HOME') ?? '/tmp';
  const recoveryDir = reader.parsed(
    ENV_PILOT_RECOVERY_DIR,
    join(home, '.spike', 'recover'),
    parseAbsolutePath,
  );
  const timeoutMs = reader.durationMs(ENV_PILOT_TIMEOUT, DEFAULT_PILOT_TIMEOUT_MS, { min: 1 });
  // When a value was bad, `finish()` throws before the placeholders are used.
  return reader.finish({
    identity,
    nexusUrl: nexusUrl as URL,
    recoveryDir: recoveryDir as string,
    timeoutMs,
  });
}

/** An `https:` URL of Nexus's origin (a trailing `/` is allowed). */
export function parseNexusUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`must be a URL such as ${DEFAULT_NEXUS_URL}`);
  }
  if (url.protocol !== 'https:') {
    throw new Error('must be an https: URL (Nexus speaks only mTLS)');
  }
  if (url.username !== '' || url.password !== '') {
    throw new Error('must not carry credentials (Pilot authenticates with its SVID)');
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw new Error('must be an origin only, without path, query or fragment');
  }
  return url;
}

function parseAbsolutePath(value: string): string {
  if (!isAbsolute(value)) {
    throw new Error('must be an absolute path');
  }
  return value;
}
