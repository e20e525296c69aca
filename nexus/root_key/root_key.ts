/**
 * The root key's state in a running Nexus: sealed until the key is recovered
 * (from Keepers or by an operator), then ready. The key and the keyring it
 * unlocks live only in #private fields of this object, and nowhere else.
 */
import { NotReadyError } from '../../shared/errors/errors.ts';

export type RootKeyState = 'sealed' | 'ready';

export class RootKey {
  #key: Uint8Array | undefined;
  #keyring: Uint8Array | undefined;
  #generation: number | undefined;
  readonly #waiters = new Set<() => void>();

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

  /** Takes copies of the key and keyring; the caller zeroizes its own. */
  unseal(key: Uint8Array, keyring: Uint8Array, generation: number): void {
    this.#key?.fill(0);
    this.#keyring?.fill(0);
    this.#key = key.slice();
    this.#keyring = keyring.slice();
    this.#generation = generation;
    for (const wake of [...this.#waiters]) {
      wake();
    }
    this.#waiters.clear();
  }

  /** Forgets the key (on stop). */
  seal(): void {
    this.#key?.fill(0);
    this.#keyring?.fill(0);
    this.#key = undefined;
    this.#keyring = undefined;
    this.#generation = undefined;
  }

  /** Runs `use` with the root key; throws NotReadyError while sealed. Never keep the argument. */
  withKey<T>(use: (key: Uint8Array) => T): T {
    if (this.#key === undefined) {
      throw new NotReadyError();
    }
    return use(this.#key);
  }

  /** Runs `use` with the keyring (the store's data key); throws NotReadyError while sealed. */
  withKeyring<T>(use: (keyring: Uint8Array) => T): T {
    if (this.#keyring === undefined) {
      throw new NotReadyError();
    }
    return use(this.#keyring);
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
