/**
 * The rules both TransitKeyStore twins follow: the material of a key version
 * (32 random bytes), how it is sealed under the keyring and bound to its
 * place, the argument checks, rows back into metadata, and lending opened
 * material to a callback. Pure but for randomness.
 *
 * Sealing. Material is sealed with the AEAD of `shared/crypto/aead.ts` under
 * the keyring, with associated data `spike-ts:transit-key:v1 NUL <name> NUL
 * <version>`: names hold no NUL and versions are decimal, so material copied
 * to another key or version fails to open (an integrity alarm, like any
 * stored data that fails). Each row records the keyring term that sealed it;
 * new material is sealed under the active term, and the keyring sweep
 * (`nexus/keyring/`) seals older rows' material again under it.
 */
import { MAX_KEY_VERSIONS, parseKeyName } from '../../shared/api/transit.ts';
import { open, seal } from '../../shared/crypto/aead.ts';
import { randomBytes, zeroize } from '../../shared/crypto/bytes.ts';
import {
  ConflictError,
  DecryptionFailedError,
  InvalidRequestError,
  NotFoundError,
} from '../../shared/errors/errors.ts';
import type { KeyringAccess } from './secret_store.ts';
import type { OpenedTransitKey, TransitKeyInfo } from './transit_key_store.ts';

/** Bytes of one key version's material: an XChaCha20-Poly1305 key. */
export const KEY_MATERIAL_BYTES = 32;
const MATERIAL_AAD_PREFIX = 'spike-ts:transit-key:v1';
const SEPARATOR = '\0';
const encoder = new TextEncoder();

/** A version row's sealed part, as both dialects read it. */
export interface SealedMaterialRow {
  readonly keyringTerm: number;
  readonly sealedMaterial: Uint8Array;
}

/** The associated data of the material of version `version` of key `name`. */
export function materialAad(name: string, version: number): Uint8Array {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new RangeError(`A key version must be an integer >= 1, got ${String(version)}`);
  }
  return encoder.encode(`${MATERIAL_AAD_PREFIX}${SEPARATOR}${name}${SEPARATOR}${version}`);
}

/** Fresh material for version `version` of `name`, sealed; the plaintext is wiped. */
export function sealNewMaterial(
  keyring: KeyringAccess,
  name: string,
  version: number,
): SealedMaterialRow {
  const material = randomBytes(KEY_MATERIAL_BYTES);
  try {
    return keyring((key, keyringTerm) => ({
      keyringTerm,
      sealedMaterial: seal(key, material, materialAad(name, version)),
    }));
  } finally {
    zeroize(material);
  }
}

/**
 * The material of a version row. Material that fails to open, or opens to
 * the wrong size, was altered, moved or sealed under another keyring:
 * DecryptionFailedError, raised inside the keyring's use so the integrity
 * alarm sees it.
 */
export function openMaterial(
  keyring: KeyringAccess,
  name: string,
  version: number,
  row: SealedMaterialRow,
): Uint8Array {
  return keyring((key) => {
    const material = open(key, row.sealedMaterial, materialAad(name, version));
    if (material.length !== KEY_MATERIAL_BYTES) {
      zeroize(material);
      throw new DecryptionFailedError();
    }
    return material;
  }, row.keyringTerm);
}

/**
 * The material of a version row sealed again under the keyring's active
 * term (the keyring sweep); the material exists only inside this call.
 */
export function resealMaterial(
  keyring: KeyringAccess,
  name: string,
  version: number,
  row: SealedMaterialRow,
): SealedMaterialRow {
  const material = openMaterial(keyring, name, version, row);
  try {
    return keyring((key, keyringTerm) => ({
      keyringTerm,
      sealedMaterial: seal(key, material, materialAad(name, version)),
    }));
  } finally {
    zeroize(material);
  }
}

/** The name of a key, checked as the wire checks it (InvalidRequestError). */
export function checkKeyName(name: string): string {
  return parseKeyName(name);
}

/** The versions a `useKey` caller asks for, checked (a programmer error otherwise). */
export function checkVersions(versions: readonly number[]): void {
  if (!Array.isArray(versions)) {
    throw new TypeError('useKey() takes an array of versions');
  }
  for (const version of versions) {
    if (!Number.isSafeInteger(version) || version < 1) {
      throw new TypeError(`A key version must be an integer >= 1, got ${String(version)}`);
    }
  }
}

/** A rotation past the most versions a key may have. */
export function checkRotation(name: string, latestVersion: number): void {
  if (latestVersion >= MAX_KEY_VERSIONS) {
    throw new ConflictError(
      `Key ${JSON.stringify(name)} has ${MAX_KEY_VERSIONS} versions, the most a key may have`,
    );
  }
}

/** A minimum decryption version must name a version the key has. */
export function checkMinDecryptionVersion(
  minDecryptionVersion: number,
  latestVersion: number,
): void {
  if (
    !Number.isSafeInteger(minDecryptionVersion) ||
    minDecryptionVersion < 1 ||
    minDecryptionVersion > latestVersion
  ) {
    throw new InvalidRequestError(
      `Field "minDecryptionVersion" must be from 1 to the latest version, ${latestVersion}`,
    );
  }
}

export function keyNotFound(name: string): NotFoundError {
  return new NotFoundError(`Key ${JSON.stringify(name)} does not exist`);
}

export function keyExists(name: string): ConflictError {
  return new ConflictError(`Key ${JSON.stringify(name)} already exists`);
}

/** A key row and its version rows (oldest first) as metadata. */
export function toKeyInfo(
  key: {
    readonly name: string;
    readonly createdAtMs: number;
    readonly updatedAtMs: number;
    readonly latestVersion: number;
    readonly minDecryptionVersion: number;
  },
  versions: readonly { readonly version: number; readonly createdAtMs: number }[],
): TransitKeyInfo {
  return Object.freeze({
    name: key.name,
    createdAt: new Date(key.createdAtMs),
    updatedAt: new Date(key.updatedAtMs),
    latestVersion: key.latestVersion,
    minDecryptionVersion: key.minDecryptionVersion,
    versions: Object.freeze(
      versions.map((row) =>
        Object.freeze({ version: row.version, createdAt: new Date(row.createdAtMs) }),
      ),
    ),
  });
}

/**
 * Lends the opened material of `rows` (by version) to `use`, then wipes it,
 * whatever `use` did. Rows are opened up front, so a tampered row fails the
 * call before `use` runs.
 */
export function lendKey<T>(
  keyring: KeyringAccess,
  head: {
    readonly name: string;
    readonly latestVersion: number;
    readonly minDecryptionVersion: number;
  },
  rows: ReadonlyMap<number, SealedMaterialRow>,
  use: (key: OpenedTransitKey) => T,
): T {
  const opened = new Map<number, Uint8Array>();
  try {
    for (const [version, row] of rows) {
      opened.set(version, openMaterial(keyring, head.name, version, row));
    }
    const result = use({
      name: head.name,
      latestVersion: head.latestVersion,
      minDecryptionVersion: head.minDecryptionVersion,
      material: (version) => opened.get(version),
    });
    if (result instanceof Promise) {
      // The material is wiped below, before an asynchronous use could finish.
      throw new TypeError('useKey() lends material to synchronous callbacks only');
    }
    return result;
  } finally {
    zeroize(...opened.values());
  }
}
