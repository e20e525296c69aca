import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { nativeXChaCha } from './_native_xchacha.ts';
import { nobleXChaCha, XCHACHA_TAG_BYTES } from './_xchacha.ts';
import { randomBytes } from './bytes.ts';

const SIZES = [0, 1, 63, 64, 65, 1024, 65_537];

describe('nativeXChaCha', () => {
  test('gives the same bytes as noble for the same key, nonce and AAD, at every size', () => {
    for (const size of SIZES) {
      for (const aadLength of [1, 16, 17, 200]) {
        const params = {
          key: randomBytes(32),
          nonce: randomBytes(24),
          aad: randomBytes(aadLength),
        };
        const plaintext = randomBytes(size);
        const native = new Uint8Array(size + XCHACHA_TAG_BYTES);
        const noble = new Uint8Array(size + XCHACHA_TAG_BYTES);
        nativeXChaCha.encrypt(params, plaintext, native);
        nobleXChaCha.encrypt(params, plaintext, noble);
        assert.deepEqual(native, noble, `size ${size}, AAD ${aadLength}`);
        assert.deepEqual(nativeXChaCha.decrypt(params, noble), plaintext);
        assert.deepEqual(nobleXChaCha.decrypt(params, native), plaintext);
      }
    }
  });

  test('returns a plain Uint8Array of its own, not a runtime buffer', () => {
    const params = { key: randomBytes(32), nonce: randomBytes(24), aad: randomBytes(8) };
    const body = new Uint8Array(10 + XCHACHA_TAG_BYTES);
    nobleXChaCha.encrypt(params, randomBytes(10), body);
    const plaintext = nativeXChaCha.decrypt(params, body);
    assert.equal(Object.getPrototypeOf(plaintext), Uint8Array.prototype);
    assert.equal(plaintext.byteOffset, 0);
    assert.equal(plaintext.buffer.byteLength, 10);
  });

  test('refuses a body shorter than its tag, and one under another nonce', () => {
    const params = { key: randomBytes(32), nonce: randomBytes(24), aad: randomBytes(8) };
    assert.throws(() => nativeXChaCha.decrypt(params, new Uint8Array(XCHACHA_TAG_BYTES - 1)));
    const body = new Uint8Array(5 + XCHACHA_TAG_BYTES);
    nativeXChaCha.encrypt(params, randomBytes(5), body);
    // The first 16 nonce bytes only reach the cipher through the HChaCha20 subkey.
    for (const index of [0, 15, 16, 23]) {
      const nonce = Uint8Array.from(params.nonce);
      nonce[index] = (nonce[index] as number) ^ 1;
      assert.throws(() => nativeXChaCha.decrypt({ ...params, nonce }, body));
    }
  });
});
