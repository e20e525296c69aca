/**
 * A bare gRPC client for the SPIFFE Workload API, for tests that need to send
 * what a well-behaved client never would (no security header, a doubled one)
 * or to call RPCs our client does not offer. Every wait has a timeout.
 */
import {
  Client,
  type ClientReadableStream,
  credentials,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { workloadApiServiceDefinition } from '../../shared/spiffe/workload_proto.ts';

export interface CallOptions {
  /** Values of `workload.spiffe.io`; defaults to `['true']`, `[]` sends none. */
  readonly header?: readonly string[];
}

export interface GrpcStatus {
  readonly code: number;
  readonly details: string;
}

export interface RawStream {
  /** Resolves with the next message, or rejects after `timeoutMs`. */
  next(timeoutMs: number): Promise<Record<string, unknown>>;
  /** Resolves with the final status (an error or OK), or rejects after `timeoutMs`. */
  status(timeoutMs: number): Promise<GrpcStatus>;
  cancel(): void;
}

function metadataOf(options: CallOptions): Metadata {
  const metadata = new Metadata();
  for (const value of options.header ?? ['true']) {
    metadata.add('workload.spiffe.io', value);
  }
  return metadata;
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${timeoutMs}ms: ${what}`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class RawWorkloadClient {
  readonly #client: Client;

  constructor(address: string) {
    this.#client = new Client(address, credentials.createInsecure());
  }

  /** Opens a server stream such as `FetchX509SVID` with an empty request. */
  stream(method: string, options: CallOptions = {}): RawStream {
    const definition = workloadApiServiceDefinition()[method];
    if (definition === undefined) {
      throw new RangeError(`No Workload API method "${method}"`);
    }
    const call: ClientReadableStream<Record<string, unknown>> =
      this.#client.makeServerStreamRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize as (bytes: Buffer) => Record<string, unknown>,
        {},
        metadataOf(options),
        {},
      );
    const queue: Record<string, unknown>[] = [];
    const waiters: ((message: Record<string, unknown>) => void)[] = [];
    call.on('data', (message: Record<string, unknown>) => {
      const waiter = waiters.shift();
      if (waiter === undefined) {
        queue.push(message);
      } else {
        waiter(message);
      }
    });
    const status = new Promise<GrpcStatus>((resolve) => {
      call.on('error', (err: ServiceError) => resolve({ code: err.code, details: err.details }));
      call.on('status', (s: GrpcStatus) => {
        if (s.code === 0) {
          resolve({ code: s.code, details: s.details });
        }
      });
    });
    return {
      next(timeoutMs) {
        const queued = queue.shift();
        if (queued !== undefined) {
          return Promise.resolve(queued);
        }
        return withTimeout(
          new Promise((resolve) => {
            waiters.push(resolve);
          }),
          timeoutMs,
          `next message of ${method}`,
        );
      },
      status(timeoutMs) {
        return withTimeout(status, timeoutMs, `status of ${method}`);
      },
      cancel() {
        call.cancel();
      },
    };
  }

  /** Calls a unary RPC; resolves with the status (OK or the error). */
  unary(method: string, request: object, options: CallOptions = {}): Promise<GrpcStatus> {
    const definition = workloadApiServiceDefinition()[method];
    if (definition === undefined) {
      throw new RangeError(`No Workload API method "${method}"`);
    }
    const done = new Promise<GrpcStatus>((resolve) => {
      this.#client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        metadataOf(options),
        { deadline: Date.now() + 10_000 },
        (err: ServiceError | null) => {
          resolve(
            err === null ? { code: 0, details: '' } : { code: err.code, details: err.details },
          );
        },
      );
    });
    return withTimeout(done, 15_000, method);
  }

  close(): void {
    this.#client.close();
  }
}
