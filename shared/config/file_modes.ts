/**
 * The one check of the permissions of files and folders that hold keys,
 * secrets or the audit trail: what others may do to them. A path that grants
 * more is refused at start-up with a `ConfigError` that names the path, its
 * mode and the `chmod` that fixes it, never changed behind the operator's
 * back (a folder may be shared, such as `/tmp`). Programs create what is
 * missing owner-only; what exists must already be so.
 */
import { closeSync, fstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { ConfigError } from '../errors/errors.ts';

/** What a path's mode must not grant, and how to say so. */
export interface ModeRule {
  /** Permission bits that are refused (group and other bits). */
  readonly forbidden: number;
  /** The mode that `chmod` is told to set. */
  readonly fix: string;
  /** Ends "it must be …". */
  readonly must: string;
}

/** Keys, sockets and recovery files: nobody but the owner may do anything. */
export const OWNER_ONLY_DIRECTORY: ModeRule = Object.freeze({
  forbidden: 0o077,
  fix: '700',
  must: 'accessible by its owner only',
});

export const OWNER_ONLY_FILE: ModeRule = Object.freeze({
  forbidden: 0o077,
  fix: '600',
  must: 'readable and writable by its owner only',
});

/**
 * A data folder: others may not write to it (and so replace or remove the
 * files in it); what they may read is up to the files' own modes.
 */
export const NOT_WRITABLE_BY_OTHERS: ModeRule = Object.freeze({
  forbidden: 0o022,
  fix: '700',
  must: 'writable by its owner only',
});

/** `0755`-style text of the permission bits of a mode. */
export function formatMode(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/**
 * Why `mode` breaks `rule` for `what` at `path` (e.g. `CA key "/x/ca.key"`),
 * with the fix; undefined when it does not. `hint` ends the message (another
 * way out, such as a variable to set).
 */
export function looseModeProblem(
  what: string,
  path: string,
  mode: number,
  rule: ModeRule,
  hint?: string,
): string | undefined {
  if ((mode & rule.forbidden) === 0) {
    return undefined;
  }
  return `${what} "${path}" has mode ${formatMode(mode)}; it must be ${rule.must}. Run: chmod ${rule.fix} "${path}"${hint === undefined ? '' : `, ${hint}`}`;
}

/** Throws the `ConfigError` of `looseModeProblem`, if there is one. */
export function refuseLooseMode(
  what: string,
  path: string,
  mode: number,
  rule: ModeRule,
  hint?: string,
): void {
  const problem = looseModeProblem(what, path, mode, rule, hint);
  if (problem !== undefined) {
    throw new ConfigError([problem]);
  }
}

/**
 * Creates the folder (and its parents) owner-only when it is missing; refuses
 * an existing one that is not a folder or whose mode breaks `rule`. A link to
 * a folder is followed: the folder it names is checked.
 */
export function ensureDirectory(what: string, path: string, rule: ModeRule): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const info = statSync(path);
  if (!info.isDirectory()) {
    throw new ConfigError([`${what} "${path}" is not a folder`]);
  }
  refuseLooseMode(what, path, info.mode, rule);
}

/**
 * Opens a file for appending, created owner-only (0600) when missing, and
 * returns its descriptor. An existing regular file that others may read or
 * write is refused (checked on the opened file, so a swap between check and
 * open changes nothing); a pipe or a device is the operator's to secure.
 */
export function openPrivateFileForAppend(what: string, path: string): number {
  const fd = openSync(path, 'a', 0o600);
  try {
    const info = fstatSync(fd);
    if (info.isFile()) {
      refuseLooseMode(what, path, info.mode, OWNER_ONLY_FILE);
    }
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
