/**
 * The operator's audit key file (ADR 0027): 64 hex digits, readable by its
 * owner only, since whoever reads it can forge audit lines. Read by Nexus
 * and the Keepers at start-up, and by `spike audit verify`.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { parseAuditKey } from '../log/audit_chain.ts';
import type { EnvReader } from './env.ts';
import { looseModeProblem, OWNER_ONLY_FILE } from './file_modes.ts';

/** A key file is a line of text; anything much larger is not one. */
const MAX_KEY_FILE_BYTES = 1024;

/**
 * The key in the file at `path`. Throws an `Error` whose message is the
 * problem (a missing file, a mode that lets others read it, a content that is
 * not a key), never quoting the content.
 */
export function readAuditKeyFile(path: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new Error(`cannot be read: ${(err as { code?: string }).code ?? String(err)}`);
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile() || info.size > MAX_KEY_FILE_BYTES) {
      throw new Error(`must be a file of ${MAX_KEY_FILE_BYTES} bytes at most`);
    }
    const loose = looseModeProblem('The audit key file', path, info.mode, OWNER_ONLY_FILE);
    if (loose !== undefined) {
      throw new Error(loose);
    }
    const text = readFileSync(fd, 'utf8');
    try {
      return parseAuditKey(text);
    } catch (err) {
      throw new Error((err as Error).message);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The audit key of the file that variable `name` names (an absolute path),
 * or undefined when it is unset; a problem is recorded on the reader.
 */
export function readAuditKey(reader: EnvReader, name: string): Uint8Array | undefined {
  const path = reader.raw(name);
  if (path === undefined) {
    return undefined;
  }
  if (!path.startsWith('/')) {
    reader.problem(name, path, 'must be an absolute file path');
    return undefined;
  }
  try {
    return readAuditKeyFile(path);
  } catch (err) {
    reader.problem(name, path, (err as Error).message);
    return undefined;
  }
}
