/**
 * RootKeyStore in memory, with the same semantics as the SQL store, for unit
 * tests and the fault simulation. Each operation checks and changes the state
 * in one synchronous step (no await in between), which makes it as atomic as
 * the single SQL statement it stands for. Bytes are copied in and out, so no
 * caller can change the stored record through a reference it holds.
 */
import { InternalError } from '../../../shared/errors/errors.ts';
import {
  checkDate,
  checkGeneration,
  checkInitialiseRequest,
  checkOwner,
  checkRotationCommit,
  checkSealedKeyring,
} from '../_root_key_checks.ts';
import type {
  InitialiseRequest,
  RootKeyRecord,
  RootKeyStore,
  RotationCommit,
} from '../root_key_store.ts';

const FIRST_GENERATION = 1;

interface State {
  sealedKeyring: Uint8Array;
  lastGeneration: number;
  committedGeneration: number | null;
  splitShares: number | null;
  splitThreshold: number | null;
  initOwner: string | null;
  initDeadlineMs: number | null;
}

export class MemoryRootKeyStore implements RootKeyStore {
  #state: State | undefined;
  #isClosed = false;

  read(): Promise<RootKeyRecord | undefined> {
    return this.#run(() => {
      const state = this.#state;
      if (state === undefined) return undefined;
      return Object.freeze({
        sealedKeyring: state.sealedKeyring.slice(),
        lastGeneration: state.lastGeneration,
        committedGeneration: state.committedGeneration,
        splitShares: state.splitShares,
        splitThreshold: state.splitThreshold,
        initOwner: state.initOwner,
        initDeadline: state.initDeadlineMs === null ? null : new Date(state.initDeadlineMs),
      });
    });
  }

  tryInitialise(request: InitialiseRequest): Promise<boolean> {
    return this.#run(() => {
      checkInitialiseRequest(request);
      if (this.#state !== undefined) return false;
      this.#state = {
        sealedKeyring: new Uint8Array(request.sealedKeyring),
        lastGeneration: FIRST_GENERATION,
        committedGeneration: null,
        splitShares: null,
        splitThreshold: null,
        initOwner: request.owner,
        initDeadlineMs: request.deadline.getTime(),
      };
      return true;
    });
  }

  tryTakeOver(request: InitialiseRequest, now: Date): Promise<number | undefined> {
    return this.#run(() => {
      checkInitialiseRequest(request);
      checkDate('now', now);
      const state = this.#state;
      if (
        state === undefined ||
        state.committedGeneration !== null ||
        state.initDeadlineMs === null ||
        !(state.initDeadlineMs < now.getTime())
      ) {
        return undefined;
      }
      state.sealedKeyring = new Uint8Array(request.sealedKeyring);
      state.lastGeneration += 1;
      state.initOwner = request.owner;
      state.initDeadlineMs = request.deadline.getTime();
      return state.lastGeneration;
    });
  }

  allocateGeneration(): Promise<number> {
    return this.#run(() => {
      const state = this.#state;
      if (state === undefined) {
        throw new InternalError('Cannot allocate a generation: the root key record does not exist');
      }
      state.lastGeneration += 1;
      return state.lastGeneration;
    });
  }

  commitGeneration(generation: number, owner: string, sealedKeyring: Uint8Array): Promise<boolean> {
    return this.#run(() => {
      checkGeneration(generation);
      checkOwner(owner);
      checkSealedKeyring(sealedKeyring);
      const state = this.#state;
      if (state === undefined) {
        throw new InternalError('Cannot commit a generation: the root key record does not exist');
      }
      if (generation > state.lastGeneration) {
        throw new RangeError(
          `Cannot commit generation ${generation}: only ${state.lastGeneration} were allocated`,
        );
      }
      if (state.committedGeneration === null && state.initOwner !== owner) return false;
      if (!sameBytes(state.sealedKeyring, sealedKeyring)) return false;
      state.committedGeneration = Math.max(state.committedGeneration ?? 0, generation);
      state.initOwner = null;
      state.initDeadlineMs = null;
      return true;
    });
  }

  commitRotation(rotation: RotationCommit): Promise<boolean> {
    return this.#run(() => {
      checkRotationCommit(rotation);
      const state = this.#state;
      if (state === undefined) {
        throw new InternalError('Cannot commit a rotation: the root key record does not exist');
      }
      if (rotation.generation > state.lastGeneration) {
        throw new RangeError(
          `Cannot commit generation ${rotation.generation}: only ${state.lastGeneration} were allocated`,
        );
      }
      if (
        state.committedGeneration === null ||
        state.committedGeneration >= rotation.generation ||
        !sameBytes(state.sealedKeyring, rotation.expectedSealed)
      ) {
        return false;
      }
      state.sealedKeyring = new Uint8Array(rotation.nextSealed);
      state.committedGeneration = rotation.generation;
      state.splitShares = rotation.shares;
      state.splitThreshold = rotation.threshold;
      return true;
    });
  }

  replaceSealedKeyring(expected: Uint8Array, next: Uint8Array): Promise<boolean> {
    return this.#run(() => {
      checkSealedKeyring(expected);
      checkSealedKeyring(next);
      const state = this.#state;
      if (
        state === undefined ||
        state.committedGeneration === null ||
        !sameBytes(state.sealedKeyring, expected)
      ) {
        return false;
      }
      state.sealedKeyring = new Uint8Array(next);
      return true;
    });
  }

  close(): Promise<void> {
    this.#isClosed = true;
    return Promise.resolve();
  }

  /** Runs one whole operation synchronously, as a promise like the SQL store's. */
  #run<T>(operation: () => T): Promise<T> {
    try {
      if (this.#isClosed) throw new InternalError('The root key store is closed');
      return Promise.resolve(operation());
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
