/**
 * Verification of a server's peers, once per connection: the chain OpenSSL
 * accepted (against the roots of our own trust domain, see mtls.ts) is
 * re-checked by X509-SVID §5 with `verifyX509Svid`, and the peer's SPIFFE ID
 * authorized with a Matcher. The server destroys a refused connection before
 * any request on it is parsed. The verifier counts admissions and refusals
 * and reports refusals (reason, remote address, the peer's SPIFFE ID when one
 * could be read) to its log and its listeners, which write them to the audit
 * log: the first from a source address in a window whole, the rest of that
 * window as one summary with their count (`_refusal_windows.ts`), so that a
 * flood of refused connections costs a bounded number of lines.
 */
import type { TLSSocket } from 'node:tls';
import { SvidInvalidError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { readUriSans } from './_cert_cache.ts';
import { peerChain } from './_peer_chain.ts';
import { type RefusalCount, RefusalWindows } from './_refusal_windows.ts';
import type { Matcher } from './match.ts';
import { parseSpiffeId } from './spiffe_id.ts';
import type { X509SvidSource } from './x509_source.ts';
import { type VerifiedSvid, verifyX509Svid } from './x509_svid.ts';

/**
 * Why a peer was refused: logged, counted and audited, never sent to the
 * peer. It never holds certificate bytes or keys.
 */
export interface PeerRefusal {
  readonly reason: string;
  /** The SPIFFE ID of a peer whose SVID verified but that may not connect here. */
  readonly peerId?: string;
  /** The SPIFFE ID an unverified certificate carries (its only URI SAN), if any. */
  readonly claimedId?: string;
  /**
   * `address:port` of the peer; on a summary the address alone, and absent
   * on the summary of the sources over the table's cap.
   */
  readonly remoteAddress?: string;
  /**
   * On a summary: how many refusals it stands for (those after the first
   * from its source in one window, or from sources over the cap). Absent on a
   * single refusal.
   */
  readonly count?: number;
}

/**
 * Why a connection was refused, as one of a fixed set of words: the label of
 * the refusal metric, which may carry nothing a peer chose (the free-text
 * `reason` holds URI SANs and TLS error text, for logs and audit only).
 */
export const REFUSAL_CAUSES = Object.freeze([
  /** The peer sent no client certificate. */
  'no_certificate',
  /** Its chain does not verify against our trust bundle. */
  'untrusted_certificate',
  /** The chain verified but breaks an X509-SVID rule (SPIFFE ID, key usage…). */
  'invalid_svid',
  /** A valid SVID whose SPIFFE ID may not connect here. */
  'not_allowed',
  /** We have no usable SVID of our own and refuse every connection. */
  'not_serving',
  /** Over a cap on open connections (in all, per address, per SPIFFE ID). */
  'connection_limit',
  /** The TLS handshake itself failed (wrong protocol, reset, timeout…). */
  'handshake_failed',
] as const);

export type RefusalCause = (typeof REFUSAL_CAUSES)[number];

/**
 * Told about each refusal passed on whole, and about each summary, after the
 * connections were destroyed.
 */
export type RefusalListener = (refusal: PeerRefusal) => void;

export interface PeerVerifierOptions {
  readonly source: X509SvidSource;
  /** Which peer SPIFFE IDs may connect at all. */
  readonly authorize: Matcher;
  readonly logger: Logger;
  /**
   * How long refusals from one source address are summarized after the first
   * (default `REFUSAL_WINDOW_MS`); 0 reports every refusal whole.
   */
  readonly refusalWindowMs?: number;
  /** Source addresses tracked at once (default `MAX_REFUSAL_SOURCES`). */
  readonly maxRefusalSources?: number;
  readonly now?: () => number;
}

/** Refusals from one source address after its first are summarized for this long. */
export const REFUSAL_WINDOW_MS = 60_000;
/**
 * Source addresses whose refusals are tracked at once (about 200 bytes
 * each); refusals from more are summarized all together.
 */
export const MAX_REFUSAL_SOURCES = 1024;

/** Longest refusal reason passed on; peers choose some of its text (their URI SANs). */
export const MAX_REFUSAL_REASON_CHARS = 512;

/**
 * Verifies peers of a server once per connection and remembers the result per
 * socket, so requests on a kept-alive connection cost a WeakMap lookup.
 */
export class PeerVerifier {
  readonly #source: X509SvidSource;
  readonly #authorize: Matcher;
  readonly #logger: Logger;
  readonly #peers = new WeakMap<TLSSocket, VerifiedSvid>();
  readonly #listeners = new Set<RefusalListener>();
  readonly #windows: RefusalWindows<PeerRefusal>;
  #refused = 0;
  readonly #refusedByCause = new Map<RefusalCause, number>(
    REFUSAL_CAUSES.map((cause) => [cause, 0]),
  );
  #admitted = 0;
  #suspendedReason: string | undefined;

  constructor(options: PeerVerifierOptions) {
    this.#source = options.source;
    this.#authorize = options.authorize;
    this.#logger = options.logger;
    this.#windows = new RefusalWindows<PeerRefusal>(
      {
        windowMs: options.refusalWindowMs ?? REFUSAL_WINDOW_MS,
        maxSources: options.maxRefusalSources ?? MAX_REFUSAL_SOURCES,
        ...(options.now === undefined ? {} : { now: options.now }),
      },
      (refusal, summary) =>
        this.#report(summary === undefined ? refusal : summarize(refusal, summary)),
    );
  }

  /** Count of connections refused since start (TLS errors and failed checks). */
  get refusedCount(): number {
    return this.#refused;
  }

  /** Connections refused since start by cause, every cause listed (also at 0). */
  refusedByCause(): ReadonlyMap<RefusalCause, number> {
    return this.#refusedByCause;
  }

  /** Count of connections admitted since start. */
  get admittedCount(): number {
    return this.#admitted;
  }

  /**
   * Refuses every new connection until `resume()`: used while we have no
   * usable SVID of our own (for example when the Workload API withdrew it),
   * since the TLS context would otherwise keep presenting the withdrawn one.
   */
  suspend(reason: string): void {
    this.#suspendedReason = reason;
  }

  resume(): void {
    this.#suspendedReason = undefined;
  }

  get isSuspended(): boolean {
    return this.#suspendedReason !== undefined;
  }

  /**
   * Calls `listener` with every later refusal (the audit trail subscribes
   * here); returns the unsubscribe function.
   */
  onRefusal(listener: RefusalListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Reports the summaries of the refusals counted so far now, instead of
   * when their windows close: at stop, before the listeners go.
   */
  flushRefusals(): void {
    this.#windows.flush();
  }

  /**
   * Verifies and authorizes the peer of a new connection; destroys it if
   * refused. `remoteAddress` (`address:port`) is the one read when the
   * connection was accepted, for the record of a refusal.
   */
  admit(socket: TLSSocket, remoteAddress?: string): VerifiedSvid | undefined {
    let verified: VerifiedSvid | undefined;
    let cause: RefusalCause = 'invalid_svid';
    try {
      if (this.#suspendedReason !== undefined) {
        cause = 'not_serving';
        throw new SvidInvalidError(`Not serving: ${this.#suspendedReason}`);
      }
      if (!socket.authorized) {
        cause = hasPeerCertificate(socket) ? 'untrusted_certificate' : 'no_certificate';
      }
      verified = this.#verify(socket);
      if (!this.#authorize(verified.id)) {
        cause = 'not_allowed';
        throw new SvidInvalidError(
          `Peer "${verified.id}" is not allowed here: expected ${this.#authorize.description}`,
        );
      }
      this.#peers.set(socket, verified);
      this.#admitted += 1;
      return verified;
    } catch (err) {
      this.refuse(
        socket,
        {
          reason: err instanceof Error ? err.message : String(err),
          ...(verified === undefined ? {} : { peerId: verified.id.toString() }),
          ...(remoteAddress === undefined ? {} : { remoteAddress }),
        },
        cause,
      );
      return undefined;
    }
  }

  /** The verified peer of a socket this verifier admitted, if any. */
  peerOf(socket: TLSSocket): VerifiedSvid | undefined {
    return this.#peers.get(socket);
  }

  /**
   * Records a refusal (from `admit` or a TLS-level error) and closes the
   * socket. The remote address (`address:port`) and the SPIFFE ID the peer's
   * certificate claims are read from the socket when the refusal lacks them;
   * callers pass the address read when the connection was accepted, since a
   * socket the peer has reset no longer has one. Listeners run after the
   * socket is destroyed; one that throws is logged and cannot undo the
   * refusal. `cause` is what the refusal is counted under.
   */
  refuse(socket: TLSSocket | undefined, refusal: PeerRefusal, cause: RefusalCause): void {
    this.#refused += 1;
    this.#refusedByCause.set(cause, (this.#refusedByCause.get(cause) ?? 0) + 1);
    const remoteAddress =
      refusal.remoteAddress ?? (socket === undefined ? undefined : remoteOf(socket));
    const claimedId =
      refusal.claimedId ??
      (refusal.peerId === undefined && socket !== undefined ? claimedIdOf(socket) : undefined);
    socket?.destroy();
    const recorded: PeerRefusal = {
      reason: truncate(refusal.reason, MAX_REFUSAL_REASON_CHARS),
      ...(refusal.peerId === undefined ? {} : { peerId: refusal.peerId }),
      ...(claimedId === undefined ? {} : { claimedId }),
      ...(remoteAddress === undefined ? {} : { remoteAddress }),
    };
    // A verified peer that may not connect and an unauthenticated one are
    // audited as different statuses, so they are summarized apart.
    const kind = refusal.peerId === undefined ? 'unauthenticated' : 'forbidden';
    this.#windows.add(kind, sourceOf(remoteAddress), recorded);
  }

  #report(recorded: PeerRefusal): void {
    this.#logger.warn(
      recorded.count === undefined ? 'Refused a TLS peer' : 'Refused TLS peers (summary)',
      { ...recorded },
    );
    for (const listener of this.#listeners) {
      try {
        listener(recorded);
      } catch (err) {
        this.#logger.error('A refusal listener failed', {
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
  }

  #verify(socket: TLSSocket): VerifiedSvid {
    if (!socket.authorized) {
      if (!hasPeerCertificate(socket)) {
        throw new SvidInvalidError('The peer presented no client certificate');
      }
      throw new SvidInvalidError(`TLS verification failed: ${String(socket.authorizationError)}`);
    }
    const chain = peerChain(socket.getPeerCertificate(true));
    return verifyX509Svid(chain, this.#source.getX509Bundles(), { role: 'client' });
  }
}

/** The summary of `count` refusals, the last of them `last`. */
function summarize(last: PeerRefusal, summary: RefusalCount): PeerRefusal {
  const { remoteAddress: _port, ...rest } = last;
  const reason =
    summary.source === undefined
      ? `${summary.count} refusals from more source addresses than are tracked at once; the last: ${last.reason}`
      : summary.source === ''
        ? `${summary.count} more refusals from peers that reset before their address could be read; the last: ${last.reason}`
        : `${summary.count} more refusals from this address; the last: ${last.reason}`;
  return {
    ...rest,
    reason: truncate(reason, MAX_REFUSAL_REASON_CHARS),
    ...(summary.source === undefined || summary.source === ''
      ? {}
      : { remoteAddress: summary.source }),
    count: summary.count,
  };
}

/** The address of `address:port` (IPv6 addresses hold colons too), or '' when unknown. */
function sourceOf(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) {
    return '';
  }
  const colon = remoteAddress.lastIndexOf(':');
  return colon <= 0 ? remoteAddress : remoteAddress.slice(0, colon);
}

function remoteOf(socket: TLSSocket): string | undefined {
  return socket.remoteAddress === undefined
    ? undefined
    : `${socket.remoteAddress}:${socket.remotePort ?? ''}`;
}

function hasPeerCertificate(socket: TLSSocket): boolean {
  try {
    return socket.getPeerCertificate(false)?.raw !== undefined;
  } catch {
    return false;
  }
}

/** The SPIFFE ID the peer's leaf claims, unverified; never throws. */
function claimedIdOf(socket: TLSSocket): string | undefined {
  let raw: Uint8Array | undefined;
  try {
    raw = socket.getPeerCertificate(false)?.raw;
  } catch {
    return undefined;
  }
  return raw === undefined ? undefined : claimedSpiffeId(raw);
}

/**
 * The SPIFFE ID a certificate claims, read without verifying anything: its
 * URI SAN when it has exactly one and that one is a well-formed SPIFFE ID
 * (so it is plain ASCII of bounded length, safe for a log line). Otherwise,
 * or if the certificate cannot be parsed, undefined. For audit records of
 * refused peers only: never an input to an access decision.
 */
export function claimedSpiffeId(der: Uint8Array): string | undefined {
  try {
    const uris = readUriSans(der);
    if (uris.length !== 1) {
      return undefined;
    }
    return parseSpiffeId(uris[0] as string).toString();
  } catch {
    return undefined;
  }
}

function truncate(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}…`;
}
