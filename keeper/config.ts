/**
 * Keeper configuration: where it listens, where its audit trail goes, plus
 * the identity settings every program reads.
 */
import { isAbsolute } from 'node:path';
import { readAuditKey } from '../shared/config/audit_key_file.ts';
import {
  type IdentityConfig,
  type ListenConfig,
  readIdentityConfig,
  readListenConfig,
  readOpsAddress,
} from '../shared/config/common.ts';
import { type Env, EnvReader } from '../shared/config/env.ts';

export const ENV_KEEPER_TLS_HOST = 'SPIKE_KEEPER_TLS_HOST';
export const ENV_KEEPER_TLS_PORT = 'SPIKE_KEEPER_TLS_PORT';
export const ENV_KEEPER_AUDIT_LOG = 'SPIKE_KEEPER_AUDIT_LOG';
export const ENV_KEEPER_OPS_ADDR = 'SPIKE_KEEPER_OPS_ADDR';
export const ENV_KEEPER_AUDIT_KEY_FILE = 'SPIKE_KEEPER_AUDIT_KEY_FILE';
export const DEFAULT_KEEPER_TLS_PORT = 8443;

export interface KeeperConfig {
  readonly identity: IdentityConfig;
  readonly listen: ListenConfig;
  /** `-` for stdout, or an absolute file path (as `SPIKE_NEXUS_AUDIT_LOG`). */
  readonly auditLog: string;
  /** The operations listener (probes, metrics; plain HTTP), or undefined when off. */
  readonly opsAddress: ListenConfig | undefined;
  /** The key the audit trail is chained under (ADR 0027); undefined when no key file is set. */
  readonly auditKey: Uint8Array | undefined;
}

export function loadKeeperConfig(env: Env): KeeperConfig {
  const reader = new EnvReader(env);
  const identity = readIdentityConfig(reader);
  const listen = readListenConfig(
    reader,
    { host: ENV_KEEPER_TLS_HOST, port: ENV_KEEPER_TLS_PORT },
    DEFAULT_KEEPER_TLS_PORT,
  );
  const auditLog = reader.str(ENV_KEEPER_AUDIT_LOG, '-');
  if (auditLog !== '-' && !isAbsolute(auditLog)) {
    reader.problem(ENV_KEEPER_AUDIT_LOG, auditLog, 'must be "-" (stdout) or an absolute file path');
  }
  const opsAddress = readOpsAddress(reader, ENV_KEEPER_OPS_ADDR);
  const auditKey = readAuditKey(reader, ENV_KEEPER_AUDIT_KEY_FILE);
  return reader.finish({ identity, listen, auditLog, opsAddress, auditKey });
}
