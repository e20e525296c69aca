/**
 * The snapshot file format: a reader fed any chunking sees the same body and
 * header; damage of every kind (bad start, bad header, truncation, extra
 * bytes, a flipped bit) is `ERR_SNAPSHOT_CORRUPT`; the restore query is strict.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { InvalidRequestError, SnapshotCorruptError } from '../errors/errors.ts';
import {
  formatSnapshotHeader,
  MAX_SNAPSHOT_BYTES,
  parseSnapshotHeader,
  parseSnapshotRestoreQuery,
  type Sha256,
  SnapshotReader,
} from './snapshot.ts';

function sha256(): Sha256 {
  const hash = createHash('sha256');
  return {
    update: (bytes) => {
      hash.update(bytes);
    },
    digestHex: () => hash.digest('hex'),
  };
}

const body = new Uint8Array(5000).map((_, i) => (i * 31) % 256);
const header = {
  backend: 'sqlite' as const,
  createdAt: '2026-05-01T10:00:00.000Z',
  bytes: body.byteLength,
  sha256: createHash('sha256').update(body).digest('hex'),
};
const file = new Uint8Array([...formatSnapshotHeader(header), ...body]);

function read(bytes: Uint8Array, chunk: number) {
  const reader = new SnapshotReader(sha256());
  const parts: number[] = [];
  for (let i = 0; i < bytes.byteLength; i += chunk) {
    for (const part of reader.push(bytes.subarray(i, i + chunk))) parts.push(...part);
  }
  return { header: reader.finish(), body: new Uint8Array(parts) };
}

describe('SnapshotReader', () => {
  test('any chunking gives the same header and body', () => {
    for (const chunk of [1, 7, 64, 4096, file.byteLength]) {
      const got = read(file, chunk);
      assert.deepEqual(got.header, header);
      assert.deepEqual(got.body, body);
    }
  });

  test('damage of every kind is ERR_SNAPSHOT_CORRUPT', () => {
    const flipped = file.slice();
    flipped[file.byteLength - 100] = (flipped[file.byteLength - 100] ?? 0) ^ 0x10;
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(0), /empty/],
      [file.subarray(0, 10), /inside its header/],
      [file.subarray(0, file.byteLength - 1), /truncated: 4999 of the 5000/],
      [new Uint8Array([...file, 1]), /bytes after the 5000/],
      [flipped, /checksum does not match/],
      [new TextEncoder().encode('spike-ts snapshot v2\n{}\n'), /not a spike-ts snapshot/],
      [new TextEncoder().encode(`spike-ts snapshot v1\n${'x'.repeat(2000)}`), /longer than/],
    ];
    for (const [bytes, message] of cases) {
      assert.throws(
        () => read(bytes, 13),
        (err) => err instanceof SnapshotCorruptError && message.test(err.message),
        String(message),
      );
    }
  });

  test('the header is strict: every field, nothing else, in range', () => {
    const good = JSON.stringify(header);
    assert.deepEqual(parseSnapshotHeader(good), header);
    for (const bad of [
      '[]',
      'not json',
      JSON.stringify({ ...header, extra: 1 }),
      JSON.stringify({ ...header, backend: 'postgres' }),
      JSON.stringify({ ...header, bytes: 0 }),
      JSON.stringify({ ...header, bytes: MAX_SNAPSHOT_BYTES + 1 }),
      JSON.stringify({ ...header, sha256: 'ABC' }),
      JSON.stringify({ ...header, createdAt: 'yesterday' }),
    ]) {
      assert.throws(() => parseSnapshotHeader(bad), SnapshotCorruptError, bad);
    }
  });

  test('the restore query takes only force=true|false', () => {
    assert.deepEqual(parseSnapshotRestoreQuery({}), { force: false });
    assert.deepEqual(parseSnapshotRestoreQuery({ force: 'true' }), { force: true });
    assert.deepEqual(parseSnapshotRestoreQuery({ force: 'false' }), { force: false });
    assert.throws(() => parseSnapshotRestoreQuery({ force: '1' }), InvalidRequestError);
    assert.throws(() => parseSnapshotRestoreQuery({ other: 'x' }), InvalidRequestError);
  });
});
