import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import process from 'node:process';
import { describe, test } from 'node:test';
import { isProcessAlive, processId } from './pid.ts';

describe('isProcessAlive()', () => {
  test('is true for this process and its parent', () => {
    assert.equal(processId(), process.pid);
    assert.equal(isProcessAlive(processId()), true);
    assert.equal(isProcessAlive(process.ppid), true);
  });

  test('is false for a process that has ended', () => {
    const ended = spawnSync('true');
    assert.ok(ended.pid !== undefined && ended.pid > 0);
    assert.equal(isProcessAlive(ended.pid), false);
  });

  test('refuses a PID that is not a positive integer', () => {
    for (const pid of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => isProcessAlive(pid), RangeError);
    }
  });
});
