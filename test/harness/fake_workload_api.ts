/**
 * An in-process SPIFFE Workload API server for tests, on a unix socket in a
 * fresh temporary directory. Tests drive it with setters that push a new
 * message to every open stream (and to streams opened later), end streams
 * with an error code, or restart the server. Every call is recorded with its
 * security header so tests can assert header presence and retry behaviour.
 *
 * Raw messages are plain objects in the proto's field names and may be
 * malformed on purpose (missing fields, garbage bytes). A `Uint8Array` is
 * sent verbatim as the encoded message, for wire-level cases such as a
 * repeated map key.
 */
import { Buffer } from 'node:buffer';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearTimeout, setTimeout } from 'node:timers';
import * as grpc from '@grpc/grpc-js';
import {
  WORKLOAD_API_HEADER,
  workloadApiServiceDefinition,
} from '../../shared/spiffe/workload_api.ts';
import type { TestCa, TestSvid } from './pki.ts';

export type StreamRpc = 'FetchX509SVID' | 'FetchX509Bundles';

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

export class FakeWorkloadApi {
  /** The socket's URI, `unix:///…/agent.sock`, as SPIFFE_ENDPOINT_SOCKET takes it. */
  readonly address: string;
  readonly socketPath: string;
  readonly #dir: string;
  readonly #calls: RecordedCall[] = [];
  readonly #streams = new Set<OpenStream>();
  readonly #latest = new Map<StreamRpc, unknown>();
  readonly #persistentErrors = new Map<StreamRpc, { code: grpc.status; details: string }>();
  readonly #waiters = new Set<CallWaiter>();
  #server: grpc.Server | undefined;

  constructor(dir: string) {
    this.#dir = dir;
    this.socketPath = join(dir, 'agent.sock');
    this.address = `unix://${this.socketPath}`;
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

  /** Binds the socket (again, after `stop()`). */
  async start(): Promise<void> {
    if (this.#server !== undefined) {
      return;
    }
    await rm(this.socketPath, { force: true });
    const server = new grpc.Server();
    server.addService(fakeServiceDefinition(), {
      FetchX509SVID: (call: grpc.ServerWritableStream<unknown, unknown>) =>
        this.#serve('FetchX509SVID', call),
      FetchX509Bundles: (call: grpc.ServerWritableStream<unknown, unknown>) =>
        this.#serve('FetchX509Bundles', call),
    });
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${this.socketPath}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err === null ? resolve() : reject(err),
      );
    });
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
    await rm(this.socketPath, { force: true });
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
    await rm(this.#dir, { recursive: true, force: true });
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

/** Starts a fake Workload API on a new socket in a fresh temporary directory. */
export async function startFakeWorkloadApi(): Promise<FakeWorkloadApi> {
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
  const real = workloadApiServiceDefinition();
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

/** Encodes a raw message of `rpc`'s response type as the server would send it. */
export function encodeResponse(rpc: StreamRpc, raw: unknown): Uint8Array {
  const method = workloadApiServiceDefinition()[rpc];
  if (method === undefined) {
    throw new TypeError(`No method ${rpc}`);
  }
  return new Uint8Array(method.responseSerialize(raw));
}

/**
 * Appends one more `map<string, bytes>` entry for `fieldNumber` to an
 * encoded message: protobuf concatenation, so the key may repeat one that
 * is already there.
 */
export function appendMapEntry(
  encoded: Uint8Array,
  fieldNumber: number,
  key: string,
  value: Uint8Array,
): Uint8Array {
  const keyBytes = new TextEncoder().encode(key);
  const entry = concatBytes([lengthDelimited(1, keyBytes), lengthDelimited(2, value)]);
  return concatBytes([encoded, lengthDelimited(fieldNumber, entry)]);
}

function lengthDelimited(fieldNumber: number, payload: Uint8Array): Uint8Array {
  return concatBytes([varint(fieldNumber * 8 + 2), varint(payload.length), payload]);
}

function varint(value: number): Uint8Array {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return new Uint8Array(bytes);
}

/** Polls `predicate` every few ms until it holds; rejects after `timeoutMs`. */
export function waitUntil(
  predicate: () => boolean,
  timeoutMs = 5000,
  what = 'a condition',
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = (): void => {
      let ok = false;
      try {
        ok = predicate();
      } catch {
        ok = false;
      }
      if (ok) {
        resolve();
      } else if (Date.now() >= deadline) {
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`));
      } else {
        setTimeout(poll, 10);
      }
    };
    poll();
  });
}

function concatBytes(pieces: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((sum, piece) => sum + piece.length, 0));
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.length;
  }
  return out;
}
