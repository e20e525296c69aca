/**
 * An HTTPS client over SPIFFE mTLS, for Pilot, Nexus (to Keepers) and the
 * SDK. It presents our current SVID, accepts only a server whose SVID the
 * matcher allows, and reuses kept-alive connections (not one after an answer
 * the server gave without reading our body, see `keepAliveOnlyIfReusable`).
 * When the source rotates, new connections use the new SVID while requests
 * in flight finish on the old ones, so no request fails because of a
 * rotation.
 *
 * A failed request can be asked whether it provably never left this process
 * (`isNeverSent`): none of the connections it was given ever completed its
 * TLS handshake. Error codes alone cannot tell: Deno 2.9's node:https client
 * silently sends a request again on a new connection when a kept-alive one
 * closes before the answer (denoland/deno#36786), and then reports that new
 * connection's `ECONNREFUSED` for a request the server may have executed.
 *
 * Answers are read up to a cap (per client, or per call): a larger one, by
 * its `Content-Length` or as it streams in, fails the call with
 * `ResponseTooLargeError` and its connection is destroyed, so no server can
 * make the caller hold more than the cap. A failure of the server's
 * certificate or SPIFFE ID can be told apart (`isServerRefused`), for the
 * caller to log or audit who answered in place of whom.
 */
import { Agent, request as httpsRequest } from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { ResponseTooLargeError, SvidInvalidError, UnavailableError } from '../errors/errors.ts';
import { checkServerSvid } from './check_server_svid.ts';
import { concatBytes } from './der.ts';
import type { Matcher } from './match.ts';
import { clientAgentOptions } from './mtls.ts';
import type { X509SvidSource } from './x509_source.ts';

const DEFAULT_TIMEOUT_MS = 30_000;
/**
 * What a client reads of one answer unless told otherwise: far above any
 * answer of Nexus (a secret holds at most 1 MiB of data), low enough that a
 * hostile server cannot exhaust the caller's memory.
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Connections whose TLS handshake completed: a request on one may have reached the server. */
const HANDSHAKEN = new WeakSet<object>();
/** Errors of requests that no server can have seen (see `isNeverSent`). */
const NEVER_SENT = new WeakSet<object>();
/** Errors that refused the server's certificate or SPIFFE ID (see `isServerRefused`). */
const SERVER_REFUSED = new WeakSet<object>();

/**
 * True when `err` failed a request of an `MtlsClient` before any of its bytes
 * could reach a server: it was never on a kept-alive connection, and no
 * connection it was given completed its TLS handshake. Sending it again
 * cannot execute it twice. False for anything else, including every error
 * this module did not raise.
 */
export function isNeverSent(err: unknown): boolean {
  return typeof err === 'object' && err !== null && NEVER_SENT.has(err);
}

/**
 * True when `err` is an `MtlsClient`'s refusal of the server it connected to:
 * its certificate is not a valid X509-SVID of our trust domain, its SPIFFE ID
 * is not the one the client authorizes, or it tried to resume a session.
 * Nothing was sent to such a server.
 */
export function isServerRefused(err: unknown): boolean {
  return typeof err === 'object' && err !== null && SERVER_REFUSED.has(err);
}

export interface MtlsRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array | string;
  /** The whole request, from connecting to the last byte of the answer. */
  readonly timeoutMs?: number;
  /** The most bytes of the answer's body to read (default: the client's `maxResponseBytes`). */
  readonly maxBodyBytes?: number;
  /** Ends the request when aborted (its connection is closed), rejecting with the signal's reason. */
  readonly signal?: AbortSignal;
}

export interface MtlsResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Uint8Array;
  text(): string;
  json(): unknown;
}

export interface MtlsClientOptions {
  readonly source: X509SvidSource;
  /** Which server SPIFFE IDs are acceptable (hostnames are not checked). */
  readonly authorizeServer: Matcher;
  readonly timeoutMs?: number;
  /** The most bytes of one answer's body to read (default `DEFAULT_MAX_RESPONSE_BYTES`). */
  readonly maxResponseBytes?: number;
}

export class MtlsClient {
  readonly #source: X509SvidSource;
  readonly #authorizeServer: Matcher;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #unsubscribe: () => void;
  #agent: Agent;
  #closed = false;
  /** The longest request timeout used so far: how long a retired agent may live. */
  #longestTimeoutMs: number;

  constructor(options: MtlsClientOptions) {
    this.#source = options.source;
    this.#authorizeServer = options.authorizeServer;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#maxResponseBytes = requireByteCap(
      options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      'maxResponseBytes',
    );
    this.#longestTimeoutMs = this.#timeoutMs;
    this.#agent = this.#newAgent();
    this.#unsubscribe = this.#source.onUpdate(() => this.#rotate());
  }

  request(req: MtlsRequest): Promise<MtlsResponse> {
    if (this.#closed) {
      return Promise.reject(new TypeError('MtlsClient is closed'));
    }
    try {
      // Fails while the Workload API has withdrawn our SVID or it has expired:
      // the agent would otherwise keep presenting the old one.
      this.#source.getX509Svid();
    } catch (err) {
      return Promise.reject(err);
    }
    if (req.url.protocol !== 'https:') {
      return Promise.reject(
        new TypeError(`Only https URLs are supported, got "${req.url.protocol}"`),
      );
    }
    let maxBodyBytes: number;
    try {
      maxBodyBytes = requireByteCap(req.maxBodyBytes ?? this.#maxResponseBytes, 'maxBodyBytes');
    } catch (err) {
      return Promise.reject(err);
    }
    if (req.signal?.aborted === true) {
      return Promise.reject(abortReason(req.signal));
    }
    const timeoutMs = req.timeoutMs ?? this.#timeoutMs;
    this.#longestTimeoutMs = Math.max(this.#longestTimeoutMs, timeoutMs);
    const body = typeof req.body === 'string' ? new TextEncoder().encode(req.body) : req.body;
    return new Promise<MtlsResponse>((resolve, reject) => {
      // One timer for the whole request. node:https's own `timeout` is an
      // idle timeout that, over TLS, fires only after twice its value on Node
      // and Deno alike, and a server that trickles bytes would reset it.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outgoing = httpsRequest(
        req.url,
        {
          method: req.method,
          agent: this.#agent,
          headers: {
            ...req.headers,
            ...(body === undefined ? {} : { 'content-length': String(body.byteLength) }),
          },
        },
        (incoming) => {
          keepAliveOnlyIfReusable(outgoing, incoming);
          const chunks: Uint8Array[] = [];
          let received = 0;
          let isTooLarge = false;
          // Stops reading for good: the connection goes with the answer, so
          // the rest of the body is never read, and never reused.
          const refuse = () => {
            isTooLarge = true;
            chunks.length = 0;
            reject(
              new ResponseTooLargeError(
                `The answer from ${req.url.origin} is larger than ${maxBodyBytes} bytes: stopped reading it`,
              ),
            );
            incoming.destroy();
            outgoing.destroy();
          };
          const declared = Number(incoming.headers['content-length']);
          if (declared > maxBodyBytes) {
            incoming.on('error', () => undefined);
            refuse();
            return;
          }
          incoming.on('data', (chunk: Uint8Array) => {
            if (isTooLarge) {
              return;
            }
            received += chunk.byteLength;
            if (received > maxBodyBytes) {
              refuse();
              return;
            }
            chunks.push(chunk);
          });
          incoming.on('error', reject);
          incoming.on('end', () => {
            clearTimeout(timer);
            if (isTooLarge) {
              return;
            }
            const bytes = concatBytes(chunks);
            resolve({
              status: incoming.statusCode ?? 0,
              headers: incoming.headers,
              body: bytes,
              text: () => new TextDecoder().decode(bytes),
              json: () => parseJsonBody(bytes, req.url),
            });
          });
        },
      );
      // Every connection the request is given (more than one when the
      // runtime retries on its own): could the request have gone out on it?
      let isPossiblySent = false;
      outgoing.on('socket', (socket: TLSSocket) => {
        if (outgoing.reusedSocket || HANDSHAKEN.has(socket)) {
          isPossiblySent = true;
        } else {
          socket.once('secureConnect', () => {
            isPossiblySent = true;
          });
        }
      });
      timer = setTimeout(() => {
        outgoing.destroy(
          new UnavailableError(`Request to ${req.url.origin} timed out after ${timeoutMs}ms`),
        );
      }, timeoutMs);
      const signal = req.signal;
      const onAbort = () => outgoing.destroy(abortReason(signal as AbortSignal));
      signal?.addEventListener('abort', onAbort, { once: true });
      outgoing.once('close', () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      });
      outgoing.on('error', (err: Error) => {
        clearTimeout(timer);
        if (!isPossiblySent) {
          NEVER_SENT.add(err);
        }
        reject(err);
      });
      outgoing.end(body);
    });
  }

  /** Closes idle connections and stops following rotations. */
  close(): void {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    this.#unsubscribe();
    this.#agent.destroy();
  }

  #newAgent(): Agent {
    const checkServer = checkServerSvid(this.#source, this.#authorizeServer);
    // Marks its refusals, so a caller can tell them from a Keeper that is down.
    const check = (host: string, certificate: PeerCertificate) => {
      const err = checkServer(host, certificate);
      if (err !== undefined) {
        SERVER_REFUSED.add(err);
      }
      return err;
    };
    const agent = new Agent({
      ...clientAgentOptions(this.#source, this.#authorizeServer),
      checkServerIdentity: check,
    });
    // Node skips checkServerIdentity for a resumed TLS session. Sessions are
    // never cached here (maxCachedSessions: 0), but check every new
    // connection once more so that the server's SPIFFE ID is verified on each.
    const createConnection = agent.createConnection.bind(agent) as (
      ...args: unknown[]
    ) => TLSSocket;
    (agent as unknown as { createConnection: (...args: unknown[]) => TLSSocket }).createConnection =
      function createVerifiedConnection(...args: unknown[]): TLSSocket {
        const socket = createConnection(...args);
        socket.once('secureConnect', () => {
          HANDSHAKEN.add(socket);
          let err: Error | undefined;
          if (socket.isSessionReused()) {
            err = new SvidInvalidError(
              'Refusing a resumed TLS session: the server must be verified',
            );
            SERVER_REFUSED.add(err);
          } else {
            err = check('', socket.getPeerCertificate(true));
          }
          if (err !== undefined) {
            socket.destroy(err);
          }
        });
        return socket;
      };
    return agent;
  }

  #rotate(): void {
    if (this.#closed) {
      return;
    }
    let fresh: Agent;
    try {
      fresh = this.#newAgent();
    } catch {
      // No usable SVID right now: requests fail until the source has one again.
      return;
    }
    const retired = this.#agent;
    this.#agent = fresh;
    retire(retired, this.#longestTimeoutMs);
  }
}

/**
 * Keeps the connection for the next request only when the server can still
 * read one on it. Not after an answer that says `Connection: close`, nor
 * after a 413 or any answer that came before our whole body was sent: the
 * server answered without reading the body and may close the connection
 * right after (RFC 9110, 15.5.14) while still saying `keep-alive`, as Nexus
 * does, so the next request would go out on a dead socket and fail. Such a
 * connection is closed once the answer is read (`shouldKeepAlive` is what
 * the runtime's ClientRequest reads when the answer ends).
 */
function keepAliveOnlyIfReusable(
  outgoing: { readonly writableFinished: boolean; shouldKeepAlive: boolean },
  incoming: {
    readonly statusCode?: number | undefined;
    readonly headers: { readonly connection?: string | undefined };
  },
): void {
  const connection = incoming.headers.connection?.toLowerCase() ?? '';
  if (
    connection.split(',').some((token) => token.trim() === 'close') ||
    incoming.statusCode === 413 ||
    !outgoing.writableFinished
  ) {
    outgoing.shouldKeepAlive = false;
  }
}

/**
 * Lets a retired agent's busy sockets finish their requests, closing each
 * one when its response ends (idle ones close now), and destroys the agent
 * when none is left, or after the longest request timeout at the latest.
 */
function retire(agent: Agent, graceMs: number): void {
  // Node's Agent reads this flag when a socket is freed: busy sockets close
  // after their response instead of returning to the pool.
  (agent as Agent & { keepAlive: boolean }).keepAlive = false;
  for (const sockets of Object.values(agent.freeSockets)) {
    for (const socket of sockets ?? []) {
      socket.destroy();
    }
  }
  const busy = Object.values(agent.sockets).flatMap((sockets) => sockets ?? []);
  const timer = setTimeout(() => agent.destroy(), graceMs);
  timer.unref();
  let remaining = busy.length;
  const onClosed = () => {
    remaining -= 1;
    if (remaining <= 0) {
      clearTimeout(timer);
      agent.destroy();
    }
  };
  if (remaining === 0) {
    onClosed();
  }
  for (const socket of busy) {
    socket.once('close', onClosed);
  }
}

/** A byte cap must be a positive whole number; anything else is a programming error. */
function requireByteCap(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Parses a response body. The runtime's SyntaxError quotes part of the input,
 * which may be a secret or a shard, so it is replaced by a fixed message.
 */
function parseJsonBody(bytes: Uint8Array, url: URL): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch {
    throw new UnavailableError(`The answer from ${url.origin} is not valid JSON`);
  }
}

/** What an aborted request rejects with: the signal's reason when it is an Error. */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('The request was aborted');
}
