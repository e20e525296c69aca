/**
 * An in-process SPIFFE Workload API server for tests, on a unix socket in a
 * fresh temporary directory or on a free TCP port of 127.0.0.1 (the two
 * address forms of SPIFFE_ENDPOINT_SOCKET). Tests drive it with setters that push a new
 * message to every open stream (and to streams opened later), end streams
 * with an error code, or restart the server. Every call is recorded with its
 * security header so tests can assert header presence and retry behaviour.
 *
 * Raw messages are plain objects in the proto's field names and may be
 * malformed on purpose (missing fields, garbage bytes). A `Uint8Array` is
 * sent verbatim as the encoded message, for wire-level cases such as bytes
 * that do not decode.
 */
import { Buffer } from 'node:buffer';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearTimeout, setTimeout } from 'node:timers';
import * as grpc from '@grpc/grpc-js';
import { delay } from '../../shared/runtime/delay.ts';
import {
  WORKLOAD_API_HEADER,
  workloadApiServiceDefinition,
} from '../../shared/spiffe/workload_proto.ts';
import type { TestCa, TestSvid } from './pki.ts';

export type StreamRpc = 'FetchX509SVID' | 'FetchX509Bundles';

/** `unix`: a socket in a fresh temporary directory; `tcp`: 127.0.0.1 on a free port. */
export type FakeTransport = 'unix' | 'tcp';

export interface FakeWorkloadApiOptions {
  /** Defaults to `unix`. */
  readonly transport?: FakeTransport;
}

export interface RawX509Svid {
  spiffe_id?: string;
  x509_svid?: Uint8Array;
  x509_svid_key?: Uint8Array;
  bundle?: Uint8Array;
  hint?: string;
}

export interface RawX509SvidResponse {
  svids?: RawX509Svid[];
  crl?: Uint8Array[];
  federated_bundles?: Record<string, Uint8Array>;
}

export interface RawX509BundlesResponse {
  crl?: Uint8Array[];
  bundles?: Record<string, Uint8Array>;
}

export interface RecordedCall {
  readonly rpc: string;
  /** Every value of the `workload.spiffe.io` header (empty when absent). */
  readonly header: readonly string[];
  /** Whether the header was exactly one `true`, i.e. the call was served. */
  readonly accepted: boolean;
  /** `Date.now()` when the call arrived. */
  readonly at: number;
}

export interface SendErrorOptions {
  readonly details?: string;
  /** Only streams of this RPC (default: both X.509 streams). */
  readonly rpc?: StreamRpc;
  /** Also answer every later call with this error until `clearError()`. */
  readonly persist?: boolean;
}

interface OpenStream {
  readonly rpc: StreamRpc;
  readonly call: grpc.ServerWritableStream<unknown, unknown>;
}

interface CallWaiter {
  readonly check: () => boolean;
  readonly resolve: () => void;
}

const STREAM_RPCS: readonly StreamRpc[] = ['FetchX509SVID', 'FetchX509Bundles'];
const TCP_HOST = '127.0.0.1';

export class FakeWorkloadApi {
  /** The unix socket's path; undefined on TCP. */
  readonly socketPath: string | undefined;
  /** The temporary directory of a unix socket; undefined on TCP. */
  readonly #dir: string | undefined;
  /** The TCP port, chosen by the system at the first start and kept for restarts. */
  #port = 0;
  readonly #calls: RecordedCall[] = [];
  readonly #streams = new Set<OpenStream>();
  readonly #latest = new Map<StreamRpc, unknown>();
  readonly #persistentErrors = new Map<StreamRpc, { code: grpc.status; details: string }>();
  readonly #waiters = new Set<CallWaiter>();
  #server: grpc.Server | undefined;

  /** A unix socket in `dir`, or with `dir` undefined, TCP on 127.0.0.1. */
  constructor(dir: string | undefined) {
    this.#dir = dir;
    this.socketPath = dir === undefined ? undefined : join(dir, 'agent.sock');
  }

  /**
   * The URI as SPIFFE_ENDPOINT_SOCKET takes it: `unix:///…/agent.sock`, or
   * `tcp://127.0.0.1:<port>` once started.
   */
  get address(): string {
    if (this.socketPath !== undefined) {
      return `unix://${this.socketPath}`;
    }
    return `tcp://${TCP_HOST}:${this.#boundPort()}`;
  }

  /** The target for a bare `grpc.Client`: `unix:/…/agent.sock` or `127.0.0.1:<port>`. */
  get grpcTarget(): string {
    if (this.socketPath !== undefined) {
      return `unix:${this.socketPath}`;
    }
    return `${TCP_HOST}:${this.#boundPort()}`;
  }

  /** Every call so far, in arrival order. */
  get calls(): readonly RecordedCall[] {
    return [...this.#calls];
  }

  callsOf(rpc: string): RecordedCall[] {
    return this.#calls.filter((call) => call.rpc === rpc);
  }

  /** Streams of `rpc` currently open. */
  openStreams(rpc: StreamRpc): number {
    let count = 0;
    for (const stream of this.#streams) {
      if (stream.rpc === rpc) {
        count += 1;
      }
    }
    return count;
  }

  /** Sends `raw` on every open FetchX509SVID stream and to later ones. */
  setX509SvidResponse(raw: RawX509SvidResponse | Uint8Array): void {
    this.#set('FetchX509SVID', raw);
  }

  /** Sends `raw` on every open FetchX509Bundles stream and to later ones. */
  setX509Bundles(raw: RawX509BundlesResponse | Uint8Array): void {
    this.#set('FetchX509Bundles', raw);
  }

  /** Forgets the message of `rpc`: later streams stay silent until the next set. */
  clearResponse(rpc: StreamRpc): void {
    this.#latest.delete(rpc);
  }

  /** Ends open streams with `code` (and, with `persist`, answers later calls with it too). */
  sendError(code: grpc.status, options: SendErrorOptions = {}): void {
    const details = options.details ?? `fake error ${grpc.status[code] ?? code}`;
    const rpcs = options.rpc === undefined ? STREAM_RPCS : [options.rpc];
    for (const rpc of rpcs) {
      if (options.persist === true) {
        this.#persistentErrors.set(rpc, { code, details });
      }
    }
    for (const stream of [...this.#streams]) {
      if (rpcs.includes(stream.rpc)) {
        this.#streams.delete(stream);
        stream.call.emit('error', { code, details });
      }
    }
  }

  /** Stops answering later calls with a persisted error. */
  clearError(rpc?: StreamRpc): void {
    if (rpc === undefined) {
      this.#persistentErrors.clear();
    } else {
      this.#persistentErrors.delete(rpc);
    }
  }

  /** Ends open streams with an OK status, as a server that closes its side. */
  endStreams(rpc?: StreamRpc): void {
    for (const stream of [...this.#streams]) {
      if (rpc === undefined || stream.rpc === rpc) {
        this.#streams.delete(stream);
        stream.call.end();
      }
    }
  }

  /** Resolves once at least `count` calls of `rpc` were recorded; rejects after `timeoutMs`. */
  waitForCalls(rpc: string, count: number, timeoutMs = 5000): Promise<void> {
    return this.#waitFor(
      () => this.callsOf(rpc).length >= count,
      timeoutMs,
      `${count} ${rpc} call(s)`,
    );
  }

  /** Resolves once `count` streams of `rpc` are open; rejects after `timeoutMs`. */
  waitForStreams(rpc: StreamRpc, count: number, timeoutMs = 5000): Promise<void> {
    return this.#waitFor(
      () => this.openStreams(rpc) >= count,
      timeoutMs,
      `${count} open ${rpc} stream(s)`,
    );
  }

  /** Binds the socket or port (again, after `stop()`: the same one). */
  async start(): Promise<void> {
    if (this.#server !== undefined) {
      return;
    }
    if (this.socketPath !== undefined) {
      await rm(this.socketPath, { force: true });
    }
    const server = new grpc.Server();
    server.addService(fakeServiceDefinition(), {
      FetchX509SVID: (call: grpc.ServerWritableStream<unknown, unknown>) =>
        this.#serve('FetchX509SVID', call),
      FetchX509Bundles: (call: grpc.ServerWritableStream<unknown, unknown>) =>
        this.#serve('FetchX509Bundles', call),
    });
    const target =
      this.socketPath === undefined ? `${TCP_HOST}:${this.#port}` : `unix:${this.socketPath}`;
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err === null ? resolve(bound) : reject(err),
      );
    });
    if (this.socketPath === undefined) {
      this.#port = port;
    }
    this.#server = server;
  }

  /** Kills the server and every open stream, keeping the directory for a restart. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) {
      return;
    }
    this.#server = undefined;
    this.#streams.clear();
    server.forceShutdown();
    if (this.socketPath !== undefined) {
      await rm(this.socketPath, { force: true });
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stops the server and removes the temporary directory. */
  async close(): Promise<void> {
    await this.stop();
    for (const waiter of [...this.#waiters]) {
      this.#waiters.delete(waiter);
    }
    if (this.#dir !== undefined) {
      await rm(this.#dir, { recursive: true, force: true });
    }
  }

  #boundPort(): number {
    if (this.#port === 0) {
      throw new TypeError('The fake Workload API has no TCP port before start()');
    }
    return this.#port;
  }

  #set(rpc: StreamRpc, raw: unknown): void {
    this.#latest.set(rpc, raw);
    for (const stream of this.#streams) {
      if (stream.rpc === rpc) {
        stream.call.write(raw);
      }
    }
  }

  #serve(rpc: StreamRpc, call: grpc.ServerWritableStream<unknown, unknown>): void {
    const header = call.metadata.get(WORKLOAD_API_HEADER).map((value) => String(value));
    const accepted = header.length === 1 && header[0] === 'true';
    this.#record({ rpc, header, accepted, at: Date.now() });
    if (!accepted) {
      call.emit('error', {
        code: grpc.status.INVALID_ARGUMENT,
        details: 'security header missing from request',
      });
      return;
    }
    const persistent = this.#persistentErrors.get(rpc);
    if (persistent !== undefined) {
      call.emit('error', { code: persistent.code, details: persistent.details });
      return;
    }
    const stream: OpenStream = { rpc, call };
    this.#streams.add(stream);
    call.on('cancelled', () => {
      this.#streams.delete(stream);
    });
    call.on('close', () => {
      this.#streams.delete(stream);
    });
    const latest = this.#latest.get(rpc);
    if (latest !== undefined) {
      call.write(latest);
    }
    this.#check();
  }

  #record(call: RecordedCall): void {
    this.#calls.push(Object.freeze(call));
    this.#check();
  }

  #check(): void {
    for (const waiter of [...this.#waiters]) {
      if (waiter.check()) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  #waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (check()) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: CallWaiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }
}

/**
 * Starts a fake Workload API on a new socket in a fresh temporary directory,
 * or with `transport: 'tcp'` on a free port of 127.0.0.1.
 */
export async function startFakeWorkloadApi(
  options: FakeWorkloadApiOptions = {},
): Promise<FakeWorkloadApi> {
  if (options.transport === 'tcp') {
    const fake = new FakeWorkloadApi(undefined);
    await fake.start();
    return fake;
  }
  const dir = await mkdtemp(join(tmpdir(), 'spike-wl-'));
  const fake = new FakeWorkloadApi(dir);
  try {
    await fake.start();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return fake;
}

/**
 * The real service definition with serializers that pass a `Uint8Array`
 * through verbatim (pre-encoded, possibly malformed messages).
 */
function fakeServiceDefinition(): grpc.ServiceDefinition {
  // The definition has the shape of grpc-js's, which it is made for.
  const real = workloadApiServiceDefinition() as grpc.ServiceDefinition;
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(real)) {
    out[name] = {
      ...method,
      responseSerialize: (value: unknown) =>
        value instanceof Uint8Array
          ? Buffer.from(value.buffer, value.byteOffset, value.byteLength)
          : method.responseSerialize(value),
    };
  }
  return out;
}

// ------------------------------------------------------------ message helpers

/** The raw `X509SVID` entry for a test SVID, with its CA's root as `bundle`. */
export function rawSvid(svid: TestSvid, ca: TestCa, hint?: string): RawX509Svid {
  return {
    spiffe_id: svid.spiffeId,
    x509_svid: svid.chainDer,
    x509_svid_key: svid.privateKeyPkcs8,
    bundle: ca.root.der,
    ...(hint === undefined ? {} : { hint }),
  };
}

/** A map of trust-domain ID → concatenated root DER, one entry per CA. */
export function rawBundleMap(...cas: readonly TestCa[]): Record<string, Uint8Array> {
  const map: Record<string, Uint8Array> = {};
  for (const ca of cas) {
    map[ca.trustDomain.idString()] = ca.root.der;
  }
  return map;
}

/** Polls `predicate` every few ms until it holds; rejects after `timeoutMs`. */
export async function waitUntil(
  predicate: () => boolean,
  timeoutMs = 5000,
  what = 'a condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = predicate();
    } catch {
      ok = false;
    }
    if (ok) {
      return;
    }
    if (Date.now() >= deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await delay(10);
  }
}
