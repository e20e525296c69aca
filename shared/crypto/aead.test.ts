import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AEAD_NONCE_BYTES, AEAD_OVERHEAD_BYTES, AEAD_TAG_BYTES, open, seal } from './aead.ts';
import { randomBytes } from './bytes.ts';

const encode = (text: string) => new TextEncoder().encode(text);
const AAD = encode('secrets/db/password');
const PLAINTEXT = encode('correct horse battery staple');

/** One fixed message whatever the cause: asserting it everywhere proves there is no oracle. */
function assertDecryptionFailed(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, 'ERR_DECRYPTION_FAILED');
    assert.equal((err as Error).name, 'DecryptionFailedError');
    assert.equal((err as Error).message, 'Decryption failed');
    return true;
  });
}

function flipBit(bytes: Uint8Array, index: number, bit = 0): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[index] = (copy[index] as number) ^ (1 << bit);
  return copy;
}

describe('seal() and open()', () => {
  test('open() returns what seal() sealed under the same key and AAD', () => {
    const key = randomBytes(32);
    const sealed = seal(key, PLAINTEXT, AAD);
    assert.equal(sealed.length, PLAINTEXT.length + AEAD_OVERHEAD_BYTES);
    assert.deepEqual(open(key, sealed, AAD), PLAINTEXT);
  });

  test('an empty plaintext seals and opens', () => {
    const key = randomBytes(32);
    const sealed = seal(key, new Uint8Array(0), AAD);
    assert.equal(sealed.length, AEAD_OVERHEAD_BYTES);
    assert.deepEqual(open(key, sealed, AAD), new Uint8Array(0));
  });

  test('sealing the same plaintext twice gives different ciphertexts (fresh nonce)', () => {
    const key = randomBytes(32);
    const a = seal(key, PLAINTEXT, AAD);
    const b = seal(key, PLAINTEXT, AAD);
    assert.notDeepEqual(a.subarray(1, 1 + AEAD_NONCE_BYTES), b.subarray(1, 1 + AEAD_NONCE_BYTES));
    assert.notDeepEqual(a, b);
  });

  test('the ciphertext does not contain the plaintext', () => {
    const sealed = seal(randomBytes(32), PLAINTEXT, AAD);
    const asText = new TextDecoder('latin1').decode(sealed);
    assert.ok(!asText.includes('battery'));
  });
});

describe('open() under attack', () => {
  const key = randomBytes(32);
  const sealed = seal(key, PLAINTEXT, AAD);
  const nonceStart = 1;
  const bodyStart = 1 + AEAD_NONCE_BYTES;
  const tagStart = sealed.length - AEAD_TAG_BYTES;

  test('a flipped bit in the version byte fails', () => {
    assertDecryptionFailed(() => open(key, flipBit(sealed, 0), AAD));
  });

  test('a flipped bit anywhere in the nonce fails', () => {
    for (let i = nonceStart; i < bodyStart; i++) {
      assertDecryptionFailed(() => open(key, flipBit(sealed, i, i % 8), AAD));
    }
  });

  test('a flipped bit anywhere in the ciphertext fails', () => {
    for (let i = bodyStart; i < tagStart; i++) {
      assertDecryptionFailed(() => open(key, flipBit(sealed, i, i % 8), AAD));
    }
  });

  test('a flipped bit anywhere in the tag fails', () => {
    for (let i = tagStart; i < sealed.length; i++) {
      assertDecryptionFailed(() => open(key, flipBit(sealed, i, i % 8), AAD));
    }
  });

  test('a flipped bit in the AAD fails', () => {
    for (let i = 0; i < AAD.length; i++) {
      assertDecryptionFailed(() => open(key, sealed, flipBit(AAD, i, 7 - (i % 8))));
    }
  });

  test("another secret's path as AAD fails (a ciphertext cannot be moved)", () => {
    assertDecryptionFailed(() => open(key, sealed, encode('secrets/db/username')));
    assertDecryptionFailed(() => open(key, sealed, encode('secrets/db/password/')));
  });

  test('the wrong key fails, even one differing in a single bit', () => {
    assertDecryptionFailed(() => open(randomBytes(32), sealed, AAD));
    assertDecryptionFailed(() => open(flipBit(key, 31, 7), sealed, AAD));
  });

  test('truncated or extended input fails', () => {
    for (const length of [0, 1, bodyStart, AEAD_OVERHEAD_BYTES - 1, sealed.length - 1]) {
      assertDecryptionFailed(() => open(key, sealed.subarray(0, length), AAD));
    }
    const extended = new Uint8Array(sealed.length + 1);
    extended.set(sealed);
    assertDecryptionFailed(() => open(key, extended, AAD));
  });

  test('an unknown layout version fails even with a valid body', () => {
    const otherVersion = Uint8Array.from(sealed);
    otherVersion[0] = 2;
    assertDecryptionFailed(() => open(key, otherVersion, AAD));
  });

  test('a failed open leaves the sealed input untouched', () => {
    const copy = Uint8Array.from(sealed);
    assertDecryptionFailed(() => open(randomBytes(32), copy, AAD));
    assert.deepEqual(copy, sealed);
    assert.deepEqual(open(key, copy, AAD), PLAINTEXT);
  });
});

describe('seal() and open() arguments', () => {
  const key = randomBytes(32);

  test('a key that is not 32 bytes is a RangeError', () => {
    for (const bad of [new Uint8Array(0), new Uint8Array(16), new Uint8Array(33)]) {
      assert.throws(() => seal(bad, PLAINTEXT, AAD), RangeError);
      assert.throws(() => open(bad, new Uint8Array(64), AAD), RangeError);
    }
  });

  test('a key, plaintext or AAD that is not a Uint8Array is a TypeError', () => {
    assert.throws(() => seal('k'.repeat(32) as never, PLAINTEXT, AAD), TypeError);
    assert.throws(() => seal(key, 'text' as never, AAD), TypeError);
    assert.throws(() => seal(key, PLAINTEXT, 'aad' as never), TypeError);
    assert.throws(() => open(key, 'sealed' as never, AAD), TypeError);
  });

  test('an empty AAD is refused when sealing and when opening', () => {
    assert.throws(() => seal(key, PLAINTEXT, new Uint8Array(0)), RangeError);
    assert.throws(() => open(key, seal(key, PLAINTEXT, AAD), new Uint8Array(0)), RangeError);
  });

  test('error messages never contain key bytes', () => {
    const badKey = new Uint8Array(31).fill(0x41);
    assert.throws(
      () => seal(badKey, PLAINTEXT, AAD),
      (err: unknown) => !(err as Error).message.includes('AAAA') && !/65,65/.test(String(err)),
    );
  });
});
