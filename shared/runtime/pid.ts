/**
 * Process IDs: ours, and whether another one is running, for lock files that
 * hold a PID (spike-local's data folder lock).
 */
import process from 'node:process';

/** This process's ID. */
export function processId(): number {
  return process.pid;
}

/**
 * Whether a process with this ID exists, by sending it signal 0 (which only
 * checks). `EPERM` means it exists under another user. On Deno this needs
 * `--allow-run`. The ID may have been reused by an unrelated process since.
 */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new RangeError(`isProcessAlive() takes a positive process ID, got ${pid}`);
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    const { code } = err as { code?: unknown };
    if (code === 'ESRCH') return false;
    if (code === 'EPERM') return true;
    throw err;
  }
}
