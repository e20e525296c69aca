/**
 * Verification of a server's peers, once per connection: the chain OpenSSL
 * accepted (against the roots of our own trust domain, see mtls.ts) is
 * re-checked by X509-SVID §5 with `verifyX509Svid`, and the peer's SPIFFE ID
 * authorized with a Matcher. The server destroys a refused connection before
 * any request on it is parsed. The verifier counts admissions and refusals
 * and reports every refusal (reason, remote address, the peer's SPIFFE ID
 * when one could be read) to its listeners, which write it to the audit log.
 */
import type { TLSSocket } from 'node:tls';
import { SvidInvalidError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { peerChain } from './_peer_chain.ts';
import { x509 } from './_x509.ts';
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
  /** `address:port` of the peer. */
  readonly remoteAddress?: string;
}

/** Told about each refusal after the connection was destroyed. */
export type RefusalListener = (refusal: PeerRefusal) => void;

export interface PeerVerifierOptions {
  readonly source: X509SvidSource;
  /** Which peer SPIFFE IDs may connect at all. */
  readonly authorize: Matcher;
  readonly logger: Logger;
}

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
  #refused = 0;
  #admitted = 0;
  #suspendedReason: string | undefined;

  constructor(options: PeerVerifierOptions) {
    this.#source = options.source;
    this.#authorize = options.authorize;
    this.#logger = options.logger;
  }

  /** Count of connections refused since start (TLS errors and failed checks). */
  get refusedCount(): number {
    return this.#refused;
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

  /** Verifies and authorizes the peer of a new connection; destroys it if refused. */
  admit(socket: TLSSocket): VerifiedSvid | undefined {
    let verified: VerifiedSvid | undefined;
    try {
      if (this.#suspendedReason !== undefined) {
        throw new SvidInvalidError(`Not serving: ${this.#suspendedReason}`);
      }
      verified = this.#verify(socket);
      if (!this.#authorize(verified.id)) {
        throw new SvidInvalidError(
          `Peer "${verified.id}" is not allowed here: expected ${this.#authorize.description}`,
        );
      }
      this.#peers.set(socket, verified);
      this.#admitted += 1;
      return verified;
    } catch (err) {
      this.refuse(socket, {
        reason: err instanceof Error ? err.message : String(err),
        ...(verified === undefined ? {} : { peerId: verified.id.toString() }),
      });
      return undefined;
    }
  }

  /** The verified peer of a socket this verifier admitted, if any. */
  peerOf(socket: TLSSocket): VerifiedSvid | undefined {
    return this.#peers.get(socket);
  }

  /**
   * Records a refusal (from `admit` or a TLS-level error) and closes the
   * socket. The remote address (with its port) and the SPIFFE ID the peer's
   * certificate claims are read from the socket when the refusal lacks them.
   * Listeners run after the socket is destroyed; one that throws is logged
   * and cannot undo the refusal.
   */
  refuse(socket: TLSSocket | undefined, refusal: PeerRefusal): void {
    this.#refused += 1;
    const remoteAddress =
      (socket === undefined ? undefined : remoteOf(socket)) ?? refusal.remoteAddress;
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
    this.#logger.warn('Refused a TLS peer', { ...recorded });
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
    const certificate = new x509.X509Certificate(new Uint8Array(der));
    const san = certificate.getExtension(x509.SubjectAlternativeNameExtension);
    const uris = san?.names.items.filter((name) => name.type === 'url') ?? [];
    if (uris.length !== 1) {
      return undefined;
    }
    return parseSpiffeId((uris[0] as x509.GeneralName).value).toString();
  } catch {
    return undefined;
  }
}

function truncate(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}…`;
}
