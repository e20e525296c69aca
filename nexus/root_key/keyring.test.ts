import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { open, seal } from '../../shared/crypto/aead.ts';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import {
  createKeyring,
  KEYRING_BYTES,
  openKeyring,
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
});
