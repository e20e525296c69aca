/**
 * HMAC-SHA256 and HKDF-SHA256 (RFC 2104, RFC 5869), from `@noble/hashes`:
 * the message authentication of named keys (`nexus/transit/`), under keys
 * derived from a key version's material so that no key serves two purposes.
 * Pure, like the rest of the folder.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';

/** Bytes of an HMAC-SHA256 tag. */
export const HMAC_SHA256_BYTES = 32;
/** HKDF-SHA256 can expand to at most 255 blocks of the hash. */
const MAX_HKDF_BYTES = 255 * 32;

/** The HMAC-SHA256 of `message` under `key`. */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length === 0) {
    throw new TypeError('hmacSha256() needs a non-empty key');
  }
  if (!(message instanceof Uint8Array)) {
    throw new TypeError('hmacSha256() takes the message as a Uint8Array');
  }
  return hmac(sha256, key, message);
}

/**
 * `length` bytes of HKDF-SHA256 from input key material `ikm`, without salt
 * (the material is uniformly random already), for the purpose `info` names.
 */
export function hkdfSha256(ikm: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!(ikm instanceof Uint8Array) || ikm.length === 0) {
    throw new TypeError('hkdfSha256() needs non-empty key material');
  }
  if (!(info instanceof Uint8Array)) {
    throw new TypeError('hkdfSha256() takes its info as a Uint8Array');
  }
  if (!Number.isSafeInteger(length) || length < 1 || length > MAX_HKDF_BYTES) {
    throw new RangeError(`hkdfSha256() derives 1 to ${MAX_HKDF_BYTES} bytes`);
  }
  return hkdf(sha256, ikm, undefined, info, length);
}
