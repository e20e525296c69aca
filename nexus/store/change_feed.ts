/**
 * A feed of the secret changes committed by every Nexus on a shared database
 * (PostgreSQL: `postgres/change_feed.ts`). The cache of sealed rows evicts
 * by it; watchers that wait for a path to change can wake by it.
 */
import type { SecretPath } from '../../shared/api/secret_path.ts';

/**
 * A change of `path`, committed: `version` is its current version after the
 * change (0 once the path is gone).
 */
export type ChangeListener = (path: SecretPath, version: number) => void;

export interface ChangeFeed {
  /** Calls `listener` for each change, in commit order. Returns the unsubscribe. */
  onChange(listener: ChangeListener): () => void;
  /**
   * Calls `listener` when changes may have been missed (the feed has just
   * (re)connected): whatever was derived from earlier reads is suspect.
   */
  onGap(listener: () => void): () => void;
  /**
   * Whether every change acknowledged more than `boundMs` ago has been
   * delivered. While false, nothing derived from the feed may be trusted.
   */
  isCurrent(): boolean;
  /** The bound of `isCurrent()`, in milliseconds. */
  readonly boundMs: number;
  close(): Promise<void>;
}
