/**
 * The keyring: the store's data key, kept in the database only sealed under
 * the root key. It doubles as the root key's verifier: a recovered candidate
 * is the root key exactly when it opens the sealed keyring (an AEAD tag check,
 * so a wrong key fails instead of yielding garbage).
 */
import { open, seal } from '../../shared/crypto/aead.ts';
import { randomBytes, zeroize } from '../../shared/crypto/bytes.ts';
import { DecryptionFailedError } from '../../shared/errors/errors.ts';

export const KEYRING_BYTES = 32;
/** Binds the sealed keyring to its purpose, so no other ciphertext can pass for it. */
const KEYRING_AAD = new TextEncoder().encode('spike-ts:root-key:keyring:v1');

/** A new random data key. */
export function createKeyring(): Uint8Array {
  return randomBytes(KEYRING_BYTES);
}

/** The keyring sealed under the root key, as the store keeps it. */
export function sealKeyring(rootKey: Uint8Array, keyring: Uint8Array): Uint8Array {
  if (!(keyring instanceof Uint8Array) || keyring.length !== KEYRING_BYTES) {
    throw new RangeError(`The keyring must be ${KEYRING_BYTES} bytes`);
  }
  return seal(rootKey, keyring, KEYRING_AAD);
}

/** Opens the sealed keyring; throws `DecryptionFailedError` under a wrong root key. */
export function openKeyring(rootKey: Uint8Array, sealed: Uint8Array): Uint8Array {
  const keyring = open(rootKey, sealed, KEYRING_AAD);
  if (keyring.length !== KEYRING_BYTES) {
    // Authentic yet the wrong size: not something sealKeyring() made.
    keyring.fill(0);
    throw new DecryptionFailedError();
  }
  return keyring;
}

/** Whether `rootKey` is the key the keyring was sealed under. */
export function verifyRootKey(rootKey: Uint8Array, sealed: Uint8Array): boolean {
  try {
    zeroize(openKeyring(rootKey, sealed));
    return true;
  } catch (err) {
    if (err instanceof DecryptionFailedError) {
      return false;
    }
    throw err;
  }
}
