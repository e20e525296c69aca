/**
 * Writing a rendered template: atomically (a temporary file in the same
 * folder, renamed over the destination), so a reader sees the old file or
 * the new one and never part of one; with the mode asked for and never a
 * wider one at any moment (the temporary file is created with at most the
 * owner's read and write bits the final mode has, then set to that mode);
 * and not at all when the file already holds exactly this, with this mode.
 */
import { randomUUID } from 'node:crypto';
import { lstat, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Temporary files are `.<name>.spike-tmp-<random>` beside the destination. */
const TEMP_INFIX = '.spike-tmp-';

export interface WriteHooks {
  /** Runs with the temporary file's path just before the rename (tests look at it). */
  readonly beforeRename?: (tempPath: string) => Promise<void> | void;
}

/** Whether the destination is a regular file with exactly this content and mode. */
export async function isCurrent(
  destination: string,
  content: string,
  mode: number,
): Promise<boolean> {
  try {
    const stat = await lstat(destination);
    if (!stat.isFile() || (stat.mode & 0o7777) !== mode) return false;
    return (await readFile(destination, 'utf8')) === content;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Writes `content` to `destination` with `mode` unless it is there already;
 * returns whether it wrote. On failure nothing is left behind but the old
 * file, if there was one.
 */
export async function writeIfChanged(
  destination: string,
  content: string,
  mode: number,
  hooks: WriteHooks = {},
): Promise<boolean> {
  if (await isCurrent(destination, content, mode)) return false;
  const tempPath = join(
    dirname(destination),
    `.${basename(destination)}${TEMP_INFIX}${randomUUID().slice(0, 8)}`,
  );
  // Exclusive creation never follows a link someone put at this name; the
  // umask can only narrow the creation mode.
  const file = await open(tempPath, 'wx', creationMode(mode));
  try {
    try {
      await file.writeFile(content, 'utf8');
      await file.chmod(mode);
      await file.sync();
    } finally {
      await file.close();
    }
    await hooks.beforeRename?.(tempPath);
    await rename(tempPath, destination);
  } catch (err) {
    await unlink(tempPath).catch(() => undefined);
    throw err;
  }
  await syncFolder(dirname(destination));
  return true;
}

/**
 * The mode a temporary file is created with: the owner's read bit only if
 * the final mode has it, the owner's write bit (to write it), nothing for
 * group or others. It gets its final mode once its content is complete.
 */
export function creationMode(mode: number): number {
  return 0o600 & (mode | 0o200);
}

/** Makes the rename durable; a folder that cannot be opened for it is left as is. */
async function syncFolder(folder: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(folder, 'r');
    await handle.sync();
  } catch {
    // Some systems refuse fsync on a folder; the rename itself is still atomic.
  } finally {
    await handle?.close();
  }
}

/**
 * Removes temporary files an earlier run left beside `destination` when it
 * was killed between creating and renaming one; returns how many.
 */
export async function removeLeftovers(destination: string): Promise<number> {
  const prefix = `.${basename(destination)}${TEMP_INFIX}`;
  let names: string[];
  try {
    names = await readdir(dirname(destination));
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    await unlink(join(dirname(destination), name)).catch(() => undefined);
    removed += 1;
  }
  return removed;
}
