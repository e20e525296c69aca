import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { nativeXChaCha } from './_native_xchacha.ts';
import {
  nobleXChaCha,
  passesKnownAnswer,
  withChaChaKeyAndNonce,
  type XChaCha20Poly1305,
} from './_xchacha.ts';
import { randomBytes } from './bytes.ts';

const hex = (text: string) =>
  Uint8Array.from({ length: text.length / 2 }, (_, i) =>
    Number.parseInt(text.slice(2 * i, 2 * i + 2), 16),
  );
const sequence = (first: number, length: number) =>
  Uint8Array.from({ length }, (_, i) => first + i);

/** draft-irtf-cfrg-xchacha-03, A.3.1, written out here apart from the self-test's copy. */
const DRAFT = {
  key: sequence(0x80, 32),
  nonce: sequence(0x40, 24),
  aad: hex('50515253c0c1c2c3c4c5c6c7'),
  plaintext: new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  ),
  ciphertext: hex(
    'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39' +
      'ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3ff' +
      'f921f9664c97637da9768812f615c68b13b52e',
  ),
  tag: hex('c0875924c1c7987947deafd8780acf49'),
};

describe('withChaChaKeyAndNonce(): XChaCha20 reduced to ChaCha20', () => {
  test('the subkey is the one of the draft (2.2.1), the nonce four zeros and the last 8 bytes', () => {
    const nonce = Uint8Array.from([...hex('000000090000004a0000000031415927'), ...sequence(1, 8)]);
    const [subkey, chachaNonce] = withChaChaKeyAndNonce(sequence(0, 32), nonce, (k, n) => [
      Uint8Array.from(k),
      Uint8Array.from(n),
    ]);
    assert.deepEqual(
      subkey,
      hex('82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc'),
    );
    assert.deepEqual(chachaNonce, Uint8Array.from([0, 0, 0, 0, ...sequence(1, 8)]));
  });

  test('the subkey and nonce are wiped after use, also when use throws', () => {
    let seen: Uint8Array[] = [];
    withChaChaKeyAndNonce(randomBytes(32), randomBytes(24), (subkey, nonce) => {
      assert.ok(subkey.some((byte) => byte !== 0));
      seen = [subkey, nonce];
    });
    assert.deepEqual(seen, [new Uint8Array(32), new Uint8Array(12)]);
    assert.throws(
      () =>
        withChaChaKeyAndNonce(randomBytes(32), randomBytes(24), (subkey, nonce) => {
          seen = [subkey, nonce];
          throw new Error('cipher refused the key');
        }),
      /cipher refused the key/,
    );
    assert.deepEqual(seen, [new Uint8Array(32), new Uint8Array(12)]);
  });

  test('a call from inside the callback is refused rather than clobbering the subkey', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(24);
    const expected = withChaChaKeyAndNonce(key, nonce, (subkey) => Uint8Array.from(subkey));
    withChaChaKeyAndNonce(key, nonce, (subkey) => {
      assert.throws(() => withChaChaKeyAndNonce(key, nonce, () => undefined), /own callback/);
      assert.deepEqual(subkey, expected);
    });
    // And the guard is released afterwards.
    assert.deepEqual(
      withChaChaKeyAndNonce(key, nonce, (subkey) => Uint8Array.from(subkey)),
      expected,
    );
  });

  test('the key is left as it was, and wrong sizes are refused', () => {
    const key = sequence(0, 32);
    withChaChaKeyAndNonce(key, new Uint8Array(24), () => undefined);
    assert.deepEqual(key, sequence(0, 32));
    const never = () => assert.fail('use ran');
    assert.throws(
      () => withChaChaKeyAndNonce(new Uint8Array(31), new Uint8Array(24), never),
      RangeError,
    );
    assert.throws(
      () => withChaChaKeyAndNonce(new Uint8Array(32), new Uint8Array(16), never),
      RangeError,
    );
  });
});

for (const cipher of [nativeXChaCha, nobleXChaCha]) {
  describe(`XChaCha20-Poly1305 through ${cipher.name}`, () => {
    const params = { key: DRAFT.key, nonce: DRAFT.nonce, aad: DRAFT.aad };

    test('seals the AEAD test vector of the draft (A.3.1) to its ciphertext and tag', () => {
      const out = new Uint8Array(DRAFT.plaintext.length + 16);
      cipher.encrypt(params, DRAFT.plaintext, out);
      assert.deepEqual(out.subarray(0, DRAFT.plaintext.length), DRAFT.ciphertext);
      assert.deepEqual(out.subarray(DRAFT.plaintext.length), DRAFT.tag);
    });

    test("opens the draft's ciphertext and tag to its plaintext, and not with a changed tag", () => {
      const body = Uint8Array.from([...DRAFT.ciphertext, ...DRAFT.tag]);
      assert.deepEqual(cipher.decrypt(params, body), DRAFT.plaintext);
      body[body.length - 1] = (body[body.length - 1] as number) ^ 0x80;
      assert.throws(() => cipher.decrypt(params, body));
    });

    test('passes the known-answer self-test', () => {
      assert.equal(passesKnownAnswer(cipher), true);
    });
  });
}

describe('passesKnownAnswer()', () => {
  test('fails a runtime without the cipher (it throws)', () => {
    const missing: XChaCha20Poly1305 = {
      name: 'node:crypto',
      encrypt() {
        throw new Error('Unknown cipher');
      },
      decrypt() {
        throw new Error('Unknown cipher');
      },
    };
    assert.equal(passesKnownAnswer(missing), false);
  });

  test('fails a cipher that gives other bytes', () => {
    const wrong: XChaCha20Poly1305 = {
      ...nobleXChaCha,
      encrypt(params, plaintext, out) {
        nobleXChaCha.encrypt(params, plaintext, out);
        out[0] = (out[0] as number) ^ 1;
      },
    };
    assert.equal(passesKnownAnswer(wrong), false);
  });

  test('fails a cipher that seals right but opens wrong', () => {
    const wrong: XChaCha20Poly1305 = { ...nobleXChaCha, decrypt: () => new Uint8Array(114) };
    assert.equal(passesKnownAnswer(wrong), false);
  });

  test('fails a cipher that opens without checking the tag', () => {
    const unauthenticated: XChaCha20Poly1305 = {
      ...nobleXChaCha,
      decrypt(params, body) {
        // Decrypts with the keystream alone and never looks at the tag.
        const length = body.length - 16;
        const keystream = new Uint8Array(body.length);
        nobleXChaCha.encrypt(params, new Uint8Array(length), keystream);
        return Uint8Array.from(
          { length },
          (_, i) => (body[i] as number) ^ (keystream[i] as number),
        );
      },
    };
    assert.equal(passesKnownAnswer(unauthenticated), false);
  });
});
