/**
 * Keeps the X509-SVID of one registration fresh: issues it, re-issues it at
 * about half its lifetime with ±10% jitter (SPIRE's rule), and tells every
 * subscriber (the open Workload API streams) about each new one. A failed
 * rotation keeps the current SVID and retries soon.
 */
import { clearTimeout, setTimeout } from 'node:timers';
import type { Logger } from '../shared/log/logger.ts';
import type { IssuedSvid, LocalCa } from './ca.ts';
import type { Registration } from './registrations.ts';

/** Share of the lifetime after which an SVID is renewed. */
const ROTATE_AT_FRACTION = 0.5;
/** The rotation point moves by up to this share of itself, either way. */
const JITTER_FRACTION = 0.1;
/** Retry delay after a failed rotation, capped by the remaining lifetime. */
const RETRY_DELAY_MS = 5_000;
/**
 * Floor for a scheduled rotation, so that an SVID cut short (by the CA's own
 * expiry or second-granular X.509 times) cannot cause a tight re-issue loop.
 */
const MIN_ROTATION_DELAY_MS = 1_000;
/** setTimeout fires at once for delays above 2^31-1 ms; longer waits are chained. */
const MAX_TIMER_DELAY_MS = 2_147_483_647;

export type SvidListener = (svid: IssuedSvid) => void;

export interface SvidRotatorOptions {
  readonly registration: Registration;
  readonly ca: LocalCa;
  readonly ttlMs: number;
  readonly logger: Logger;
  /** The clock, in ms since the epoch. */
  readonly now?: () => number;
  /** A number in [0, 1) for the jitter. */
  readonly random?: () => number;
}

/**
 * When to rotate an SVID valid from `issuedAtMs` to `notAfterMs`: half-way,
 * moved by up to ±10% of that half. `random` is in [0, 1).
 */
export function rotationTimeMs(issuedAtMs: number, notAfterMs: number, random: number): number {
  const half = (notAfterMs - issuedAtMs) * ROTATE_AT_FRACTION;
  const jitter = half * JITTER_FRACTION * (2 * random - 1);
  return issuedAtMs + half + jitter;
}

export class SvidRotator {
  readonly registration: Registration;
  readonly #ca: LocalCa;
  readonly #ttlMs: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #listeners = new Set<SvidListener>();
  #current: IssuedSvid | undefined;
  #rotateAtMs = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight: Promise<IssuedSvid> | undefined;
  #isStopped = false;

  constructor(options: SvidRotatorOptions) {
    this.registration = options.registration;
    this.#ca = options.ca;
    this.#ttlMs = options.ttlMs;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  /** Issues the first SVID and schedules its rotation. */
  async start(): Promise<IssuedSvid> {
    if (this.#current !== undefined) {
      return this.#current;
    }
    return this.#issue('initial');
  }

  /** The SVID to serve now. Throws before `start()` resolved. */
  current(): IssuedSvid {
    if (this.#current === undefined) {
      throw new TypeError(`SVID of "${this.registration.name}" requested before start()`);
    }
    return this.#current;
  }

  /** When the current SVID will be rotated, in ms since the epoch. */
  rotationDueAtMs(): number {
    return this.#rotateAtMs;
  }

  /** Calls `listener` with every new SVID; returns the unsubscribe function. */
  subscribe(listener: SvidListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Rotates at once (tests, operators); concurrent calls share one issuance. */
  rotateNow(): Promise<IssuedSvid> {
    return this.#issue('forced');
  }

  /** Stops the timer and drops every listener. */
  stop(): void {
    this.#isStopped = true;
    this.#clearTimer();
    this.#listeners.clear();
  }

  #issue(reason: string): Promise<IssuedSvid> {
    if (this.#isStopped) {
      return Promise.reject(new TypeError(`SVID rotation of "${this.registration.name}" stopped`));
    }
    if (this.#inFlight !== undefined) {
      return this.#inFlight;
    }
    const issuedAt = this.#now();
    const pending = this.#ca
      .issueSvid(this.registration.spiffeId, this.#ttlMs, {
        registration: this.registration.name,
        reason,
      })
      .then((svid) => {
        this.#inFlight = undefined;
        if (this.#isStopped) {
          return svid;
        }
        this.#current = svid;
        this.#rotateAtMs = Math.max(
          rotationTimeMs(issuedAt, svid.notAfter.getTime(), this.#random()),
          this.#now() + MIN_ROTATION_DELAY_MS,
        );
        this.#schedule(this.#rotateAtMs);
        this.#logger.debug('Scheduled the next SVID rotation', {
          registration: this.registration.name,
          rotateAt: new Date(this.#rotateAtMs).toISOString(),
        });
        for (const listener of [...this.#listeners]) {
          this.#notify(listener, svid);
        }
        return svid;
      })
      .catch((err: unknown) => {
        this.#inFlight = undefined;
        throw err;
      });
    this.#inFlight = pending;
    return pending;
  }

  #notify(listener: SvidListener, svid: IssuedSvid): void {
    try {
      listener(svid);
    } catch (err) {
      this.#logger.error('An SVID listener failed', {
        registration: this.registration.name,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  #schedule(atMs: number): void {
    this.#clearTimer();
    const delay = Math.min(Math.max(atMs - this.#now(), 0), MAX_TIMER_DELAY_MS);
    const timer = setTimeout(() => this.#onTimer(atMs), delay);
    // The servers keep the process alive; a pending rotation alone should not.
    timer.unref();
    this.#timer = timer;
  }

  #onTimer(atMs: number): void {
    this.#timer = undefined;
    if (this.#isStopped) {
      return;
    }
    if (this.#now() < atMs) {
      this.#schedule(atMs);
      return;
    }
    this.#issue('rotation').catch((err: unknown) => {
      if (this.#isStopped) {
        return;
      }
      const remaining = (this.#current?.notAfter.getTime() ?? 0) - this.#now();
      const retryInMs = Math.max(1_000, Math.min(RETRY_DELAY_MS, remaining / 2));
      this.#logger.error('SVID rotation failed; keeping the current SVID and retrying', {
        registration: this.registration.name,
        retryInMs,
        error: err instanceof Error ? err.message : String(err),
      });
      this.#schedule(this.#now() + retryInMs);
    });
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }
}
