/**
 * The lock of a spike-local data folder: the file `spike-local.lock` in it,
 * holding the PID of the launcher that runs on the folder. A second
 * spike-local on the same folder finds it and refuses at once, before it
 * starts anything, instead of taking the first one's sockets and fighting
 * over its ports and its database.
 *
 * The lock appears with the PID already in it: the PID is written to a file
 * of our own, which is then hard-linked to the lock's name, and a link, like
 * an `O_EXCL` create, fails when the name exists. So no launcher ever reads
 * a lock that is still empty.
 *
 * A lock whose PID names no running process (checked with signal 0) is
 * stale, left by a launcher that was killed (SIGKILL, a crash, a power cut),
 * and is taken over. Two limits, both on the side of refusing: a PID that an
 * unrelated process has reused since makes the lock look held (the message
 * names the PID and the file, which can then be removed by hand), and a lock
 * that holds no PID is never taken over. Two launchers that find the same
 * stale lock at the same instant can both take it over (the window is one
 * unlink and one link); a lock held by a live launcher is never taken.
 */
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isProcessAlive, processId } from '../shared/runtime/pid.ts';
import { ENV_LOCAL_DATA_DIR } from './config.ts';

export const LOCK_FILE = 'spike-local.lock';
/** A stale lock can only be taken over again by a third launcher in between; give up then. */
const MAX_ATTEMPTS = 3;

export interface DataDirLock {
  readonly path: string;
  /** Removes the lock, if it is still ours; safe to call more than once. */
  release(): void;
}

export interface AcquiredLock extends DataDirLock {
  /** The PID of the dead launcher whose lock was taken over, if there was one. */
  readonly staleFrom: number | undefined;
}

/** Takes the lock of `dataDir` (which must exist), or throws saying who holds it. */
export function acquireDataDirLock(dataDir: string): AcquiredLock {
  const path = join(dataDir, LOCK_FILE);
  const pid = processId();
  const own = `${path}.${pid}`;
  writeFileSync(own, `${pid}\n`, { mode: 0o600 });
  let staleFrom: number | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        linkSync(own, path);
        return { path, staleFrom, release: () => releaseIfOurs(path, pid) };
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'EEXIST' || attempt >= MAX_ATTEMPTS) throw err;
      }
      const holder = readHolder(path);
      if (holder === undefined) continue; // Removed in between: try again.
      if (holder === 'unreadable') {
        throw new Error(
          `The lock file ${path} holds no PID: if no spike-local uses ${dataDir}, remove the file; or set ${ENV_LOCAL_DATA_DIR} to another folder`,
        );
      }
      if (isProcessAlive(holder)) {
        throw new Error(
          `Another spike-local (PID ${holder}) is using the data folder ${dataDir}; stop it first, or set ${ENV_LOCAL_DATA_DIR} to another folder (lock file ${path})`,
        );
      }
      staleFrom = holder;
      rmSync(path, { force: true });
    }
  } finally {
    rmSync(own, { force: true });
  }
}

/** The PID in the lock file; undefined when there is no file. */
function readHolder(path: string): number | 'unreadable' | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  }
  const match = /^(\d{1,10})\n?$/.exec(text);
  const pid = match === null ? Number.NaN : Number(match[1]);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : 'unreadable';
}

function releaseIfOurs(path: string, pid: number): void {
  if (readHolder(path) === pid) rmSync(path, { force: true });
}
