/**
 * The XChaCha20-Poly1305 primitive under `aead.ts`, which has two
 * implementations that give the same bytes: `@noble/ciphers` in pure
 * JavaScript (here) and ChaCha20-Poly1305 from `node:crypto`
 * (`_native_xchacha.ts`). This file also holds the HChaCha20 step that turns
 * the native 12-byte-nonce cipher into the 24-byte-nonce one, and the
 * known-answer test that decides whether the native one may be used
 * (ADR 0016).
 */
import { hchacha, xchacha20poly1305 } from '@noble/ciphers/chacha.js';

export const XCHACHA_KEY_BYTES = 32;
export const XCHACHA_NONCE_BYTES = 24;
export const XCHACHA_TAG_BYTES = 16;
/** HChaCha20 takes the first 16 nonce bytes; the last 8 go to ChaCha20. */
const HCHACHA_NONCE_BYTES = 16;

/** Names `aeadImplementation()` reports: the package or module that does the work. */
export type AeadImplementation = 'node:crypto' | '@noble/ciphers';

/** What one message is sealed under. */
export type XChaChaParams = {
  readonly key: Uint8Array;
  readonly nonce: Uint8Array;
  readonly aad: Uint8Array;
};

export interface XChaCha20Poly1305 {
  readonly name: AeadImplementation;
  /** Writes `ciphertext ‖ tag` (`plaintext.length + 16` bytes) into `out`. */
  encrypt(params: XChaChaParams, plaintext: Uint8Array, out: Uint8Array): void;
  /** The plaintext of `body` (`ciphertext ‖ tag`); throws if it does not authenticate. */
  decrypt(params: XChaChaParams, body: Uint8Array): Uint8Array;
}

export const nobleXChaCha: XChaCha20Poly1305 = {
  name: '@noble/ciphers',
  encrypt({ key, nonce, aad }, plaintext, out) {
    xchacha20poly1305(key, nonce, aad).encrypt(plaintext, out);
  },
  decrypt({ key, nonce, aad }, body) {
    return xchacha20poly1305(key, nonce, aad).decrypt(body);
  },
};

/** "expand 32-byte k" as little-endian words, the layout noble's `hchacha` reads. */
const SIGMA = wordsOf(new TextEncoder().encode('expand 32-byte k'));

/**
 * One scratch area for the reduction, so that a message allocates no buffers
 * for it (that cost more than HChaCha20 itself): the key's words (bytes
 * 0–31), the first 16 nonce bytes (32–47), the subkey (48–79) and the
 * 12-byte ChaCha20 nonce (80–91). Wiped after every use.
 */
const SCRATCH = new Uint32Array(23);
const SCRATCH_BYTES = new Uint8Array(SCRATCH.buffer);
const KEY_WORDS = SCRATCH.subarray(0, 8);
const NONCE_WORDS = SCRATCH.subarray(8, 12);
const SUBKEY_WORDS = SCRATCH.subarray(12, 20);
const SUBKEY = SCRATCH_BYTES.subarray(48, 80);
const CHACHA_NONCE = SCRATCH_BYTES.subarray(80, 92);
let isScratchInUse = false;

/**
 * Runs `use` with the ChaCha20 key and 12-byte nonce that XChaCha20 reduces
 * to: the subkey is HChaCha20 (noble's) of the key and the first 16 nonce
 * bytes, the nonce is four zero bytes and the last 8 nonce bytes. Both live
 * in one scratch area that is wiped when `use` returns or throws, so `use`
 * must copy what it keeps (a cipher context does) and may not call this
 * again.
 */
export function withChaChaKeyAndNonce<T>(
  key: Uint8Array,
  nonce: Uint8Array,
  use: (subkey: Uint8Array, chachaNonce: Uint8Array) => T,
): T {
  if (key.length !== XCHACHA_KEY_BYTES || nonce.length !== XCHACHA_NONCE_BYTES) {
    throw new RangeError('HChaCha20 takes a 32-byte key and a 24-byte nonce');
  }
  if (isScratchInUse) {
    throw new Error('withChaChaKeyAndNonce() may not be called from its own callback');
  }
  isScratchInUse = true;
  try {
    SCRATCH_BYTES.set(key, 0);
    SCRATCH_BYTES.set(nonce.subarray(0, HCHACHA_NONCE_BYTES), 32);
    hchacha(SIGMA, KEY_WORDS, NONCE_WORDS, SUBKEY_WORDS);
    CHACHA_NONCE.set(nonce.subarray(HCHACHA_NONCE_BYTES), 4);
    return use(SUBKEY, CHACHA_NONCE);
  } finally {
    SCRATCH.fill(0);
    isScratchInUse = false;
  }
}

/**
 * Whether `cipher` reproduces the AEAD test vector of the XChaCha draft
 * (draft-irtf-cfrg-xchacha-03, A.3.1), opens it again, and refuses it with one
 * bit of the tag flipped. Any exception (a runtime without the cipher) is a
 * failure, so a missing, wrong or non-authenticating implementation is never
 * chosen.
 */
export function passesKnownAnswer(cipher: XChaCha20Poly1305): boolean {
  const params = {
    key: sequence(0x80, XCHACHA_KEY_BYTES),
    nonce: sequence(0x40, XCHACHA_NONCE_BYTES),
    aad: fromHex(KNOWN_ANSWER.aadHex),
  };
  const plaintext = new TextEncoder().encode(KNOWN_ANSWER.plaintext);
  const expected = fromHex(KNOWN_ANSWER.sealedHex);
  const sealed = new Uint8Array(expected.length);
  try {
    cipher.encrypt(params, plaintext, sealed);
    if (!sameBytes(sealed, expected) || !sameBytes(cipher.decrypt(params, sealed), plaintext)) {
      return false;
    }
  } catch {
    return false;
  }
  sealed[sealed.length - 1] = (sealed[sealed.length - 1] as number) ^ 1;
  try {
    cipher.decrypt(params, sealed);
    return false;
  } catch {
    return true;
  }
}

/** draft-irtf-cfrg-xchacha-03, A.3.1: key 80..9f, nonce 40..57. */
const KNOWN_ANSWER = {
  plaintext:
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  aadHex: '50515253c0c1c2c3c4c5c6c7',
  sealedHex:
    'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4e' +
    'da7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2' +
    '383565d3fff921f9664c97637da9768812f615c68b13b52e' +
    'c0875924c1c7987947deafd8780acf49',
};

/** An aligned copy of `bytes` as 32-bit words in memory order. */
function wordsOf(bytes: Uint8Array): Uint32Array {
  const words = new Uint32Array(bytes.length / 4);
  new Uint8Array(words.buffer).set(bytes);
  return words;
}

function sequence(first: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => first + i);
}

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from({ length: hex.length / 2 }, (_, i) =>
    Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16),
  );
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
