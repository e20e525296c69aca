/**
 * The root key's state in a running Nexus: sealed until the key is recovered
 * (from Keepers or by an operator), then ready. The key and the keyring it
 * unlocks live only in #private fields of this object, and nowhere else.
 */
import { zeroize } from '../../shared/crypto/bytes.ts';
import { NotReadyError } from '../../shared/errors/errors.ts';
import { decodeKeyring, type KeyringTerm, type KeyringTermInfo } from './keyring.ts';

export type RootKeyState = 'sealed' | 'ready';

export class RootKey {
  #key: Uint8Array | undefined;
  /** The keyring's plaintext as sealed (to seal again), and its terms. */
  #keyring: Uint8Array | undefined;
  #terms: KeyringTerm[] = [];
  readonly #now: () => number;
  #generation: number | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(options: { readonly now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  get state(): RootKeyState {
    return this.#key === undefined ? 'sealed' : 'ready';
  }

  get isReady(): boolean {
    return this.#key !== undefined;
  }

  /** The generation of the Keepers' newest committed split, once ready. */
  get generation(): number | undefined {
    return this.#generation;
  }

  set generation(value: number | undefined) {
    this.#generation = value;
  }

  /** Takes copies of the key and keyring (its plaintext); the caller zeroizes its own. */
  unseal(key: Uint8Array, keyring: Uint8Array, generation: number): void {
    const terms = decodeKeyring(keyring);
    this.#key?.fill(0);
    this.#key = key.slice();
    this.#setKeyring(keyring, terms);
    this.#generation = generation;
    for (const wake of [...this.#waiters]) {
      wake();
    }
    this.#waiters.clear();
  }

  /**
   * Takes a copy of a newer keyring of the same root key (a data-key
   * rotation, here or by another Nexus); throws NotReadyError while sealed.
   */
  replaceKeyring(keyring: Uint8Array): void {
    if (this.#key === undefined) {
      throw new NotReadyError();
    }
    this.#setKeyring(keyring, decodeKeyring(keyring));
  }

  /** Takes a copy of a new root key for the same keyring (a root-key rotation). */
  replaceKey(key: Uint8Array, generation: number): void {
    if (this.#key === undefined) {
      throw new NotReadyError();
    }
    this.#key.fill(0);
    this.#key = key.slice();
    this.#generation = generation;
  }

  /** Forgets the key (on stop). */
  seal(): void {
    this.#key?.fill(0);
    this.#key = undefined;
    this.#clearKeyring();
    this.#generation = undefined;
  }

  /** The keyring's terms (no keys) and the one new rows are sealed under; undefined while sealed. */
  keyringTerms():
    | { readonly active: number; readonly terms: readonly KeyringTermInfo[] }
    | undefined {
    if (this.#key === undefined) {
      return undefined;
    }
    return {
      active: this.#activeTerm().term,
      terms: this.#terms.map(({ term, createdAtMs, activeFromMs }) => ({
        term,
        createdAtMs,
        activeFromMs,
      })),
    };
  }

  /** Runs `use` with the root key; throws NotReadyError while sealed. Never keep the argument. */
  withKey<T>(use: (key: Uint8Array) => T): T {
    if (this.#key === undefined) {
      throw new NotReadyError();
    }
    return use(this.#key);
  }

  /**
   * Runs `use` with a data key and its term: the active term's when `term`
   * is omitted (to seal), else that term's (to open). Throws NotReadyError
   * while sealed, and for a term this keyring does not hold yet (a newer
   * term another Nexus made, until this one reloads the keyring). Never
   * keep the key.
   */
  withKeyring<T>(use: (key: Uint8Array, term: number) => T, term?: number): T {
    if (this.#key === undefined) {
      throw new NotReadyError();
    }
    const entry =
      term === undefined ? this.#activeTerm() : this.#terms.find((t) => t.term === term);
    if (entry === undefined) {
      throw new NotReadyError(`This Nexus does not hold keyring term ${term} yet`);
    }
    return use(entry.key, entry.term);
  }

  /** A copy of the keyring's plaintext, to seal it under a root key; the caller zeroizes it. */
  keyringPlaintext(): Uint8Array {
    if (this.#keyring === undefined) {
      throw new NotReadyError();
    }
    return this.#keyring.slice();
  }

  /** The newest term whose activation time has come (the first term always has). */
  #activeTerm(): KeyringTerm {
    const now = this.#now();
    for (let i = this.#terms.length - 1; i > 0; i--) {
      const entry = this.#terms[i] as KeyringTerm;
      if (entry.activeFromMs <= now) {
        return entry;
      }
    }
    return this.#terms[0] as KeyringTerm;
  }

  #setKeyring(plaintext: Uint8Array, terms: KeyringTerm[]): void {
    this.#clearKeyring();
    this.#keyring = plaintext.slice();
    this.#terms = terms;
  }

  #clearKeyring(): void {
    this.#keyring?.fill(0);
    zeroize(...this.#terms.map((t) => t.key));
    this.#keyring = undefined;
    this.#terms = [];
  }

  /** Resolves once ready (at once if already), or rejects after `timeoutMs`. */
  whenReady(timeoutMs: number): Promise<void> {
    if (this.isReady) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        reject(new NotReadyError(`Nexus is still sealed after ${timeoutMs}ms`));
      }, timeoutMs);
      this.#waiters.add(wake);
    });
  }

  toJSON(): unknown {
    return { state: this.state };
  }
}
