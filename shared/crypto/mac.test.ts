import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hkdfSha256, hmacSha256 } from './mac.ts';

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g) ?? [], (byte) => Number.parseInt(byte, 16));
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

describe('hmacSha256()', () => {
  test('gives the RFC 4231 test case 2 tag', () => {
    const tag = hmacSha256(
      new TextEncoder().encode('Jefe'),
      new TextEncoder().encode('what do ya want for nothing?'),
    );
    assert.equal(toHex(tag), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  });

  test('refuses an empty key and what is not bytes', () => {
    assert.throws(() => hmacSha256(new Uint8Array(0), new Uint8Array(1)), TypeError);
    assert.throws(() => hmacSha256(new Uint8Array(1), 'x' as never), TypeError);
  });
});

describe('hkdfSha256()', () => {
  test('gives the RFC 5869 test case 3 output (no salt, no info)', () => {
    const okm = hkdfSha256(hex('0b'.repeat(22)), new Uint8Array(0), 42);
    assert.equal(
      toHex(okm),
      '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    );
  });

  test('different purposes give unrelated keys', () => {
    const ikm = hex('42'.repeat(32));
    const a = hkdfSha256(ikm, new TextEncoder().encode('a'), 32);
    const b = hkdfSha256(ikm, new TextEncoder().encode('b'), 32);
    assert.notDeepEqual(a, b);
    assert.notDeepEqual(a, ikm);
  });

  test('refuses lengths it cannot derive and empty material', () => {
    const ikm = new Uint8Array(32).fill(1);
    for (const length of [0, -1, 1.5, 255 * 32 + 1]) {
      assert.throws(() => hkdfSha256(ikm, new Uint8Array(0), length), RangeError, String(length));
    }
    assert.throws(() => hkdfSha256(new Uint8Array(0), new Uint8Array(0), 32), TypeError);
  });
});
