import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DEV_SHARDS_WARNING, devShardsPath, readDevShards, writeDevShards } from './dev_shards.ts';

const dir = mkdtempSync(join(tmpdir(), 'spike-dev-shards-'));
const split = { generation: 4, threshold: 2, shards: ['spike-shard:v1:a', 'spike-shard:v1:b'] };

describe('the development recovery file', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('is written owner-only, says what it is, and reads back', () => {
    const path = devShardsPath(dir);
    assert.equal(readDevShards(path), undefined, 'no file yet');
    writeDevShards(path, split, { trustDomain: 'spike.ist', now: new Date(0) });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    assert.equal(raw.warning, DEV_SHARDS_WARNING);
    assert.match(DEV_SHARDS_WARNING, /never use this mode in production/);
    assert.equal(raw.savedAt, '1970-01-01T00:00:00.000Z');
    assert.deepEqual(readDevShards(path), { trustDomain: 'spike.ist', ...split });
    // A second write replaces the first.
    writeDevShards(path, { ...split, generation: 5 }, { trustDomain: 'spike.ist' });
    assert.equal(readDevShards(path)?.generation, 5);
  });

  test('is refused when other users may read it, or when it is not ours', () => {
    const path = join(dir, 'open.json');
    writeDevShards(path, split, { trustDomain: 'spike.ist' });
    chmodSync(path, 0o644);
    assert.throws(
      () => readDevShards(path),
      /has mode 0644; it must be readable and writable by its owner only. Run: chmod 600/,
    );
    const other = join(dir, 'other.json');
    writeFileSync(other, '{"shards":[]}', { mode: 0o600 });
    assert.throws(() => readDevShards(other), /is not a spike-local recovery file/);
    writeFileSync(other, 'nope', { mode: 0o600 });
    assert.throws(() => readDevShards(other), /is not JSON/);
  });
});
