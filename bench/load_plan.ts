/**
 * What each request of a load sends, decided just before it is sent, and what
 * its answer tells. The load worker calls `next()` from autocannon's
 * `setupRequest` and `answered()` from its `onResponse`.
 *
 * - The path is the template with `{n}` replaced by a number from 1 to
 *   `pathCount`: at random, or in sequence. In sequence, a number whose request
 *   is still unanswered is skipped, so concurrent writers go to distinct paths
 *   (the case group commit batches) instead of queueing on one row.
 * - The method is PUT for the `writeShare` of requests, GET for the others.
 * - A mixed load (some reads, some writes) also checks reads right after
 *   writes: every read must return a version at least as new as the newest
 *   write of its path whose answer came before the read was sent. The plan
 *   keeps that version per path from the writes' answers and counts the reads
 *   that return an older one. It sees only its own writes, which are the only
 *   ones during a load.
 */

export interface PlanSpec {
  /** A request path with `{n}` in it. */
  readonly pathTemplate: string;
  readonly pick: 'sequence' | 'random';
  readonly pathCount: number;
  /** Share of requests (0 to 1) that are writes. */
  readonly writeShare: number;
  /** Requests in flight at once: a sequence needs at least this many paths. */
  readonly connections: number;
}

export interface Planned {
  readonly n: number;
  readonly path: string;
  readonly write: boolean;
  /** The newest version of this path acknowledged before the request was sent; 0 if none. */
  readonly atLeast: number;
}

/** What the reads of a mixed load returned, against the writes acknowledged before them. */
export interface ReadChecks {
  /** Successful reads, each checked. */
  readonly checkedReads: number;
  /** Those sent after a write of their path was acknowledged: the ones the check can fail. */
  readonly readsAfterWrites: number;
  /** Those that returned a version older than that write's. */
  readonly staleReads: number;
}

// The read answer is `{ path, version, data, createdAt }` and the write answer
// the metadata, whose first `"currentVersion"` is the version just written.
// The benchmark's values are runs of one letter, so neither key occurs in data.
const READ_VERSION = /"version":(\d+)/;
const WRITE_VERSION = /"currentVersion":(\d+)/;

export class LoadPlan {
  readonly #spec: PlanSpec;
  readonly #random: () => number;
  readonly #mixed: boolean;
  #last = 0;
  readonly #unanswered = new Set<number>();
  readonly #acknowledged = new Map<number, number>();
  #checkedReads = 0;
  #readsAfterWrites = 0;
  #staleReads = 0;

  constructor(spec: PlanSpec, random: () => number = Math.random) {
    if (!spec.pathTemplate.includes('{n}')) {
      throw new RangeError(`The path template must contain {n}, got "${spec.pathTemplate}"`);
    }
    if (!Number.isSafeInteger(spec.pathCount) || spec.pathCount < 1) {
      throw new RangeError(`The path count must be an integer >= 1, got ${spec.pathCount}`);
    }
    if (!(spec.writeShare >= 0 && spec.writeShare <= 1)) {
      throw new RangeError(`The write share must be from 0 to 1, got ${spec.writeShare}`);
    }
    if (spec.pick === 'sequence' && spec.pathCount < spec.connections) {
      throw new RangeError(
        `A sequence over ${spec.pathCount} paths cannot keep ${spec.connections} connections on distinct paths`,
      );
    }
    this.#spec = spec;
    this.#random = random;
    this.#mixed = spec.writeShare > 0 && spec.writeShare < 1;
  }

  next(): Planned {
    const n = this.#spec.pick === 'sequence' ? this.#nextInSequence() : this.#randomNumber();
    // Only a mixed load draws: the others are all reads or all writes.
    const write = this.#mixed
      ? this.#random() < this.#spec.writeShare
      : this.#spec.writeShare === 1;
    return {
      n,
      path: this.#spec.pathTemplate.replace('{n}', String(n)),
      write,
      atLeast: this.#acknowledged.get(n) ?? 0,
    };
  }

  /** Records the answer to a planned request (any status). */
  answered(planned: Planned, status: number, body: string): void {
    this.#unanswered.delete(planned.n);
    if (!this.#mixed || status < 200 || status >= 300) return;
    if (planned.write) {
      const version = Number(WRITE_VERSION.exec(body)?.[1] ?? 0);
      if (version > (this.#acknowledged.get(planned.n) ?? 0)) {
        this.#acknowledged.set(planned.n, version);
      }
      return;
    }
    this.#checkedReads += 1;
    if (planned.atLeast > 0) this.#readsAfterWrites += 1;
    const version = Number(READ_VERSION.exec(body)?.[1] ?? 0);
    if (version < planned.atLeast) this.#staleReads += 1;
  }

  /** The read checks of a mixed load; undefined for a load that only reads or only writes. */
  readChecks(): ReadChecks | undefined {
    return this.#mixed
      ? {
          checkedReads: this.#checkedReads,
          readsAfterWrites: this.#readsAfterWrites,
          staleReads: this.#staleReads,
        }
      : undefined;
  }

  #randomNumber(): number {
    return 1 + Math.floor(this.#random() * this.#spec.pathCount);
  }

  /**
   * The next number after the last one, from 1 again after `pathCount`, that
   * has no request in flight. A request that timed out is never answered, so
   * its number stays taken; if every number is, the next one is used anyway
   * rather than stopping the load.
   */
  #nextInSequence(): number {
    const count = this.#spec.pathCount;
    const following = (n: number) => (n % count) + 1;
    let n = following(this.#last);
    for (let tried = 1; tried < count && this.#unanswered.has(n); tried += 1) n = following(n);
    if (this.#unanswered.has(n)) n = following(this.#last);
    this.#last = n;
    this.#unanswered.add(n);
    return n;
  }
}
