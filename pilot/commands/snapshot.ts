/**
 * `spike operator snapshot save|verify|restore` (docs/backup.md): loaded
 * only when one of them runs (`operator.ts` imports this file on demand).
 *
 * Every file is checked with the snapshot reader of the wire contract
 * (header, length, SHA-256) before it is written (save), reported (verify)
 * or sent (restore): a damaged download never lands under the name asked
 * for, and a damaged file is never uploaded. A saved file is created 0600
 * and never replaces an existing one.
 */
import { createHash } from 'node:crypto';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import {
  MAX_SNAPSHOT_FILE_BYTES,
  type Sha256,
  type SnapshotHeader,
  SnapshotReader,
  type SnapshotRestoreResponse,
} from '../../shared/api/snapshot.ts';
import { InvalidRequestError, SnapshotCorruptError } from '../../shared/errors/errors.ts';
import { type CommandContext, confirm } from './_context.ts';

const FILE_MODE = 0o600;

/** The header of a checked snapshot file, and where it is. */
export interface SnapshotFileInfo extends SnapshotHeader {
  readonly file: string;
}

/** Checks a whole snapshot file in memory; returns its header or throws `SnapshotCorruptError`. */
export function checkSnapshot(bytes: Uint8Array): SnapshotHeader {
  const hash = createHash('sha256');
  const sha256: Sha256 = {
    update: (chunk) => {
      hash.update(chunk);
    },
    digestHex: () => hash.digest('hex'),
  };
  const reader = new SnapshotReader(sha256);
  reader.push(bytes);
  return reader.finish();
}

/** Saves a snapshot of Nexus's database into a new file (0600). */
export async function saveSnapshot(
  context: CommandContext,
  file: string,
): Promise<SnapshotFileInfo> {
  if (await exists(file)) {
    throw new InvalidRequestError(`"${file}" exists: a snapshot never replaces a file`);
  }
  const client = await context.client();
  const bytes = await client.saveSnapshot();
  const header = checkSnapshot(bytes);
  try {
    await writeFile(file, bytes, { mode: FILE_MODE, flag: 'wx' });
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EEXIST') await rm(file, { force: true });
    throw err;
  }
  return { file, ...header };
}

/** Reads and checks a snapshot file. */
export async function verifySnapshot(file: string): Promise<SnapshotFileInfo> {
  return { file, ...checkSnapshot(await readSnapshotFile(file)) };
}

/** Checks a snapshot file, asks, and restores it into Nexus. */
export async function restoreSnapshot(
  context: CommandContext,
  file: string,
  options: { readonly force?: boolean; readonly yes?: boolean },
): Promise<SnapshotRestoreResponse> {
  const bytes = await readSnapshotFile(file);
  const header = checkSnapshot(bytes);
  await confirm(
    context,
    `Replace every secret and policy of Nexus with the snapshot of ${header.createdAt}?`,
    { yes: options.yes },
  );
  const client = await context.client();
  return client.restoreSnapshot(bytes, { force: options.force === true });
}

async function readSnapshotFile(file: string): Promise<Uint8Array> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    throw new InvalidRequestError(`Cannot read the snapshot file "${file}"`);
  }
  if (size > MAX_SNAPSHOT_FILE_BYTES) {
    throw new SnapshotCorruptError(
      `"${file}" has ${size} bytes, more than a snapshot may (${MAX_SNAPSHOT_FILE_BYTES})`,
    );
  }
  return new Uint8Array(await readFile(file));
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
