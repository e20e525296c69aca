/**
 * The keyring sweep: after a data-key rotation, seals every row sealed under
 * an older keyring term again under the active one, in the background.
 *
 * It walks each store (`KeyringSweepTarget`: the secrets, then the named
 * keys) in steps of `batchSize` rows, each step its own short transaction,
 * and yields to the event loop between steps (`pauseMs`), so reads and
 * writes go on throughout. A pass that rewraps nothing while the active term
 * is the newest ends the sweep until the next rotation; a pass that still
 * found rows runs again, which also catches rows another Nexus wrote under
 * an older term before it took up the new one. Nothing is kept between
 * passes but counts: after a crash, the next start's first pass skips every
 * row already under the active term, so the sweep resumes where the rows
 * say it was. Rows that fail to open are counted and left (the integrity
 * alarm has rung for each).
 */
import type { Logger } from '../../shared/log/logger.ts';
import { delay } from '../../shared/runtime/delay.ts';
import type { KeyringSweepTarget, SweepPosition } from '../store/keyring_sweep.ts';

export interface KeyringSweeperOptions {
  readonly targets: readonly KeyringSweepTarget[];
  /** The active term, or undefined while sealed (the sweep waits). */
  readonly activeTerm: () => number | undefined;
  readonly logger: Logger;
  /** Rows per step. */
  readonly batchSize?: number;
  /** The wait between steps, so a sweep leaves the database and the event loop to requests. */
  readonly pauseMs?: number;
  /** How often an idle sweeper looks for rows under older terms (another Nexus's rotation). */
  readonly idleCheckMs?: number;
  readonly now?: () => number;
}

export type SweepState = 'idle' | 'sweeping';

/** What the status shows of the sweep (counts only). */
export interface SweepStatus {
  readonly state: SweepState;
  /** The term the current or last sweep sealed under. */
  readonly term: number | undefined;
  /** Rows rewrapped since this process started sweeping for `term`. */
  readonly rewrapped: number;
  /** Rows that failed to open in the last pass (they are met again by every pass). */
  readonly failed: number;
  readonly startedAt: Date | undefined;
  /** When the last sweep found nothing left to rewrap for `term`. */
  readonly finishedAt: Date | undefined;
}

const DEFAULT_BATCH_SIZE = 256;
const DEFAULT_PAUSE_MS = 2;
const DEFAULT_IDLE_CHECK_MS = 60_000;
const SEALED_CHECK_MS = 500;

export class KeyringSweeper {
  readonly #o: KeyringSweeperOptions;
  readonly #now: () => number;
  readonly #stopping = new AbortController();
  /** Aborted to cut an idle wait short (a rotation). */
  #wake = new AbortController();
  #running: Promise<void> | undefined;
  #state: SweepState = 'idle';
  #term: number | undefined;
  #rewrapped = 0;
  #failed = 0;
  #startedAt: Date | undefined;
  #finishedAt: Date | undefined;

  constructor(options: KeyringSweeperOptions) {
    const batch = options.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isSafeInteger(batch) || batch < 1 || batch > 10_000) {
      throw new RangeError('The sweep batch size must be 1 to 10000 rows');
    }
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    this.#running ??= this.#run();
  }

  /** Ends the loop; resolves once the step in flight (if any) has finished. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#wake.abort();
    await this.#running;
  }

  /** Starts a pass now instead of at the next idle check (after a rotation here). */
  wake(): void {
    this.#wake.abort();
  }

  status(): SweepStatus {
    return {
      state: this.#state,
      term: this.#term,
      rewrapped: this.#rewrapped,
      failed: this.#failed,
      startedAt: this.#startedAt,
      finishedAt: this.#finishedAt,
    };
  }

  /**
   * One full pass over every target, for the term active now; returns the
   * rows it rewrapped. Also what tests call to sweep without the loop.
   */
  async pass(): Promise<number> {
    const term = this.#o.activeTerm();
    if (term === undefined) return 0;
    if (term !== this.#term) {
      this.#term = term;
      this.#rewrapped = 0;
      this.#startedAt = new Date(this.#now());
      this.#finishedAt = undefined;
    }
    this.#failed = 0;
    const batch = this.#o.batchSize ?? DEFAULT_BATCH_SIZE;
    let total = 0;
    for (const target of this.#o.targets) {
      let from: SweepPosition | undefined;
      do {
        if (this.#stopping.signal.aborted || this.#o.activeTerm() !== term) return total;
        const step = await target.rewrapOlderTerms(from, batch);
        total += step.rewrapped;
        this.#rewrapped += step.rewrapped;
        this.#failed += step.failed;
        from = step.next;
        if (from !== undefined) await this.#pause();
      } while (from !== undefined);
    }
    return total;
  }

  async #run(): Promise<void> {
    const { signal } = this.#stopping;
    while (!signal.aborted) {
      try {
        const term = this.#o.activeTerm();
        if (term === undefined) {
          // Sealed: look again soon, so a sweep a crash cut short resumes
          // right after the unseal.
          await delay(SEALED_CHECK_MS, { signal }).catch(() => undefined);
          continue;
        }
        this.#state = 'sweeping';
        const rewrapped = await this.pass();
        if (rewrapped > 0) {
          this.#o.logger.info('Keyring sweep pass done', { term, rewrapped });
          continue;
        }
        if (this.#finishedAt === undefined && this.#o.activeTerm() === term) {
          this.#finishedAt = new Date(this.#now());
          if (this.#rewrapped > 0 || this.#failed > 0) {
            this.#o.logger.info('Keyring sweep finished', {
              term,
              rewrapped: this.#rewrapped,
              failed: this.#failed,
            });
          }
        }
      } catch (err) {
        if (signal.aborted) break;
        this.#o.logger.error('Keyring sweep step failed; trying again later', {
          error: err instanceof Error ? err.message : String(err),
        });
      }
      this.#state = 'idle';
      await this.#idle();
    }
    this.#state = 'idle';
  }

  /** Waits for the idle check, a wake-up or stop. */
  async #idle(): Promise<void> {
    if (this.#wake.signal.aborted && !this.#stopping.signal.aborted) {
      this.#wake = new AbortController();
      return;
    }
    try {
      await delay(this.#o.idleCheckMs ?? DEFAULT_IDLE_CHECK_MS, { signal: this.#wake.signal });
    } catch {
      // Woken (or stopping): the loop decides.
    }
    if (!this.#stopping.signal.aborted) this.#wake = new AbortController();
  }

  async #pause(): Promise<void> {
    try {
      await delay(this.#o.pauseMs ?? DEFAULT_PAUSE_MS, { signal: this.#stopping.signal });
    } catch {
      // Stopping: pass() sees it before its next step.
    }
  }
}
