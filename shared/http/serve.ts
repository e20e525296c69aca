/**
 * Serves a Hono app over SPIFFE mTLS with @hono/node-server on node:https, on
 * Node and Deno alike. The caller's PeerVerifier verifies and authorizes the
 * peer once per connection (refused ones are destroyed before a request is
 * read), and the app finds that peer through it (`peerFromConnection`). SVID
 * and bundle rotations swap the SecureContext so new handshakes use the new
 * certificate.
 *
 * Resource limits (`ServerLimits`) bound what a client can hold without doing
 * useful work: a TLS handshake, the request headers, the whole request and an
 * idle kept-alive connection each have a timeout, and open connections are
 * capped in total, per remote address (before TLS) and per verified SPIFFE ID
 * (right after the handshake). A connection over a cap is closed at once and
 * counted as a refusal. Per-identity request rates are the app's business
 * (`rate_limit.ts`), since only a request has a verified caller to key on.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { getRequestListener, type Http2Bindings, type HttpBindings } from '@hono/node-server';
import type { Logger } from '../log/logger.ts';
import { serverTlsOptions } from '../spiffe/mtls.ts';
import type { PeerVerifier } from '../spiffe/peer_verifier.ts';
import type { X509SvidSource } from '../spiffe/x509_source.ts';
import { createGracefulClose } from './graceful_close.ts';

export interface ServerLimits {
  /** Time for a new connection's TLS handshake (a silent TCP connection is closed after it). */
  readonly handshakeTimeoutMs: number;
  /** Time for a request's headers to arrive, also on a fresh connection (slow-loris guard). */
  readonly headersTimeoutMs: number;
  /** Time for a whole request, headers and body, to arrive (slow-body guard). */
  readonly requestTimeoutMs: number;
  /** How long a kept-alive connection may sit idle between requests. */
  readonly keepAliveTimeoutMs: number;
  /** Open connections in all; 0 means no limit. */
  readonly maxConnections: number;
  /** Open connections from one remote IP address, counted before TLS; 0 means no limit. */
  readonly maxConnectionsPerAddress: number;
  /** Open connections of one verified SPIFFE ID; 0 means no limit. */
  readonly maxConnectionsPerIdentity: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = Object.freeze({
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1024,
  maxConnectionsPerAddress: 512,
  maxConnectionsPerIdentity: 128,
});

/**
 * Node checks the header and request timeouts of open connections on a
 * timer, every 30 s by default, so a 10 s timeout could let a slow client
 * hold its connection for 40 s. Checking at a quarter of the shorter
 * timeout, within these bounds, keeps the overshoot small and the cost low.
 */
const MIN_CHECK_INTERVAL_MS = 100;
const MAX_CHECK_INTERVAL_MS = 1_000;

/** How often the open connections are checked against the header and request timeouts. */
export function connectionsCheckingIntervalMs(limits: ServerLimits): number {
  const shorter = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return Math.min(MAX_CHECK_INTERVAL_MS, Math.max(MIN_CHECK_INTERVAL_MS, Math.floor(shorter / 4)));
}

/**
 * Answers one request: a Hono app's `app.fetch`. The adapter passes the
 * node:http request and response as `env` (the app's `HttpBindings`).
 */
export type FetchHandler = (
  request: Request,
  env: HttpBindings | Http2Bindings,
) => Response | Promise<Response>;

/**
 * Answers a request without the app, or returns false having changed
 * nothing, for the app to answer it (see nexus/routes/secret_read.ts).
 */
export type RequestShortcut = (request: IncomingMessage, response: ServerResponse) => boolean;

export interface ServeMtlsOptions {
  readonly fetch: FetchHandler;
  /** Tried first for every request; the app answers those it declines. */
  readonly shortcut?: RequestShortcut | undefined;
  /** Our identity: the certificate the server presents, swapped when it rotates. */
  readonly source: X509SvidSource;
  /**
   * Admits or refuses the peer of each new connection (which peers may
   * connect at all; routes narrow further). It also hears every connection
   * the server refuses for its limits, so its refusal count and listeners
   * cover them all; it should check peers against the same `source`.
   */
  readonly verifier: PeerVerifier;
  readonly logger: Logger;
  readonly port: number;
  readonly hostname?: string;
  /** Timeouts and connection caps; unset fields take `DEFAULT_SERVER_LIMITS`. */
  readonly limits?: Partial<ServerLimits>;
}

/** The server's request listener: the shortcut first, if there is one, then the app. */
export function requestListener(
  fetch: FetchHandler,
  shortcut?: RequestShortcut,
): (request: IncomingMessage, response: ServerResponse) => void {
  const toApp = getRequestListener(fetch);
  if (shortcut === undefined) {
    return function answerByApp(request, response) {
      void toApp(request, response);
    };
  }
  return function answerRequest(request, response) {
    if (!shortcut(request, response)) {
      void toApp(request, response);
    }
  };
}

export interface MtlsServer {
  readonly port: number;
  readonly hostname: string;
  readonly limits: ServerLimits;
  /** Connections open now (admitted or still in their handshake), refused ones not counted. */
  openConnections(): number;
  /** Stops accepting, answers the requests in flight (for up to 3 s), then closes. */
  close(): Promise<void>;
}

/** How long a stop waits for requests in flight before it cuts their connections. */
const DRAIN_GRACE_MS = 3_000;

export async function serveMtls(options: ServeMtlsOptions): Promise<MtlsServer> {
  const { source, verifier, logger } = options;
  const limits = checkLimits({ ...DEFAULT_SERVER_LIMITS, ...options.limits });
  const server = createServer(
    {
      ...serverTlsOptions(source),
      handshakeTimeout: limits.handshakeTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: connectionsCheckingIntervalMs(limits),
    },
    requestListener(options.fetch, options.shortcut),
  );
  // Stopping answers the requests in flight first (see graceful_close.ts).
  const closeGracefully = createGracefulClose(server, { graceMs: DRAIN_GRACE_MS });
  // Open connections in all and per remote address, counted when TCP accepts
  // them (here rather than with `server.maxConnections`, whose drops Deno
  // does not report).
  const perAddress = new Counter(limits.maxConnectionsPerAddress);
  // The TLS layer reports a socket closed here as a failed handshake; it is
  // one refusal, already counted.
  const refusedEarly = new WeakSet<Socket>();
  let open = 0;
  // `address:port` of each accepted socket, read at once: a socket the peer
  // has reset no longer knows it by the time its handshake fails. (One reset
  // before it was even accepted has none to read; its refusal has no address.)
  const remoteAddresses = new WeakMap<Socket, string>();
  const remoteOf = (socket: TLSSocket): string | undefined => {
    const raw = rawOf(socket);
    return raw === undefined ? undefined : remoteAddresses.get(raw);
  };
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const remote =
      socket.remoteAddress === undefined ? undefined : `${address}:${socket.remotePort ?? ''}`;
    if (remote !== undefined) {
      remoteAddresses.set(socket, remote);
    }
    let reason: string | undefined;
    if (limits.maxConnections > 0 && open >= limits.maxConnections) {
      reason = `Over the limit of ${limits.maxConnections} open connections`;
    } else if (!perAddress.tryAcquire(address, socket)) {
      reason = `Over the limit of ${limits.maxConnectionsPerAddress} open connections per remote address`;
    }
    if (reason !== undefined) {
      refusedEarly.add(socket);
      verifier.refuse(
        undefined,
        { reason, ...(remote === undefined ? {} : { remoteAddress: remote }) },
        'connection_limit',
      );
      socket.destroy();
      return;
    }
    open += 1;
    // `on`, not `once`, here and in Counter: a socket emits `close` once, and
    // `once` wraps each listener in a state object and a bound function, per
    // connection (docs/performance.md, "Idle watchers").
    socket.on('close', () => {
      open -= 1;
    });
  });
  // Open connections per verified SPIFFE ID, counted once the peer is admitted.
  const perIdentity = new Counter(limits.maxConnectionsPerIdentity);
  // Ahead of the HTTP server's own listener: a refused socket is destroyed
  // before a parser is attached to it. Registered after it, Node has already
  // parsed the first request of a refused connection and run the app on it.
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    const remote = remoteOf(socket);
    const peer = verifier.admit(socket, remote);
    if (peer !== undefined && !perIdentity.tryAcquire(peer.id.toString(), socket)) {
      verifier.refuse(
        socket,
        {
          reason: `Over the limit of ${limits.maxConnectionsPerIdentity} open connections per SPIFFE ID`,
          peerId: peer.id.toString(),
          ...(remote === undefined ? {} : { remoteAddress: remote }),
        },
        'connection_limit',
      );
    }
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    const raw = rawOf(socket);
    if (raw !== undefined && refusedEarly.has(raw)) {
      socket.destroy();
      return;
    }
    const remote = remoteOf(socket);
    verifier.refuse(
      socket,
      {
        reason: `TLS handshake failed: ${err.code ?? err.message}`,
        ...(remote === undefined ? {} : { remoteAddress: remote }),
      },
      'handshake_failed',
    );
  });

  const unsubscribe = source.onUpdate(function rotateServerCredentials() {
    let tlsOptions: ReturnType<typeof serverTlsOptions>;
    try {
      tlsOptions = serverTlsOptions(source);
    } catch (err) {
      // Our SVID was withdrawn or has expired: the TLS context would keep
      // presenting it, so refuse connections until a usable one arrives.
      const reason = err instanceof Error ? err.message : String(err);
      verifier.suspend(reason);
      logger.error('No usable SVID of our own; refusing connections until one arrives', {
        error: reason,
      });
      return;
    }
    server.setSecureContext({ ...tlsOptions });
    if (verifier.isSuspended) {
      verifier.resume();
      logger.info('Serving again with a new SVID');
    }
    logger.info('Swapped the TLS credentials after an SVID or bundle update', {
      spiffeId: source.getX509Svid().id.toString(),
      notAfter: source.getX509Svid().notAfter.toISOString(),
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.hostname ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    unsubscribe();
    throw err;
  });
  // After listening, a server error (e.g. EMFILE on accept under a flood) is
  // logged instead of taking the program down.
  server.on('error', (err: Error & { code?: string }) => {
    logger.error('HTTPS server error', { error: err.code ?? err.message });
  });
  const address = server.address() as AddressInfo;

  return {
    port: address.port,
    hostname: address.address,
    limits,
    openConnections: () => open,
    close() {
      unsubscribe();
      return closeGracefully();
    },
  };
}

/** The accepted TCP socket under a server-side TLSSocket: Node and Deno keep it in `_parent`. */
function rawOf(socket: TLSSocket): Socket | undefined {
  return (socket as TLSSocket & { _parent?: Socket })._parent;
}

function checkLimits(limits: ServerLimits): ServerLimits {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`Server limit ${name} must be a non-negative integer, got ${value}`);
    }
  }
  for (const name of [
    'handshakeTimeoutMs',
    'headersTimeoutMs',
    'requestTimeoutMs',
    'keepAliveTimeoutMs',
  ] as const) {
    if (limits[name] === 0) {
      throw new RangeError(`Server limit ${name} must be positive`);
    }
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new RangeError('The headers timeout must not exceed the request timeout');
  }
  return Object.freeze({ ...limits });
}

/** Counts open sockets per key up to a cap (0: no cap); a socket's close releases its slot. */
class Counter {
  readonly #max: number;
  readonly #counts = new Map<string, number>();

  constructor(max: number) {
    this.#max = max;
  }

  /** Takes a slot for the socket, or returns false when the key is at its cap. */
  tryAcquire(key: string, socket: { on(event: 'close', listener: () => void): unknown }): boolean {
    if (this.#max === 0) {
      return true;
    }
    const count = this.#counts.get(key) ?? 0;
    if (count >= this.#max) {
      return false;
    }
    this.#counts.set(key, count + 1);
    socket.on('close', () => {
      const left = (this.#counts.get(key) ?? 1) - 1;
      if (left <= 0) {
        this.#counts.delete(key);
      } else {
        this.#counts.set(key, left);
      }
    });
    return true;
  }
}
