/**
 * One `FetchX509SVID` call of the Workload API that reads the first response
 * and cancels the stream: what a one-shot program (Pilot) needs, over
 * node:http2 directly instead of grpc-js, whose loading and channel set-up
 * cost a one-shot run more than the call itself (docs/decisions/0023).
 * Programs that keep their identity up to date watch the stream with
 * `workload_api.ts` instead.
 *
 * gRPC over HTTP/2, as much of it as one call needs: a POST to the method's
 * path with `content-type: application/grpc`, `te: trailers` and the
 * Workload API's security header; messages framed as one flag byte (0: not
 * compressed) and a 4-byte big-endian length before the protobuf bytes;
 * the status in the trailers, or in the headers of a trailers-only answer.
 * Reading is strict: a compressed frame (none was negotiated), a frame
 * longer than grpc-js accepts, a stream that ends inside a frame, an HTTP
 * status other than 200 or a content type other than gRPC end the call
 * with the gRPC status grpc-js would give, and every status becomes the
 * error the watching client gives (`_workload_status.ts`). What arrives is
 * decoded with the service definition of `workload_proto.ts` and checked by
 * `parseX509SvidResponse`, exactly as for a watch.
 */
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect as http2Connect,
  constants as http2Constants,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
} from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { SvidInvalidError, WorkloadApiUnavailableError } from '../errors/errors.ts';
import {
  classifyWorkloadCallEnd,
  GRPC_STATUS,
  noConnectionDetails,
  type WorkloadCallStatus,
} from './_workload_status.ts';
import {
  formatWorkloadApiAddress,
  parseWorkloadApiAddress,
  type WorkloadApiAddress,
} from './workload_address.ts';
import { parseX509SvidResponse, type X509SvidUpdate } from './workload_messages.ts';
import {
  FETCH_X509_SVID_PATH,
  serializeEmptyRequest,
  WORKLOAD_API_HEADER,
  workloadApiServiceDefinition,
} from './workload_proto.ts';

/** The largest message accepted: grpc-js's default receive limit (4 MiB). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** The flag byte and the 4-byte length before every message. */
const FRAME_HEADER_BYTES = 5;
const METHOD = 'FetchX509SVID';

export interface FetchOnceOptions {
  /** `unix:///path` or `tcp://IP:port` (SPIFFE_ENDPOINT_SOCKET syntax). */
  readonly address: string;
  /** How long to wait for the first response, connecting included. */
  readonly timeoutMs: number;
}

/**
 * The first `X509SVIDResponse` of the Workload API at `address`, parsed and
 * checked; the stream is cancelled and the connection closed before this
 * settles. Rejects with `InvalidWorkloadApiAddressError` for a malformed
 * address; with `WorkloadApiUnavailableError` when nothing answers
 * within `timeoutMs`, the connection fails, the stream ends without a
 * message or with an error status (`PermissionDenied`: no identity); with
 * `WorkloadApiRejectedError` for `InvalidArgument`, `Unimplemented` or a
 * runtime that refuses the socket; and with the error of
 * `parseX509SvidResponse` (or `SvidInvalidError` for bytes that do not
 * decode) for a message that is not a valid response.
 */
export async function fetchX509SvidOnce(options: FetchOnceOptions): Promise<X509SvidUpdate> {
  const address = parseWorkloadApiAddress(options.address);
  const timeoutMs = options.timeoutMs;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  return await new Promise<X509SvidUpdate>((resolve, reject) => {
    new OneShotCall(address, timeoutMs, resolve, reject).start();
  });
}

/** One call, from connecting to the first message or the end of the stream. */
class OneShotCall {
  readonly #address: WorkloadApiAddress;
  readonly #display: string;
  readonly #timeoutMs: number;
  readonly #resolve: (update: X509SvidUpdate) => void;
  readonly #reject: (error: Error) => void;
  readonly #frames = new FrameReader();
  #session: ClientHttp2Session | undefined;
  /** The connection under the session, cut directly when the call ends (see #settle). */
  #socket: Socket | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #connected = false;
  #responded = false;
  /** Data that arrived before the response's headers were handled (Deno's order of events). */
  #early: Buffer[] = [];
  /** The trailers' status, acted on once the stream has closed and every message has been read. */
  #trailers: WorkloadCallStatus | undefined;
  #settled = false;

  constructor(
    address: WorkloadApiAddress,
    timeoutMs: number,
    resolve: (update: X509SvidUpdate) => void,
    reject: (error: Error) => void,
  ) {
    this.#address = address;
    this.#display = formatWorkloadApiAddress(address);
    this.#timeoutMs = timeoutMs;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  start(): void {
    this.#timer = setTimeout(() => {
      this.#fail(
        new WorkloadApiUnavailableError(
          `No X509-SVID arrived from the Workload API at ${this.#display} within ${this.#timeoutMs} ms`,
        ),
      );
    }, this.#timeoutMs);
    let session: ClientHttp2Session;
    let stream: ClientHttp2Stream;
    try {
      session = http2Connect(authorityOf(this.#address), {
        createConnection: () => {
          this.#socket = connectSocket(this.#address);
          return this.#socket;
        },
      });
      this.#session = session;
      session.once('connect', () => {
        this.#connected = true;
      });
      session.on('error', (err) => this.#onTransportError(err));
      stream = session.request({
        ':method': 'POST',
        ':path': FETCH_X509_SVID_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
        [WORKLOAD_API_HEADER]: 'true',
      });
    } catch (err) {
      // Deno refuses the socket without --allow-write by throwing at once.
      this.#onTransportError(err);
      return;
    }
    stream.on('response', (headers) => this.#onResponse(headers));
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('trailers', (trailers) => {
      this.#trailers = statusFrom(trailers);
    });
    stream.on('error', (err) => {
      // A reset stream: 'close' follows, with the code to map.
      if ((err as { code?: unknown }).code !== 'ERR_HTTP2_STREAM_ERROR') {
        this.#onTransportError(err);
      }
    });
    stream.on('close', () => this.#onClose(stream.rstCode));
    stream.end(frame(serializeEmptyRequest()));
  }

  #onResponse(headers: IncomingHttpHeaders & IncomingHttpStatusHeader): void {
    this.#responded = true;
    const httpStatus = headers[':status'];
    if (httpStatus !== 200) {
      this.#onStatus(httpStatusToGrpc(httpStatus));
      return;
    }
    // A trailers-only answer: the status comes with the headers, and no message.
    if (headers['grpc-status'] !== undefined) {
      this.#onStatus(statusFrom(headers));
      return;
    }
    const contentType = String(headers['content-type'] ?? '');
    if (!/^application\/grpc(?:$|[+;])/.test(contentType)) {
      this.#onStatus({
        code: GRPC_STATUS.UNKNOWN,
        details: `the response's content type "${contentType}" is not gRPC`,
      });
      return;
    }
    for (const chunk of this.#early.splice(0)) {
      this.#onData(chunk);
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#settled) {
      return;
    }
    if (!this.#responded) {
      this.#early.push(chunk);
      return;
    }
    let message: Buffer | undefined;
    try {
      message = this.#frames.push(chunk);
    } catch (err) {
      this.#onStatus(err instanceof FrameError ? err.status : internal(String(err)));
      return;
    }
    if (message === undefined) {
      return;
    }
    let update: X509SvidUpdate;
    try {
      update = parseX509SvidResponse(decodeResponse(message));
    } catch (err) {
      this.#fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.#succeed(update);
  }

  /** The call's status, wherever it came from: ends the call unless a message ended it first. */
  #onStatus(status: WorkloadCallStatus): void {
    if (this.#settled) {
      return;
    }
    if (status.code === GRPC_STATUS.OK && this.#frames.midFrame()) {
      this.#onStatus(internal('the stream ended inside a message'));
      return;
    }
    this.#fail(classifyWorkloadCallEnd(status, METHOD, this.#display).error);
  }

  #onTransportError(err: unknown): void {
    if (this.#settled) {
      return;
    }
    const cause = causeOf(err);
    this.#onStatus({
      code: GRPC_STATUS.UNAVAILABLE,
      details: this.#connected ? String(cause) : noConnectionDetails(cause),
    });
  }

  /** The stream closed: with its trailers, reset by the server, or cut with its connection. */
  #onClose(rstCode: number | undefined): void {
    if (this.#settled) {
      return;
    }
    if (this.#trailers !== undefined) {
      this.#onStatus(this.#trailers);
      return;
    }
    if (rstCode !== undefined && rstCode !== http2Constants.NGHTTP2_NO_ERROR) {
      this.#onStatus({
        code: rstCodeToGrpc(rstCode),
        details: `Received RST_STREAM with code ${rstCode}`,
      });
      return;
    }
    if (this.#frames.midFrame()) {
      this.#onStatus(internal('the stream ended inside a message'));
      return;
    }
    this.#onStatus({
      code: this.#responded ? GRPC_STATUS.UNKNOWN : GRPC_STATUS.UNAVAILABLE,
      details: this.#responded
        ? 'the stream ended without a status'
        : this.#connected
          ? 'the connection closed before a response'
          : noConnectionDetails('the connection closed'),
    });
  }

  #succeed(update: X509SvidUpdate): void {
    if (this.#settle()) {
      this.#resolve(update);
    }
  }

  #fail(error: Error): void {
    if (this.#settle()) {
      this.#reject(error);
    }
  }

  /**
   * Ends the call once by cutting the connection under the session: the
   * server sees its end, every stream with it, and no later event of the
   * server reaches this call (docs/decisions/0010). Not a RST_STREAM then a
   * GOAWAY: a Deno 2.9 server given those two in a row can fail an nghttp2
   * assertion or crash (docs/agent.md), and one agent serves everyone.
   */
  #settle(): boolean {
    if (this.#settled) {
      return false;
    }
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#socket?.destroy();
    this.#session?.destroy();
    return true;
  }
}

/** The URL whose authority the requests carry: `localhost` over a unix socket, as grpc-js sends. */
function authorityOf(address: WorkloadApiAddress): string {
  if (address.kind === 'unix') return 'http://localhost';
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `http://${host}:${address.port}`;
}

/** The connection to the Workload API: the unix socket, or TCP to an IP literal. */
function connectSocket(address: WorkloadApiAddress): Socket {
  return address.kind === 'unix'
    ? netConnect(address.path)
    : netConnect({ host: address.host, port: address.port });
}

function decodeResponse(bytes: Buffer): unknown {
  try {
    return definition().responseDeserialize(bytes);
  } catch (err) {
    throw new SvidInvalidError(
      `The Workload API sent an X509SVIDResponse that does not decode: ${
        err instanceof Error ? err.message : String(err)
      }`,
      { cause: err },
    );
  }
}

function definition() {
  const method = workloadApiServiceDefinition()[METHOD];
  if (method === undefined) {
    throw new TypeError(`workload.proto has no method "${METHOD}"`);
  }
  return method;
}

/** A gRPC message frame: flag 0 (not compressed), the length, the bytes. */
function frame(message: Buffer): Buffer {
  const framed = Buffer.alloc(FRAME_HEADER_BYTES + message.length);
  framed.writeUInt8(0, 0);
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, FRAME_HEADER_BYTES);
  return framed;
}

/** A framing error, with the status grpc-js ends the call with for it. */
class FrameError extends Error {
  readonly status: WorkloadCallStatus;

  constructor(status: WorkloadCallStatus) {
    super(status.details);
    this.status = status;
  }
}

/**
 * Reads gRPC frames from the chunks of a response, strictly: the first whole
 * message, or a `FrameError` for a compressed one or one over the limit.
 */
class FrameReader {
  #buffered: Buffer[] = [];
  #length = 0;
  /** The message's size, once its header has arrived and passed the checks. */
  #size: number | undefined;

  /** The first whole message once it has arrived; undefined while it has not. */
  push(chunk: Buffer): Buffer | undefined {
    this.#buffered.push(chunk);
    this.#length += chunk.length;
    if (this.#length < FRAME_HEADER_BYTES) {
      return undefined;
    }
    this.#size ??= checkedSize(this.#joined());
    // Joined once the whole message is here, not on every chunk, so a large
    // message in many chunks is copied once.
    if (this.#length < FRAME_HEADER_BYTES + this.#size) {
      return undefined;
    }
    return this.#joined().subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + this.#size);
  }

  #joined(): Buffer {
    const bytes =
      this.#buffered.length === 1
        ? (this.#buffered[0] as Buffer)
        : Buffer.concat(this.#buffered, this.#length);
    this.#buffered = [bytes];
    return bytes;
  }

  /** Whether some bytes of a message have arrived but not all of it. */
  midFrame(): boolean {
    return this.#length > 0;
  }
}

/** The size a frame header announces; a `FrameError` for a compressed frame or one over the limit. */
function checkedSize(header: Buffer): number {
  const flag = header.readUInt8(0);
  if (flag !== 0) {
    throw new FrameError(
      flag === 1
        ? internal('Received a compressed message, but no compression was negotiated')
        : internal(`Received a message frame with the invalid flag byte ${flag}`),
    );
  }
  const size = header.readUInt32BE(1);
  if (size > MAX_MESSAGE_BYTES) {
    throw new FrameError({
      code: GRPC_STATUS.RESOURCE_EXHAUSTED,
      details: `Received message larger than max (${size} vs ${MAX_MESSAGE_BYTES})`,
    });
  }
  return size;
}

function internal(details: string): WorkloadCallStatus {
  return { code: GRPC_STATUS.INTERNAL, details };
}

/** `grpc-status` and `grpc-message` (percent-encoded, gRPC spec) from trailers or headers. */
function statusFrom(headers: IncomingHttpHeaders): WorkloadCallStatus {
  const rawCode = headers['grpc-status'];
  const code = typeof rawCode === 'string' && /^[0-9]+$/.test(rawCode) ? Number(rawCode) : NaN;
  if (Number.isNaN(code)) {
    return { code: GRPC_STATUS.UNKNOWN, details: 'the response has no valid grpc-status' };
  }
  const rawMessage = headers['grpc-message'];
  return { code, details: typeof rawMessage === 'string' ? percentDecode(rawMessage) : '' };
}

function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The gRPC spec's mapping of an HTTP status other than 200 (grpc-js's, word for word). */
function httpStatusToGrpc(httpStatus: number | undefined): WorkloadCallStatus {
  const details = `Received HTTP status code ${httpStatus}`;
  switch (httpStatus) {
    case 400:
      return { code: GRPC_STATUS.INTERNAL, details };
    case 401:
      return { code: GRPC_STATUS.UNAUTHENTICATED, details };
    case 403:
      return { code: GRPC_STATUS.PERMISSION_DENIED, details };
    case 404:
      return { code: GRPC_STATUS.UNIMPLEMENTED, details };
    case 429:
    case 502:
    case 503:
    case 504:
      return { code: GRPC_STATUS.UNAVAILABLE, details };
    default:
      return { code: GRPC_STATUS.UNKNOWN, details };
  }
}

/** The status grpc-js gives a stream the server reset. */
function rstCodeToGrpc(rstCode: number): number {
  switch (rstCode) {
    case http2Constants.NGHTTP2_REFUSED_STREAM:
      return GRPC_STATUS.UNAVAILABLE;
    case http2Constants.NGHTTP2_CANCEL:
      return GRPC_STATUS.CANCELLED;
    case http2Constants.NGHTTP2_ENHANCE_YOUR_CALM:
      return GRPC_STATUS.RESOURCE_EXHAUSTED;
    case http2Constants.NGHTTP2_INADEQUATE_SECURITY:
      return GRPC_STATUS.PERMISSION_DENIED;
    default:
      return GRPC_STATUS.INTERNAL;
  }
}

/** Node wraps a session's failure in the pending stream's error as its cause. */
function causeOf(err: unknown): unknown {
  if (err instanceof Error && err.cause !== undefined && isStreamCancel(err)) {
    return err.cause;
  }
  return err;
}

function isStreamCancel(err: Error): boolean {
  return (err as { code?: unknown }).code === 'ERR_HTTP2_STREAM_CANCEL';
}
