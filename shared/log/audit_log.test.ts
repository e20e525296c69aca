import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type AuditEvent, type AuditWriteResult, createFdAuditSink } from './audit_log.ts';

const dir = mkdtempSync(join(tmpdir(), 'spike-audit-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function scratchFile(): { path: string; fd: number } {
  files += 1;
  const path = join(dir, `audit-${files}.jsonl`);
  return { path, fd: openSync(path, 'a', 0o600) };
}

function event(resource: string): AuditEvent {
  return {
    ts: '2026-01-02T03:04:05.000Z',
    trailId: `trail-${resource}`,
    component: 'nexus',
    peer: 'spiffe://example.org/apps/web',
    method: 'GET',
    route: '/v1/secrets/data/:path{.+}',
    action: 'secret.read',
    resource,
    decision: { reason: 'policy', policy: 'web-reads-db' },
    outcome: 'allowed',
    status: 200,
    errorCode: null,
    durationMs: 1,
  };
}

function resourcesIn(path: string): (string | null)[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (JSON.parse(line) as AuditEvent).resource);
}

/** write(2) that records each call's size and then really writes. */
function countingWrite(): {
  calls: number[];
  writeSync: (fd: number, bytes: Uint8Array) => number;
} {
  const calls: number[] = [];
  return {
    calls,
    writeSync(fd, bytes) {
      calls.push(bytes.length);
      return writeSync(fd, bytes);
    },
  };
}

function failure(code: string): Error {
  return Object.assign(new Error(`${code}: failed, write`), { code });
}

describe('createFdAuditSink()', () => {
  test('writes the events of one turn with one write, in order, one JSON line each', async () => {
    const { path, fd } = scratchFile();
    const { calls, writeSync } = countingWrite();
    const sink = createFdAuditSink(fd, { writeSync });
    const results = ['a', 'b', 'c', 'd', 'e'].map((name) => sink.write(event(name)));
    // Nothing is written before the turn ends.
    assert.deepEqual(calls, []);
    assert.deepEqual(await Promise.all(results), Array(5).fill({ written: true }));
    assert.equal(calls.length, 1);
    assert.deepEqual(resourcesIn(path), ['a', 'b', 'c', 'd', 'e']);
    sink.close();
  });

  test('events of different turns are different writes', async () => {
    const { path, fd } = scratchFile();
    const { calls, writeSync } = countingWrite();
    const sink = createFdAuditSink(fd, { writeSync });
    await sink.write(event('a'));
    await sink.write(event('b'));
    assert.equal(calls.length, 2);
    assert.deepEqual(resourcesIn(path), ['a', 'b']);
    sink.close();
  });

  test('a batch that reaches its size is written at once, and the order stays', async () => {
    const { path, fd } = scratchFile();
    const { calls, writeSync } = countingWrite();
    const line = `${JSON.stringify(event('a'))}\n`.length;
    // Room for two events, so the second of each pair fills the batch.
    const sink = createFdAuditSink(fd, { writeSync, maxBatchBytes: line * 2 });
    const results = ['a', 'b', 'c', 'd', 'e'].map((name) => sink.write(event(name)));
    // Written within write(), before the turn ends.
    assert.deepEqual(calls, [line * 2, line * 2]);
    await Promise.all(results);
    assert.deepEqual(calls, [line * 2, line * 2, line]);
    assert.deepEqual(resourcesIn(path), ['a', 'b', 'c', 'd', 'e']);
    sink.close();
  });

  test('close() writes what is pending, closes the file, and refuses later events', async () => {
    const { path, fd } = scratchFile();
    const sink = createFdAuditSink(fd);
    const pending = sink.write(event('a'));
    sink.close();
    assert.deepEqual(resourcesIn(path), ['a']);
    assert.deepEqual(await pending, { written: true });
    assert.throws(() => writeSync(fd, 'x'), { code: 'EBADF' });
    const late = await sink.write(event('b'));
    assert.equal(late.written, false);
    assert.deepEqual(resourcesIn(path), ['a']);
  });

  test('a write that takes only part of the batch is continued where it stopped', async () => {
    const { path, fd } = scratchFile();
    const sink = createFdAuditSink(fd, {
      writeSync: (target, bytes) => writeSync(target, bytes.subarray(0, 7)),
    });
    await Promise.all(['a', 'b', 'c'].map((name) => sink.write(event(name))));
    assert.deepEqual(resourcesIn(path), ['a', 'b', 'c']);
    sink.close();
  });

  test('a full pipe (EAGAIN) is waited for, not a failure', async () => {
    const { path, fd } = scratchFile();
    let busy = 2;
    const errors: Error[] = [];
    const sink = createFdAuditSink(fd, {
      onError: (error) => errors.push(error),
      writeSync(target, bytes) {
        if (busy > 0) {
          busy -= 1;
          throw failure('EAGAIN');
        }
        return writeSync(target, bytes);
      },
    });
    assert.deepEqual(await sink.write(event('a')), { written: true });
    assert.deepEqual(resourcesIn(path), ['a']);
    assert.deepEqual(errors, []);
    sink.close();
  });

  test('a failed write is reported once to onError and to every event of its batch', async () => {
    const errors: Error[] = [];
    // A descriptor open only for reading fails every write with EBADF.
    const sink = createFdAuditSink(openSync(scratchFile().path, 'r'), {
      onError: (error) => errors.push(error),
    });
    const results = await Promise.all([sink.write(event('a')), sink.write(event('b'))]);
    for (const result of results) {
      assert.equal(result.written, false);
      assert.equal((result as { error: { code?: string } }).error.code, 'EBADF');
    }
    assert.equal(errors.length, 1);
    // Still failing: the next write fails too, and is not reported again.
    assert.equal((await sink.write(event('c'))).written, false);
    assert.equal(errors.length, 1);
    sink.close();
  });

  test('the events of a failed write are written first by the next write, none lost or reordered', async () => {
    const { path, fd } = scratchFile();
    // The first write(2) takes 5 bytes, the second fails: part of the batch
    // is in the file, the rest must follow it.
    const outcomes = ['short', 'fail'];
    const sink = createFdAuditSink(fd, {
      onError: () => {},
      writeSync(target, bytes) {
        const outcome = outcomes.shift();
        if (outcome === 'short') return writeSync(target, bytes.subarray(0, 5));
        if (outcome === 'fail') throw failure('EIO');
        return writeSync(target, bytes);
      },
    });
    const failed = await Promise.all([sink.write(event('a')), sink.write(event('b'))]);
    assert.deepEqual(
      failed.map((result) => result.written),
      [false, false],
    );
    assert.deepEqual(await sink.write(event('c')), { written: true });
    assert.deepEqual(resourcesIn(path), ['a', 'b', 'c']);
    sink.close();
  });

  test('a closed pipe (EPIPE) fails the write instead of dropping the events', async () => {
    // pino's destination turned itself into a no-op on EPIPE, so every later
    // request was answered as if audited.
    const fifo = join(dir, 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifo, constants.O_WRONLY);
    closeSync(reader);
    const sink = createFdAuditSink(writer, { onError: () => {} });
    const results: AuditWriteResult[] = [
      await sink.write(event('a')),
      await sink.write(event('b')),
    ];
    for (const result of results) {
      assert.equal(result.written, false);
      assert.equal((result as { error: { code?: string } }).error.code, 'EPIPE');
    }
    sink.close();
  });
});
