/**
 * A per-identity rate limit: one token bucket per verified SPIFFE ID. Each
 * request takes a token; a bucket refills at `ratePerSecond` up to `burst`.
 * An empty bucket answers 429 `ERR_RATE_LIMITED` with `Retry-After`, before
 * the body is read or a store is touched. Buckets are independent, so one
 * identity's flood never takes tokens from another.
 *
 * The base app (shared/http/app.ts) takes a token right after it found the
 * verified peer: the limit is keyed by that peer, never by anything the
 * client wrote.
 */
import type { Context } from 'hono';
import { RateLimitedError } from '../errors/errors.ts';

export interface RateLimitOptions {
  /** Sustained requests per second per identity; 0 turns the limit off. */
  readonly ratePerSecond: number;
  /** Requests an idle identity may send at once (the bucket's size). */
  readonly burst: number;
  /** A monotonic clock in ms; defaults to `performance.now()`. */
  readonly now?: () => number;
  /**
   * Past this many buckets, full ones (identities idle long enough to have
   * refilled) are dropped; a dropped bucket is the same as a full one.
   */
  readonly maxIdleBuckets?: number;
}

export type TakeResult =
  | { readonly isAllowed: true }
  | { readonly isAllowed: false; readonly retryAfterMs: number };

interface Bucket {
  tokens: number;
  updatedMs: number;
}

const DEFAULT_MAX_IDLE_BUCKETS = 10_000;
const ALLOWED: TakeResult = Object.freeze({ isAllowed: true });

export class TokenBuckets {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #maxIdleBuckets: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateLimitOptions) {
    const { ratePerSecond, burst } = options;
    if (!Number.isFinite(ratePerSecond) || ratePerSecond <= 0) {
      throw new RangeError(`A rate must be a positive number, got ${String(ratePerSecond)}`);
    }
    if (!Number.isSafeInteger(burst) || burst < 1) {
      throw new RangeError(`A burst must be a positive integer, got ${String(burst)}`);
    }
    this.#ratePerMs = ratePerSecond / 1000;
    this.#burst = burst;
    this.#now = options.now ?? (() => performance.now());
    this.#maxIdleBuckets = options.maxIdleBuckets ?? DEFAULT_MAX_IDLE_BUCKETS;
  }

  /** Buckets held now (for tests and status). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token for `key`, or says how long until one is there. */
  take(key: string): TakeResult {
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      this.#pruneIfFull(now);
      bucket = { tokens: this.#burst, updatedMs: now };
      this.#buckets.set(key, bucket);
    } else {
      this.#refill(bucket, now);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return ALLOWED;
    }
    return { isAllowed: false, retryAfterMs: Math.ceil((1 - bucket.tokens) / this.#ratePerMs) };
  }

  #refill(bucket: Bucket, now: number): void {
    // A clock that went backwards adds nothing.
    const elapsed = Math.max(0, now - bucket.updatedMs);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + elapsed * this.#ratePerMs);
    bucket.updatedMs = now;
  }

  /** Forgets refilled buckets once there are many: memory follows active identities only. */
  #pruneIfFull(now: number): void {
    if (this.#buckets.size < this.#maxIdleBuckets) {
      return;
    }
    for (const [key, bucket] of this.#buckets) {
      this.#refill(bucket, now);
      if (bucket.tokens >= this.#burst) {
        this.#buckets.delete(key);
      }
    }
  }
}

/** The buckets of a limit; none without one or with a rate of 0 (no limit). */
export function createTokenBuckets(
  options: RateLimitOptions | undefined,
): TokenBuckets | undefined {
  return options === undefined || options.ratePerSecond === 0
    ? undefined
    : new TokenBuckets(options);
}

/**
 * Takes a token for the verified peer `peerId`, or refuses the request: 429
 * with `Retry-After` (whole seconds) when its bucket is empty.
 */
export function takeToken(buckets: TokenBuckets, peerId: string, c: Context): void {
  const taken = buckets.take(peerId);
  if (!taken.isAllowed) {
    const retryAfterSeconds = Math.max(1, Math.ceil(taken.retryAfterMs / 1000));
    c.header('Retry-After', String(retryAfterSeconds));
    throw new RateLimitedError(
      `Too many requests from this SPIFFE ID: retry after ${retryAfterSeconds}s`,
      { retryAfterSeconds },
    );
  }
}
