/**
 * Aggregation of refused connections per source, so that a flood of
 * connect-and-reset costs a bounded number of audit and log lines instead of
 * one line (about 500 bytes of disk) per connection.
 *
 * The first refusal from a source in a window is passed on whole; later ones
 * in that window are only counted, and passed on as one summary with their
 * count when the window closes (or at `flush()`, at stop). The table of
 * sources is capped: while it is full, refusals from new sources are counted
 * into one overall summary per kind instead, so neither memory nor output
 * grows with the number of addresses an attacker can use.
 */

/** What a summary stands for. */
export interface RefusalCount {
  /** Refusals counted, not passed on one by one. */
  readonly count: number;
  /** The source they came from; undefined for the overall summary of sources over the cap. */
  readonly source: string | undefined;
}

/** Called with a refusal passed on whole, or with the last refusal of a summary and its count. */
export type EmitRefusal<R> = (refusal: R, summary?: RefusalCount) => void;

export interface RefusalWindowOptions {
  /** Length of a window; 0 passes every refusal on whole. */
  readonly windowMs: number;
  /** Sources tracked at once; refusals from others are counted into an overall summary. */
  readonly maxSources: number;
  readonly now?: () => number;
}

interface Window<R> {
  readonly key: string;
  readonly source: string | undefined;
  readonly startedAt: number;
  counted: number;
  last: R | undefined;
}

export class RefusalWindows<R> {
  readonly #windowMs: number;
  readonly #maxSources: number;
  readonly #now: () => number;
  readonly #emit: EmitRefusal<R>;
  /** Open windows by key, in the order they opened (so the first closes first). */
  readonly #windows = new Map<string, Window<R>>();
  /** Counts of refusals from sources over the cap, one per kind. */
  readonly #overflow = new Map<string, Window<R>>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: RefusalWindowOptions, emit: EmitRefusal<R>) {
    for (const [name, value] of Object.entries({
      windowMs: options.windowMs,
      maxSources: options.maxSources,
    })) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`Refusal ${name} must be a non-negative integer, got ${value}`);
      }
    }
    this.#windowMs = options.windowMs;
    this.#maxSources = options.maxSources;
    this.#now = options.now ?? Date.now;
    this.#emit = emit;
  }

  /**
   * One refusal of `kind` (refusals of different kinds from one source are
   * counted apart, so that a summary has one kind) from `source` (an address
   * without its port).
   */
  add(kind: string, source: string, refusal: R): void {
    if (this.#windowMs === 0) {
      this.#emit(refusal);
      return;
    }
    const now = this.#now();
    this.#closeWindows(now);
    const key = `${kind} ${source}`;
    const open = this.#windows.get(key);
    if (open !== undefined) {
      open.counted += 1;
      open.last = refusal;
      return;
    }
    if (this.#windows.size >= this.#maxSources) {
      let overflow = this.#overflow.get(kind);
      if (overflow === undefined) {
        overflow = { key: kind, source: undefined, startedAt: now, counted: 0, last: undefined };
        this.#overflow.set(kind, overflow);
        this.#schedule(now);
      }
      overflow.counted += 1;
      overflow.last = refusal;
      return;
    }
    this.#windows.set(key, { key, source, startedAt: now, counted: 0, last: undefined });
    this.#schedule(now);
    this.#emit(refusal);
  }

  /** Passes on every pending summary now and forgets every window (at stop). */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const all = [...this.#windows.values(), ...this.#overflow.values()];
    this.#windows.clear();
    this.#overflow.clear();
    for (const window of all) {
      this.#summarize(window);
    }
  }

  /** Sources with an open window. */
  get openWindows(): number {
    return this.#windows.size;
  }

  #closeWindows(now: number): void {
    for (const window of this.#windows.values()) {
      if (window.startedAt + this.#windowMs > now) {
        break;
      }
      this.#windows.delete(window.key);
      this.#summarize(window);
    }
    for (const window of [...this.#overflow.values()]) {
      if (window.startedAt + this.#windowMs <= now) {
        this.#overflow.delete(window.key);
        this.#summarize(window);
      }
    }
  }

  #summarize(window: Window<R>): void {
    if (window.counted > 0 && window.last !== undefined) {
      this.#emit(window.last, { count: window.counted, source: window.source });
    }
  }

  /** One timer at a time, for the window that closes first; it never keeps the process alive. */
  #schedule(now: number): void {
    if (this.#timer !== undefined) {
      return;
    }
    let first: number | undefined;
    for (const window of [this.#windows.values().next().value, ...this.#overflow.values()]) {
      if (window !== undefined && (first === undefined || window.startedAt < first)) {
        first = window.startedAt;
      }
    }
    if (first === undefined) {
      return;
    }
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        const at = this.#now();
        this.#closeWindows(at);
        this.#schedule(at);
      },
      Math.max(0, first + this.#windowMs - now),
    );
    this.#timer.unref?.();
  }
}
