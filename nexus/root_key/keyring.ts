/**
 * The keyring: the store's data keys, kept in the database only sealed under
 * the root key. It doubles as the root key's verifier: a recovered candidate
 * is the root key exactly when it opens the sealed keyring (an AEAD tag check,
 * so a wrong key fails instead of yielding garbage).
 *
 * The keyring holds one data key per **term**. Rotating the data key adds a
 * term; new rows are sealed under the newest term once it is active, and
 * every row records the term that sealed it, so older rows stay readable and
 * a sweep can rewrap them (docs/keys.md). Two plaintext encodings exist:
 * - 32 bytes: a keyring with one term, term 1 (the form every keyring has
 *   until its first rotation, and every keyring made before terms existed);
 * - version 2: `0x02`, a big-endian u16 count, then per term, in increasing
 *   order, a u32 term, two f64 times (created, active from; ms since the
 *   epoch) and its 32-byte key. Its length is 3 + 52·n, never 32.
 */
import { open, seal } from '../../shared/crypto/aead.ts';
import { randomBytes, zeroize } from '../../shared/crypto/bytes.ts';
import { ConflictError, DecryptionFailedError } from '../../shared/errors/errors.ts';

/** Bytes of one data key, and of a keyring that has never rotated. */
export const KEYRING_BYTES = 32;
/** The most terms a keyring holds: a rotation beyond it is refused. */
export const MAX_KEYRING_TERMS = 1024;
/** Binds the sealed keyring to its purpose, so no other ciphertext can pass for it. */
const KEYRING_AAD = new TextEncoder().encode('spike-ts:root-key:keyring:v1');
const FORMAT_V2 = 2;
const HEADER_BYTES = 3;
const ENTRY_BYTES = 4 + 8 + 8 + KEYRING_BYTES;

/** One term of a keyring, without its key. */
export interface KeyringTermInfo {
  readonly term: number;
  /** When the term was made; 0 for the first term of a keyring made before terms existed. */
  readonly createdAtMs: number;
  /** From when new rows are sealed under it. */
  readonly activeFromMs: number;
}

/** A term with its key: only inside this module and `root_key.ts`. */
export interface KeyringTerm extends KeyringTermInfo {
  readonly key: Uint8Array;
}

/** A new keyring with one random data key (term 1). */
export function createKeyring(): Uint8Array {
  return randomBytes(KEYRING_BYTES);
}

/**
 * The terms of a plaintext keyring, each key a copy of its own (the caller
 * zeroizes them). Bytes of neither form are a DecryptionFailedError: they
 * passed the tag check but were not made here.
 */
export function decodeKeyring(plaintext: Uint8Array): KeyringTerm[] {
  if (plaintext.length === KEYRING_BYTES) {
    return [{ term: 1, createdAtMs: 0, activeFromMs: 0, key: plaintext.slice() }];
  }
  const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  if (plaintext.length < HEADER_BYTES || plaintext[0] !== FORMAT_V2) {
    throw new DecryptionFailedError();
  }
  const count = view.getUint16(1);
  if (
    count < 1 ||
    count > MAX_KEYRING_TERMS ||
    plaintext.length !== HEADER_BYTES + count * ENTRY_BYTES
  ) {
    throw new DecryptionFailedError();
  }
  const terms: KeyringTerm[] = [];
  for (let i = 0; i < count; i++) {
    const at = HEADER_BYTES + i * ENTRY_BYTES;
    const term = view.getUint32(at);
    const createdAtMs = view.getFloat64(at + 4);
    const activeFromMs = view.getFloat64(at + 12);
    const previous = terms[i - 1];
    if (
      term < 1 ||
      (previous !== undefined && term <= previous.term) ||
      !Number.isSafeInteger(createdAtMs) ||
      !Number.isSafeInteger(activeFromMs)
    ) {
      zeroize(...terms.map((t) => t.key));
      throw new DecryptionFailedError();
    }
    const key = plaintext.slice(at + 20, at + 20 + KEYRING_BYTES);
    terms.push({ term, createdAtMs, activeFromMs, key });
  }
  return terms;
}

/** The plaintext of a keyring with these terms (in increasing order); the caller zeroizes it. */
export function encodeKeyring(terms: readonly KeyringTerm[]): Uint8Array {
  if (terms.length < 1 || terms.length > MAX_KEYRING_TERMS) {
    throw new RangeError(`A keyring holds 1 to ${MAX_KEYRING_TERMS} terms`);
  }
  const out = new Uint8Array(HEADER_BYTES + terms.length * ENTRY_BYTES);
  const view = new DataView(out.buffer);
  out[0] = FORMAT_V2;
  view.setUint16(1, terms.length);
  terms.forEach((entry, i) => {
    const previous = terms[i - 1];
    if (
      !Number.isSafeInteger(entry.term) ||
      entry.term < 1 ||
      entry.term > 0xffff_ffff ||
      (previous !== undefined && entry.term <= previous.term) ||
      entry.key.length !== KEYRING_BYTES
    ) {
      out.fill(0);
      throw new RangeError('Keyring terms must be increasing integers, each with a 32-byte key');
    }
    const at = HEADER_BYTES + i * ENTRY_BYTES;
    view.setUint32(at, entry.term);
    view.setFloat64(at + 4, entry.createdAtMs);
    view.setFloat64(at + 12, entry.activeFromMs);
    out.set(entry.key, at + 20);
  });
  return out;
}

/**
 * The plaintext of `current` with one more term: a fresh random key, active
 * from `activeFromMs`. ConflictError when it already holds the most terms.
 * The caller zeroizes the result.
 */
export function addKeyringTerm(
  current: Uint8Array,
  nowMs: number,
  activeFromMs: number,
): { readonly plaintext: Uint8Array; readonly term: KeyringTermInfo } {
  const terms = decodeKeyring(current);
  const key = randomBytes(KEYRING_BYTES);
  try {
    if (terms.length >= MAX_KEYRING_TERMS) {
      throw new ConflictError(
        `The keyring already holds ${MAX_KEYRING_TERMS} terms, the most it may: the data key cannot rotate again`,
      );
    }
    const last = terms[terms.length - 1] as KeyringTerm;
    const term = { term: last.term + 1, createdAtMs: nowMs, activeFromMs };
    return { plaintext: encodeKeyring([...terms, { ...term, key }]), term };
  } finally {
    zeroize(key, ...terms.map((t) => t.key));
  }
}

/** The keyring sealed under the root key, as the store keeps it. */
export function sealKeyring(rootKey: Uint8Array, keyring: Uint8Array): Uint8Array {
  if (!(keyring instanceof Uint8Array)) {
    throw new RangeError('The keyring must be bytes');
  }
  try {
    zeroize(...decodeKeyring(keyring).map((t) => t.key));
  } catch {
    throw new RangeError('The keyring must be 32 bytes or a keyring of terms');
  }
  return seal(rootKey, keyring, KEYRING_AAD);
}

/** Opens the sealed keyring; throws `DecryptionFailedError` under a wrong root key. */
export function openKeyring(rootKey: Uint8Array, sealed: Uint8Array): Uint8Array {
  const keyring = open(rootKey, sealed, KEYRING_AAD);
  try {
    // Authentic yet neither form: not something sealKeyring() made.
    zeroize(...decodeKeyring(keyring).map((t) => t.key));
  } catch (err) {
    keyring.fill(0);
    throw err;
  }
  return keyring;
}

/**
 * The same keyring sealed under another root key (a root-key rotation): the
 * plaintext exists only inside this call.
 */
export function resealKeyring(
  oldRootKey: Uint8Array,
  newRootKey: Uint8Array,
  sealed: Uint8Array,
): Uint8Array {
  const keyring = openKeyring(oldRootKey, sealed);
  try {
    return sealKeyring(newRootKey, keyring);
  } finally {
    zeroize(keyring);
  }
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
