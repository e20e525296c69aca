import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { nativeXChaCha } from './_native_xchacha.ts';
import { nobleXChaCha } from './_xchacha.ts';
import {
  AEAD_NONCE_BYTES,
  AEAD_OVERHEAD_BYTES,
  AEAD_TAG_BYTES,
  aeadImplementation,
  open,
  openWith,
  seal,
  sealWith,
} from './aead.ts';
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

const IMPLEMENTATIONS = [nativeXChaCha, nobleXChaCha];
/** 0, one byte, around a ChaCha block (64), 1 KiB, and past noble's and Node's chunk sizes. */
const SIZES = [0, 1, 63, 64, 65, 1024, 65_537];

/** A random non-empty AAD of up to 64 bytes. */
function randomAad(): Uint8Array {
  return randomBytes(1 + ((randomBytes(1)[0] as number) % 64));
}

describe('the two implementations', () => {
  test('this runtime passes the known-answer test, so seal() and open() run natively', () => {
    // Node 20 and Deno 2.9 both have ChaCha20-Poly1305 in node:crypto; noble
    // is only for a runtime without it.
    assert.equal(aeadImplementation(), 'node:crypto');
  });

  for (const [from, to] of [
    [nativeXChaCha, nobleXChaCha],
    [nobleXChaCha, nativeXChaCha],
    [nativeXChaCha, nativeXChaCha],
    [nobleXChaCha, nobleXChaCha],
  ] as const) {
    test(`what ${from.name} seals, ${to.name} opens, at every size and with random AADs`, () => {
      for (const size of SIZES) {
        const key = randomBytes(32);
        const plaintext = randomBytes(size);
        const aad = randomAad();
        const sealed = sealWith(from, { key, plaintext, aad });
        assert.equal(sealed.length, size + AEAD_OVERHEAD_BYTES);
        assert.deepEqual(openWith(to, { key, sealed, aad }), plaintext, `size ${size}`);
        assert.deepEqual(open(key, sealed, aad), plaintext, `open(), size ${size}`);
      }
    });
  }

  test('a value sealed before ADR 0016 (noble only) opens through both and through open()', () => {
    // Sealed by this module as of commit 6fa13a1, under the key a0..bf.
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
    const hex =
      '01af475acbd37a4492d658bb5108edc5ad81308fc61fbba4a0539a96f9c39bba1d10183b00a3016321135ae2' +
      '013ea5ee077a48793492c20a080f75d7f5da56';
    const sealed = Uint8Array.from({ length: hex.length / 2 }, (_, i) =>
      Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16),
    );
    const aad = encode('secret/db/creds');
    const expected = encode('{"password":"hunter2"}');
    for (const implementation of IMPLEMENTATIONS) {
      assert.deepEqual(openWith(implementation, { key, sealed, aad }), expected);
    }
    assert.deepEqual(open(key, sealed, aad), expected);
  });

  test('what seal() sealed, both implementations open', () => {
    for (const size of SIZES) {
      const key = randomBytes(32);
      const plaintext = randomBytes(size);
      const aad = randomAad();
      const sealed = seal(key, plaintext, aad);
      for (const implementation of IMPLEMENTATIONS) {
        assert.deepEqual(openWith(implementation, { key, sealed, aad }), plaintext);
      }
    }
  });
});

for (const implementation of IMPLEMENTATIONS) {
  describe(`open() under attack, through ${implementation.name}`, () => {
    const key = randomBytes(32);
    const sealed = sealWith(implementation, { key, plaintext: PLAINTEXT, aad: AAD });
    const openIt = (bytes: Uint8Array, aad: Uint8Array = AAD, withKey: Uint8Array = key) =>
      openWith(implementation, { key: withKey, sealed: bytes, aad });
    const nonceStart = 1;
    const bodyStart = 1 + AEAD_NONCE_BYTES;
    const tagStart = sealed.length - AEAD_TAG_BYTES;

    test('the untouched input opens', () => {
      assert.deepEqual(openIt(sealed), PLAINTEXT);
    });

    test('every single-bit flip anywhere (version, nonce, ciphertext, tag) fails', () => {
      for (let i = 0; i < sealed.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          assertDecryptionFailed(() => openIt(flipBit(sealed, i, bit)));
        }
      }
    });

    test('a flipped bit in the version byte fails', () => {
      assertDecryptionFailed(() => openIt(flipBit(sealed, 0)));
    });

    test('a flipped bit anywhere in the nonce fails', () => {
      for (let i = nonceStart; i < bodyStart; i++) {
        assertDecryptionFailed(() => openIt(flipBit(sealed, i, i % 8)));
      }
    });

    test('a flipped bit anywhere in the ciphertext fails', () => {
      for (let i = bodyStart; i < tagStart; i++) {
        assertDecryptionFailed(() => openIt(flipBit(sealed, i, i % 8)));
      }
    });

    test('a flipped bit anywhere in the tag fails', () => {
      for (let i = tagStart; i < sealed.length; i++) {
        assertDecryptionFailed(() => openIt(flipBit(sealed, i, i % 8)));
      }
    });

    test('every flipped bit of the AAD fails', () => {
      for (let i = 0; i < AAD.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          assertDecryptionFailed(() => openIt(sealed, flipBit(AAD, i, bit)));
        }
      }
    });

    test("another secret's path as AAD fails (a ciphertext cannot be moved)", () => {
      assertDecryptionFailed(() => openIt(sealed, encode('secrets/db/username')));
      assertDecryptionFailed(() => openIt(sealed, encode('secrets/db/password/')));
    });

    test('the wrong key fails, even one differing in a single bit', () => {
      assertDecryptionFailed(() => openIt(sealed, AAD, randomBytes(32)));
      for (let bit = 0; bit < 256; bit++) {
        assertDecryptionFailed(() => openIt(sealed, AAD, flipBit(key, bit >> 3, bit & 7)));
      }
    });

    test('truncated or extended input fails', () => {
      for (const length of [0, 1, bodyStart, AEAD_OVERHEAD_BYTES - 1, sealed.length - 1]) {
        assertDecryptionFailed(() => openIt(sealed.subarray(0, length)));
      }
      const extended = new Uint8Array(sealed.length + 1);
      extended.set(sealed);
      assertDecryptionFailed(() => openIt(extended));
    });

    test('an unknown layout version fails even with a valid body', () => {
      const otherVersion = Uint8Array.from(sealed);
      otherVersion[0] = 2;
      assertDecryptionFailed(() => openIt(otherVersion));
    });

    test('a failed open leaves the sealed input and the key untouched', () => {
      const copy = Uint8Array.from(sealed);
      const keyCopy = Uint8Array.from(key);
      assertDecryptionFailed(() => openIt(copy, AAD, randomBytes(32)));
      assertDecryptionFailed(() => openIt(copy, encode('elsewhere'), keyCopy));
      assert.deepEqual(copy, sealed);
      assert.deepEqual(keyCopy, key);
      assert.deepEqual(openIt(copy, AAD, keyCopy), PLAINTEXT);
    });
  });
}

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
