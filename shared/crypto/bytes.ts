/**
 * Byte helpers for key material: randomness, comparison without early exit,
 * and wiping (strict base64 is in base64.ts). Pure: only the `crypto`
 * global, which Node and Deno both provide.
 */
/** `crypto.getRandomValues` fills at most this many bytes per call. */
const RANDOM_CHUNK_BYTES = 65_536;

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
