/**
 * Byte helpers for key material: randomness, comparison without early exit,
 * wiping, and strict base64. Pure: only the `crypto`, `btoa` and `atob`
 * globals, which Node and Deno both provide.
 */
import { InvalidRequestError } from '../errors/errors.ts';

/** `crypto.getRandomValues` fills at most this many bytes per call. */
const RANDOM_CHUNK_BYTES = 65_536;
/** Characters passed to `String.fromCharCode` at once (keeps the stack small). */
const CHAR_CHUNK = 0x8000;

/** Canonical padded base64: groups of four, `=` only as the last one or two characters. */
const BASE64_REGEXP = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Unpadded base64url (RFC 4648 §5); the length is checked separately. */
const BASE64URL_REGEXP = /^[A-Za-z0-9_-]*$/;

/** `length` bytes from the platform's cryptographically secure generator. */
export function randomBytes(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`Random byte count must be a non-negative integer, got ${String(length)}`);
  }
  const out = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += RANDOM_CHUNK_BYTES) {
    crypto.getRandomValues(out.subarray(offset, Math.min(offset + RANDOM_CHUNK_BYTES, length)));
  }
  return out;
}

/**
 * Whether `a` and `b` hold the same bytes, taking the same time wherever they
 * differ. Lengths are not secret: different lengths return false at once.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) {
    throw new TypeError('constantTimeEqual() compares Uint8Arrays only');
  }
  if (a.length !== b.length) {
    return false;
  }
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    diff |= (a[i] as number) ^ (b[i] as number);
  }
  return diff === 0;
}

/** Overwrites every given buffer with zeros; `undefined` entries are skipped. */
export function zeroize(...arrays: readonly (Uint8Array | undefined)[]): void {
  for (const bytes of arrays) {
    bytes?.fill(0);
  }
}

/** Standard base64 with padding (RFC 4648 §4). */
export function encodeBase64(bytes: Uint8Array): string {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError('encodeBase64() takes a Uint8Array');
  }
  let binary = '';
  for (let offset = 0; offset < bytes.length; offset += CHAR_CHUNK) {
    binary += String.fromCharCode(...bytes.subarray(offset, offset + CHAR_CHUNK));
  }
  return btoa(binary);
}

/**
 * Decodes standard, padded base64. Anything but the one canonical encoding of
 * some bytes (whitespace, missing or extra padding, stray bits in the last
 * character, another alphabet) throws `InvalidRequestError`; the message never
 * repeats the input.
 */
export function decodeBase64(text: string): Uint8Array {
  if (typeof text !== 'string') {
    throw new InvalidRequestError('Malformed base64: expected a string');
  }
  if (!BASE64_REGEXP.test(text)) {
    throw new InvalidRequestError(
      'Malformed base64: expected padded base64 without whitespace or other characters',
    );
  }
  const bytes = binaryToBytes(atob(text));
  if (encodeBase64(bytes) !== text) {
    bytes.fill(0);
    throw new InvalidRequestError('Malformed base64: the last character carries stray bits');
  }
  return bytes;
}

/** URL-safe base64 without padding (RFC 4648 §5). */
export function encodeBase64Url(bytes: Uint8Array): string {
  return encodeBase64(bytes).replace(/=+$/, '').replaceAll('+', '-').replaceAll('/', '_');
}

/** Decodes unpadded base64url with the same strictness as `decodeBase64()`. */
export function decodeBase64Url(text: string): Uint8Array {
  if (typeof text !== 'string') {
    throw new InvalidRequestError('Malformed base64url: expected a string');
  }
  if (!BASE64URL_REGEXP.test(text)) {
    throw new InvalidRequestError(
      'Malformed base64url: expected only A-Z, a-z, 0-9, "-" and "_", without padding',
    );
  }
  if (text.length % 4 === 1) {
    throw new InvalidRequestError('Malformed base64url: the length is impossible for base64');
  }
  const bytes = binaryToBytes(atob(text.replaceAll('-', '+').replaceAll('_', '/')));
  if (encodeBase64Url(bytes) !== text) {
    bytes.fill(0);
    throw new InvalidRequestError('Malformed base64url: the last character carries stray bits');
  }
  return bytes;
}

function binaryToBytes(binary: string): Uint8Array {
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}
