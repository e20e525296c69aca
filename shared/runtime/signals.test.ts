import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import process from 'node:process';
import { describe, test } from 'node:test';
import { exitStatusOfSignal, isSignalName, onSignals, sendSignal } from './signals.ts';

describe('signals', () => {
  test('onSignals() catches a signal until it is undone', async () => {
    const seen: string[] = [];
    let arrived: () => void = () => {};
    const caught = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const undo = onSignals(['SIGUSR2'], (name) => {
      seen.push(name);
      arrived();
    });
    // A signal listener alone does not keep the event loop alive.
    const keepAlive = setInterval(() => {}, 1_000);
    try {
      assert.equal(sendSignal(process.pid, 'SIGUSR2'), true);
      await caught;
    } finally {
      clearInterval(keepAlive);
      undo();
    }
    assert.deepEqual(seen, ['SIGUSR2']);
    assert.equal(process.listenerCount('SIGUSR2'), 0);
  });

  test('sendSignal() is false for a process that has ended, and refuses a bad ID', () => {
    const ended = spawnSync('true');
    assert.equal(sendSignal(ended.pid as number, 'SIGTERM'), false);
    for (const pid of [0, -1, 1.5]) assert.throws(() => sendSignal(pid, 'SIGTERM'), RangeError);
  });

  test('a signal ends a process with the status a shell gives it: 128 + its number', () => {
    assert.equal(exitStatusOfSignal('SIGTERM'), 143);
    assert.equal(exitStatusOfSignal('SIGKILL'), 137);
    assert.equal(exitStatusOfSignal('SIGINT'), 130);
  });

  test('isSignalName() knows the system signals and nothing else', () => {
    assert.equal(isSignalName('SIGHUP'), true);
    assert.equal(isSignalName('SIGUSR1'), true);
    for (const name of ['HUP', 'sighup', 'SIGNOPE', 'toString', '']) {
      assert.equal(isSignalName(name), false, name);
    }
  });
});
