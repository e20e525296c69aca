/**
 * Brings the root key to a running Nexus and keeps the Keepers supplied.
 *
 * At start: an empty store is initialised by exactly one Nexus (the store
 * decides); every other start is a recovery from the Keepers' shards, retried
 * with backoff until a generation recombines into a key that opens the sealed
 * keyring. Once ready, Nexus re-splits the key so every Keeper holds the new
 * generation, and checks the Keepers every few seconds: one that lost its
 * shard (a restart) triggers a new split. Operators can also export a full
 * recovery split (recover) and unseal from shards by hand (restore); that
 * break-glass logic is in `break_glass.ts`, run here in the same queue.
 * A root-key rotation (rotateRootKey) replaces the key itself: a new key is
 * split onto the Keepers first, then one store operation re-seals the
 * keyring under it and commits its split, and only then are older
 * generations pruned; another Nexus notices at its next check that its key
 * no longer opens the sealed keyring and takes the new one from the Keepers.
 *
 * The protocol and its invariants are in docs/root-key.md.
 */
import { constantTimeEqual, randomBytes, zeroize } from '../../shared/crypto/bytes.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import { ROOT_KEY_BYTES } from '../../shared/crypto/shard.ts';
import {
  ConflictError,
  DecryptionFailedError,
  InvalidRequestError,
  KeepersUnavailableError,
  NotReadyError,
} from '../../shared/errors/errors.ts';
import type { Logger } from '../../shared/log/logger.ts';
import { delay } from '../../shared/runtime/delay.ts';
import type { RootKeyRecord, RootKeyStore } from '../store/root_key_store.ts';
import { makeRecoverySplit, type RestoreProgress, ShardRestore } from './break_glass.ts';
import { distributeRootKey, placeShards, pruneOlder, type SplitShape } from './distribute.ts';
import type { KeeperLink } from './keeper_link.ts';
import {
  addKeyringTerm,
  createKeyring,
  type KeyringTermInfo,
  openKeyring,
  resealKeyring,
  sealKeyring,
  verifyRootKey,
} from './keyring.ts';
import { recoverRootKey } from './recover.ts';
import type { RootKey } from './root_key.ts';

export interface RootKeyManagerOptions {
  readonly store: RootKeyStore;
  readonly keepers: readonly KeeperLink[];
  readonly threshold: number;
  readonly rootKey: RootKey;
  readonly logger: Logger;
  /** How often the Keepers are checked once ready. */
  readonly checkIntervalMs: number;
  /** Cap of the recovery backoff while sealed. */
  readonly recoveryMaxIntervalMs: number;
  /** How long an unfinished initialisation may take before another Nexus may take over. */
  readonly initDeadlineMs?: number;
  /** Identifies this process in the store while it initialises. */
  readonly owner?: string;
  readonly now?: () => number;
}

/** What the Keepers looked like at the last check (no shard bytes). */
export interface KeeperStatus {
  readonly name: string;
  readonly reachable: boolean;
  readonly generations: readonly number[];
}

/** What a root-key rotation did (no key material). */
export interface RotationResult {
  readonly generation: number;
  readonly shares: number;
  readonly threshold: number;
  /** The Keepers that hold the new key's shards. */
  readonly keepers: readonly string[];
  readonly rotatedAt: Date;
}

/**
 * The root key's split as this Nexus knows it, for status: its shape, the
 * last rotation this process made or picked up, and the last recovery split
 * it exported (both kept in memory only: a restart forgets them).
 */
export interface RootKeyStatus {
  readonly shares: number;
  readonly threshold: number;
  readonly lastRotation: { readonly generation: number; readonly at: Date } | undefined;
  readonly lastRecoveryExport: { readonly generation: number; readonly at: Date } | undefined;
}

const DEFAULT_INIT_DEADLINE_MS = 60_000;
const FIRST_RETRY_MS = 250;

export class RootKeyManager {
  readonly #o: RootKeyManagerOptions;
  readonly #owner: string;
  readonly #now: () => number;
  /** Aborted by stop(): ends the background loop, even mid-wait. */
  readonly #stopping = new AbortController();
  #retryMs = FIRST_RETRY_MS;
  /** Serialises start-up steps, checks, re-splits and restores. */
  #queue: Promise<unknown> = Promise.resolve();
  #keeperStatus: KeeperStatus[] = [];
  /** A new key whose first split is not committed yet (this process initialises). */
  #pending: { readonly key: Uint8Array; readonly keyring: Uint8Array } | undefined;
  /** Shards an operator submitted, until they unseal. */
  readonly #restore: ShardRestore;
  /** The split's shape as last read from the store (the configured one until then). */
  #shape: SplitShape;
  #lastRotation: { readonly generation: number; readonly at: Date } | undefined;
  #lastRecoveryExport: { readonly generation: number; readonly at: Date } | undefined;

  constructor(options: RootKeyManagerOptions) {
    if (options.keepers.length < options.threshold) {
      throw new RangeError('There must be at least as many Keepers as the threshold');
    }
    this.#o = options;
    this.#owner = options.owner ?? crypto.randomUUID();
    this.#now = options.now ?? Date.now;
    this.#shape = { shares: options.keepers.length, threshold: options.threshold };
    this.#restore = new ShardRestore({
      store: options.store,
      rootKey: options.rootKey,
      logger: options.logger,
      unseal: (key, record) => this.#becomeReady(key, record, 'restore'),
    });
  }

  /** Starts the background work: recovery (or initialisation), then Keeper checks. */
  start(): void {
    void this.#run();
  }

  stop(): void {
    this.#stopping.abort();
    this.#dropPending();
    this.#restore.discard();
  }

  /** The Keepers as seen by the last check. */
  keeperStatus(): readonly KeeperStatus[] {
    return this.#keeperStatus;
  }

  /**
   * One step of the background work, also called directly by tests: while
   * sealed, one initialisation or recovery attempt; once ready, one check of
   * the Keepers (re-splitting if one lacks the committed generation).
   */
  step(): Promise<void> {
    return this.#serialised(() => (this.#o.rootKey.isReady ? this.#check() : this.#unsealOnce()));
  }

  /** The split's shape and the last rotation and recovery export this process saw. */
  rootKeyStatus(): RootKeyStatus {
    return {
      ...this.#shape,
      lastRotation: this.#lastRotation,
      lastRecoveryExport: this.#lastRecoveryExport,
    };
  }

  /**
   * A full split for offline safekeeping (break-glass recover), with the
   * current split's shape. Not sent to Keepers. Refused while this Nexus
   * holds a key that another Nexus rotated away (it would export a dead key).
   */
  recoveryShards(): Promise<Shard[]> {
    return this.#serialised(async () => {
      const record = await this.#o.store.read();
      if (record !== undefined && this.#o.rootKey.isReady) {
        this.#requireCurrentKey(record);
      }
      const shape = record === undefined ? this.#shape : this.#shapeOf(record);
      const shards = await makeRecoverySplit({
        store: this.#o.store,
        rootKey: this.#o.rootKey,
        shares: shape.shares,
        threshold: shape.threshold,
        logger: this.#o.logger,
      });
      const first = shards[0];
      if (first !== undefined) {
        this.#lastRecoveryExport = { generation: first.generation, at: new Date(this.#now()) };
      }
      return shards;
    });
  }

  /**
   * Root-key rotation (docs/root-key.md): a new random key, split with the
   * requested shape (the current one for what is omitted) onto the Keepers
   * as a new generation, without pruning; then, if at least its threshold
   * of Keepers stored it, one store operation re-seals the keyring under it
   * and commits the generation, provided the sealed keyring is still the
   * one this key opened; only then does Nexus use the new key and prune
   * older generations. On any failure nothing changed and the old key stays.
   */
  rotateRootKey(request: {
    readonly shares?: number;
    readonly threshold?: number;
  }): Promise<RotationResult> {
    return this.#serialised(() => this.#rotate(request));
  }

  /** Break-glass restore: takes one shard; unseals when a generation reaches its threshold. */
  restore(shard: Shard): Promise<RestoreProgress> {
    return this.#serialised(() => this.#restore.accept(shard));
  }

  /**
   * Replaces the store's contents with a snapshot's (ADR 0028): `replace`
   * runs in the queue, so no split, check or restore runs meanwhile.
   * `snapshot` is the snapshot's root key record. Taken under this root key
   * (it opens the snapshot's keyring; while sealed, the sealed keyrings are
   * the same bytes), Nexus stays as it was. Taken under another one (another
   * broker's, or this data folder's before it was made anew), it is refused
   * unless `force`; with it, Nexus seals first and then waits for that key,
   * from the Keepers that hold it or from its break-glass shards.
   */
  replaceStore(
    snapshot: RootKeyRecord,
    force: boolean,
    replace: () => Promise<void>,
  ): Promise<{ readonly sameKey: boolean }> {
    return this.#serialised(async () => {
      const { rootKey, store, logger } = this.#o;
      const current = await store.read();
      const sameKey = rootKey.isReady
        ? rootKey.withKey((key) => verifyRootKey(key, snapshot.sealedKeyring))
        : current !== undefined && constantTimeEqual(current.sealedKeyring, snapshot.sealedKeyring);
      if (!sameKey && !force) {
        throw new ConflictError(
          "The snapshot is sealed under another root key than this Nexus's: restoring it seals Nexus until that key comes back (its Keepers or its break-glass shards); force the restore to do so",
        );
      }
      if (!sameKey) {
        // Nothing may be sealed under our key into the snapshot's rows.
        rootKey.seal();
        this.#restore.discard();
        this.#dropPending();
      }
      await replace();
      if (sameKey && rootKey.isReady) {
        // The data is sealed under the snapshot's keyring: use that one.
        const key = rootKey.withKey((held) => held.slice());
        let keyring: Uint8Array | undefined;
        try {
          keyring = openKeyring(key, snapshot.sealedKeyring);
          rootKey.unseal(key, keyring, rootKey.generation ?? 0);
        } finally {
          zeroize(key, keyring);
        }
      }
      logger.warn('Replaced the database with a snapshot', {
        sameKey,
        state: rootKey.state,
        committedGeneration: snapshot.committedGeneration,
      });
      return { sameKey };
    });
  }

  /**
   * Rotates the data key (docs/keys.md): a new keyring term, with a fresh
   * key, from which new rows are sealed once `activationDelayMs` has passed
   * (time for every other Nexus on the same database to take the keyring up
   * first). The keyring is swapped in the store only if it is still the one
   * read here, so two rotations at once never lose a term.
   */
  rotateDataKey(activationDelayMs: number): Promise<KeyringTermInfo> {
    return this.#serialised(async () => {
      const { store, rootKey, logger } = this.#o;
      const record = await store.read();
      if (!rootKey.isReady || record === undefined) {
        throw new NotReadyError();
      }
      const current = this.#openStoredKeyring(record);
      if (current === undefined) {
        throw staleRootKey();
      }
      const nowMs = this.#now();
      let next: ReturnType<typeof addKeyringTerm> | undefined;
      try {
        next = addKeyringTerm(current, nowMs, nowMs + activationDelayMs);
        const { plaintext } = next;
        const sealed = rootKey.withKey((key) => sealKeyring(key, plaintext));
        if (!(await store.replaceSealedKeyring(record.sealedKeyring, sealed))) {
          throw new ConflictError('The keyring changed while it was being rotated; try again');
        }
        rootKey.replaceKeyring(plaintext);
      } finally {
        zeroize(current, next?.plaintext);
      }
      logger.info('Rotated the data key', {
        term: next.term.term,
        activeFrom: new Date(next.term.activeFromMs).toISOString(),
      });
      return next.term;
    });
  }

  /**
   * The stored keyring opened under the root key held, or undefined when it
   * does not open (another Nexus rotated the root key). The caller zeroizes.
   */
  #openStoredKeyring(record: RootKeyRecord): Uint8Array | undefined {
    return this.#o.rootKey.withKey((key) => {
      try {
        return openKeyring(key, record.sealedKeyring);
      } catch (err) {
        if (err instanceof DecryptionFailedError) return undefined;
        throw err;
      }
    });
  }

  /**
   * Takes up the stored keyring when it differs from the one held: another
   * Nexus rotated the data key (the new term becomes active only after
   * every Nexus had time to get here, see rotateDataKey).
   */
  #takeUpKeyring(record: RootKeyRecord | undefined): void {
    const { rootKey, logger } = this.#o;
    if (record === undefined || !rootKey.isReady) return;
    const stored = this.#openStoredKeyring(record);
    if (stored === undefined) return;
    const held = rootKey.keyringPlaintext();
    try {
      if (!constantTimeEqual(stored, held)) {
        rootKey.replaceKeyring(stored);
        logger.info('Took up a new keyring', { activeTerm: rootKey.keyringTerms()?.active });
      }
    } finally {
      zeroize(stored, held);
    }
  }

  #serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * The background work until stop(): a step, then a wait chosen by its
   * outcome (the check interval once ready, else the growing backoff).
   */
  async #run(): Promise<void> {
    const { signal } = this.#stopping;
    let waitMs = 0;
    while (!signal.aborted) {
      try {
        await delay(waitMs, { signal });
      } catch (err) {
        if (signal.aborted) {
          return;
        }
        throw err;
      }
      try {
        await this.step();
        waitMs = this.#o.rootKey.isReady ? this.#o.checkIntervalMs : this.#backoff();
      } catch (err) {
        this.#o.logger.error('Root key work failed; retrying', { error: describe(err) });
        waitMs = this.#backoff();
      }
    }
  }

  #backoff(): number {
    const waitMs = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, this.#o.recoveryMaxIntervalMs);
    return waitMs;
  }

  /** One attempt to leave the sealed state. */
  async #unsealOnce(): Promise<void> {
    const { store, logger } = this.#o;
    const record = await store.read();
    if (record === undefined) {
      await this.#initialise();
      return;
    }
    if (this.#pending !== undefined) {
      if (record.committedGeneration === null && record.initOwner === this.#owner) {
        const { key, keyring } = this.#pending;
        await this.#firstSplit(key, keyring, record.sealedKeyring);
        return;
      }
      // Another Nexus took over (or committed): our unfinished key is void.
      this.#dropPending();
    }
    const shards = await this.#collectShards();
    try {
      const recovered = await recoverRootKey(shards, (candidate) =>
        verifyRootKey(candidate, record.sealedKeyring),
      );
      if (recovered !== undefined) {
        logger.info('Recovered the root key from the Keepers', {
          generation: recovered.generation,
        });
        await this.#becomeReady(recovered.key, record, 'recovery');
        return;
      }
    } finally {
      zeroize(...shards.map((shard) => shard.value));
    }
    logger.info('Still sealed: not enough shards of one generation yet', {
      shardsByGeneration: countByGeneration(shards),
    });
    if (
      record.committedGeneration === null &&
      record.initDeadline !== null &&
      record.initDeadline.getTime() < this.#now()
    ) {
      await this.#takeOver();
    }
  }

  /** First start on an empty store: whoever the store lets create the record. */
  async #initialise(): Promise<void> {
    const key = randomBytes(ROOT_KEY_BYTES);
    const keyring = createKeyring();
    try {
      const sealedKeyring = sealKeyring(key, keyring);
      const created = await this.#o.store.tryInitialise({
        sealedKeyring,
        owner: this.#owner,
        deadline: new Date(this.#now() + (this.#o.initDeadlineMs ?? DEFAULT_INIT_DEADLINE_MS)),
      });
      if (!created) {
        this.#o.logger.info(
          'Another Nexus initialised the store; adopting its key from the Keepers',
        );
        return;
      }
      this.#o.logger.info('Initialising a new root key', { generation: 1 });
      await this.#firstSplit(key, keyring, sealedKeyring, 1);
    } finally {
      zeroize(key, keyring);
    }
  }

  /** Replaces an initialisation that another Nexus abandoned before committing. */
  async #takeOver(): Promise<void> {
    const key = randomBytes(ROOT_KEY_BYTES);
    const keyring = createKeyring();
    try {
      const sealedKeyring = sealKeyring(key, keyring);
      const generation = await this.#o.store.tryTakeOver(
        {
          sealedKeyring,
          owner: this.#owner,
          deadline: new Date(this.#now() + (this.#o.initDeadlineMs ?? DEFAULT_INIT_DEADLINE_MS)),
        },
        new Date(this.#now()),
      );
      if (generation === undefined) {
        return;
      }
      this.#o.logger.warn('Took over an abandoned initialisation with a new root key', {
        generation,
      });
      await this.#firstSplit(key, keyring, sealedKeyring, generation);
    } finally {
      zeroize(key, keyring);
    }
  }

  /**
   * Distributes a brand-new key; it becomes usable only once committed. If
   * too few Keepers took it (they may not be up yet), the key is kept aside
   * and the next steps distribute it again under a new generation, for as
   * long as this process still owns the unfinished initialisation.
   */
  async #firstSplit(
    key: Uint8Array,
    keyring: Uint8Array,
    sealedKeyring: Uint8Array,
    generation?: number,
  ): Promise<void> {
    const result = await distributeRootKey(key, {
      store: this.#o.store,
      keepers: this.#o.keepers,
      // A new key's first split has the configured shape.
      shape: { shares: this.#o.keepers.length, threshold: this.#o.threshold },
      sealedKeyring,
      owner: this.#owner,
      logger: this.#o.logger,
      ...(generation === undefined ? {} : { generation }),
    });
    if (result.committed) {
      // Known before Nexus says it is ready, so that a status right after
      // start lists every Keeper instead of none until the first check (a
      // recovery knows them from collecting the shards). The Keepers that
      // took their shard were just pruned down to this generation.
      this.#keeperStatus = this.#o.keepers.map((keeper) =>
        result.stored.includes(keeper.name)
          ? { name: keeper.name, reachable: true, generations: [result.generation] }
          : { name: keeper.name, reachable: false, generations: [] },
      );
      // Unseal first: `key` may be the pending copy that #dropPending wipes.
      this.#o.rootKey.unseal(key, keyring, result.generation);
      this.#dropPending();
      this.#retryMs = FIRST_RETRY_MS;
      this.#o.logger.info('Nexus is ready with a new root key', { generation: result.generation });
      return;
    }
    if (this.#pending === undefined) {
      this.#pending = { key: key.slice(), keyring: keyring.slice() };
    }
    this.#o.logger.warn('The new root key is not held by enough Keepers yet; retrying', {
      generation: result.generation,
    });
  }

  #dropPending(): void {
    if (this.#pending !== undefined) {
      zeroize(this.#pending.key, this.#pending.keyring);
      this.#pending = undefined;
    }
  }

  async #becomeReady(key: Uint8Array, record: RootKeyRecord, how: string): Promise<void> {
    const keyring = openKeyring(key, record.sealedKeyring);
    try {
      this.#o.rootKey.unseal(key, keyring, record.committedGeneration ?? 0);
    } finally {
      zeroize(key, keyring);
    }
    this.#retryMs = FIRST_RETRY_MS;
    this.#o.logger.info('Nexus is ready', { how });
    // Give every Keeper a shard of a fresh generation (restarted ones hold none).
    await this.#resplit('after unsealing');
  }

  async #resplit(reason: string): Promise<void> {
    const owner = this.#owner;
    const record = await this.#o.store.read();
    if (
      record === undefined ||
      !this.#o.rootKey.withKey((key) => verifyRootKey(key, record.sealedKeyring))
    ) {
      // Rotated away by another Nexus: the next check picks the new key up.
      this.#o.logger.warn('Not re-splitting: the root key no longer opens the sealed keyring', {
        reason,
      });
      return;
    }
    const shape = this.#shapeOf(record);
    const result = await this.#o.rootKey.withKey((key) =>
      distributeRootKey(key, {
        store: this.#o.store,
        keepers: this.#o.keepers,
        shape,
        sealedKeyring: record.sealedKeyring,
        owner,
        logger: this.#o.logger,
      }),
    );
    if (result.committed) {
      this.#o.rootKey.generation = result.generation;
    }
    this.#o.logger.info('Re-split the root key', {
      reason,
      generation: result.generation,
      committed: result.committed,
      stored: result.stored.length,
    });
  }

  /** Ready: re-supply any reachable Keeper that lacks the committed generation. */
  async #check(): Promise<void> {
    const record = await this.#o.store.read();
    if (record !== undefined && !(await this.#followRotation(record))) {
      return;
    }
    this.#takeUpKeyring(record);
    const committed = record?.committedGeneration ?? null;
    const shares = record === undefined ? this.#shape.shares : this.#shapeOf(record).shares;
    const statuses = await Promise.all(
      this.#o.keepers.map(async (keeper): Promise<KeeperStatus> => {
        try {
          return { name: keeper.name, reachable: true, generations: await keeper.generations() };
        } catch {
          return { name: keeper.name, reachable: false, generations: [] };
        }
      }),
    );
    this.#keeperStatus = statuses;
    // Keepers beyond the split's shape hold no shard of it.
    const lacking = statuses
      .slice(0, shares)
      .filter(
        (status) =>
          status.reachable && (committed === null || !status.generations.includes(committed)),
      );
    if (lacking.length > 0) {
      await this.#resplit(
        `Keepers without generation ${committed}: ${lacking.map((s) => s.name).join(', ')}`,
      );
    }
  }

  /**
   * Whether the held root key opens the record's sealed keyring; if it does
   * not, another Nexus rotated the root key: take the new one from the
   * Keepers (as an unseal would: by generation, verified against the sealed
   * keyring) and use it, staying ready (the data keys did not change).
   * Returns false when the new key cannot be rebuilt yet: then the old key
   * must not be split or exported, and the next check tries again.
   */
  async #followRotation(record: RootKeyRecord): Promise<boolean> {
    const { rootKey, logger } = this.#o;
    if (rootKey.withKey((key) => verifyRootKey(key, record.sealedKeyring))) {
      return true;
    }
    const shards = await this.#collectShards();
    let recovered: { readonly key: Uint8Array; readonly generation: number } | undefined;
    try {
      recovered = await recoverRootKey(shards, (candidate) =>
        verifyRootKey(candidate, record.sealedKeyring),
      );
    } finally {
      zeroize(...shards.map((shard) => shard.value));
    }
    if (recovered === undefined) {
      logger.warn(
        'The root key was rotated by another Nexus and cannot be rebuilt from the Keepers yet',
        { shardsByGeneration: countByGeneration(shards) },
      );
      return false;
    }
    try {
      rootKey.replaceKey(recovered.key, record.committedGeneration ?? recovered.generation);
    } finally {
      zeroize(recovered.key);
    }
    this.#lastRotation = { generation: recovered.generation, at: new Date(this.#now()) };
    logger.info('Picked up the root key another Nexus rotated to', {
      generation: recovered.generation,
    });
    return true;
  }

  async #rotate(request: {
    readonly shares?: number;
    readonly threshold?: number;
  }): Promise<RotationResult> {
    const { rootKey, store, keepers, logger } = this.#o;
    if (!rootKey.isReady) {
      throw new NotReadyError('Nexus is sealed: the root key cannot be rotated');
    }
    const record = await store.read();
    if (record === undefined || record.committedGeneration === null) {
      throw new NotReadyError('The root key is not initialised yet');
    }
    const current = this.#shapeOf(record);
    const shape = {
      shares: request.shares ?? current.shares,
      threshold: request.threshold ?? current.threshold,
    };
    if (shape.shares > keepers.length) {
      throw new InvalidRequestError(
        `"shares" (${shape.shares}) exceeds the number of configured Keepers (${keepers.length})`,
      );
    }
    if (shape.threshold < 2 || shape.threshold > shape.shares) {
      throw new InvalidRequestError(
        `"threshold" must be from 2 to "shares" (${shape.shares}), got ${shape.threshold}`,
      );
    }
    this.#requireCurrentKey(record);
    const newKey = randomBytes(ROOT_KEY_BYTES);
    try {
      const generation = await store.allocateGeneration();
      // Placed, never pruned: until the commit below the old key stays the one in use.
      const stored = await placeShards(newKey, { keepers, shape, generation, logger });
      if (stored.length < shape.threshold) {
        logger.warn('Root key rotation refused: too few Keepers took the new key', {
          generation,
          stored: stored.length,
          threshold: shape.threshold,
        });
        throw new KeepersUnavailableError(
          `Only ${stored.length} Keepers took a shard of the new root key; ${shape.threshold} are needed. Nothing changed: the old root key stays in use`,
        );
      }
      const nextSealed = rootKey.withKey((oldKey) =>
        resealKeyring(oldKey, newKey, record.sealedKeyring),
      );
      const committed = await store.commitRotation({
        generation,
        expectedSealed: record.sealedKeyring,
        nextSealed,
        shares: shape.shares,
        threshold: shape.threshold,
      });
      if (!committed) {
        logger.warn('Root key rotation lost a race: the root key record changed meanwhile', {
          generation,
        });
        throw new ConflictError(
          'Another Nexus changed the root key or its split meanwhile; nothing changed here: try again',
        );
      }
      rootKey.replaceKey(newKey, generation);
      this.#shape = shape;
      const rotatedAt = new Date(this.#now());
      this.#lastRotation = { generation, at: rotatedAt };
      // Only now may the old key's generations go, on Keepers holding the new one.
      await pruneOlder(stored, generation);
      const names = stored.map((keeper) => keeper.name);
      logger.warn('Rotated the root key', { generation, ...shape, keepers: names });
      return { generation, ...shape, keepers: names, rotatedAt };
    } finally {
      zeroize(newKey);
    }
  }

  /** Throws ConflictError while the held key no longer opens the sealed keyring. */
  #requireCurrentKey(record: RootKeyRecord): void {
    if (!this.#o.rootKey.withKey((key) => verifyRootKey(key, record.sealedKeyring))) {
      throw staleRootKey();
    }
  }

  /**
   * The split's shape: the one a rotation recorded, else the configured one;
   * a recorded shape the configured Keepers can no longer hold gives way to
   * the configured one too.
   */
  #shapeOf(record: RootKeyRecord): SplitShape {
    const { splitShares, splitThreshold } = record;
    this.#shape =
      splitShares !== null && splitThreshold !== null && splitShares <= this.#o.keepers.length
        ? { shares: splitShares, threshold: splitThreshold }
        : { shares: this.#o.keepers.length, threshold: this.#o.threshold };
    return this.#shape;
  }

  /** Every shard every reachable Keeper holds. */
  async #collectShards(): Promise<Shard[]> {
    const results = await Promise.allSettled(this.#o.keepers.map((keeper) => keeper.listShards()));
    const shards: Shard[] = [];
    const statuses: KeeperStatus[] = [];
    results.forEach((result, i) => {
      const keeper = this.#o.keepers[i] as KeeperLink;
      if (result.status === 'fulfilled') {
        shards.push(...result.value);
        statuses.push({
          name: keeper.name,
          reachable: true,
          generations: [...new Set(result.value.map((shard) => shard.generation))].sort(
            (a, b) => a - b,
          ),
        });
      } else {
        statuses.push({ name: keeper.name, reachable: false, generations: [] });
      }
    });
    this.#keeperStatus = statuses;
    return shards;
  }
}

/** The refusal of work that needs the current root key while this Nexus still holds the old one. */
function staleRootKey(): ConflictError {
  return new ConflictError(
    'Another Nexus rotated the root key and this one has not taken the new key yet; try again shortly',
  );
}

function countByGeneration(shards: readonly Shard[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const shard of shards) {
    counts[String(shard.generation)] = (counts[String(shard.generation)] ?? 0) + 1;
  }
  return counts;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
