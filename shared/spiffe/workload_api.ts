/**
 * Client of the SPIFFE Workload API (X.509 profile): the only file in
 * shared/ that imports @grpc/grpc-js and @grpc/proto-loader.
 *
 * A watch keeps one server stream (`FetchX509SVID` or `FetchX509Bundles`)
 * open for as long as it lives. Every message carries the full state, so
 * each one is parsed completely into typed values before it is handed on; a
 * malformed message is logged and dropped and the caller keeps its previous
 * good state (Workload API §5, conformance WA-2). When the stream ends or
 * fails the watch reopens it after a linear backoff (1, 2, 3 … units, capped,
 * reset by the next good message), except after `InvalidArgument` or
 * `Unimplemented`, which are final. `PermissionDenied` means the caller's
 * identity was taken away: the watcher is told, and the watch keeps trying.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  type BrokerError,
  BundleInvalidError,
  SvidInvalidError,
  WorkloadApiRejectedError,
  WorkloadApiUnavailableError,
} from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { parseDerCertificates, X509Bundle, X509BundleSet } from './bundle.ts';
import { parseSpiffeId, parseTrustDomain, type TrustDomain } from './spiffe_id.ts';
import {
  formatWorkloadApiAddress,
  grpcTargetForAddress,
  parseWorkloadApiAddress,
} from './workload_address.ts';
import { parseX509Svid, type X509Svid } from './x509_svid.ts';

/** The metadata header every Workload API request must carry, with value `true`. */
export const WORKLOAD_API_HEADER = 'workload.spiffe.io';
export const WORKLOAD_API_SERVICE = 'SpiffeWorkloadAPI';
export const FETCH_X509_SVID_PATH = '/SpiffeWorkloadAPI/FetchX509SVID';
export const FETCH_X509_BUNDLES_PATH = '/SpiffeWorkloadAPI/FetchX509Bundles';

/** Options for @grpc/proto-loader: field names as in the proto, absent fields filled in. */
export const WORKLOAD_PROTO_LOAD_OPTIONS: protoLoader.Options = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

const DEFAULT_BACKOFF_UNIT_MS = 1000;
/** go-spiffe caps its linear backoff at 30 steps of one second. */
const BACKOFF_MAX_STEPS = 30;

/** Absolute path of the vendored `workload.proto` beside this file. */
export function workloadProtoPath(): string {
  return fileURLToPath(new URL('./workload.proto', import.meta.url));
}

let cachedDefinition: protoLoader.PackageDefinition | undefined;

/**
 * The loaded proto (cached after the first call). Servers take
 * `definition.SpiffeWorkloadAPI` as their `grpc.ServiceDefinition`.
 */
export function loadWorkloadApiDefinition(): protoLoader.PackageDefinition {
  cachedDefinition ??= protoLoader.loadSync(workloadProtoPath(), WORKLOAD_PROTO_LOAD_OPTIONS);
  return cachedDefinition;
}

/** The `SpiffeWorkloadAPI` service definition, ready for `server.addService()`. */
export function workloadApiServiceDefinition(): grpc.ServiceDefinition {
  return loadWorkloadApiDefinition()[WORKLOAD_API_SERVICE] as grpc.ServiceDefinition;
}

// ---------------------------------------------------------------- types

/** One accepted `X509SVIDResponse`. */
export interface X509SvidUpdate {
  /** At least one; the first is the default identity. */
  readonly svids: readonly X509Svid[];
  /** The SVIDs' own trust-domain bundles plus the federated ones. */
  readonly bundles: X509BundleSet;
  /** DER CRLs, passed through unparsed. */
  readonly crls: readonly Uint8Array[];
}

/** One accepted `X509BundlesResponse`. */
export interface X509BundlesUpdate {
  readonly bundles: X509BundleSet;
  readonly crls: readonly Uint8Array[];
}

export interface WorkloadApiWatcher<T> {
  /** A new, fully parsed message. */
  onUpdate(update: T): void;
  /** `PermissionDenied`: stop using what this stream delivered. The watch keeps retrying. */
  onRedacted?(error: WorkloadApiUnavailableError): void;
  /** The stream ended or failed and will be reopened after a backoff. */
  onError?(error: WorkloadApiUnavailableError): void;
  /** `InvalidArgument` or `Unimplemented`: the watch has stopped for good. */
  onRejected?(error: WorkloadApiRejectedError): void;
}

export interface WorkloadApiWatch {
  close(): void;
}

export interface WorkloadApiClientOptions {
  /** `unix:///path` or `tcp://IP:port` (SPIFFE_ENDPOINT_SOCKET syntax). */
  readonly address: string;
  readonly logger: Logger;
  /** One backoff step; retries wait 1, 2, 3 … steps. Defaults to 1000 ms. */
  readonly backoffUnitMs?: number;
  /** Longest wait between retries. Defaults to 30 steps. */
  readonly backoffMaxMs?: number;
}

// ---------------------------------------------------------------- client

export class WorkloadApiClient {
  readonly #client: grpc.Client;
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
    this.#logger = options.logger.child({ workloadApi: formatWorkloadApiAddress(address) });
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
    method: 'FetchX509SVID' | 'FetchX509Bundles',
    parse: (raw: unknown) => T,
    watcher: WorkloadApiWatcher<T>,
  ): WorkloadApiWatch {
    if (this.#closed) {
      throw new TypeError('The Workload API client is closed');
    }
    const deserialize = rawDeserializer(method);
    const watch: StreamWatch<T> = new StreamWatch<T>({
      client: this.#client,
      path,
      method,
      deserialize,
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

// ---------------------------------------------------------------- one stream

/** What the wrapped deserializer hands to the stream: a decoded message or why not. */
type Frame =
  | { readonly ok: true; readonly raw: unknown }
  | { readonly ok: false; readonly error: Error };

interface StreamWatchOptions<T> {
  readonly client: grpc.Client;
  readonly path: string;
  readonly method: string;
  readonly deserialize: (bytes: Buffer) => Frame;
  readonly parse: (raw: unknown) => T;
  readonly watcher: WorkloadApiWatcher<T>;
  readonly logger: Logger;
  readonly backoffUnitMs: number;
  readonly backoffMaxMs: number;
  readonly onClose: () => void;
}

class StreamWatch<T> implements WorkloadApiWatch {
  readonly #o: StreamWatchOptions<T>;
  #call: grpc.ClientReadableStream<Frame> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #failures = 0;
  #closed = false;

  constructor(options: StreamWatchOptions<T>) {
    this.#o = options;
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
      this.#o.deserialize,
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
    const codeName = grpc.status[status.code] ?? String(status.code);
    const details = status.details === '' ? 'no details' : status.details;
    if (status.code === grpc.status.INVALID_ARGUMENT || status.code === grpc.status.UNIMPLEMENTED) {
      const error = new WorkloadApiRejectedError(
        `The Workload API rejected ${this.#o.method} with ${codeName} ("${details}"); not retrying`,
      );
      this.#o.logger.error('Workload API call rejected; not retrying', {
        code: codeName,
        details,
      });
      this.close();
      this.#notify(() => this.#o.watcher.onRejected?.(error));
      return;
    }
    const delayMs = this.#nextDelay();
    if (status.code === grpc.status.PERMISSION_DENIED) {
      const error = new WorkloadApiUnavailableError(
        `The Workload API has no identity for this workload (${codeName}: "${details}")`,
      );
      this.#o.logger.warn('Workload API denied the identity; it is redacted until granted again', {
        code: codeName,
        details,
        retryInMs: delayMs,
      });
      this.#notify(() => this.#o.watcher.onRedacted?.(error));
    } else {
      const what = status.code === grpc.status.OK ? 'ended' : `failed with ${codeName}`;
      const error = new WorkloadApiUnavailableError(
        `The Workload API stream ${this.#o.method} ${what} ("${details}")`,
      );
      this.#o.logger.warn('Workload API stream ended; reconnecting after a backoff', {
        code: codeName,
        details,
        retryInMs: delayMs,
      });
      this.#notify(() => this.#o.watcher.onError?.(error));
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

// ---------------------------------------------------------------- wire

function serializeEmptyRequest(): Buffer {
  // X509SVIDRequest and X509BundlesRequest have no fields: zero bytes.
  return Buffer.alloc(0);
}

/**
 * The proto-loader decoder for a method's response, wrapped so that a
 * message that cannot be decoded reaches the watch as a discardable frame
 * instead of failing the whole call. A map key repeated on the wire is not
 * an error here: protobuf keeps the last entry by design.
 */
function rawDeserializer(method: 'FetchX509SVID' | 'FetchX509Bundles'): (bytes: Buffer) => Frame {
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

// ---------------------------------------------------------------- parsing

/**
 * Turns a decoded `X509SVIDResponse` into typed values, or throws a
 * `BrokerError` naming the first problem. Every mandatory field must be set;
 * each SVID's `spiffe_id` must match its certificate; the SVIDs' own bundles
 * and the federated bundles must not name a trust domain twice.
 */
export function parseX509SvidResponse(raw: unknown): X509SvidUpdate {
  const message = asRecord(raw, 'X509SVIDResponse');
  const rawSvids = asArray(message.svids);
  if (rawSvids.length === 0) {
    throw new SvidInvalidError('X509SVIDResponse has no SVIDs');
  }
  const svids: X509Svid[] = [];
  const ownBundles = new Map<string, X509Bundle>();
  rawSvids.forEach((item, index) => {
    const where = `X509SVIDResponse.svids[${index}]`;
    const entry = asRecord(item, where);
    const idText = requiredString(entry.spiffe_id, `${where}.spiffe_id`);
    const chain = requiredBytes(entry.x509_svid, `${where}.x509_svid`);
    const key = requiredBytes(entry.x509_svid_key, `${where}.x509_svid_key`);
    const bundleBytes = requiredBytes(entry.bundle, `${where}.bundle`);
    const hint = optionalString(entry.hint, `${where}.hint`);
    const id = parseSpiffeId(idText);
    const svid = parseX509Svid(chain, key, hint === '' ? {} : { hint });
    if (!svid.id.equals(id)) {
      throw new SvidInvalidError(
        `${where}.spiffe_id "${idText}" does not match the certificate's ID "${svid.id.toString()}"`,
      );
    }
    const bundle = new X509Bundle(
      id.trustDomain,
      parseDerCertificates(bundleBytes, `${where}.bundle`),
    );
    const earlier = ownBundles.get(id.trustDomain.name);
    if (earlier !== undefined && !earlier.equals(bundle)) {
      throw new BundleInvalidError(
        `${where}.bundle differs from an earlier bundle for trust domain "${id.trustDomain.name}"`,
      );
    }
    ownBundles.set(id.trustDomain.name, bundle);
    svids.push(svid);
  });
  const federated = parseBundleMap(message.federated_bundles, 'X509SVIDResponse.federated_bundles');
  for (const bundle of federated) {
    if (ownBundles.has(bundle.trustDomain.name)) {
      throw new BundleInvalidError(
        `X509SVIDResponse.federated_bundles repeats the SVIDs' own trust domain "${bundle.trustDomain.name}"`,
      );
    }
  }
  return Object.freeze({
    svids: Object.freeze(svids),
    bundles: new X509BundleSet([...ownBundles.values(), ...federated]),
    crls: parseCrls(message.crl, 'X509SVIDResponse.crl'),
  });
}

/** Turns a decoded `X509BundlesResponse` into typed values, or throws. */
export function parseX509BundlesResponse(raw: unknown): X509BundlesUpdate {
  const message = asRecord(raw, 'X509BundlesResponse');
  const bundles = parseBundleMap(message.bundles, 'X509BundlesResponse.bundles');
  if (bundles.length === 0) {
    throw new BundleInvalidError('X509BundlesResponse.bundles is empty');
  }
  return Object.freeze({
    bundles: new X509BundleSet(bundles),
    crls: parseCrls(message.crl, 'X509BundlesResponse.crl'),
  });
}

/**
 * A `map<string, bytes>` keyed by trust-domain ID (`spiffe://td`, exactly:
 * no path, no bare name). Keys that name the same trust domain twice are
 * refused by X509BundleSet.
 */
function parseBundleMap(value: unknown, where: string): X509Bundle[] {
  if (value === undefined || value === null) {
    return [];
  }
  const map = asRecord(value, where);
  const bundles: X509Bundle[] = [];
  const seen = new Set<string>();
  for (const [key, bytes] of Object.entries(map)) {
    let trustDomain: TrustDomain;
    try {
      trustDomain = parseTrustDomain(key);
    } catch (err) {
      throw new BundleInvalidError(`${where} has an invalid trust domain key "${key}"`, {
        cause: err,
      });
    }
    if (trustDomain.idString() !== key) {
      throw new BundleInvalidError(
        `${where} key "${key}" must be a trust domain ID such as "${trustDomain.idString()}"`,
      );
    }
    if (seen.has(trustDomain.name)) {
      throw new BundleInvalidError(`${where} names trust domain "${trustDomain.name}" twice`);
    }
    seen.add(trustDomain.name);
    const der = requiredBytes(bytes, `${where}["${key}"]`);
    bundles.push(new X509Bundle(trustDomain, parseDerCertificates(der, `${where}["${key}"]`)));
  }
  return bundles;
}

function parseCrls(value: unknown, where: string): readonly Uint8Array[] {
  return Object.freeze(asArray(value).map((item, i) => toBytes(item, `${where}[${i}]`)));
}

function asRecord(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SvidInvalidError(`${where} is not a message`);
  }
  return value as Record<string, unknown>;
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function requiredString(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new SvidInvalidError(`${where} is missing`);
  }
  return value;
}

function optionalString(value: unknown, where: string): string {
  if (value === undefined || value === null) {
    return '';
  }
  if (typeof value !== 'string') {
    throw new SvidInvalidError(`${where} is not a string`);
  }
  return value;
}

function requiredBytes(value: unknown, where: string): Uint8Array {
  const bytes = value === undefined || value === null ? new Uint8Array(0) : toBytes(value, where);
  if (bytes.length === 0) {
    throw new SvidInvalidError(`${where} is missing`);
  }
  return bytes;
}

/** A plain Uint8Array view (grpc hands out Buffers; shared/ signatures use Uint8Array). */
function toBytes(value: unknown, where: string): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new SvidInvalidError(`${where} is not bytes`);
  }
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number of milliseconds, got ${value}`);
  }
  return value;
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Partial<BrokerError>).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}
