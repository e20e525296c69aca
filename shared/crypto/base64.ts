/**
 * Strict base64 and base64url (RFC 4648): one canonical encoding per byte
 * string, anything else refused without repeating it. Apart from bytes.ts,
 * because the SDK carries it (named keys' wire form) and it needs only the
 * `btoa` and `atob` globals, which every runtime's types declare.
 */
import { InvalidRequestError } from '../errors/errors.ts';

/** Characters passed to `String.fromCharCode` at once (keeps the stack small). */
const CHAR_CHUNK = 0x8000;

/** Canonical padded base64: groups of four, `=` only as the last one or two characters. */
const BASE64_REGEXP = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Unpadded base64url (RFC 4648 §5); the length is checked separately. */
const BASE64URL_REGEXP = /^[A-Za-z0-9_-]*$/;

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
