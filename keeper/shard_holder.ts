/**
 * What a Keeper holds: at most one shard per generation, in memory only.
 * The bytes live in one #private map and leave it only as copies. A
 * generation, once held, is never replaced by other bytes; older generations
 * stay until Nexus prunes them, which it may do only from a generation this
 * Keeper holds. Every value dropped is overwritten with zeros first.
 */
import { inspect } from 'node:util';
import { constantTimeEqual, zeroize } from '../shared/crypto/bytes.ts';
import {
  MAX_GENERATION,
  MAX_SHARES,
  SHARD_VALUE_BYTES,
  type Shard,
} from '../shared/crypto/shard.ts';
import { ConflictError } from '../shared/errors/errors.ts';
import type { Logger } from '../shared/log/logger.ts';

/** How many generations a Keeper holds at most unless told otherwise. */
export const DEFAULT_MAX_GENERATIONS = 8;

export interface ShardHolderOptions {
  readonly logger: Logger;
  /** Beyond this many generations the oldest is dropped (default 8, at least 2). */
  readonly maxGenerations?: number;
}

/** `stored`: a new generation; `unchanged`: the same shard was already held. */
export type StoreOutcome = 'stored' | 'unchanged';

export interface StoreResult {
  readonly outcome: StoreOutcome;
  /** Generations dropped to stay within the cap, ascending. */
  readonly dropped: readonly number[];
}

export interface PruneResult {
  /** False when `keepFrom` is not held: nothing was dropped. */
  readonly applied: boolean;
  /** Generations dropped, ascending. */
  readonly dropped: readonly number[];
}

interface HeldShard {
  readonly index: number;
  readonly threshold: number;
  readonly value: Uint8Array;
}

export class ShardHolder {
  readonly #shards = new Map<number, HeldShard>();
  readonly #logger: Logger;
  readonly #maxGenerations: number;

  constructor(options: ShardHolderOptions) {
    const max = options.maxGenerations ?? DEFAULT_MAX_GENERATIONS;
    // Two at least: the committed generation and the one being rolled out.
    if (!Number.isSafeInteger(max) || max < 2) {
      throw new RangeError(`maxGenerations must be an integer of at least 2, got ${String(max)}`);
    }
    this.#logger = options.logger;
    this.#maxGenerations = max;
  }

  /**
   * Holds a copy of `shard` (the caller keeps and may wipe its own bytes).
   * The same shard again is a no-op; other bytes, index or threshold for a
   * held generation throw `ConflictError` and keep what is held. When the
   * cap is reached the oldest generation is dropped; a shard older than
   * every held one is refused instead, so the newest is never the one lost.
   */
  store(shard: Shard): StoreResult {
    checkShard(shard);
    const held = this.#shards.get(shard.generation);
    if (held !== undefined) {
      const isSame =
        held.index === shard.index &&
        held.threshold === shard.threshold &&
        constantTimeEqual(held.value, shard.value);
      if (!isSame) {
        throw new ConflictError(
          `Generation ${shard.generation} is already held with another shard: it is kept unchanged`,
        );
      }
      return { outcome: 'unchanged', dropped: [] };
    }
    const generations = this.generations();
    const oldest = generations[0];
    if (
      generations.length >= this.#maxGenerations &&
      oldest !== undefined &&
      shard.generation < oldest
    ) {
      throw new ConflictError(
        `Generation ${shard.generation} is older than all ${generations.length} generations held: it was not stored`,
      );
    }
    this.#shards.set(shard.generation, {
      index: shard.index,
      threshold: shard.threshold,
      value: Uint8Array.from(shard.value),
    });
    const dropped: number[] = [];
    for (const generation of this.generations()) {
      if (this.#shards.size <= this.#maxGenerations) {
        break;
      }
      this.#drop(generation);
      dropped.push(generation);
    }
    if (dropped.length > 0) {
      this.#logger.warn('Dropped the oldest generations to stay within the limit', {
        dropped,
        maxGenerations: this.#maxGenerations,
      });
    }
    return { outcome: 'stored', dropped };
  }

  /** Copies of every shard held, by ascending generation. */
  list(): Shard[] {
    return this.generations().map((generation) => {
      const held = this.#shards.get(generation) as HeldShard;
      return {
        generation,
        index: held.index,
        threshold: held.threshold,
        value: Uint8Array.from(held.value),
      };
    });
  }

  /** The generations held, ascending. */
  generations(): number[] {
    return [...this.#shards.keys()].sort((a, b) => a - b);
  }

  /**
   * Drops every generation older than `keepFrom`, but only if `keepFrom`
   * itself is held: a Keeper never gives up its last usable shard for one
   * it does not have.
   */
  prune(keepFrom: number): PruneResult {
    if (!Number.isSafeInteger(keepFrom)) {
      throw new TypeError(`prune() takes an integer generation, got ${String(keepFrom)}`);
    }
    if (!this.#shards.has(keepFrom)) {
      return { applied: false, dropped: [] };
    }
    const dropped = this.generations().filter((generation) => generation < keepFrom);
    for (const generation of dropped) {
      this.#drop(generation);
    }
    return { applied: true, dropped };
  }

  /** Wipes and forgets every shard (at shutdown). */
  clear(): void {
    for (const generation of this.generations()) {
      this.#drop(generation);
    }
  }

  toJSON(): { generations: number[] } {
    return { generations: this.generations() };
  }

  [inspect.custom](): string {
    return `ShardHolder { generations: [${this.generations().join(', ')}] }`;
  }

  #drop(generation: number): void {
    const held = this.#shards.get(generation);
    this.#shards.delete(generation);
    zeroize(held?.value);
  }
}

/** Programmer errors: requests reach the holder only through the wire parsers. */
function checkShard(shard: Shard): void {
  const inRange = (value: number, min: number, max: number) =>
    Number.isSafeInteger(value) && value >= min && value <= max;
  if (
    !inRange(shard.generation, 1, MAX_GENERATION) ||
    !inRange(shard.index, 1, MAX_SHARES) ||
    !inRange(shard.threshold, 2, MAX_SHARES)
  ) {
    throw new RangeError('A shard needs a valid generation, index and threshold');
  }
  if (!(shard.value instanceof Uint8Array) || shard.value.length !== SHARD_VALUE_BYTES) {
    throw new RangeError(`A shard value must be a Uint8Array of ${SHARD_VALUE_BYTES} bytes`);
  }
}
