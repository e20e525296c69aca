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
 *
 * Each sink writes one segment of the audit chain (audit_chain.ts, ADR
 * 0027): lines are sealed with their seq and MAC when their batch is
 * written. While writes fail, the lines wait (bounded), and a sink that fails
 * closed has the request middleware refuse new requests.
 */
import { closeSync, writeSync } from 'node:fs';
import {
  AUDIT_CHECKPOINT,
  AUDIT_CLOSE,
  AUDIT_DROPPED,
  AUDIT_OPEN,
  AuditChain,
  CHAIN_FORMAT,
  ChainKey,
  type FileEnd,
} from './audit_chain.ts';

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
  /**
   * Whether requests wait on their line (fail closed, the default): a request
   * is refused while the sink is failing, and one whose line was not written
   * is not answered as its handler answered. When false (fail open), requests
   * are answered whatever became of their line.
   */
  readonly failClosed: boolean;
  /**
   * Whether lines can be written: true unless the last write failed; while
   * failing, first tries the queued lines again (one write), so the sink
   * recovers with the first request after the disk or pipe does.
   */
  writable(): boolean;
  /** Writes what is pending at once (the segment's close line last), then closes the file (never stdout). */
  close(): void;
}

/** The file descriptor of stdout, where `-` sends the audit trail. */
export const STDOUT_FD = 1;

/** A batch this large is written at once instead of at the end of the turn. */
export const MAX_BATCH_BYTES = 64 * 1024;
/**
 * While writes fail, lines wait in memory up to this many bytes (about 40 000
 * events); later events are dropped and counted, and the count is written in
 * an `audit.dropped` line once a write succeeds again.
 */
export const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** A checkpoint line after this many lines of a segment… */
export const CHECKPOINT_LINES = 1000;
/** …and at least this often, even when idle, so a live log shows its writer is alive. */
export const CHECKPOINT_INTERVAL_MS = 60_000;

export interface FdAuditSinkOptions {
  /** `nexus` or `keeper`: named in the chain's own lines. */
  readonly component: string;
  /** The operator's audit key (shared/log/audit_chain.ts); without it the chain's key is public. The bytes are copied. */
  readonly key?: Uint8Array;
  /** How the file ended before this segment (`readFileEnd`); by default unknown (stdout, tests). */
  readonly fileEnd?: FileEnd;
  /** See `AuditSink.failClosed`; default true. */
  readonly failClosed?: boolean;
  /** Bytes after which a batch is written without waiting for the end of the turn. */
  readonly maxBatchBytes?: number;
  /** Bytes of lines kept while writes fail, beyond which events are dropped and counted. */
  readonly maxQueuedBytes?: number;
  readonly checkpointLines?: number;
  /** Milliseconds between checkpoints written by the clock; 0 writes none (tests). */
  readonly checkpointIntervalMs?: number;
  /**
   * Hears the sink start failing: the first failed write after a good one
   * (or the first of all), with its error, so a full disk costs one log line,
   * not one per turn. The events a failed write held stay queued ahead of
   * later ones. Must not throw.
   */
  readonly onError?: (error: Error) => void;
  /**
   * Hears what became of the events of each batch, once per batch: how many
   * there were, and whether they were written (the program's audit
   * metrics). Must not throw.
   */
  readonly onBatch?: (events: number, written: boolean) => void;
  /** write(2) on the descriptor, replaced in tests to write short or be busy. */
  readonly writeSync?: (fd: number, bytes: Uint8Array) => number;
  /** The clock of the chain's own lines (tests). */
  readonly now?: () => number;
}

/**
 * JSON lines on an open file descriptor: stdout, or a file opened for
 * appending after its mode was checked (`openAuditSink` in
 * shared/http/audit.ts). Each sink writes one segment of the chain
 * (audit_chain.ts). Closing closes the file, never stdout.
 */
export function createFdAuditSink(fd: number, options: FdAuditSinkOptions): AuditSink {
  return new FdAuditSink(fd, options);
}

const WRITTEN: AuditWriteResult = Object.freeze({ written: true });
const NOTHING = Buffer.alloc(0);
const NEWLINE = Buffer.from('\n');
/** Where the clock asked for a checkpoint, among the objects of a batch. */
const CHECKPOINT = Symbol('checkpoint');
/** How long a write waits for a full pipe to drain before it tries again. */
const BUSY_PAUSE_MS = 10;
/** What `seal()` adds to a line: `,"seq":` up to 16 digits, `,"mac":"` 43 characters `"}` and a newline. */
const CHAIN_BYTES = 82;

class FdAuditSink implements AuditSink {
  readonly failClosed: boolean;
  readonly #fd: number;
  readonly #component: string;
  readonly #maxBatchBytes: number;
  readonly #maxQueuedBytes: number;
  readonly #checkpointLines: number;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #onBatch: ((events: number, written: boolean) => void) | undefined;
  readonly #writeSync: (fd: number, bytes: Uint8Array) => number;
  readonly #now: () => number;
  readonly #chain: AuditChain;
  /**
   * The JSON objects of the batch being collected (sealed when written), a
   * checkpoint's place among them, and their size in bytes.
   */
  #objects: (string | typeof CHECKPOINT)[] = [];
  #events = 0;
  #bytes = 0;
  /** The promise every event of the collected batch gets, and its settle. */
  #written: Promise<AuditWriteResult> | undefined;
  #settle: (result: AuditWriteResult) => void = () => {};
  #immediate: ReturnType<typeof setImmediate> | undefined;
  #checkpointTimer: ReturnType<typeof setInterval> | undefined;
  /** What a failed write left: written first by the next one, so nothing is lost or reordered. */
  #unwritten: Uint8Array = NOTHING;
  /** The events dropped since the queue was full, and the time of the first. */
  #dropped = 0;
  #droppedSince = '';
  #lastCheckpoint = 0;
  #closed = false;

  constructor(fd: number, options: FdAuditSinkOptions) {
    this.#fd = fd;
    this.#component = options.component;
    this.failClosed = options.failClosed ?? true;
    this.#maxBatchBytes = options.maxBatchBytes ?? MAX_BATCH_BYTES;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? MAX_QUEUED_BYTES;
    this.#checkpointLines = options.checkpointLines ?? CHECKPOINT_LINES;
    this.#onError = options.onError;
    this.#onBatch = options.onBatch;
    this.#writeSync = options.writeSync ?? writeSync;
    this.#now = options.now ?? Date.now;
    const key = new ChainKey(options.key);
    this.#chain = new AuditChain(key);
    const fileEnd = options.fileEnd ?? { previous: 'unknown', tornBytes: 0 };
    // A line cut short by a writer that died mid-write gets its newline
    // first, so this segment starts on a line of its own.
    this.#unwritten = fileEnd.tornBytes > 0 ? NEWLINE : NOTHING;
    const checkpointIntervalMs = options.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS;
    // Written with the first batch: a process that audits nothing writes nothing.
    this.#queue(
      this.#chainLine(AUDIT_OPEN, {
        format: CHAIN_FORMAT,
        segment: crypto.randomUUID(),
        key: key.id,
        checkpointLines: this.#checkpointLines,
        checkpointIntervalMs,
        previous: fileEnd.previous,
        ...(fileEnd.tornBytes > 0 ? { tornBytes: fileEnd.tornBytes } : {}),
      }),
    );
    if (checkpointIntervalMs > 0) {
      this.#checkpointTimer = setInterval(() => this.#queue(CHECKPOINT), checkpointIntervalMs);
      // The clock's checkpoints never keep a process alive.
      (this.#checkpointTimer as { unref?: () => void }).unref?.();
    }
  }

  writable(): boolean {
    if (!this.#failing) {
      return true;
    }
    return this.#writeAll(this.#unwritten).written;
  }

  /** Whether the last write failed: what it left waits in the queue. */
  get #failing(): boolean {
    return this.#unwritten.length > 0 && this.#unwritten !== NEWLINE;
  }

  write(event: AuditEvent): Promise<AuditWriteResult> {
    if (this.#closed) {
      return Promise.resolve({ written: false, error: new Error('The audit sink is closed') });
    }
    this.#events += 1;
    return this.#queue(JSON.stringify(event));
  }

  close(): void {
    if (this.#closed) {
      return;
    }
    if (this.#checkpointTimer !== undefined) {
      clearInterval(this.#checkpointTimer);
    }
    this.#flush(AUDIT_CLOSE);
    this.#closed = true;
    if (this.#fd !== STDOUT_FD) {
      try {
        closeSync(this.#fd);
      } catch (err) {
        this.#onError?.(asError(err));
      }
    }
  }

  /** Adds a JSON object to the batch and returns the promise of the write that holds it. */
  #queue(object: string | typeof CHECKPOINT): Promise<AuditWriteResult> {
    this.#objects.push(object);
    this.#bytes += object === CHECKPOINT ? CHAIN_BYTES : Buffer.byteLength(object) + CHAIN_BYTES;
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

  /** The JSON object of one of the chain's own lines (seq and MAC are added when sealed). */
  #chainLine(action: string, fields: Record<string, unknown>): string {
    return JSON.stringify({
      ts: new Date(this.#now()).toISOString(),
      component: this.#component,
      action,
      ...fields,
    });
  }

  /** A checkpoint line, sealed: it counts the lines before it in the segment. */
  #sealCheckpoint(): string {
    this.#lastCheckpoint = this.#chain.seq;
    return this.#chain.seal(this.#chainLine(AUDIT_CHECKPOINT, { count: this.#chain.seq }));
  }

  /**
   * Seals the collected batch into the chain and writes it (after what an
   * earlier failure left), then settles its promise. With `last`, the
   * segment's close line ends the batch. While the queue is full, the batch
   * is dropped and counted instead of sealed, so the chain stays whole and
   * the gap is written into it once writes succeed again.
   */
  #flush(last?: typeof AUDIT_CLOSE): void {
    if (this.#immediate !== undefined) {
      clearImmediate(this.#immediate);
      this.#immediate = undefined;
    }
    const objects = this.#objects;
    const events = this.#events;
    const settle = this.#settle;
    const hadBatch = this.#written !== undefined;
    const wasFailing = this.#failing;
    this.#objects = [];
    this.#events = 0;
    this.#bytes = 0;
    this.#written = undefined;
    if (!hadBatch && this.#unwritten.length === 0 && last === undefined) {
      return;
    }
    let result: AuditWriteResult;
    if (this.#unwritten.length >= this.#maxQueuedBytes && last === undefined) {
      if (this.#dropped === 0) {
        this.#droppedSince = new Date(this.#now()).toISOString();
      }
      this.#dropped += events;
      const retried = this.#writeAll(this.#unwritten);
      result = retried.written
        ? { written: false, error: new Error('The audit queue was full: the events were dropped') }
        : retried;
    } else {
      let sealed = '';
      if (this.#dropped > 0) {
        sealed += this.#chain.seal(
          this.#chainLine(AUDIT_DROPPED, { count: this.#dropped, since: this.#droppedSince }),
        );
        this.#dropped = 0;
      }
      for (const object of objects) {
        if (object === CHECKPOINT) {
          sealed += this.#sealCheckpoint();
          continue;
        }
        sealed += this.#chain.seal(object);
        if (this.#chain.seq - this.#lastCheckpoint >= this.#checkpointLines) {
          sealed += this.#sealCheckpoint();
        }
      }
      if (last !== undefined) {
        sealed += this.#chain.seal(this.#chainLine(last, { count: this.#chain.seq }));
      }
      const batch = Buffer.from(sealed);
      result = this.#writeAll(
        this.#unwritten.length === 0 ? batch : Buffer.concat([this.#unwritten, batch]),
      );
    }
    if (hadBatch) {
      settle(result);
    }
    if (events > 0) {
      this.#onBatch?.(events, result.written);
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
    failClosed: true,
    writable: () => true,
    write(event) {
      events.push(event);
      return Promise.resolve(WRITTEN);
    },
    close() {},
  };
}
