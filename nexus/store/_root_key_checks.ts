/**
 * Argument checks shared by the RootKeyStore implementations, so both refuse
 * the same programmer errors the same way (TypeError / RangeError).
 */
import { MAX_SHARES } from '../../shared/crypto/shard.ts';
import type { InitialiseRequest, RotationCommit } from './root_key_store.ts';

/** Owners are random process ids: short printable strings. */
const MAX_OWNER_LENGTH = 256;

export function checkInitialiseRequest(request: InitialiseRequest): void {
  checkSealedKeyring(request.sealedKeyring);
  checkOwner(request.owner);
  checkDate('deadline', request.deadline);
}

export function checkSealedKeyring(sealed: Uint8Array): void {
  if (!(sealed instanceof Uint8Array) || sealed.length === 0) {
    throw new TypeError('Expected "sealedKeyring" to be a non-empty Uint8Array');
  }
}

export function checkOwner(owner: string): void {
  if (typeof owner !== 'string' || owner.length === 0 || owner.length > MAX_OWNER_LENGTH) {
    throw new TypeError(`Expected "owner" to be a string of 1 to ${MAX_OWNER_LENGTH} characters`);
  }
}

export function checkDate(name: string, value: Date): void {
  if (!(value instanceof Date) || !Number.isFinite(value.getTime())) {
    throw new TypeError(`Expected "${name}" to be a valid Date`);
  }
}

export function checkGeneration(generation: number): void {
  if (!Number.isSafeInteger(generation) || generation < 1) {
    throw new RangeError(`Expected a generation >= 1, got ${generation}`);
  }
}

export function checkRotationCommit(rotation: RotationCommit): void {
  checkGeneration(rotation.generation);
  checkSealedKeyring(rotation.expectedSealed);
  checkSealedKeyring(rotation.nextSealed);
  const { shares, threshold } = rotation;
  if (
    !Number.isSafeInteger(threshold) ||
    !Number.isSafeInteger(shares) ||
    threshold < 2 ||
    shares < threshold ||
    shares > MAX_SHARES
  ) {
    throw new RangeError(
      `Expected 2 <= threshold <= shares <= ${MAX_SHARES}, got ${threshold} of ${shares}`,
    );
  }
}
