/**
 * XChaCha20-Poly1305 on the runtime's native ChaCha20-Poly1305
 * (`node:crypto`, which Node and Deno both provide): HChaCha20 derives a
 * subkey from the key and the first 16 nonce bytes, and the IETF
 * ChaCha20-Poly1305 seals under it with the last 8 nonce bytes. The bytes
 * are those of `nobleXChaCha`; `aead.ts` uses this only after it passes the
 * known-answer test. The one file of shared/crypto that may import a Node
 * module (ADR 0016).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import {
  withChaChaKeyAndNonce,
  XCHACHA_TAG_BYTES,
  type XChaCha20Poly1305,
  type XChaChaParams,
} from './_xchacha.ts';

const CIPHER = 'chacha20-poly1305';
const OPTIONS = { authTagLength: XCHACHA_TAG_BYTES } as const;

export const nativeXChaCha: XChaCha20Poly1305 = {
  name: 'node:crypto',
  encrypt,
  decrypt,
};

function encrypt({ key, nonce, aad }: XChaChaParams, plaintext: Uint8Array, out: Uint8Array): void {
  const cipher = withChaChaKeyAndNonce(key, nonce, (subkey, chachaNonce) =>
    createCipheriv(CIPHER, subkey, chachaNonce, OPTIONS),
  );
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  const tag = cipher.getAuthTag();
  if (head.length + tail.length !== plaintext.length || tag.length !== XCHACHA_TAG_BYTES) {
    throw new Error('ChaCha20-Poly1305 returned output of the wrong length');
  }
  out.set(head, 0);
  out.set(tail, head.length);
  out.set(tag, plaintext.length);
}

function decrypt({ key, nonce, aad }: XChaChaParams, body: Uint8Array): Uint8Array {
  const length = body.length - XCHACHA_TAG_BYTES;
  if (length < 0) {
    throw new Error('The sealed body is shorter than its tag');
  }
  const decipher = withChaChaKeyAndNonce(key, nonce, (subkey, chachaNonce) =>
    createDecipheriv(CIPHER, subkey, chachaNonce, OPTIONS),
  );
  decipher.setAAD(aad, { plaintextLength: length });
  decipher.setAuthTag(body.subarray(length));
  const head = decipher.update(body.subarray(0, length));
  let tail: Uint8Array;
  try {
    tail = decipher.final();
  } catch (err) {
    // Not authentic: wipe what the cipher decrypted before it checked the tag.
    head.fill(0);
    throw err;
  }
  // ChaCha20 is a stream cipher: `update()` returns the whole plaintext,
  // and Node gives it an ArrayBuffer of its own. A view of that is ours to
  // return, which spares a read a copy and a wipe (docs/performance.md, "AEAD
  // per read").
  if (tail.length === 0 && head.length === length && ownsItsBuffer(head)) {
    return new Uint8Array(head.buffer, 0, length);
  }
  // Otherwise copy out of the runtime's (possibly pooled) buffers into one
  // we own, then wipe theirs, so no plaintext stays behind in a shared pool.
  const plaintext = new Uint8Array(length);
  const isWhole = head.length + tail.length === length;
  if (isWhole) {
    plaintext.set(head, 0);
    plaintext.set(tail, head.length);
  }
  head.fill(0);
  tail.fill(0);
  if (!isWhole) {
    throw new Error('ChaCha20-Poly1305 returned output of the wrong length');
  }
  return plaintext;
}

/** Whether `bytes` is the whole of its ArrayBuffer, so that no other view (a pool) shares it. */
function ownsItsBuffer(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length;
}
