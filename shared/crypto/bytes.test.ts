import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeBase64, decodeBase64Url, encodeBase64, encodeBase64Url } from './base64.ts';
import { constantTimeEqual, randomBytes, zeroize } from './bytes.ts';

function assertInvalid(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, 'ERR_INVALID_REQUEST');
    return true;
  });
}

describe('randomBytes()', () => {
  test('returns the requested number of bytes, different each time', () => {
    assert.equal(randomBytes(0).length, 0);
    const a = randomBytes(32);
    const b = randomBytes(32);
    assert.equal(a.length, 32);
    assert.ok(a instanceof Uint8Array);
    assert.notDeepEqual(a, b);
  });

  test('fills buffers larger than one getRandomValues() call allows', () => {
    const bytes = randomBytes(200_000);
    assert.equal(bytes.length, 200_000);
    // The last chunk is filled too: 4 KiB of zeros at the end would be a bug.
    assert.ok(bytes.subarray(-4096).some((byte) => byte !== 0));
  });

  test('rejects negative, fractional and non-number lengths', () => {
    assert.throws(() => randomBytes(-1), RangeError);
    assert.throws(() => randomBytes(1.5), RangeError);
    assert.throws(() => randomBytes(Number.NaN), RangeError);
  });
});

describe('constantTimeEqual()', () => {
  test('is true for equal bytes and false for any difference or length', () => {
    assert.equal(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])), true);
    assert.equal(constantTimeEqual(new Uint8Array(), new Uint8Array()), true);
    assert.equal(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
    assert.equal(constantTimeEqual(new Uint8Array([0, 2, 3]), new Uint8Array([1, 2, 3])), false);
    assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])), false);
  });

  test('rejects values that are not Uint8Arrays', () => {
    assert.throws(() => constantTimeEqual('ab' as never, new Uint8Array(2)), TypeError);
  });
});

describe('zeroize()', () => {
  test('wipes every buffer given and skips undefined', () => {
    const a = new Uint8Array([1, 2, 3]);
    const b = new Uint8Array([4, 5]);
    zeroize(a, undefined, b);
    assert.deepEqual(a, new Uint8Array(3));
    assert.deepEqual(b, new Uint8Array(2));
  });

  test('wipes through a view, so the underlying buffer is clean', () => {
    const whole = new Uint8Array([9, 9, 9, 9]);
    zeroize(whole.subarray(1, 3));
    assert.deepEqual(whole, new Uint8Array([9, 0, 0, 9]));
  });
});

describe('base64', () => {
  test('encodeBase64() and decodeBase64() follow RFC 4648 test vectors', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'Zg=='],
      ['fo', 'Zm8='],
      ['foo', 'Zm9v'],
      ['foob', 'Zm9vYg=='],
      ['fooba', 'Zm9vYmE='],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [plain, encoded] of vectors) {
      const bytes = new TextEncoder().encode(plain);
      assert.equal(encodeBase64(bytes), encoded);
      assert.deepEqual(decodeBase64(encoded), bytes);
    }
  });

  test('round-trips every byte value and large inputs', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.deepEqual(decodeBase64(encodeBase64(all)), all);
    assert.deepEqual(decodeBase64Url(encodeBase64Url(all)), all);
    const big = randomBytes(100_000);
    assert.deepEqual(decodeBase64(encodeBase64(big)), big);
  });

  test('decodeBase64() rejects whitespace, missing or extra padding and foreign characters', () => {
    for (const bad of [
      'Zm9v ',
      ' Zm9v',
      'Zm 9v',
      'Zm9v\n',
      'Zg',
      'Zg=',
      'Zg===',
      'Z===',
      'Zm8=Zm8=',
      '=Zm8',
      'Zm-v',
      'Zm_v',
      'Zm9v.',
    ]) {
      assertInvalid(() => decodeBase64(bad));
    }
  });

  test('decodeBase64() rejects a last character with stray bits (non-canonical)', () => {
    // "Zh==" decodes to "f" like "Zg==", but is not its encoding.
    assertInvalid(() => decodeBase64('Zh=='));
    assertInvalid(() => decodeBase64('Zm9='));
  });

  test('encodeBase64Url() is unpadded and URL safe', () => {
    assert.equal(encodeBase64Url(new Uint8Array([0xfb, 0xff])), '-_8');
    assert.equal(encodeBase64(new Uint8Array([0xfb, 0xff])), '+/8=');
    assert.deepEqual(decodeBase64Url('-_8'), new Uint8Array([0xfb, 0xff]));
  });

  test('decodeBase64Url() rejects padding, whitespace, the standard alphabet and bad lengths', () => {
    for (const bad of [
      'Zg==',
      'Zg=',
      'Zm9v ',
      ' Zm9v',
      'Zm\t9v',
      '+/8',
      'Z',
      'Zm9vZ',
      'Zh',
      'Zm9',
    ]) {
      assertInvalid(() => decodeBase64Url(bad));
    }
  });

  test('decoding errors never repeat the input', () => {
    const secretish = 'c2VjcmV0LXZhbHVl!';
    for (const decode of [decodeBase64, decodeBase64Url]) {
      assert.throws(
        () => decode(secretish),
        (err: unknown) => !(err as Error).message.includes('c2VjcmV0'),
      );
    }
  });

  test('decoders reject non-strings as invalid requests', () => {
    assertInvalid(() => decodeBase64(42 as never));
    assertInvalid(() => decodeBase64Url(null as never));
  });
});
