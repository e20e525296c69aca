/**
 * The audit log: JSON lines, one event per request and one per connection
 * refused at the TLS layer, in its own sink apart from the operational log.
 *
 * Events are batched per event-loop turn (ADR 0017): the events of one turn
 * are joined and written with one write(2) once that turn's microtasks have
 * run, and each `write()` returns a promise of the write that holds its
 * event. The request middleware awaits it, so an answer still leaves only
 * after its line is in the file: an acknowledged request is audited even if
 * the process dies right after.
 */
import { closeSync, writeSync } from 'node:fs';

export type AuditOutcome = 'allowed' | 'denied' | 'error';

/**
 * Why a route's guard admitted or refused a request. Audited, never
 * answered: a refusal's response does not say which rule failed.
 */
export interface AuditDecision {
  /**
   * A short code: `identity_matched` or `identity_not_matched` for a guard
   * on the caller's ID alone; from Nexus's access checker `superuser`,
   * `policy`, `trust_domain_member` (listing, each path then checked),
   * `no_matching_policy`, `operator_role`, `foreign_trust_domain` or
   * `malformed_path`.
   */
  readonly reason: string;
  /** The name of the policy that granted the request, else null. */
  readonly policy: string | null;
}

/**
 * One audit event. A connection refused at the TLS layer (action
 * `tls.connect`, outcome `denied`) has no method or route, since no request
 * was read; its `status` is the one the refusal stands for (401 when the peer
 * was not authenticated, 403 when its SVID verified but it may not connect),
 * so `denied` still means 401 or 403. It carries `reason`, `remoteAddress`
 * and `count`: after the first refusal from an address in a window, the
 * others are counted and written as one summary event when the window closes
 * or at stop, so a flood of refused connections costs a bounded number of
 * lines and the counts still add up to every refused connection.
 */
export interface AuditEvent {
  readonly ts: string;
  readonly trailId: string;
  readonly component: string;
  /** The verified SPIFFE ID of the caller, or null when none was verified. */
  readonly peer: string | null;
  /** The SPIFFE ID an unverified certificate claimed (TLS refusals only). */
  readonly claimedPeer?: string | null;
  readonly method: string | null;
  /** The matched route pattern, e.g. `/v1/secrets/data/:path{.+}`. */
  readonly route: string | null;
  /** `noun.verb`, e.g. `secret.read`; `http.request` when a route set none. */
  readonly action: string;
  /** The entity acted on (a secret path, a policy name), never a value. */
  readonly resource: string | null;
  /** The route guard's decision; null when no guard decided (a TLS refusal, a request refused before its guard). */
  readonly decision: AuditDecision | null;
  readonly outcome: AuditOutcome;
  /** The HTTP status; for a TLS refusal the status it stands for (never sent). */
  readonly status: number;
  readonly errorCode: string | null;
  readonly durationMs: number;
  /** Why a connection was refused (TLS refusals only); never certificate bytes. */
  readonly reason?: string;
  /**
   * `address:port` of the peer (TLS refusals only); on a summary the address
   * alone, and null on the one summary of more addresses than are tracked.
   */
  readonly remoteAddress?: string | null;
  /** The refused connections this event stands for (TLS refusals only): 1, or a summary's count. */
  readonly count?: number;
}

/**
 * What became of the write that held an event. A failed write never rejects
 * (nobody waits on a TLS refusal's event); it says why instead.
 */
export type AuditWriteResult =
  | { readonly written: true }
  | { readonly written: false; readonly error: Error };

export interface AuditSink {
  /**
   * Queues an event behind those before it. The promise settles once the
   * write holding the event returned, and never rejects.
   */
  write(event: AuditEvent): Promise<AuditWriteResult>;
  /** Writes what is pending at once, then closes the file (never stdout). */
  close(): void;
}

/** The file descriptor of stdout, where `-` sends the audit trail. */
export const STDOUT_FD = 1;

/** A batch this large is written at once instead of at the end of the turn. */
export const MAX_BATCH_BYTES = 64 * 1024;

export interface FdAuditSinkOptions {
  /** Bytes after which a batch is written without waiting for the end of the turn. */
  readonly maxBatchBytes?: number;
  /**
   * Hears the sink start failing: the first failed write after a good one
   * (or the first of all), with its error, so a full disk costs one log line,
   * not one per turn. The events a failed write held stay queued ahead of
   * later ones. Must not throw.
   */
  readonly onError?: (error: Error) => void;
  /** write(2) on the descriptor, replaced in tests to write short or be busy. */
  readonly writeSync?: (fd: number, bytes: Uint8Array) => number;
}

/**
 * JSON lines on an open file descriptor: stdout, or a file opened for
 * appending after its mode was checked (`openAuditSink` in
 * shared/http/audit.ts). Closing closes the file, never stdout.
 */
export function createFdAuditSink(fd: number, options: FdAuditSinkOptions = {}): AuditSink {
  return new FdAuditSink(fd, options);
}

const WRITTEN: AuditWriteResult = Object.freeze({ written: true });
const NOTHING = Buffer.alloc(0);
/** How long a write waits for a full pipe to drain before it tries again. */
const BUSY_PAUSE_MS = 10;

class FdAuditSink implements AuditSink {
  readonly #fd: number;
  readonly #maxBatchBytes: number;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #writeSync: (fd: number, bytes: Uint8Array) => number;
  /** The lines of the batch being collected, and their size in bytes. */
  #lines: string[] = [];
  #bytes = 0;
  /** The promise every event of the collected batch gets, and its settle. */
  #written: Promise<AuditWriteResult> | undefined;
  #settle: (result: AuditWriteResult) => void = () => {};
  #immediate: ReturnType<typeof setImmediate> | undefined;
  /** What a failed write left: written first by the next one, so nothing is lost or reordered. */
  #unwritten: Uint8Array = NOTHING;
  #closed = false;

  constructor(fd: number, options: FdAuditSinkOptions) {
    this.#fd = fd;
    this.#maxBatchBytes = options.maxBatchBytes ?? MAX_BATCH_BYTES;
    this.#onError = options.onError;
    this.#writeSync = options.writeSync ?? writeSync;
  }

  write(event: AuditEvent): Promise<AuditWriteResult> {
    if (this.#closed) {
      return Promise.resolve({ written: false, error: new Error('The audit sink is closed') });
    }
    const line = `${JSON.stringify(event)}\n`;
    this.#lines.push(line);
    this.#bytes += Buffer.byteLength(line);
    let written = this.#written;
    if (written === undefined) {
      written = new Promise((resolve) => {
        this.#settle = resolve;
      });
      this.#written = written;
      // setImmediate runs once the microtasks of this turn have run (on Deno
      // too), so every request that finished in this turn is in the batch.
      this.#immediate = setImmediate(() => {
        this.#immediate = undefined;
        this.#flush();
      });
    }
    if (this.#bytes >= this.#maxBatchBytes) {
      this.#flush();
    }
    return written;
  }

  close(): void {
    if (this.#closed) {
      return;
    }
    this.#flush();
    this.#closed = true;
    if (this.#fd !== STDOUT_FD) {
      try {
        closeSync(this.#fd);
      } catch (err) {
        this.#onError?.(asError(err));
      }
    }
  }

  /** Writes the collected batch (after what an earlier failure left) and settles its promise. */
  #flush(): void {
    if (this.#immediate !== undefined) {
      clearImmediate(this.#immediate);
      this.#immediate = undefined;
    }
    if (this.#written === undefined && this.#unwritten.length === 0) {
      return;
    }
    const batch = Buffer.from(this.#lines.join(''));
    const settle = this.#settle;
    const hadBatch = this.#written !== undefined;
    const wasFailing = this.#unwritten.length > 0;
    this.#lines = [];
    this.#bytes = 0;
    this.#written = undefined;
    const result = this.#writeAll(
      this.#unwritten.length === 0 ? batch : Buffer.concat([this.#unwritten, batch]),
    );
    if (hadBatch) {
      settle(result);
    }
    if (!result.written && !wasFailing) {
      this.#onError?.(result.error);
    }
  }

  /** One write(2) unless the kernel takes less, or a pipe is full (then it waits and tries again, as pino's synchronous destination did). */
  #writeAll(bytes: Uint8Array): AuditWriteResult {
    let rest = bytes;
    try {
      while (rest.length > 0) {
        const n = this.#writeSyncOrBusy(rest);
        if (n === 0) {
          pause(BUSY_PAUSE_MS);
        }
        rest = rest.subarray(n);
      }
      this.#unwritten = NOTHING;
      return WRITTEN;
    } catch (err) {
      this.#unwritten = rest;
      return { written: false, error: asError(err) };
    }
  }

  /** The bytes written, or 0 when the descriptor is busy (a full non-blocking pipe). */
  #writeSyncOrBusy(bytes: Uint8Array): number {
    try {
      return this.#writeSync(this.#fd, bytes);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'EAGAIN' || code === 'EBUSY') {
        return 0;
      }
      throw err;
    }
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Blocks the thread for a while: the write is synchronous by design. */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A sink that keeps events in memory, for tests. */
export function createMemoryAuditSink(): AuditSink & { readonly events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return {
    events,
    write(event) {
      events.push(event);
      return Promise.resolve(WRITTEN);
    },
    close() {},
  };
}
