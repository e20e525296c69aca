/**
 * The integrity alarm (docs/storage.md): a stored ciphertext, a secret
 * version's data or a path's custom metadata, that fails to open under the
 * data key was altered, copied from another row or another database, or
 * sealed under another key. Nexus never answers with wrong plaintext (the
 * request gets 500 `ERR_DECRYPTION_FAILED`); this makes the failure loud
 * too, since a client retrying cannot tell an attack from a bug.
 *
 * The stores open every stored ciphertext inside the keyring they are lent,
 * and only opening can fail authentication there, so wrapping that one
 * function covers every stored row without a branch on the read path.
 */
import { DecryptionFailedError } from '../../shared/errors/errors.ts';
import type { KeyringAccess } from './secret_store.ts';

/** `keyring`, calling `alarm` (before the error goes on) whenever what ran under it failed authentication. */
export function withIntegrityAlarm(keyring: KeyringAccess, alarm: () => void): KeyringAccess {
  return function keyringWithAlarm(use, term) {
    try {
      return keyring(use, term);
    } catch (err) {
      if (err instanceof DecryptionFailedError) {
        alarm();
      }
      throw err;
    }
  };
}
