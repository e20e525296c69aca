/**
 * What the store keeps about the root key: never the key, only the keyring
 * sealed by it (so a recovered key can be verified before use) and the
 * bookkeeping of shard generations. Every decision that two Nexus processes
 * could race on is made here, atomically, by the database.
 */

export interface RootKeyRecord {
  /** The keyring sealed under the root key (AEAD): a wrong key fails to open it. */
  readonly sealedKeyring: Uint8Array;
  /** The last generation number handed out (for initialisation or a re-split). */
  readonly lastGeneration: number;
  /** The newest generation known to be held by at least `threshold` Keepers; null until the first. */
  readonly committedGeneration: number | null;
  /** While an initialisation is unfinished: who does it and until when it may. */
  readonly initOwner: string | null;
  readonly initDeadline: Date | null;
}

export interface InitialiseRequest {
  readonly sealedKeyring: Uint8Array;
  /** A random id of the initialising Nexus process. */
  readonly owner: string;
  /** After this, another Nexus may take over an initialisation that never committed. */
  readonly deadline: Date;
}

export interface RootKeyStore {
  /** The record, or undefined when the store was never initialised. */
  read(): Promise<RootKeyRecord | undefined>;
  /**
   * Creates the record with generation 1 if there is none (a unique row, so
   * exactly one of several racing Nexus processes wins). Returns whether this
   * call created it.
   */
  tryInitialise(request: InitialiseRequest): Promise<boolean>;
  /**
   * Replaces an initialisation that never committed and whose deadline is
   * before `now` (its key protected no data yet). Returns the new generation
   * number for the new key's first split, or undefined if the record is
   * committed, not yet abandoned, or another Nexus took over first.
   */
  tryTakeOver(request: InitialiseRequest, now: Date): Promise<number | undefined>;
  /** Hands out a new, never-used generation number (atomic increment). */
  allocateGeneration(): Promise<number>;
  /**
   * Records that `generation` is held by at least `threshold` Keepers:
   * committed = max(committed, generation). While the record is still being
   * initialised only `owner` may commit (which ends the initialisation).
   * Returns false when that check fails (another Nexus took over).
   */
  commitGeneration(generation: number, owner: string): Promise<boolean>;
  /**
   * Swaps the sealed keyring for `next` if it is still `expected` (byte for
   * byte), so that of two Nexus changing the keyring at once exactly one
   * wins and neither undoes the other. Only on a committed record. Returns
   * whether the swap happened.
   */
  replaceSealedKeyring(expected: Uint8Array, next: Uint8Array): Promise<boolean>;
  close(): Promise<void>;
}
