/**
 * The data key as an operator sees it: rotate it (a new keyring term, then
 * the sweep), and its status (terms, rows per term, sweep progress).
 */
import type { KeyringStatusResponse, KeyringTermView } from '../../shared/api/keyring.ts';
import { NotReadyError } from '../../shared/errors/errors.ts';
import type { KeyringTermInfo } from '../root_key/keyring.ts';
import type { RootKey } from '../root_key/root_key.ts';
import type { KeyringSweepTarget } from '../store/keyring_sweep.ts';
import type { KeyringSweeper } from './sweeper.ts';

export interface DataKeyOptions {
  readonly rootKey: RootKey;
  /** The manager's rotation (RootKeyManager.rotateDataKey), run in its queue. */
  readonly rotate: (activationDelayMs: number) => Promise<KeyringTermInfo>;
  readonly sweeper: KeyringSweeper;
  readonly targets: readonly KeyringSweepTarget[];
  /**
   * How long a new term waits before it seals new rows: 0 with one Nexus;
   * with several on PostgreSQL, longer than each takes to take up a new
   * keyring (its Keeper check interval), so none meets a row under a term
   * it does not hold yet.
   */
  readonly activationDelayMs: number;
}

export interface DataKey {
  rotate(): Promise<KeyringTermView>;
  status(): Promise<KeyringStatusResponse>;
}

/**
 * Wakes the sweeper once a term activated later is active, instead of at its
 * next idle check a minute on. A timer can fire a little early against the
 * wall clock (Node starts it from the event loop's cached time), and a
 * sweeper woken a millisecond early would find the old term still active
 * and go idle again: so look at the clock, and wait again if it is early.
 */
function wakeOnceActive(sweeper: { wake(): void }, activeFromMs: number): void {
  const left = activeFromMs - Date.now();
  if (left <= 0) {
    sweeper.wake();
    return;
  }
  setTimeout(() => wakeOnceActive(sweeper, activeFromMs), left).unref?.();
}

export function createDataKey(options: DataKeyOptions): DataKey {
  return {
    async rotate() {
      const term = await options.rotate(options.activationDelayMs);
      options.sweeper.wake();
      wakeOnceActive(options.sweeper, term.activeFromMs);
      return termView(term);
    },
    async status() {
      const keyring = options.rootKey.keyringTerms();
      if (keyring === undefined) throw new NotReadyError();
      const rowsByTerm = new Map<number, number>();
      for (const target of options.targets) {
        for (const [term, count] of await target.countByTerm()) {
          rowsByTerm.set(term, (rowsByTerm.get(term) ?? 0) + count);
        }
      }
      let remaining = 0;
      for (const [term, count] of rowsByTerm) {
        if (term < keyring.active) remaining += count;
      }
      const sweep = options.sweeper.status();
      return {
        activeTerm: keyring.active,
        terms: keyring.terms.map(termView),
        rowsByTerm: Object.fromEntries(
          [...rowsByTerm].sort(([a], [b]) => a - b).map(([term, count]) => [String(term), count]),
        ),
        sweep: {
          state: sweep.state,
          remaining,
          term: sweep.term ?? null,
          rewrapped: sweep.rewrapped,
          failed: sweep.failed,
          startedAt: sweep.startedAt?.toISOString() ?? null,
          finishedAt: sweep.finishedAt?.toISOString() ?? null,
        },
      };
    },
  };
}

function termView(term: KeyringTermInfo): KeyringTermView {
  return {
    term: term.term,
    createdAt: term.createdAtMs === 0 ? null : new Date(term.createdAtMs).toISOString(),
    activeFrom: term.activeFromMs === 0 ? null : new Date(term.activeFromMs).toISOString(),
  };
}
