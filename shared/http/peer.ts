/**
 * `verifiedPeer`: the check of the base app (shared/http/app.ts) that fails
 * closed unless the connection's peer was verified as an X509-SVID. The peer
 * is looked up, never re-parsed: the TLS layer verified it once per
 * connection.
 */

import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import { UnauthenticatedError } from '../errors/errors.ts';
import type { PeerVerifier } from '../spiffe/peer_verifier.ts';
import type { VerifiedSvid } from '../spiffe/x509_svid.ts';
import type { AuditVariables } from './audit.ts';

export type PeerEnv = {
  Bindings: HttpBindings;
  Variables: { peer: VerifiedSvid } & AuditVariables;
};

/** Finds the verified peer of a request; injected so route tests need no socket. */
export type GetPeer = (c: Context) => VerifiedSvid | undefined;

/**
 * The request's verified peer, also set as `c.get('peer')`; throws
 * UnauthenticatedError when there is none or its SVID has expired.
 */
export function verifiedPeer(c: Context, getPeer: GetPeer, nowMs: number): VerifiedSvid {
  const peer = getPeer(c);
  if (peer === undefined) {
    throw new UnauthenticatedError();
  }
  // A kept-alive connection can outlive the SVID it was opened with.
  if (peer.notAfter.getTime() <= nowMs) {
    c.header('Connection', 'close');
    throw new UnauthenticatedError('The client X509-SVID has expired: reconnect with a new one');
  }
  c.set('peer', peer);
  return peer;
}

/** The production GetPeer: the verifier's per-socket record. */
export function peerFromConnection(verifier: PeerVerifier): GetPeer {
  const peerOf = peerOfRequest(verifier);
  return function getPeerFromConnection(c) {
    const incoming = (c.env as HttpBindings | undefined)?.incoming;
    return incoming === undefined ? undefined : peerOf(incoming);
  };
}

/** The verified peer of a node:http request's connection, as the verifier recorded it. */
export function peerOfRequest(
  verifier: PeerVerifier,
): (request: IncomingMessage) => VerifiedSvid | undefined {
  return function peerOfConnection(request) {
    const socket = request.socket as TLSSocket | null | undefined;
    return socket == null ? undefined : verifier.peerOf(socket);
  };
}
