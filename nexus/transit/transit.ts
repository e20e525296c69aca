/**
 * Encryption as a service under named keys: what each data route does once
 * its guard admitted the caller and its body parsed (`shared/api/transit.ts`).
 * The store lends the material of the versions a request needs
 * (`TransitKeyStore.useKey`) for one synchronous callback; nothing here keeps
 * it, and no answer carries it.
 *
 * - Encryption: XChaCha20-Poly1305 (`shared/crypto/aead.ts`, a random 24-byte
 *   nonce per item) under the key version's material, with associated data
 *   `spike-ts:transit:v1 NUL <key name> NUL <version> NUL <context>`. A
 *   ciphertext made under another key, another version or with another
 *   context fails to open: names and versions hold no NUL, and the context
 *   comes last, so no two places share associated data. No context and an
 *   empty one are the same.
 * - HMAC: HMAC-SHA256 under a key derived from the version's material by
 *   HKDF-SHA256 (info `spike-ts:transit:hmac:v1`), never the encryption key
 *   itself; verification compares in constant time.
 * - Versions: encryption, rewrap, data keys and HMACs use the latest version.
 *   Decryption, rewrap and verification refuse a version below the key's
 *   minimum decryption version (`ERR_KEY_VERSION_TOO_OLD`), and a ciphertext
 *   that does not open is `ERR_CIPHERTEXT_INVALID`: caller data, not stored
 *   data, so no integrity alarm.
 * - Batches are all or nothing: the first item that fails fails the request,
 *   named by its position.
 */
import {
  type CiphertextResult,
  type DataKeyItem,
  type DataKeyResult,
  type DecryptItem,
  type DecryptResult,
  type EncryptItem,
  formatVersioned,
  type HmacItem,
  type HmacResult,
  parseVersioned,
  type VerifyItem,
  type VerifyResult,
} from '../../shared/api/transit.ts';
import { open, seal } from '../../shared/crypto/aead.ts';
import { encodeBase64 } from '../../shared/crypto/base64.ts';
import { constantTimeEqual, randomBytes, zeroize } from '../../shared/crypto/bytes.ts';
import { HMAC_SHA256_BYTES, hkdfSha256, hmacSha256 } from '../../shared/crypto/mac.ts';
import { errorForCode } from '../../shared/errors/error_for_code.ts';
import {
  CiphertextInvalidError,
  DecryptionFailedError,
  InternalError,
  isBrokerError,
  KeyVersionTooOldError,
} from '../../shared/errors/errors.ts';
import type { OpenedTransitKey, TransitKeyStore } from '../store/transit_key_store.ts';

const DATA_AAD_PREFIX = 'spike-ts:transit:v1';
const HMAC_KEY_INFO = new TextEncoder().encode('spike-ts:transit:hmac:v1');
const SEPARATOR = 0;
const encoder = new TextEncoder();

/** The associated data of an item of `name` under `version`, with its context. */
export function transitAad(name: string, version: number, context: Uint8Array): Uint8Array {
  const head = encoder.encode(`${DATA_AAD_PREFIX}\0${name}\0${version}`);
  const aad = new Uint8Array(head.length + 1 + context.length);
  aad.set(head);
  aad[head.length] = SEPARATOR;
  aad.set(context, head.length + 1);
  return aad;
}

export async function encrypt(
  store: TransitKeyStore,
  name: string,
  items: readonly EncryptItem[],
): Promise<CiphertextResult[]> {
  return store.useKey(name, [], (key) =>
    eachItem(items, (item) => sealItem(key, item.plaintext, item.context)),
  );
}

export async function decrypt(
  store: TransitKeyStore,
  name: string,
  items: readonly DecryptItem[],
): Promise<DecryptResult[]> {
  return store.useKey(name, versionsOf(items.map((item) => item.ciphertext)), (key) =>
    eachItem(items, (item) => {
      const plaintext = openItem(key, item.ciphertext, item.context);
      try {
        return { plaintext: encodeBase64(plaintext) };
      } finally {
        zeroize(plaintext);
      }
    }),
  );
}

/** Decrypts inside Nexus and encrypts again under the latest version: the caller sees no plaintext. */
export async function rewrap(
  store: TransitKeyStore,
  name: string,
  items: readonly DecryptItem[],
): Promise<CiphertextResult[]> {
  return store.useKey(name, versionsOf(items.map((item) => item.ciphertext)), (key) =>
    eachItem(items, (item) => {
      const plaintext = openItem(key, item.ciphertext, item.context);
      try {
        return sealItem(key, plaintext, item.context);
      } finally {
        zeroize(plaintext);
      }
    }),
  );
}

/** A fresh random data key, wrapped under the latest version (and in plaintext unless asked not to). */
export async function dataKey(
  store: TransitKeyStore,
  name: string,
  items: readonly DataKeyItem[],
): Promise<DataKeyResult[]> {
  return store.useKey(name, [], (key) =>
    eachItem(items, (item) => {
      const material = randomBytes(item.bytes);
      try {
        const wrapped = sealItem(key, material, item.context);
        return item.wrappedOnly ? wrapped : { ...wrapped, plaintext: encodeBase64(material) };
      } finally {
        zeroize(material);
      }
    }),
  );
}

export async function hmac(
  store: TransitKeyStore,
  name: string,
  items: readonly HmacItem[],
): Promise<HmacResult[]> {
  return store.useKey(name, [], (key) => {
    const version = key.latestVersion;
    return withHmacKey(key, version, (hmacKey) =>
      eachItem(items, (item) => ({
        hmac: formatVersioned(version, hmacSha256(hmacKey, item.input)),
        keyVersion: version,
      })),
    );
  });
}

/** Whether each HMAC is the one this key made for its input. */
export async function verify(
  store: TransitKeyStore,
  name: string,
  items: readonly VerifyItem[],
): Promise<VerifyResult[]> {
  return store.useKey(name, versionsOf(items.map((item) => item.hmac)), (key) =>
    eachItem(items, (item) => {
      const { version, bytes } = parseVersioned(item.hmac, 'hmac');
      checkNotTooOld(key, version, 'HMAC');
      if (key.material(version) === undefined || bytes.length !== HMAC_SHA256_BYTES) {
        return { valid: false };
      }
      const expected = withHmacKey(key, version, (hmacKey) => hmacSha256(hmacKey, item.input));
      return { valid: constantTimeEqual(expected, bytes) };
    }),
  );
}

/** Seals one item under the latest version. */
function sealItem(
  key: OpenedTransitKey,
  plaintext: Uint8Array,
  context: Uint8Array,
): CiphertextResult {
  const version = key.latestVersion;
  const sealed = seal(materialOf(key, version), plaintext, transitAad(key.name, version, context));
  return { ciphertext: formatVersioned(version, sealed), keyVersion: version };
}

/** Opens one item; the plaintext is the caller's to wipe. */
function openItem(key: OpenedTransitKey, ciphertext: string, context: Uint8Array): Uint8Array {
  const { version, bytes } = parseVersioned(ciphertext, 'ciphertext');
  checkNotTooOld(key, version, 'ciphertext');
  const material = key.material(version);
  if (material === undefined) {
    throw new CiphertextInvalidError();
  }
  try {
    return open(material, bytes, transitAad(key.name, version, context));
  } catch (err) {
    if (err instanceof DecryptionFailedError) throw new CiphertextInvalidError();
    throw err;
  }
}

function checkNotTooOld(key: OpenedTransitKey, version: number, what: string): void {
  if (version < key.minDecryptionVersion) {
    throw new KeyVersionTooOldError(
      `The ${what} was made under version ${version} of key ${JSON.stringify(key.name)}, below its minimum decryption version ${key.minDecryptionVersion}`,
    );
  }
}

function withHmacKey<T>(
  key: OpenedTransitKey,
  version: number,
  use: (hmacKey: Uint8Array) => T,
): T {
  const hmacKey = hkdfSha256(materialOf(key, version), HMAC_KEY_INFO, HMAC_SHA256_BYTES);
  try {
    return use(hmacKey);
  } finally {
    zeroize(hmacKey);
  }
}

function materialOf(key: OpenedTransitKey, version: number): Uint8Array {
  const material = key.material(version);
  if (material === undefined) {
    throw new InternalError(`Version ${version} of key ${JSON.stringify(key.name)} was not opened`);
  }
  return material;
}

/** The key versions a request's ciphertexts or HMACs name (parsed before any key is opened). */
function versionsOf(texts: readonly string[]): number[] {
  return eachItem(texts, (text) => parseVersioned(text, 'ciphertext').version);
}

/** `work` on every item; an error of item i (of several) says which. */
function eachItem<I, R>(items: readonly I[], work: (item: I) => R): R[] {
  return items.map((item, i) => {
    try {
      return work(item);
    } catch (err) {
      if (items.length > 1 && isBrokerError(err)) {
        throw errorForCode(err.code, `Item ${i + 1} of the batch: ${err.message}`);
      }
      throw err;
    }
  });
}
