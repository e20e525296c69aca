import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { after, describe, test } from 'node:test';
import { acquireDataDirLock, LOCK_FILE } from './data_dir_lock.ts';

const root = mkdtempSync(join(tmpdir(), 'spike-lock-'));
after(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;

function folder(): string {
  folders += 1;
  return mkdtempSync(join(root, `d${folders}-`));
}

/** The PID of a process that has ended (a real one, so the number was really used). */
function deadPid(): number {
  const ended = spawnSync('true');
  assert.ok(ended.pid !== undefined && ended.pid > 0);
  return ended.pid;
}

describe('acquireDataDirLock()', () => {
  test('takes a free folder: the lock holds our PID, owner-only, and release removes it', () => {
    const dir = folder();
    const lock = acquireDataDirLock(dir);
    assert.equal(lock.path, join(dir, LOCK_FILE));
    assert.equal(lock.staleFrom, undefined);
    assert.equal(readFileSync(lock.path, 'utf8'), `${process.pid}\n`);
    assert.equal(statSync(lock.path).mode & 0o777, 0o600);
    // Nothing else is left in the folder.
    assert.deepEqual(readdirSync(dir), [LOCK_FILE]);
    lock.release();
    lock.release();
    assert.deepEqual(readdirSync(dir), []);
  });

  test('refuses a folder whose lock a running process holds, naming it, and leaves that lock', () => {
    const dir = folder();
    const holder = process.ppid;
    writeFileSync(join(dir, LOCK_FILE), `${holder}\n`);
    assert.throws(
      () => acquireDataDirLock(dir),
      new RegExp(
        `^Error: Another spike-local \\(PID ${holder}\\) is using the data folder ${dir}; stop it first, or set SPIKE_LOCAL_DATA_DIR to another folder`,
      ),
    );
    assert.equal(readFileSync(join(dir, LOCK_FILE), 'utf8'), `${holder}\n`);
    assert.deepEqual(readdirSync(dir), [LOCK_FILE]);
  });

  test('takes over a stale lock, whose process is gone', () => {
    const dir = folder();
    const dead = deadPid();
    writeFileSync(join(dir, LOCK_FILE), `${dead}\n`);
    const lock = acquireDataDirLock(dir);
    assert.equal(lock.staleFrom, dead);
    assert.equal(readFileSync(lock.path, 'utf8'), `${process.pid}\n`);
    lock.release();
  });

  test('refuses a lock that holds no PID, and never removes it', () => {
    const dir = folder();
    writeFileSync(join(dir, LOCK_FILE), 'not a pid');
    assert.throws(() => acquireDataDirLock(dir), /holds no PID/);
    assert.equal(readFileSync(join(dir, LOCK_FILE), 'utf8'), 'not a pid');
  });

  test('release leaves a lock that is no longer ours', () => {
    const dir = folder();
    const lock = acquireDataDirLock(dir);
    writeFileSync(lock.path, `${process.ppid}\n`);
    lock.release();
    assert.equal(readFileSync(lock.path, 'utf8'), `${process.ppid}\n`);
  });
});
