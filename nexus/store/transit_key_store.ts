/**
 * Where named encryption keys live (encryption as a service): per key, its
 * versions' material, 32 random bytes each, sealed under the keyring and
 * bound to the key's name and the version. Implementations open material
 * inside the store and only lend it to a synchronous callback
 * (`useKey`), which wipes it when the callback returns: no caller keeps a
 * key, and no key leaves Nexus. The implementations are
 * `sqlite/transit_key_store.ts` and `postgres/transit_key_store.ts`; the
 * rules both follow are in `_transit_rows.ts`.
 */

/** One version of a key, as metadata lists it. */
export interface TransitKeyVersionInfo {
  readonly version: number;
  readonly createdAt: Date;
}

/** A key's metadata: never its material. */
export interface TransitKeyInfo {
  readonly name: string;
  readonly createdAt: Date;
  /** The last create, rotation or configuration. */
  readonly updatedAt: Date;
  readonly latestVersion: number;
  readonly minDecryptionVersion: number;
  /** Every version, oldest first. */
  readonly versions: readonly TransitKeyVersionInfo[];
}

/** A key with the material of the versions asked for, opened, for the length of one callback. */
export interface OpenedTransitKey {
  readonly name: string;
  readonly latestVersion: number;
  readonly minDecryptionVersion: number;
  /**
   * The material of `version` (the latest, or one asked for); undefined when
   * the key has no such version. Wiped once the callback returns: copy
   * nothing of it out.
   */
  material(version: number): Uint8Array | undefined;
}

export interface TransitKeyStore {
  /** A new key with version 1; ConflictError when the name is taken. */
  create(name: string): Promise<TransitKeyInfo>;
  /** NotFoundError when there is no such key. */
  get(name: string): Promise<TransitKeyInfo>;
  /** Every key name, in byte order. */
  list(): Promise<string[]>;
  /** A new latest version; ConflictError once the key has MAX_KEY_VERSIONS. */
  rotate(name: string): Promise<TransitKeyInfo>;
  /** Sets the minimum decryption version (1..latest, else InvalidRequestError). */
  configure(
    name: string,
    options: { readonly minDecryptionVersion: number },
  ): Promise<TransitKeyInfo>;
  /** Removes the key and every version; NotFoundError when there is none. */
  delete(name: string): Promise<void>;
  /**
   * Opens the latest version and each of `versions` the key has, and lends
   * them to `use`; NotFoundError when there is no such key. The material is
   * wiped when `use` returns or throws.
   */
  useKey<T>(
    name: string,
    versions: readonly number[],
    use: (key: OpenedTransitKey) => T,
  ): Promise<T>;
}

export interface TransitKeyStoreOptions {
  /** The clock for creation and update times, in epoch milliseconds. */
  readonly now?: () => number;
}
