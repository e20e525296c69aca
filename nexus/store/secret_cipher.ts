/**
 * Encryption at rest of what the secret store keeps: the data of one secret
 * version and the custom metadata of a path. Both are string maps, serialised
 * as JSON with sorted keys and sealed with `shared/crypto/aead.ts`
 * (XChaCha20-Poly1305, random 24-byte nonce) under the data key.
 *
 * The associated data binds each ciphertext to what it is and where it
 * belongs, so a ciphertext copied to another row fails to open:
 * - data: `spike-ts:secret:v1 NUL <path> NUL <version>`;
 * - custom metadata: `spike-ts:metadata:v1 NUL <path>`.
 * Paths never contain NUL (`SecretPath` allows only `[A-Za-z0-9._-/]`), and
 * the version is a decimal integer, so no two places share an AAD.
 *
 * Plaintext byte buffers made here are zeroed once sealed or decoded. The
 * strings themselves cannot be wiped (JavaScript strings are immutable); the
 * byte buffers are the copies this module can control.
 */
import type { SecretPath } from '../../shared/api/secret_path.ts';
import { open, seal } from '../../shared/crypto/aead.ts';
import { zeroize } from '../../shared/crypto/bytes.ts';
import { DecryptionFailedError } from '../../shared/errors/errors.ts';
import type { KeyringAccess } from './secret_store.ts';

/** A string map as the store keeps it: secret data or custom metadata. */
export type StringMap = Readonly<Record<string, string>>;

const DATA_AAD_PREFIX = 'spike-ts:secret:v1';
const METADATA_AAD_PREFIX = 'spike-ts:metadata:v1';
const SEPARATOR = '\0';

const encoder = new TextEncoder();
/** `fatal`: bytes that are not UTF-8 are an error, never replaced. */
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The associated data of a secret version's ciphertext. */
export function secretDataAad(path: SecretPath, version: number): Uint8Array {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new RangeError(`A secret version must be an integer >= 1, got ${String(version)}`);
  }
  return encoder.encode(`${DATA_AAD_PREFIX}${SEPARATOR}${path}${SEPARATOR}${version}`);
}

/** The associated data of a path's custom metadata ciphertext. */
export function customMetadataAad(path: SecretPath): Uint8Array {
  return encoder.encode(`${METADATA_AAD_PREFIX}${SEPARATOR}${path}`);
}

/** Seals the data of version `version` of `path`. */
export function sealSecretData(
  key: Uint8Array,
  path: SecretPath,
  version: number,
  data: StringMap,
): Uint8Array {
  return sealMap(key, data, secretDataAad(path, version));
}

/** Opens what `sealSecretData` made for the same path and version; else DecryptionFailedError. */
export function openSecretData(
  key: Uint8Array,
  path: SecretPath,
  version: number,
  sealed: Uint8Array,
): StringMap {
  return parseStringMap(openSecretJson(key, path, version, sealed));
}

/**
 * Opens what `sealSecretData` made as the JSON text it sealed (keys in
 * code-unit order), checked to be an object of strings: a read's answer
 * carries this text as it is, which spares the map a parse into frozen
 * properties and a stringify back (about 5 µs of a read).
 */
export function openSecretJson(
  key: Uint8Array,
  path: SecretPath,
  version: number,
  sealed: Uint8Array,
): string {
  const text = openText(key, sealed, secretDataAad(path, version));
  checkStringMap(parseJson(text));
  return text;
}

/** Seals the custom metadata of `path`. */
export function sealCustomMetadata(
  key: Uint8Array,
  path: SecretPath,
  metadata: StringMap,
): Uint8Array {
  return sealMap(key, metadata, customMetadataAad(path));
}

/** Opens what `sealCustomMetadata` made for the same path; else DecryptionFailedError. */
export function openCustomMetadata(
  key: Uint8Array,
  path: SecretPath,
  sealed: Uint8Array,
): StringMap {
  return openMap(key, sealed, customMetadataAad(path));
}

/** A ciphertext sealed again under the keyring's active term, and that term. */
export interface Resealed {
  readonly sealed: Uint8Array;
  readonly term: number;
}

/**
 * What `sealSecretData` made under keyring term `fromTerm`, sealed again
 * under the active term for the same path and version (the keyring sweep).
 * The plaintext exists only inside this call; a ciphertext that fails to
 * open is a DecryptionFailedError, raised under the keyring (the alarm).
 */
export function resealSecretData(
  keyring: KeyringAccess,
  fromTerm: number,
  path: SecretPath,
  version: number,
  sealed: Uint8Array,
): Resealed {
  return reseal(keyring, fromTerm, sealed, secretDataAad(path, version));
}

/** What `sealCustomMetadata` made under `fromTerm`, sealed again under the active term. */
export function resealCustomMetadata(
  keyring: KeyringAccess,
  fromTerm: number,
  path: SecretPath,
  sealed: Uint8Array,
): Resealed {
  return reseal(keyring, fromTerm, sealed, customMetadataAad(path));
}

function reseal(
  keyring: KeyringAccess,
  fromTerm: number,
  sealed: Uint8Array,
  aad: Uint8Array,
): Resealed {
  const plaintext = keyring((key) => open(key, sealed, aad), fromTerm);
  try {
    return keyring((key, term) => ({ sealed: seal(key, plaintext, aad), term }));
  } finally {
    zeroize(plaintext);
  }
}

/** The map as JSON with its keys in code-unit order: equal maps give equal bytes. */
export function serializeMap(map: StringMap): Uint8Array {
  const keys = Object.keys(map).sort();
  let json = '{';
  for (let i = 0; i < keys.length; i++) {
    const name = keys[i] as string;
    const value = map[name];
    if (typeof value !== 'string') {
      throw new TypeError('A string map may hold only string values');
    }
    json += `${i === 0 ? '' : ','}${JSON.stringify(name)}:${JSON.stringify(value)}`;
  }
  return encoder.encode(`${json}}`);
}

function sealMap(key: Uint8Array, map: StringMap, aad: Uint8Array): Uint8Array {
  const plaintext = serializeMap(map);
  try {
    return seal(key, plaintext, aad);
  } finally {
    zeroize(plaintext);
  }
}

function openMap(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): StringMap {
  return parseStringMap(openText(key, sealed, aad));
}

/** The opened plaintext as text; the byte copy is zeroed. Bytes that are not UTF-8 fail like a bad tag. */
function openText(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): string {
  const plaintext = open(key, sealed, aad);
  try {
    return decoder.decode(plaintext);
  } catch {
    throw new DecryptionFailedError();
  } finally {
    zeroize(plaintext);
  }
}

/**
 * The map of a text `openSecretJson` returned (or any opened map). Authentic
 * bytes that are not a JSON object of strings were not made by this module;
 * they are treated like a failed tag check, never returned.
 */
export function parseStringMap(text: string): StringMap {
  const parsed = checkStringMap(parseJson(text));
  const map: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    // defineProperty, so that a key named "__proto__" stays an ordinary key.
    Object.defineProperty(map, name, { value, enumerable: true, writable: false });
  }
  return Object.freeze(map);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new DecryptionFailedError();
  }
}

function checkStringMap(parsed: unknown): Record<string, string> {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new DecryptionFailedError();
  }
  for (const value of Object.values(parsed)) {
    if (typeof value !== 'string') {
      throw new DecryptionFailedError();
    }
  }
  return parsed as Record<string, string>;
}
