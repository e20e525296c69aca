/**
 * Authenticated encryption for everything Nexus keeps at rest:
 * XChaCha20-Poly1305 with a fresh random 24-byte nonce per message, so random
 * nonces are safe for any number of messages.
 *
 * Sealed layout: `version (1 byte) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`.
 * The version byte is authenticated too (it is prefixed to the AAD), and the
 * AAD is required: it binds a ciphertext to its place (for example a secret's
 * path), so a ciphertext moved elsewhere fails to open.
 *
 * The cipher is the runtime's native ChaCha20-Poly1305 (`node:crypto`, on
 * Node and Deno) behind HChaCha20, which costs well under half of the pure
 * JavaScript one, when it passes the XChaCha draft's known-answer test on
 * first use; otherwise `@noble/ciphers`. Both give the same bytes, so either
 * opens what the other sealed (ADR 0016). `aeadImplementation()` says which
 * one runs.
 */
import { DecryptionFailedError } from '../errors/errors.ts';
import { nativeXChaCha } from './_native_xchacha.ts';
import {
  type AeadImplementation,
  nobleXChaCha,
  passesKnownAnswer,
  XCHACHA_KEY_BYTES,
  XCHACHA_NONCE_BYTES,
  XCHACHA_TAG_BYTES,
  type XChaCha20Poly1305,
} from './_xchacha.ts';
import { randomBytes } from './bytes.ts';

export const AEAD_KEY_BYTES = XCHACHA_KEY_BYTES;
export const AEAD_NONCE_BYTES = XCHACHA_NONCE_BYTES;
export const AEAD_TAG_BYTES = XCHACHA_TAG_BYTES;
/** The only layout so far. */
const LAYOUT_VERSION = 1;
const HEADER_BYTES = 1 + AEAD_NONCE_BYTES;
/** Size of a sealed empty plaintext: the smallest valid input to `open()`. */
export const AEAD_OVERHEAD_BYTES = HEADER_BYTES + AEAD_TAG_BYTES;

/** The implementation chosen on first use, for the life of the process. */
let chosen: XChaCha20Poly1305 | undefined;

function cipher(): XChaCha20Poly1305 {
  chosen ??= passesKnownAnswer(nativeXChaCha) ? nativeXChaCha : nobleXChaCha;
  return chosen;
}

/** Which implementation `seal()` and `open()` use in this process (for status and tests). */
export function aeadImplementation(): AeadImplementation {
  return cipher().name;
}

/** Encrypts and authenticates `plaintext`, bound to `aad`. */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  return sealWith(cipher(), { key, plaintext, aad });
}

/**
 * Authenticates and decrypts what `seal()` produced under the same key and
 * AAD. Every failure (truncated, unknown version, any changed bit, wrong key
 * or AAD) throws `DecryptionFailedError` with one fixed message, so nothing
 * tells the causes apart.
 */
export function open(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  return openWith(cipher(), { key, sealed, aad });
}

/**
 * `seal()` through a given implementation. Only `seal()` and the tests that
 * prove both implementations interchangeable call it: the implementations
 * themselves are private to this folder.
 */
export function sealWith(
  implementation: XChaCha20Poly1305,
  { key, plaintext, aad }: { key: Uint8Array; plaintext: Uint8Array; aad: Uint8Array },
): Uint8Array {
  checkKey(key);
  checkBytes(plaintext, 'plaintext');
  checkAad(aad);
  const sealed = new Uint8Array(AEAD_OVERHEAD_BYTES + plaintext.length);
  sealed[0] = LAYOUT_VERSION;
  const nonce = randomBytes(AEAD_NONCE_BYTES);
  sealed.set(nonce, 1);
  implementation.encrypt(
    { key, nonce, aad: versionedAad(LAYOUT_VERSION, aad) },
    plaintext,
    sealed.subarray(HEADER_BYTES),
  );
  return sealed;
}

/** `open()` through a given implementation; see `sealWith()`. */
export function openWith(
  implementation: XChaCha20Poly1305,
  { key, sealed, aad }: { key: Uint8Array; sealed: Uint8Array; aad: Uint8Array },
): Uint8Array {
  checkKey(key);
  checkBytes(sealed, 'sealed');
  checkAad(aad);
  if (sealed.length < AEAD_OVERHEAD_BYTES || sealed[0] !== LAYOUT_VERSION) {
    throw new DecryptionFailedError();
  }
  const nonce = sealed.subarray(1, HEADER_BYTES);
  try {
    return implementation.decrypt(
      { key, nonce, aad: versionedAad(LAYOUT_VERSION, aad) },
      sealed.subarray(HEADER_BYTES),
    );
  } catch {
    throw new DecryptionFailedError();
  }
}

function versionedAad(version: number, aad: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + aad.length);
  out[0] = version;
  out.set(aad, 1);
  return out;
}

function checkBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`The ${name} must be a Uint8Array`);
  }
}

function checkKey(key: unknown): asserts key is Uint8Array {
  checkBytes(key, 'key');
  if (key.length !== AEAD_KEY_BYTES) {
    throw new RangeError(`The key must be ${AEAD_KEY_BYTES} bytes, got ${key.length}`);
  }
}

function checkAad(aad: unknown): asserts aad is Uint8Array {
  checkBytes(aad, 'associated data');
  if (aad.length === 0) {
    throw new RangeError('The associated data must not be empty');
  }
}
