/**
 * The change feed on PostgreSQL: every write of the secret store inserts,
 * updates or deletes its path's `secret_metadata` row, whose trigger
 * (migration 0004) sends `pg_notify('spike_secret_changes', {path, version})`
 * in the write's transaction, so PostgreSQL delivers it when (and only if)
 * the write commits, to every session that LISTENs on the database. Each
 * Nexus keeps one such session (`PostgresDatabase.listen()`), reconnecting
 * with back-off when it is lost, and hands each change to its subscribers:
 * the cache of sealed rows and the path's watchers (`open_stores.ts`).
 *
 * The bound (`isCurrent()`). PostgreSQL delivers notifications to a listener
 * in the commit order of their transactions. The feed sends itself a
 * heartbeat every HEARTBEAT_INTERVAL_MS on a channel of its own, stamped with
 * this process's monotonic clock when it is sent. Receiving a heartbeat sent
 * at time t therefore proves that every change committed before t has been
 * delivered. `isCurrent()` holds while the newest heartbeat received was sent
 * less than CHANGE_FEED_BOUND_MS ago: a change acknowledged more than the
 * bound ago has then been delivered, whatever happened to the connection,
 * even if it stalled without an error. A lost connection makes it false at
 * once; a reconnection reports a gap (`onGap`), since changes committed
 * meanwhile were never delivered. A connection that delivers no heartbeat for
 * LOST_AFTER_MS is treated as lost and replaced.
 */

import { parseSecretPath } from '../../../shared/api/secret_path.ts';
import { randomBytes } from '../../../shared/crypto/bytes.ts';
import type { ChangeFeed, ChangeListener } from '../change_feed.ts';
import type { ListenHandlers, PgListener } from './db.ts';

/** The channel every write notifies (`changePayload`). */
export const CHANGES_CHANNEL = 'spike_secret_changes';
export const HEARTBEAT_INTERVAL_MS = 250;
/** How long after its acknowledgement a change of another Nexus may go unseen. */
export const CHANGE_FEED_BOUND_MS = 1000;
const LOST_AFTER_MS = 5000;
const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 5000;

/**
 * The payload of a change notification, as the trigger sends it (its JSON
 * may differ in spacing): `version` is 0 once the path is gone.
 */
export function changePayload(path: string, version: number): string {
  return JSON.stringify({ path, version });
}

export type ChangeFeedStatus =
  | { readonly state: 'listening'; readonly backendPid: number }
  | { readonly state: 'lost'; readonly error: string; readonly retryInMs: number };

export interface PgChangeFeedOptions {
  /** Opens the listening connection: `PostgresDatabase.listen`. */
  readonly listen: (channels: readonly string[], handlers: ListenHandlers) => Promise<PgListener>;
  /** Told when the feed starts listening and when it loses its connection. */
  readonly onStatus?: (status: ChangeFeedStatus) => void;
  /** Told of a notification it cannot read (never sent by a store); it is also reported as a gap. */
  readonly onMalformed?: (payload: string) => void;
  /** A monotonic clock in milliseconds. Default `performance.now`. */
  readonly now?: () => number;
}

export class PgChangeFeed implements ChangeFeed {
  readonly boundMs = CHANGE_FEED_BOUND_MS;
  readonly #options: PgChangeFeedOptions;
  readonly #now: () => number;
  /** A channel no other feed uses, so only our own heartbeats count. */
  readonly #beatChannel =
    `spike_feed_beat_${Array.from(randomBytes(8), (b) => b.toString(16).padStart(2, '0')).join('')}`;
  readonly #changeListeners = new Set<ChangeListener>();
  readonly #gapListeners = new Set<() => void>();
  #listener: PgListener | undefined;
  /** Counts connection attempts and losses; events of an older one are ignored. */
  #generation = 0;
  #connectedAt = Number.NEGATIVE_INFINITY;
  #lastBeatSentAt = Number.NEGATIVE_INFINITY;
  #isBeatInFlight = false;
  #retryMs = FIRST_RETRY_MS;
  #beatTimer: ReturnType<typeof setInterval> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #isStarted = false;
  #isClosed = false;

  constructor(options: PgChangeFeedOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Connects (in the background, retrying) and starts the heartbeat. */
  start(): void {
    if (this.#isStarted || this.#isClosed) return;
    this.#isStarted = true;
    this.#beatTimer = setInterval(() => this.#tick(), HEARTBEAT_INTERVAL_MS);
    this.#beatTimer.unref();
    void this.#connect();
  }

  onChange(listener: ChangeListener): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  onGap(listener: () => void): () => void {
    this.#gapListeners.add(listener);
    return () => this.#gapListeners.delete(listener);
  }

  isCurrent(): boolean {
    return this.#listener !== undefined && this.#now() - this.#lastBeatSentAt < this.boundMs;
  }

  async close(): Promise<void> {
    this.#isClosed = true;
    clearInterval(this.#beatTimer);
    clearTimeout(this.#retryTimer);
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.close();
  }

  async #connect(): Promise<void> {
    if (this.#isClosed) return;
    this.#generation += 1;
    const generation = this.#generation;
    try {
      const listener = await this.#options.listen([CHANGES_CHANNEL, this.#beatChannel], {
        onNotification: (channel, payload) => this.#receive(generation, channel, payload),
        onLost: (err) => this.#lose(generation, err),
      });
      if (this.#isClosed || generation !== this.#generation) {
        await listener.close();
        return;
      }
      this.#listener = listener;
      this.#connectedAt = this.#now();
      this.#retryMs = FIRST_RETRY_MS;
      // Listening from here on: whatever was derived before may have missed changes.
      for (const gap of this.#gapListeners) gap();
      this.#options.onStatus?.({ state: 'listening', backendPid: listener.backendPid });
      this.#beat();
    } catch (err) {
      this.#lose(generation, err instanceof Error ? err : new Error(String(err)));
    }
  }

  #lose(generation: number, err: Error): void {
    if (this.#isClosed || generation !== this.#generation) return;
    this.#generation += 1;
    const listener = this.#listener;
    this.#listener = undefined;
    this.#lastBeatSentAt = Number.NEGATIVE_INFINITY;
    this.#isBeatInFlight = false;
    void listener?.close();
    const retryInMs = this.#retryMs;
    this.#retryMs = Math.min(2 * this.#retryMs, MAX_RETRY_MS);
    this.#options.onStatus?.({ state: 'lost', error: err.message, retryInMs });
    this.#retryTimer = setTimeout(() => void this.#connect(), retryInMs);
    this.#retryTimer.unref();
  }

  #receive(generation: number, channel: string, payload: string): void {
    if (generation !== this.#generation) return;
    if (channel === this.#beatChannel) {
      const sentAt = Number(payload);
      if (Number.isFinite(sentAt) && sentAt > this.#lastBeatSentAt && sentAt <= this.#now()) {
        this.#lastBeatSentAt = sentAt;
      }
      return;
    }
    const change = parseChange(payload);
    if (change === undefined) {
      // Some path changed, and which one cannot be told: a gap, so that no
      // subscriber keeps what the change made stale.
      this.#options.onMalformed?.(payload);
      for (const gap of this.#gapListeners) gap();
      return;
    }
    for (const listener of this.#changeListeners) listener(change.path, change.version);
  }

  /** Every HEARTBEAT_INTERVAL_MS: a heartbeat, or the replacement of a silent connection. */
  #tick(): void {
    if (this.#listener === undefined) return;
    const heardAt = Math.max(this.#lastBeatSentAt, this.#connectedAt);
    if (this.#now() - heardAt > LOST_AFTER_MS) {
      this.#lose(this.#generation, new Error(`No heartbeat for ${LOST_AFTER_MS} ms`));
      return;
    }
    this.#beat();
  }

  #beat(): void {
    const listener = this.#listener;
    if (listener === undefined || this.#isBeatInFlight) return;
    const generation = this.#generation;
    this.#isBeatInFlight = true;
    listener.notify(this.#beatChannel, String(this.#now())).then(
      () => {
        if (generation === this.#generation) this.#isBeatInFlight = false;
      },
      (err: unknown) => this.#lose(generation, err instanceof Error ? err : new Error(String(err))),
    );
  }
}

function parseChange(payload: string) {
  try {
    const { path, version } = JSON.parse(payload) as { path?: unknown; version?: unknown };
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
      return undefined;
    }
    return { path: parseSecretPath(path), version };
  } catch {
    return undefined;
  }
}
