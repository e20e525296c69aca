import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createLeakScan, shardNeedles } from './leak_scan.ts';

const SECRET = `planted-${crypto.randomUUID()}`;
const SHARD = `spike-shard:v1:1:1:2:${crypto.randomUUID()}`;

describe('createLeakScan()', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spike-leak-scan-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function folder(name: string, files: Record<string, string | Uint8Array>): string {
    const root = join(dir, name);
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    return root;
  }

  function failureOf(scan: ReturnType<typeof createLeakScan>): string {
    try {
      scan.assertNoLeaks();
    } catch (err) {
      return (err as Error).message;
    }
    assert.fail('assertNoLeaks() passed');
  }

  test('a clean set of places passes', () => {
    const scan = createLeakScan();
    scan.needle(SECRET, 'the password');
    scan.needle(SHARD, 'shard 1');
    scan.text('stdout of nexus', '{"msg":"Listening","port":8553}');
    scan.files(
      folder('clean', { 'logs/nexus.log': 'nothing here\n', 'db.sqlite': 'x'.repeat(99) }),
    );
    assert.deepEqual(scan.findLeaks(), []);
    scan.assertNoLeaks();
  });

  test('a value planted in a nested file fails, naming the file and the label, not the value', () => {
    const scan = createLeakScan();
    scan.needle(SECRET, 'the password');
    const root = folder('file', {
      'logs/audit.log': 'clean\n',
      'nexus/data/store.db': Buffer.concat([
        Buffer.from([0, 1, 2, 255]),
        Buffer.from(`{"password":"${SECRET}"}`),
      ]),
    });
    scan.files(root);
    const message = failureOf(scan);
    assert.match(message, /Secrets leaked/);
    assert.ok(message.includes(join(root, 'nexus/data/store.db')), message);
    assert.ok(message.includes('the password'), message);
    assert.ok(!message.includes(SECRET), 'the failure message holds the value');
    assert.ok(!message.includes('audit.log'), message);
  });

  test('a value planted in a text fails, naming the text; a text function is read at scan time', () => {
    const scan = createLeakScan();
    scan.needle(SHARD);
    let output = 'starting\n';
    scan.text('stderr of keeper-1', () => output);
    scan.text('error body #0', '{"error":{"code":"ERR_INVALID_REQUEST"}}');
    scan.assertNoLeaks();
    output += `{"msg":"Got shard ${SHARD}"}\n`;
    const message = failureOf(scan);
    assert.match(message, /^stderr of keeper-1 holds value #1$/m);
    assert.ok(!message.includes('error body'), message);
    assert.ok(!message.includes(SHARD) && !message.includes('spike-shard'), message);
  });

  test('a value written base64- or hex-encoded, at any byte offset, is found too', () => {
    const bytes = Buffer.from(SECRET);
    for (const prefix of ['', 'a', 'ab']) {
      const scan = createLeakScan();
      scan.needle(SECRET, 'the password');
      scan.text('base64', Buffer.from(`${prefix}${SECRET}zz`).toString('base64'));
      scan.text('base64url', Buffer.from(`${prefix}${SECRET}`).toString('base64url'));
      scan.text('hex', `0x${prefix === '' ? '' : 'ff'}${bytes.toString('hex').toUpperCase()}`);
      assert.deepEqual(
        scan.findLeaks().map((leak) => [leak.place, leak.encoding]),
        [
          ['base64', 'base64'],
          ['base64url', 'base64'],
          ['hex', 'hex'],
        ],
        `prefix "${prefix}"`,
      );
    }
  });

  test('excluded files and missing folders are skipped', () => {
    const scan = createLeakScan();
    scan.needle(SHARD, 'shard 1');
    const root = folder('excluded', { 'dev-recovery-shards.json': SHARD, 'logs/a.log': 'ok' });
    scan.files(root, { exclude: (path) => path.endsWith('dev-recovery-shards.json') });
    scan.files(join(dir, 'never-made'));
    scan.assertNoLeaks();
  });

  test('each place is listed once per value it holds', () => {
    const scan = createLeakScan();
    scan.needle(SECRET, 'a');
    scan.needle(SHARD, 'b');
    scan.needle(SECRET, 'a again');
    scan.text('log', `${SECRET} ${SHARD} ${SECRET}`);
    assert.deepEqual(
      scan.findLeaks().map((leak) => leak.label),
      ['a', 'b'],
    );
  });

  test('a value too short to scan for without chance hits is refused', () => {
    assert.throws(() => createLeakScan().needle('s3cret'), RangeError);
  });
});

describe('shardNeedles()', () => {
  test('gives the whole shard text and its value field', () => {
    const value = 'A'.repeat(44);
    assert.deepEqual(shardNeedles(` spike-shard:v1:3:1:2:${value}:0123abcd\n`), [
      `spike-shard:v1:3:1:2:${value}:0123abcd`,
      value,
    ]);
  });
});
