/**
 * `spike operator snapshot save|verify|restore` against a fake client: a
 * save is checked before it lands in a new 0600 file, never over an existing
 * one; a damaged or truncated file is refused with ERR_SNAPSHOT_CORRUPT
 * (exit 2) before anything is sent; a restore asks first.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { formatSnapshotHeader } from '../../shared/api/snapshot.ts';
import { createFakeTerminal, FakeClient, run } from './_testing.ts';

const dir = mkdtempSync(join(tmpdir(), 'pilot-snapshot-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function snapshotFile(body: Uint8Array): Uint8Array {
  const head = formatSnapshotHeader({
    backend: 'sqlite',
    createdAt: '2026-05-01T10:00:00.000Z',
    bytes: body.byteLength,
    sha256: createHash('sha256').update(body).digest('hex'),
  });
  const file = new Uint8Array(head.byteLength + body.byteLength);
  file.set(head);
  file.set(body, head.byteLength);
  return file;
}

const BODY = new TextEncoder().encode('SQLite format 3\0 and the rest of a database');
const GOOD = snapshotFile(BODY);

describe('spike operator snapshot', () => {
  test('save writes a checked snapshot into a new 0600 file, never over an existing one', async () => {
    const client = new FakeClient();
    client.snapshot = GOOD;
    const file = join(dir, 'saved.snapshot');
    const saved = await run(['operator', 'snapshot', 'save', file, '-f', 'json'], { client });
    assert.equal(saved.status, 0, saved.stderr);
    assert.deepEqual(new Uint8Array(readFileSync(file)), GOOD);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(JSON.parse(saved.stdout).bytes, BODY.byteLength);

    const again = await run(['operator', 'snapshot', 'save', file], { client });
    assert.equal(again.status, 2);
    assert.match(again.stderr, /exists: a snapshot never replaces a file \[ERR_INVALID_REQUEST\]/);
  });

  test('save refuses a damaged answer and writes nothing', async () => {
    const client = new FakeClient();
    client.snapshot = GOOD.slice(0, GOOD.byteLength - 3);
    const file = join(dir, 'truncated.snapshot');
    const result = await run(['operator', 'snapshot', 'save', file], { client });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /truncated.*\[ERR_SNAPSHOT_CORRUPT\]/);
    assert.equal(existsSync(file), false);
  });

  test('verify reports a good file, and names what is wrong with a bad one', async () => {
    const good = join(dir, 'good.snapshot');
    writeFileSync(good, GOOD);
    const ok = await run(['operator', 'snapshot', 'verify', good]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^OK .*a snapshot of 2026-05-01T10:00:00.000Z/);

    const flipped = GOOD.slice();
    flipped[flipped.byteLength - 1] = (flipped[flipped.byteLength - 1] ?? 0) ^ 1;
    const cases: [Uint8Array, RegExp][] = [
      [flipped, /checksum does not match/],
      [GOOD.slice(0, GOOD.byteLength - 1), /truncated/],
      [new Uint8Array([...GOOD, 0]), /bytes after/],
      [new TextEncoder().encode('SQLite format 3\0'), /not a spike-ts snapshot/],
    ];
    for (const [bytes, message] of cases) {
      const file = join(dir, 'bad.snapshot');
      writeFileSync(file, bytes);
      const result = await run(['operator', 'snapshot', 'verify', file]);
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.match(result.stderr, /\[ERR_SNAPSHOT_CORRUPT\]\n$/);
    }
  });

  test('restore checks the file first, asks, then uploads it (with --force when given)', async () => {
    const good = join(dir, 'restore.snapshot');
    writeFileSync(good, GOOD);
    const client = new FakeClient();
    const refused = await run(['operator', 'snapshot', 'restore', good], { client });
    assert.equal(refused.status, 2, 'no terminal and no --yes');
    assert.equal(client.restoredSnapshots.length, 0);

    const terminal = createFakeTerminal({ interactive: true, answers: ['y'] });
    const asked = await run(['operator', 'snapshot', 'restore', good, '--force'], {
      client,
      terminal,
    });
    assert.equal(asked.status, 0, asked.stderr);
    assert.match(terminal.prompts[0] ?? '', /snapshot of 2026-05-01T10:00:00.000Z\? \[y\/N\]/);
    assert.deepEqual(client.restoredSnapshots, [{ file: GOOD, force: true }]);

    const bad = join(dir, 'restore-bad.snapshot');
    writeFileSync(bad, GOOD.slice(0, 40));
    const damaged = await run(['operator', 'snapshot', 'restore', bad, '--yes'], { client });
    assert.equal(damaged.status, 2);
    assert.match(damaged.stderr, /\[ERR_SNAPSHOT_CORRUPT\]/);
    assert.equal(client.restoredSnapshots.length, 1, 'nothing more was sent');
    assert.equal(client.calls.filter((call) => call.method === 'restoreSnapshot').length, 1);
  });
});
