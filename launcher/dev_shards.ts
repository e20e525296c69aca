/**
 * The development recovery file of spike-local: a break-glass recovery split
 * of the local root key, kept in the data folder so that the launcher can
 * unseal Nexus after a restart (its Keepers always start empty, since they
 * hold shards in memory only). Whoever reads this file can decrypt every
 * secret in the folder, which is why it exists only in this mode, is written
 * owner-only, and says so inside.
 */
import { chmodSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RecoverResponse } from '../shared/api/operator.ts';
import { looseModeProblem, OWNER_ONLY_FILE } from '../shared/config/file_modes.ts';

export const DEV_SHARDS_FILE = 'dev-recovery-shards.json';
export const DEV_SHARDS_WARNING =
  'development convenience of spike-local: never use this mode in production';

export interface DevShards {
  readonly trustDomain: string;
  readonly generation: number;
  readonly threshold: number;
  readonly shards: readonly string[];
}

export function devShardsPath(dataDir: string): string {
  return join(dataDir, DEV_SHARDS_FILE);
}

/** Writes the file owner-only (0600) through a temporary file and a rename. */
export function writeDevShards(
  path: string,
  split: RecoverResponse,
  options: { readonly trustDomain: string; readonly now?: Date },
): void {
  const body = {
    warning: DEV_SHARDS_WARNING,
    about:
      'Break-glass recovery shards of the root key of this local broker, kept so that spike-local can unseal Nexus after a restart. Anyone who can read this file can decrypt every secret stored in this folder.',
    savedAt: (options.now ?? new Date()).toISOString(),
    trustDomain: options.trustDomain,
    generation: split.generation,
    threshold: split.threshold,
    shards: split.shards,
  };
  const temporary = `${path}.tmp`;
  rmSync(temporary, { force: true });
  writeFileSync(temporary, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  // The umask could only have narrowed the mode; make it exact anyway.
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

/**
 * The saved split, or undefined when there is no file. A file that others may
 * read, or that is not ours, is refused with a message that says what to do.
 */
export function readDevShards(path: string): DevShards | undefined {
  let text: string;
  try {
    const problem = looseModeProblem(
      'Development shards file',
      path,
      statSync(path).mode,
      OWNER_ONLY_FILE,
    );
    if (problem !== undefined) {
      throw new Error(problem);
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not JSON`);
  }
  const value = parsed as Partial<Record<keyof DevShards, unknown>>;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof value.trustDomain !== 'string' ||
    typeof value.generation !== 'number' ||
    typeof value.threshold !== 'number' ||
    !Array.isArray(value.shards) ||
    value.shards.length === 0 ||
    !value.shards.every((shard) => typeof shard === 'string')
  ) {
    throw new Error(`${path} is not a spike-local recovery file`);
  }
  return {
    trustDomain: value.trustDomain,
    generation: value.generation,
    threshold: value.threshold,
    shards: value.shards as string[],
  };
}
