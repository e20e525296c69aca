/**
 * One Workload API server stream (`FetchX509SVID` or `FetchX509Bundles`),
 * kept open for as long as its watch lives. Each message is parsed completely
 * before it is handed on; a malformed message is logged and dropped and the
 * watcher keeps its previous good state (Workload API §5, conformance WA-2).
 * When the stream ends or fails the watch reopens it after a linear backoff
 * (1, 2, 3 … units, capped, reset by the next good message), except after
 * `InvalidArgument` or `Unimplemented`, which are final, and after the
 * runtime refused us the socket (Deno without `--allow-write`), which no
 * retry can change. `PermissionDenied` means the caller's identity was taken
 * away: the watcher is told, and the watch keeps trying.
 */
import * as grpc from '@grpc/grpc-js';
import type {
  BrokerError,
  WorkloadApiRejectedError,
  WorkloadApiUnavailableError,
} from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { classifyWorkloadCallEnd, statusName } from './_workload_status.ts';
import {
  serializeEmptyRequest,
  WORKLOAD_API_HEADER,
  workloadApiServiceDefinition,
} from './workload_proto.ts';

export interface WorkloadApiWatcher<T> {
  /** A new, fully parsed message. */
  onUpdate(update: T): void;
  /** `PermissionDenied`: stop using what this stream delivered. The watch keeps retrying. */
  onRedacted?(error: WorkloadApiUnavailableError): void;
  /** The stream ended or failed and will be reopened after a backoff. */
  onError?(error: WorkloadApiUnavailableError): void;
  /** `InvalidArgument`, `Unimplemented` or a runtime permission: the watch has stopped for good. */
  onRejected?(error: WorkloadApiRejectedError): void;
}

export interface WorkloadApiWatch {
  close(): void;
}

/** The two server-streaming RPCs of the X.509 profile. */
export type StreamRpc = 'FetchX509SVID' | 'FetchX509Bundles';

/** What the wrapped deserializer hands to the stream: a decoded message or why not. */
type Frame =
  | { readonly ok: true; readonly raw: unknown }
  | { readonly ok: false; readonly error: Error };

export interface StreamWatchOptions<T> {
  readonly client: grpc.Client;
  /** The Workload API's address as users write it, for error messages. */
  readonly address: string;
  readonly path: string;
  readonly method: StreamRpc;
  readonly parse: (raw: unknown) => T;
  readonly watcher: WorkloadApiWatcher<T>;
  readonly logger: Logger;
  readonly backoffUnitMs: number;
  readonly backoffMaxMs: number;
  readonly onClose: () => void;
}

/** One kept-open stream; `close()` cancels it and any pending reconnect. */
export class StreamWatch<T> implements WorkloadApiWatch {
  readonly #o: StreamWatchOptions<T>;
  readonly #deserialize: (bytes: Buffer) => Frame;
  #call: grpc.ClientReadableStream<Frame> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #failures = 0;
  #closed = false;

  constructor(options: StreamWatchOptions<T>) {
    this.#o = options;
    this.#deserialize = rawDeserializer(options.method);
  }

  start(): void {
    this.#open();
  }

  close(): void {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const call = this.#call;
    this.#call = undefined;
    call?.cancel();
    this.#o.onClose();
  }

  #open(): void {
    this.#timer = undefined;
    if (this.#closed) {
      return;
    }
    const metadata = new grpc.Metadata();
    metadata.set(WORKLOAD_API_HEADER, 'true');
    const call = this.#o.client.makeServerStreamRequest<Record<string, never>, Frame>(
      this.#o.path,
      serializeEmptyRequest,
      this.#deserialize,
      {},
      metadata,
      {},
    );
    this.#call = call;
    this.#o.logger.debug('Opened Workload API stream');
    call.on('data', (frame: Frame) => {
      if (this.#call === call) {
        this.#onFrame(frame);
      }
    });
    // grpc-js emits 'error' before 'status' for a non-OK status; 'status' is
    // handled as the one end-of-stream signal.
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => {
      if (this.#call !== call) {
        return;
      }
      this.#call = undefined;
      this.#onEnd(status);
    });
  }

  #onFrame(frame: Frame): void {
    let update: T;
    try {
      if (!frame.ok) {
        throw frame.error;
      }
      update = this.#o.parse(frame.raw);
    } catch (err) {
      this.#o.logger.error(
        'Discarded a malformed Workload API message; keeping the previous state',
        {
          error: describe(err),
        },
      );
      return;
    }
    this.#failures = 0;
    try {
      this.#o.watcher.onUpdate(update);
    } catch (err) {
      this.#o.logger.error('A Workload API watcher failed while handling an update', {
        error: describe(err),
      });
    }
  }

  #onEnd(status: grpc.StatusObject): void {
    if (this.#closed) {
      return;
    }
    const end = classifyWorkloadCallEnd(status, this.#o.method, this.#o.address);
    const fields = {
      code: statusName(status.code),
      details: status.details === '' ? 'no details' : status.details,
    };
    if (end.kind === 'rejected') {
      this.#o.logger.error('Workload API call rejected; not retrying', fields);
      this.close();
      this.#notify(() => this.#o.watcher.onRejected?.(end.error));
      return;
    }
    const delayMs = this.#nextDelay();
    if (end.kind === 'denied') {
      this.#o.logger.warn('Workload API denied the identity; it is redacted until granted again', {
        ...fields,
        retryInMs: delayMs,
      });
      this.#notify(() => this.#o.watcher.onRedacted?.(end.error));
    } else {
      this.#o.logger.warn('Workload API stream ended; reconnecting after a backoff', {
        ...fields,
        retryInMs: delayMs,
      });
      this.#notify(() => this.#o.watcher.onError?.(end.error));
    }
    if (!this.#closed) {
      // Not unref'd: an open watch keeps its process alive, close() clears it.
      this.#timer = setTimeout(() => this.#open(), delayMs);
    }
  }

  #nextDelay(): number {
    this.#failures += 1;
    return Math.min(this.#failures * this.#o.backoffUnitMs, this.#o.backoffMaxMs);
  }

  #notify(callback: () => void): void {
    try {
      callback();
    } catch (err) {
      this.#o.logger.error('A Workload API watcher failed while handling an error', {
        error: describe(err),
      });
    }
  }
}

/**
 * The protobuf decoder for a method's response, wrapped so that a
 * message that cannot be decoded reaches the watch as a discardable frame
 * instead of failing the whole call. A map key repeated on the wire is not
 * an error here: protobuf keeps the last entry by design.
 */
function rawDeserializer(method: StreamRpc): (bytes: Buffer) => Frame {
  const definition = workloadApiServiceDefinition()[method];
  if (definition === undefined) {
    throw new TypeError(`workload.proto has no method "${method}"`);
  }
  const decode = definition.responseDeserialize;
  return function deserializeWorkloadApiFrame(bytes: Buffer): Frame {
    try {
      return { ok: true, raw: decode(bytes) };
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
    }
  };
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Partial<BrokerError>).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}
