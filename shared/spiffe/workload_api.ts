/**
 * Client of the SPIFFE Workload API (X.509 profile) over gRPC: one channel
 * to the agent's address, and a watch per stream. How a watch reconnects and
 * backs off is in `workload_stream.ts`; how its messages are decoded, in
 * `workload_messages.ts`; the proto and wire names, in `workload_proto.ts`.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log/logger.ts';
import {
  formatWorkloadApiAddress,
  grpcTargetForAddress,
  parseWorkloadApiAddress,
} from './workload_address.ts';
import {
  parseX509BundlesResponse,
  parseX509SvidResponse,
  type X509BundlesUpdate,
  type X509SvidUpdate,
} from './workload_messages.ts';
import { FETCH_X509_BUNDLES_PATH, FETCH_X509_SVID_PATH } from './workload_proto.ts';
import {
  type StreamRpc,
  StreamWatch,
  type WorkloadApiWatch,
  type WorkloadApiWatcher,
} from './workload_stream.ts';

const DEFAULT_BACKOFF_UNIT_MS = 1000;
/** go-spiffe caps its linear backoff at 30 steps of one second. */
const BACKOFF_MAX_STEPS = 30;

export interface WorkloadApiClientOptions {
  /** `unix:///path` or `tcp://IP:port` (SPIFFE_ENDPOINT_SOCKET syntax). */
  readonly address: string;
  readonly logger: Logger;
  /** One backoff step; retries wait 1, 2, 3 … steps. Defaults to 1000 ms. */
  readonly backoffUnitMs?: number;
  /** Longest wait between retries. Defaults to 30 steps. */
  readonly backoffMaxMs?: number;
}

export class WorkloadApiClient {
  readonly #client: grpc.Client;
  readonly #address: string;
  readonly #logger: Logger;
  readonly #backoffUnitMs: number;
  readonly #backoffMaxMs: number;
  readonly #watches = new Set<StreamWatch<unknown>>();
  #closed = false;

  /** Parses the address (throws `InvalidWorkloadApiAddressError`); connects lazily on the first watch. */
  constructor(options: WorkloadApiClientOptions) {
    const address = parseWorkloadApiAddress(options.address);
    this.#backoffUnitMs = positive(
      options.backoffUnitMs ?? DEFAULT_BACKOFF_UNIT_MS,
      'backoffUnitMs',
    );
    this.#backoffMaxMs = positive(
      options.backoffMaxMs ?? this.#backoffUnitMs * BACKOFF_MAX_STEPS,
      'backoffMaxMs',
    );
    this.#address = formatWorkloadApiAddress(address);
    this.#logger = options.logger.child({ workloadApi: this.#address });
    this.#client = new grpc.Client(
      grpcTargetForAddress(address),
      grpc.credentials.createInsecure(),
      {
        // The channel's own reconnect backoff must not outlast ours (its
        // default grows to two minutes), or a restarted agent is found late.
        'grpc.initial_reconnect_backoff_ms': this.#backoffUnitMs,
        'grpc.max_reconnect_backoff_ms': this.#backoffMaxMs,
      },
    );
  }

  /** Opens and keeps open a `FetchX509SVID` stream. */
  watchX509Svids(watcher: WorkloadApiWatcher<X509SvidUpdate>): WorkloadApiWatch {
    return this.#watch(FETCH_X509_SVID_PATH, 'FetchX509SVID', parseX509SvidResponse, watcher);
  }

  /** Opens and keeps open a `FetchX509Bundles` stream. */
  watchX509Bundles(watcher: WorkloadApiWatcher<X509BundlesUpdate>): WorkloadApiWatch {
    return this.#watch(
      FETCH_X509_BUNDLES_PATH,
      'FetchX509Bundles',
      parseX509BundlesResponse,
      watcher,
    );
  }

  /** Cancels every stream and retry timer and closes the channel. Idempotent. */
  close(): void {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    for (const watch of [...this.#watches]) {
      watch.close();
    }
    this.#client.close();
  }

  #watch<T>(
    path: string,
    method: StreamRpc,
    parse: (raw: unknown) => T,
    watcher: WorkloadApiWatcher<T>,
  ): WorkloadApiWatch {
    if (this.#closed) {
      throw new TypeError('The Workload API client is closed');
    }
    const watch: StreamWatch<T> = new StreamWatch<T>({
      client: this.#client,
      address: this.#address,
      path,
      method,
      parse,
      watcher,
      logger: this.#logger.child({ rpc: method }),
      backoffUnitMs: this.#backoffUnitMs,
      backoffMaxMs: this.#backoffMaxMs,
      onClose: () => this.#watches.delete(watch as StreamWatch<unknown>),
    });
    this.#watches.add(watch as StreamWatch<unknown>);
    watch.start();
    return watch;
  }
}

export function createWorkloadApiClient(options: WorkloadApiClientOptions): WorkloadApiClient {
  return new WorkloadApiClient(options);
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number of milliseconds, got ${value}`);
  }
  return value;
}
