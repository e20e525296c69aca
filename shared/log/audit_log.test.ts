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
import { parseChainedLine } from './audit_chain.ts';
import { type AuditEvent, type AuditWriteResult, createFdAuditSink } from './audit_log.ts';
import { verifyAuditFiles } from './audit_verify.ts';

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

/** The sink options every test shares: no checkpoints by the clock. */
const BASE = { component: 'nexus', checkpointIntervalMs: 0 } as const;

function linesIn(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The resources of the events in the file, without the chain's own lines. */
function resourcesIn(path: string): (string | null)[] {
  return linesIn(path)
    .filter((line) => !String(line.action).startsWith('audit.'))
    .map((line) => (line as unknown as AuditEvent).resource);
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
    const sink = createFdAuditSink(fd, {
      ...BASE,
      writeSync,
    });
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
    const sink = createFdAuditSink(fd, {
      ...BASE,
      writeSync,
    });
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
    // Room for about two events, so every second one fills the batch.
    const sink = createFdAuditSink(fd, { ...BASE, writeSync, maxBatchBytes: line * 2 });
    const results = ['a', 'b', 'c', 'd', 'e'].map((name) => sink.write(event(name)));
    // Written within write(), before the turn ends.
    const before = calls.length;
    assert.ok(before >= 2, `${before} writes before the turn ended`);
    await Promise.all(results);
    // The end of the turn writes what is left, if anything.
    assert.ok(calls.length <= before + 1);
    assert.deepEqual(resourcesIn(path), ['a', 'b', 'c', 'd', 'e']);
    sink.close();
  });

  test('close() writes what is pending, closes the file, and refuses later events', async () => {
    const { path, fd } = scratchFile();
    const sink = createFdAuditSink(fd, BASE);
    const pending = sink.write(event('a'));
    sink.close();
    assert.deepEqual(resourcesIn(path), ['a']);
    assert.deepEqual(
      linesIn(path).map((line) => line.action),
      ['audit.open', 'secret.read', 'audit.close'],
    );
    assert.deepEqual(await pending, { written: true });
    assert.throws(() => writeSync(fd, 'x'), { code: 'EBADF' });
    const late = await sink.write(event('b'));
    assert.equal(late.written, false);
    assert.deepEqual(resourcesIn(path), ['a']);
  });

  test('a write that takes only part of the batch is continued where it stopped', async () => {
    const { path, fd } = scratchFile();
    const sink = createFdAuditSink(fd, {
      ...BASE,
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
      ...BASE,
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
      ...BASE,
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

  test('tells onBatch how many events each batch held and whether they were written', async () => {
    let failing = false;
    const batches: Array<[number, boolean]> = [];
    const sink = createFdAuditSink(99, {
      ...BASE,
      writeSync: (_fd, bytes) => {
        if (failing) throw Object.assign(new Error('no space left'), { code: 'ENOSPC' });
        return bytes.length;
      },
      onBatch: (events, written) => batches.push([events, written]),
    });
    await Promise.all([sink.write(event('a')), sink.write(event('b'))]);
    failing = true;
    await sink.write(event('c'));
    failing = false;
    await sink.write(event('d'));
    // The chain's own lines (open, checkpoints) are not events.
    assert.deepEqual(batches, [
      [2, true],
      [1, false],
      [1, true],
    ]);
  });

  test('the events of a failed write are written first by the next write, none lost or reordered', async () => {
    const { path, fd } = scratchFile();
    // The first write(2) takes 5 bytes, the second fails: part of the batch
    // is in the file, the rest must follow it.
    const outcomes = ['short', 'fail'];
    const sink = createFdAuditSink(fd, {
      ...BASE,
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
    const sink = createFdAuditSink(writer, {
      ...BASE,
      onError: () => {},
    });
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

  test('every line carries its seq and a MAC; checkpoints count the lines; the file verifies', async () => {
    const { path, fd } = scratchFile();
    const key = new Uint8Array(32).fill(3);
    const sink = createFdAuditSink(fd, { ...BASE, key, checkpointLines: 3 });
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((name) => sink.write(event(name))));
    sink.close();
    const raw = readFileSync(path, 'utf8').split('\n').slice(0, -1);
    const parsed = raw.map((line) => parseChainedLine(line));
    assert.deepEqual(
      parsed.map((line) => [line?.seq, line?.fields.action, line?.fields.count]),
      [
        [0, 'audit.open', undefined],
        [1, 'secret.read', undefined],
        [2, 'secret.read', undefined],
        [3, 'audit.checkpoint', 3],
        [4, 'secret.read', undefined],
        [5, 'secret.read', undefined],
        [6, 'audit.checkpoint', 6],
        [7, 'secret.read', undefined],
        [8, 'audit.close', 8],
      ],
    );
    // The open line names the key by its id, never the key.
    assert.match(String(parsed[0]?.fields.key), /^[A-Za-z0-9_-]{11}$/);
    assert.ok(!readFileSync(path, 'utf8').includes(Buffer.from(key).toString('hex')));
    assert.equal(verifyAuditFiles([path], { key }).intact, true);
  });

  test('the clock writes checkpoints, also when nothing else is written', async () => {
    const { path, fd } = scratchFile();
    const sink = createFdAuditSink(fd, { ...BASE, checkpointIntervalMs: 5 });
    const deadline = Date.now() + 10_000;
    while (linesIn(path).filter((line) => line.action === 'audit.checkpoint').length < 2) {
      assert.ok(Date.now() < deadline, 'no two checkpoints within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    sink.close();
    assert.equal(verifyAuditFiles([path]).intact, true);
  });

  test('while writes fail the queue is bounded: later events are dropped, counted, and the count is chained in', async () => {
    const { path, fd } = scratchFile();
    let broken = true;
    const errors: Error[] = [];
    const line = `${JSON.stringify(event('x'))}\n`.length + 82;
    const sink = createFdAuditSink(fd, {
      ...BASE,
      maxQueuedBytes: line * 4,
      onError: (error) => errors.push(error),
      writeSync(target, bytes) {
        if (broken) throw failure('ENOSPC');
        return writeSync(target, bytes);
      },
    });
    const names = Array.from({ length: 12 }, (_, i) => `e${i}`);
    for (const name of names) {
      // One turn each, as requests while the disk is full.
      assert.equal((await sink.write(event(name))).written, false);
    }
    assert.equal(errors.length, 1);
    assert.equal(sink.writable(), false);
    broken = false;
    // The first request after the disk recovered finds the sink writable.
    assert.equal(sink.writable(), true);
    assert.deepEqual(await sink.write(event('after')), { written: true });
    sink.close();
    const kept = resourcesIn(path);
    const dropped = linesIn(path).find((entry) => entry.action === 'audit.dropped');
    assert.ok(dropped !== undefined, 'no audit.dropped line');
    assert.equal(kept.at(-1), 'after');
    // Every event is either in the file or counted, and those kept come first, in order.
    assert.equal(kept.length - 1 + Number(dropped.count), names.length);
    assert.deepEqual(kept.slice(0, -1), names.slice(0, kept.length - 1));
    assert.ok(kept.length - 1 < names.length, 'nothing was dropped');
    const report = verifyAuditFiles([path]);
    assert.equal(report.intact, true, report.problem?.message);
    assert.match(report.notes.join('\n'), new RegExp(`${dropped.count} events were dropped`));
  });
});
