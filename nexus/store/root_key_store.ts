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
  /**
   * The shape a root-key rotation chose (Keepers given a shard, shards that
   * rebuild the key); null until the first rotation with one, and then the
   * configured shape applies.
   */
  readonly splitShares: number | null;
  readonly splitThreshold: number | null;
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

export interface RotationCommit {
  readonly generation: number;
  readonly expectedSealed: Uint8Array;
  readonly nextSealed: Uint8Array;
  readonly shares: number;
  readonly threshold: number;
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
   * `sealedKeyring` is the sealed keyring the splitter verified its key
   * against: the commit happens only while the record still holds exactly
   * those bytes, so a Nexus holding a root key that another Nexus rotated
   * away can never commit (nor then prune) a split of it. Returns false when
   * a check fails (another Nexus took over, or changed the sealed keyring).
   */
  commitGeneration(generation: number, owner: string, sealedKeyring: Uint8Array): Promise<boolean>;
  /**
   * A root-key rotation, in one step: the sealed keyring becomes
   * `nextSealed` (the same keyring sealed under the new key), `generation`
   * (the new key's split, held by at least `threshold` Keepers) becomes the
   * committed generation, and the split's shape is recorded; only if the
   * record is committed, still holds `expectedSealed` byte for byte, and no
   * generation at or above `generation` was committed meanwhile (such a
   * commit may have pruned the new split from the Keepers). Returns whether
   * it happened.
   */
  commitRotation(rotation: RotationCommit): Promise<boolean>;
  /**
   * Swaps the sealed keyring for `next` if it is still `expected` (byte for
   * byte), so that of two Nexus changing the keyring at once exactly one
   * wins and neither undoes the other. Only on a committed record. Returns
   * whether the swap happened.
   */
  replaceSealedKeyring(expected: Uint8Array, next: Uint8Array): Promise<boolean>;
  close(): Promise<void>;
}
