import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { createTestCa, type TestCa } from '../../test/harness/pki.ts';
import { bytesEqual, concatBytes, derToPem } from './der.ts';

let ca: TestCa;

before(async () => {
  ca = await createTestCa('example.org');
});

describe('concatBytes()', () => {
  test('concatBytes() joins pieces in order into a new array', () => {
    const a = new Uint8Array([1, 2]);
    const b = new Uint8Array([3]);
    const joined = concatBytes([a, new Uint8Array(0), b]);
    assert.deepEqual([...joined], [1, 2, 3]);
    joined[0] = 9;
    assert.equal(a[0], 1, 'the pieces are copied, not shared');
  });

  test('concatBytes() reads only the view of a subarray', () => {
    const backing = new Uint8Array([0, 1, 2, 3, 4]);
    assert.deepEqual([...concatBytes([backing.subarray(1, 3), backing.subarray(4)])], [1, 2, 4]);
  });

  test('concatBytes() of nothing is empty', () => {
    assert.equal(concatBytes([]).length, 0);
  });
});

describe('derToPem()', () => {
  test('derToPem() writes 64-character lines that node:crypto reads back', () => {
    const pem = derToPem(ca.root.der, 'CERTIFICATE');
    const lines = pem.trimEnd().split('\n');
    assert.equal(lines[0], '-----BEGIN CERTIFICATE-----');
    assert.equal(lines.at(-1), '-----END CERTIFICATE-----');
    const body = lines.slice(1, -1);
    assert.ok(body.slice(0, -1).every((line) => line.length === 64));
    assert.ok((body.at(-1)?.length ?? 0) <= 64);
    assert.ok(pem.endsWith('-----\n'));
    assert.equal(body.join(''), Buffer.from(ca.root.der).toString('base64'));
    assert.deepEqual(new Uint8Array(new X509Certificate(pem).raw), new Uint8Array(ca.root.der));
  });

  test('derToPem() encodes every length, including partial last groups', () => {
    for (const length of [1, 2, 3, 47, 48, 49, 96, 100]) {
      const der = Uint8Array.from({ length }, (_, i) => (i * 37 + 255) % 256);
      const pem = derToPem(der, 'PRIVATE KEY');
      const body = pem.split('\n').slice(1, -2).join('');
      assert.equal(body, Buffer.from(der).toString('base64'), `length ${length}`);
    }
  });

  test('derToPem() encodes a subarray view, not its whole buffer', () => {
    const backing = new Uint8Array([0xff, 1, 2, 3, 0xff]);
    const pem = derToPem(backing.subarray(1, 4), 'CERTIFICATE');
    assert.match(pem, /\nAQID\n/);
  });
});

describe('bytesEqual()', () => {
  test('bytesEqual() compares length and every byte', () => {
    assert.ok(bytesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])));
    assert.ok(bytesEqual(new Uint8Array(0), new Uint8Array(0)));
    assert.ok(!bytesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])));
    assert.ok(!bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])));
  });

  test('bytesEqual() compares a view by its own bytes, not its whole buffer', () => {
    const backing = new Uint8Array([0xff, 1, 2, 0xff]);
    assert.ok(bytesEqual(backing.subarray(1, 3), Buffer.from([1, 2])));
  });
});
