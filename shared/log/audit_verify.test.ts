import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { readFileEnd } from './audit_chain.ts';
import { type AuditEvent, type AuditSink, createFdAuditSink } from './audit_log.ts';
import { type AuditReport, type VerifyOptions, verifyAuditFiles } from './audit_verify.ts';

const dir = mkdtempSync(join(tmpdir(), 'spike-audit-verify-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const KEY = new Uint8Array(32).fill(7);
const OTHER_KEY = new Uint8Array(32).fill(9);
const T0 = Date.parse('2026-03-04T05:06:07.000Z');

let files = 0;
function scratch(): string {
  files += 1;
  return join(dir, `audit-${files}.jsonl`);
}

function event(n: number): AuditEvent {
  return {
    ts: new Date(T0 + n).toISOString(),
    trailId: `trail-${n}`,
    component: 'nexus',
    peer: 'spiffe://example.org/apps/web',
    method: 'GET',
    route: '/v1/secrets/data/:path{.+}',
    action: 'secret.read',
    resource: `app/${n}`,
    decision: { reason: 'policy', policy: 'web' },
    outcome: 'allowed',
    status: 200,
    errorCode: null,
    durationMs: 1,
  };
}

/** A segment of a real sink appended to `path`, as a program's start does. */
function openSegment(path: string, key: Uint8Array | null = KEY, now = () => T0): AuditSink {
  const fileEnd = readFileEnd(path);
  return createFdAuditSink(openSync(path, 'a', 0o600), {
    component: 'nexus',
    ...(key === null ? {} : { key }),
    fileEnd,
    checkpointLines: 4,
    checkpointIntervalMs: 0,
    now,
  });
}

async function writeEvents(sink: AuditSink, from: number, count: number): Promise<void> {
  for (let n = from; n < from + count; n++) {
    // One turn each, as requests of different turns.
    assert.deepEqual(await sink.write(event(n)), { written: true });
  }
}

/**
 * Two segments: the first closed after 6 events, the second after 5 more;
 * each has checkpoints every 4 lines.
 */
async function twoSegments(key: Uint8Array | null = KEY): Promise<string> {
  const path = scratch();
  const first = openSegment(path, key);
  await writeEvents(first, 0, 6);
  first.close();
  const second = openSegment(path, key);
  await writeEvents(second, 6, 5);
  second.close();
  return path;
}

function lines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').slice(0, -1);
}

function actions(path: string): string[] {
  return lines(path).map((line) => String((JSON.parse(line) as { action: string }).action));
}

/** The 1-based number of the `index`-th (0-based) line with `action`. */
function lineOf(path: string, action: string, index = 0): number {
  const all = actions(path);
  let seen = -1;
  for (let i = 0; i < all.length; i++) {
    if (all[i] === action) {
      seen += 1;
      if (seen === index) return i + 1;
    }
  }
  throw new Error(`no ${action} #${index}`);
}

function rewrite(path: string, change: (lines: string[]) => string[]): string {
  const copy = scratch();
  writeFileSync(copy, `${change(lines(path)).join('\n')}\n`);
  return copy;
}

function verify(path: string, options: VerifyOptions = { key: KEY }): AuditReport {
  return verifyAuditFiles([path], options);
}

function assertProblem(report: AuditReport, kind: string, line: number): void {
  assert.equal(report.intact, false, JSON.stringify(report));
  assert.equal(report.problem?.kind, kind, report.problem?.message);
  assert.equal(report.problem?.line, line, report.problem?.message);
}

describe('verifyAuditFiles()', () => {
  test('an untouched log of two segments is intact', async () => {
    const path = await twoSegments();
    assert.deepEqual(actions(path), [
      'audit.open',
      'secret.read',
      'secret.read',
      'secret.read',
      'audit.checkpoint',
      'secret.read',
      'secret.read',
      'secret.read',
      'audit.checkpoint',
      'audit.close',
      'audit.open',
      'secret.read',
      'secret.read',
      'secret.read',
      'audit.checkpoint',
      'secret.read',
      'secret.read',
      'audit.close',
    ]);
    const report = verify(path);
    assert.equal(report.problem, null);
    assert.equal(report.intact, true);
    assert.equal(report.lines, 18);
    assert.equal(report.events, 11);
    assert.deepEqual(
      report.segments.map((segment) => [segment.line, segment.lines, segment.end]),
      [
        [1, 10, 'closed'],
        [11, 8, 'closed'],
      ],
    );
    assert.deepEqual(report.notes, []);
  });

  test('one byte changed in an event is an edit of that line', async () => {
    const path = await twoSegments();
    const edited = rewrite(path, (all) =>
      all.map((line, i) => (i === 5 ? line.replace('"app/3"', '"app/5"') : line)),
    );
    assertProblem(verify(edited), 'edited', 6);
  });

  test('one byte changed anywhere in a line names that line', async () => {
    const path = await twoSegments();
    const original = lines(path);
    // Every position of a line in the middle of each segment, and of a checkpoint.
    for (const index of [2, lineOf(path, 'audit.checkpoint') - 1, 12]) {
      const line = original[index] as string;
      for (let at = 0; at < line.length; at++) {
        const flipped = line[at] === 'A' ? 'B' : 'A';
        const copy = rewrite(path, (all) =>
          all.map((text, i) =>
            i === index ? text.slice(0, at) + flipped + text.slice(at + 1) : text,
          ),
        );
        const report = verify(copy);
        assert.equal(report.intact, false, `byte ${at} of line ${index + 1}`);
        assert.equal(report.problem?.line, index + 1, `byte ${at}: ${report.problem?.message}`);
        rmSync(copy);
      }
    }
  });

  test('a deleted line is named by the line after the gap', async () => {
    const path = await twoSegments();
    const deleted = rewrite(path, (all) => all.filter((_, i) => i !== 2));
    assertProblem(verify(deleted), 'deleted', 3);
  });

  test('an inserted line is named: a copy of another line, or one made up', async () => {
    const path = await twoSegments();
    const copied = rewrite(path, (all) => [...all.slice(0, 3), all[1] as string, ...all.slice(3)]);
    assertProblem(verify(copied), 'inserted', 4);
    const madeUp = rewrite(path, (all) => [
      ...all.slice(0, 3),
      (all[3] as string).replace('"app/2"', '"app/forged"'),
      ...all.slice(3),
    ]);
    assertProblem(verify(madeUp), 'inserted', 4);
    const garbage = rewrite(path, (all) => [
      ...all.slice(0, 3),
      '{"not":"chained"}',
      ...all.slice(3),
    ]);
    assertProblem(verify(garbage), 'inserted', 4);
  });

  test('two lines swapped are reordered, named by the first', async () => {
    const path = await twoSegments();
    const swapped = rewrite(path, (all) => {
      const copy = [...all];
      [copy[2], copy[3]] = [copy[3] as string, copy[2] as string];
      return copy;
    });
    assertProblem(verify(swapped), 'reordered', 3);
    const apart = rewrite(path, (all) => {
      const copy = [...all];
      [copy[1], copy[6]] = [copy[6] as string, copy[1] as string];
      return copy;
    });
    assertProblem(verify(apart), 'reordered', 2);
  });

  test('the tail cut after a checkpoint is named by the first missing line', async () => {
    const path = await twoSegments();
    const checkpoint = lineOf(path, 'audit.checkpoint', 2);
    const cut = rewrite(path, (all) => all.slice(0, checkpoint));
    const report = verify(cut);
    assertProblem(report, 'cut', checkpoint + 1);
    assert.match(
      report.problem?.message ?? '',
      new RegExp(`last checkpoint at line ${checkpoint}`),
    );
  });

  test('the end of a segment cut before a restart is a deletion', async () => {
    const path = await twoSegments();
    const open = lineOf(path, 'audit.open', 1);
    // The close and the checkpoint before it: the next segment names the close.
    const cut = rewrite(path, (all) => all.filter((_, i) => i !== open - 2 && i !== open - 3));
    assertProblem(verify(cut), 'deleted', open - 2);
  });

  test('a whole segment deleted, or the start of the log, is a deletion', async () => {
    const path = scratch();
    for (let round = 0; round < 3; round++) {
      const sink = openSegment(path);
      await writeEvents(sink, round * 10, 2);
      sink.close();
    }
    const second = lineOf(path, 'audit.open', 1);
    const third = lineOf(path, 'audit.open', 2);
    const withoutSecond = rewrite(path, (all) => [
      ...all.slice(0, second - 1),
      ...all.slice(third - 1),
    ]);
    assertProblem(verify(withoutSecond), 'deleted', second);
    const withoutFirst = rewrite(path, (all) => all.slice(second - 1));
    assertProblem(verify(withoutFirst), 'deleted', 1);
    const headCut = rewrite(path, (all) => all.slice(1));
    assertProblem(verify(headCut), 'deleted', 1);
  });

  test('a killed writer is told from a cut: the next segment confirms its last line', async () => {
    const path = scratch();
    const fd = openSync(path, 'a', 0o600);
    const killed = createFdAuditSink(fd, {
      component: 'nexus',
      key: KEY,
      fileEnd: readFileEnd(path),
      checkpointIntervalMs: 0,
    });
    await writeEvents(killed, 0, 3);
    // No close line: as after SIGKILL.
    closeSync(fd);
    const alone = verify(path);
    assertProblem(alone, 'cut', 5);
    const next = openSegment(path);
    await writeEvents(next, 3, 2);
    next.close();
    const report = verify(path);
    assert.equal(report.intact, true, report.problem?.message);
    assert.deepEqual(
      report.segments.map((segment) => segment.end),
      ['stopped', 'closed'],
    );
    assert.match(report.notes[0] ?? '', /ends without its close line/);
  });

  test('a line cut short by a dying writer is confirmed by the next segment', async () => {
    const path = scratch();
    const fd = openSync(path, 'a', 0o600);
    const killed = createFdAuditSink(fd, {
      component: 'nexus',
      key: KEY,
      fileEnd: readFileEnd(path),
      checkpointIntervalMs: 0,
    });
    await writeEvents(killed, 0, 2);
    closeSync(fd);
    // Killed in the middle of a write: half a line, no newline.
    writeFileSync(path, '{"ts":"2026-03-04T05:06:07.000Z","trailId":"half', { flag: 'a' });
    assert.equal(verify(path).problem?.kind, 'cut');
    const next = openSegment(path);
    await writeEvents(next, 2, 1);
    next.close();
    const report = verify(path);
    assert.equal(report.intact, true, report.problem?.message);
    assert.match(report.notes.join('\n'), /cut short while being written/);
    const torn = lines(path).findIndex((line) => line.endsWith('"half'));
    // Deleting the torn line is still a deletion.
    const withoutTorn = rewrite(path, (all) => all.filter((_, i) => i !== torn));
    assertProblem(verify(withoutTorn), 'deleted', torn + 1);
    // Half a line after a close line is no writer's, even if the next segment saw it.
    const afterClose = scratch();
    const closed = openSegment(afterClose);
    await writeEvents(closed, 0, 1);
    closed.close();
    writeFileSync(afterClose, '{"half', { flag: 'a' });
    const restarted = openSegment(afterClose);
    restarted.close();
    assertProblem(verify(afterClose), 'inserted', lines(afterClose).indexOf('{"half') + 1);
  });

  test('the key must be the one the log was written under', async () => {
    const keyed = await twoSegments();
    assertProblem(verify(keyed, {}), 'key', 1);
    assertProblem(verify(keyed, { key: OTHER_KEY }), 'key', 1);
    const unkeyed = await twoSegments(null);
    assert.equal(verify(unkeyed, {}).intact, true);
    // A keyed log rewritten without its key is caught by whoever has the key.
    assertProblem(verify(unkeyed, { key: KEY }), 'key', 1);
  });

  test('without the key a forger can rewrite a line and every MAC after it', async () => {
    // What a keyed chain buys: the same rewrite of an unkeyed log passes.
    const unkeyed = await twoSegments(null);
    const forged = rewrite(unkeyed, (all) => all.map((line) => line.replace('"app/3"', '"app/x"')));
    assert.equal(verify(forged, {}).intact, false);
  });

  test('--live: an open last segment is intact while its checkpoints are recent', async () => {
    const path = scratch();
    const fd = openSync(path, 'a', 0o600);
    const sink = createFdAuditSink(fd, {
      component: 'nexus',
      key: KEY,
      checkpointIntervalMs: 60_000,
      now: () => T0,
    });
    await writeEvents(sink, 0, 2);
    assertProblem(verify(path), 'cut', 4);
    const live = verify(path, { key: KEY, live: true, now: () => T0 + 60_000 });
    assert.equal(live.intact, true, live.problem?.message);
    assert.match(live.notes[0] ?? '', /still open/);
    const stale = verify(path, { key: KEY, live: true, now: () => T0 + 10 * 60_000 });
    assertProblem(stale, 'cut', 4);
    sink.close();
  });

  test('an empty log is not intact', () => {
    const path = scratch();
    writeFileSync(path, '');
    assert.equal(verify(path).problem?.kind, 'cut');
  });

  test('rotated files verify as one log, oldest first', async () => {
    const path = await twoSegments();
    const all = lines(path);
    const second = lineOf(path, 'audit.open', 1);
    const older = scratch();
    const newer = scratch();
    writeFileSync(older, `${all.slice(0, second - 1).join('\n')}\n`);
    writeFileSync(newer, `${all.slice(second - 1).join('\n')}\n`);
    assert.equal(verifyAuditFiles([older, newer], { key: KEY }).intact, true);
    const report = verifyAuditFiles([newer], { key: KEY });
    assert.equal(report.problem?.kind, 'deleted');
    assert.equal(report.problem?.file, newer);
  });
});
