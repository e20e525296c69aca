import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { open, seal } from '../../shared/crypto/aead.ts';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import {
  addKeyringTerm,
  createKeyring,
  decodeKeyring,
  encodeKeyring,
  KEYRING_BYTES,
  type KeyringTerm,
  MAX_KEYRING_TERMS,
  openKeyring,
  resealKeyring,
  sealKeyring,
  verifyRootKey,
} from './keyring.ts';

const decryptionFailed = { code: 'ERR_DECRYPTION_FAILED', message: 'Decryption failed' };

describe('keyring', () => {
  test('createKeyring() returns 32 fresh random bytes', () => {
    const a = createKeyring();
    assert.equal(a.length, KEYRING_BYTES);
    assert.notDeepEqual(a, createKeyring());
  });

  test('openKeyring() returns the keyring sealed under the same root key', () => {
    const rootKey = randomBytes(32);
    const keyring = createKeyring();
    const sealed = sealKeyring(rootKey, keyring);
    assert.deepEqual(openKeyring(rootKey, sealed), keyring);
  });

  test('openKeyring() under a wrong root key throws DecryptionFailedError', () => {
    const sealed = sealKeyring(randomBytes(32), createKeyring());
    assert.throws(() => openKeyring(randomBytes(32), sealed), decryptionFailed);
  });

  test('verifyRootKey() is true for the root key and false for any other', () => {
    const rootKey = randomBytes(32);
    const sealed = sealKeyring(rootKey, createKeyring());
    assert.equal(verifyRootKey(rootKey, sealed), true);
    assert.equal(verifyRootKey(randomBytes(32), sealed), false);
    const nearMiss = Uint8Array.from(rootKey);
    nearMiss[0] = (nearMiss[0] as number) ^ 1;
    assert.equal(verifyRootKey(nearMiss, sealed), false);
  });

  test('verifyRootKey() is false for a damaged or truncated sealed keyring', () => {
    const rootKey = randomBytes(32);
    const sealed = sealKeyring(rootKey, createKeyring());
    const damaged = Uint8Array.from(sealed);
    damaged[30] = (damaged[30] as number) ^ 0x80;
    assert.equal(verifyRootKey(rootKey, damaged), false);
    assert.equal(verifyRootKey(rootKey, sealed.subarray(0, 20)), false);
    assert.equal(verifyRootKey(rootKey, new Uint8Array(0)), false);
  });

  test('the sealed keyring is bound to its purpose: other data under the same key does not pass', () => {
    const rootKey = randomBytes(32);
    // Same key, same length, but sealed for another purpose (another AAD).
    const other = seal(rootKey, createKeyring(), new TextEncoder().encode('secrets/keyring'));
    assert.equal(verifyRootKey(rootKey, other), false);
    // And the sealed keyring does not open as anything else.
    const sealed = sealKeyring(rootKey, createKeyring());
    assert.throws(
      () => open(rootKey, sealed, new TextEncoder().encode('secrets/keyring')),
      decryptionFailed,
    );
  });

  test('an authentic keyring of the wrong size is refused like a wrong key', () => {
    const rootKey = randomBytes(32);
    const aad = new TextEncoder().encode('spike-ts:root-key:keyring:v1');
    const short = seal(rootKey, randomBytes(16), aad);
    assert.throws(() => openKeyring(rootKey, short), decryptionFailed);
    assert.equal(verifyRootKey(rootKey, short), false);
  });

  test('verifyRootKey() leaves the sealed keyring untouched', () => {
    const rootKey = randomBytes(32);
    const sealed = sealKeyring(rootKey, createKeyring());
    const copy = Uint8Array.from(sealed);
    verifyRootKey(rootKey, sealed);
    verifyRootKey(randomBytes(32), sealed);
    assert.deepEqual(sealed, copy);
  });

  test('sealKeyring() refuses a keyring that is not 32 bytes', () => {
    assert.throws(() => sealKeyring(randomBytes(32), randomBytes(16)), RangeError);
  });

  test('a root key of the wrong size is a programming error, not a failed verification', () => {
    const sealed = sealKeyring(randomBytes(32), createKeyring());
    assert.throws(() => verifyRootKey(randomBytes(16), sealed), RangeError);
  });

  test('sealKeyring() refuses bytes that are neither 32 bytes nor a keyring of terms', () => {
    const keyring = encodeKeyring(twoTerms());
    assert.throws(() => sealKeyring(randomBytes(32), keyring.subarray(1)), RangeError);
  });
});

/** Two terms with distinct keys and times. */
function twoTerms(): KeyringTerm[] {
  return [
    { term: 1, createdAtMs: 0, activeFromMs: 0, key: randomBytes(KEYRING_BYTES) },
    {
      term: 2,
      createdAtMs: 1_700_000_000_000,
      activeFromMs: 1_700_000_060_000,
      key: randomBytes(KEYRING_BYTES),
    },
  ];
}

describe('keyring terms', () => {
  test('a v2 keyring decodes to the terms, times and keys it was encoded from', () => {
    const terms = [
      ...twoTerms(),
      {
        term: 7,
        createdAtMs: 1_800_000_000_000,
        activeFromMs: 1_800_000_000_001,
        key: randomBytes(32),
      },
    ];
    const plaintext = encodeKeyring(terms);
    assert.equal(plaintext.length, 3 + 52 * 3);
    assert.notEqual(plaintext.length, KEYRING_BYTES);
    assert.deepEqual(decodeKeyring(plaintext), terms);
    // A keyring of a single term is still the v2 form, not a bare key.
    const single = encodeKeyring(terms.slice(0, 1));
    assert.equal(single.length, 55);
    assert.deepEqual(decodeKeyring(single), terms.slice(0, 1));
  });

  test('decodeKeyring() hands out copies: wiping them leaves the plaintext intact', () => {
    const plaintext = encodeKeyring(twoTerms());
    const copy = plaintext.slice();
    for (const term of decodeKeyring(plaintext)) term.key.fill(0);
    assert.deepEqual(plaintext, copy);
  });

  test('a legacy 32-byte keyring is term 1, active since ever, its key the 32 bytes', () => {
    const legacy = createKeyring();
    const terms = decodeKeyring(legacy);
    assert.deepEqual(terms, [{ term: 1, createdAtMs: 0, activeFromMs: 0, key: legacy }]);
    assert.notEqual(terms[0]?.key.buffer, legacy.buffer, 'a copy, not a view');
  });

  test('addKeyringTerm() adds term n+1 with a fresh key and keeps every older term and key', () => {
    const legacy = createKeyring();
    const first = addKeyringTerm(legacy, 1_000, 5_000);
    assert.deepEqual(first.term, { term: 2, createdAtMs: 1_000, activeFromMs: 5_000 });
    const afterFirst = decodeKeyring(first.plaintext);
    assert.equal(afterFirst.length, 2);
    assert.deepEqual(afterFirst[0], { term: 1, createdAtMs: 0, activeFromMs: 0, key: legacy });
    assert.deepEqual(afterFirst[1]?.term, 2);
    assert.notDeepEqual(afterFirst[1]?.key, legacy);
    assert.notDeepEqual(
      afterFirst[1]?.key,
      new Uint8Array(32),
      'the new key is not the wiped buffer',
    );

    const second = addKeyringTerm(first.plaintext, 9_000, 9_000);
    assert.equal(second.term.term, 3);
    const afterSecond = decodeKeyring(second.plaintext);
    assert.deepEqual(afterSecond.slice(0, 2), afterFirst);
    const keys = afterSecond.map((t) => t.key.join(','));
    assert.equal(new Set(keys).size, 3, 'each term has its own key');
    // The input is left as it was.
    assert.deepEqual(decodeKeyring(first.plaintext), afterFirst);
  });

  test('malformed plaintexts are refused like a wrong key (DecryptionFailedError)', () => {
    const good = encodeKeyring(twoTerms());
    const variants: [string, Uint8Array][] = [];
    const edit = (
      why: string,
      change: (bytes: Uint8Array, view: DataView) => void,
      bytes = good.slice(),
    ) => {
      change(bytes, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      variants.push([why, bytes]);
    };
    edit('unknown format byte', (b) => {
      b[0] = 3;
    });
    edit('count of zero', (_b, v) => v.setUint16(1, 0));
    edit('count larger than the entries', (_b, v) => v.setUint16(1, 3));
    edit('count smaller than the entries', (_b, v) => v.setUint16(1, 1));
    edit('repeated term', (_b, v) => v.setUint32(3 + 52, 1));
    edit('decreasing terms', (_b, v) => {
      v.setUint32(3, 5);
    });
    edit('term 0', (_b, v) => v.setUint32(3, 0));
    edit('a time that is not an integer', (_b, v) => v.setFloat64(3 + 4, Number.NaN));
    edit('an activation time that is not an integer', (_b, v) => v.setFloat64(3 + 52 + 12, 1.5));
    variants.push(['one byte too many', Uint8Array.from([...good, 0])]);
    variants.push(['one byte too few', good.subarray(0, good.length - 1)]);
    variants.push(['header only', good.subarray(0, 3)]);
    variants.push(['too short for a header', Uint8Array.of(2, 0)]);
    variants.push(['empty', new Uint8Array(0)]);
    variants.push(['31 bytes', randomBytes(31)]);
    for (const [why, bytes] of variants) {
      assert.throws(() => decodeKeyring(bytes), decryptionFailed, why);
    }
  });

  test('an authentic but malformed v2 keyring does not open, and does not verify a root key', () => {
    const rootKey = randomBytes(32);
    const aad = new TextEncoder().encode('spike-ts:root-key:keyring:v1');
    const bad = encodeKeyring(twoTerms());
    new DataView(bad.buffer).setUint32(3 + 52, 1);
    const sealed = seal(rootKey, bad, aad);
    assert.throws(() => openKeyring(rootKey, sealed), decryptionFailed);
    assert.equal(verifyRootKey(rootKey, sealed), false);
  });

  test('encodeKeyring() refuses no terms, non-increasing terms and keys of the wrong size', () => {
    const [one, two] = twoTerms() as [KeyringTerm, KeyringTerm];
    assert.throws(() => encodeKeyring([]), RangeError);
    assert.throws(() => encodeKeyring([two, one]), RangeError);
    assert.throws(() => encodeKeyring([one, { ...two, term: 1 }]), RangeError);
    assert.throws(() => encodeKeyring([{ ...one, key: randomBytes(16) }]), RangeError);
    assert.throws(() => encodeKeyring([{ ...one, term: 0 }]), RangeError);
  });

  test('sealKeyring() and openKeyring() carry a v2 keyring, and only its root key opens it', () => {
    const rootKey = randomBytes(32);
    const plaintext = addKeyringTerm(createKeyring(), 10, 20).plaintext;
    const sealed = sealKeyring(rootKey, plaintext);
    const opened = openKeyring(rootKey, sealed);
    assert.deepEqual(opened, plaintext);
    assert.deepEqual(decodeKeyring(opened), decodeKeyring(plaintext));
    assert.equal(verifyRootKey(rootKey, sealed), true);
    assert.throws(() => openKeyring(randomBytes(32), sealed), decryptionFailed);
  });

  test('resealKeyring() moves the keyring to a new root key: the old key no longer opens the result', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const plaintext = addKeyringTerm(createKeyring(), 10, 20).plaintext;
    const sealed = sealKeyring(oldKey, plaintext);
    const resealed = resealKeyring(oldKey, newKey, sealed);
    assert.deepEqual(openKeyring(newKey, resealed), plaintext);
    assert.throws(() => openKeyring(oldKey, resealed), decryptionFailed);
    assert.equal(verifyRootKey(oldKey, resealed), false);
    assert.equal(verifyRootKey(newKey, resealed), true);
    // A wrong old key moves nothing.
    assert.throws(() => resealKeyring(randomBytes(32), newKey, sealed), decryptionFailed);
  });

  test('addKeyringTerm() refuses a keyring that holds the most terms with ConflictError, and leaves it whole', () => {
    const full = encodeKeyring(
      Array.from({ length: MAX_KEYRING_TERMS }, (_, i) => ({
        term: i + 1,
        createdAtMs: 1_000 + i,
        activeFromMs: 1_000 + i,
        key: randomBytes(KEYRING_BYTES),
      })),
    );
    const before = full.slice();
    assert.throws(() => addKeyringTerm(full, 9_000, 9_000), {
      code: 'ERR_CONFLICT',
      message: /already holds 1024 terms/,
    });
    assert.deepEqual(full, before);
    assert.equal(decodeKeyring(full).length, MAX_KEYRING_TERMS);
  });
});
