/**
 * SPIFFE mTLS options for node:https on Node and Deno, built from an
 * X509SvidSource: our current SVID as the certificate, and as roots only the
 * bundle of our own trust domain (one trust domain per SecureContext, so roots
 * of different trust domains are never merged). Callers build them again
 * after each rotation of the source.
 *
 * OpenSSL verifies the peer's chain against those roots; the second layer
 * re-checks it by SPIFFE's rules and authorizes the peer's SPIFFE ID:
 * `PeerVerifier` (peer_verifier.ts) on a server, `checkServerSvid`
 * (check_server_svid.ts) on a client.
 */
import { constants as cryptoConstants } from 'node:crypto';
import type { AgentOptions } from 'node:https';
import { SvidInvalidError } from '../errors/errors.ts';
import { checkServerSvid } from './check_server_svid.ts';
import type { Matcher } from './match.ts';
import type { X509SvidSource } from './x509_source.ts';

/** TLS 1.3 only: every SPIFFE implementation we talk to supports it. */
const MIN_TLS_VERSION = 'TLSv1.3';

/** The key, certificate chain and trust roots for one SecureContext. */
interface TlsCredentials {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
}

/**
 * The current credentials of a source: our SVID, and as roots only the bundle
 * of our own trust domain.
 */
function credentialsFromSource(source: X509SvidSource): TlsCredentials {
  const svid = source.getX509Svid();
  const bundle = source.getX509Bundles().get(svid.id.trustDomain);
  if (bundle === undefined) {
    throw new SvidInvalidError(
      `No trust bundle for our own trust domain "${svid.id.trustDomain.name}"`,
    );
  }
  return { key: svid.privateKeyPem(), cert: svid.certificatePem(), ca: bundle.pem() };
}

/**
 * Options for `https.createServer`: a client certificate requested, TLS 1.3.
 * No TLS session is ever resumed: with SSL_OP_NO_TICKET OpenSSL issues only
 * stateful TLS 1.3 tickets, and Node's server keeps no session cache to resume
 * them from, so every connection does a full handshake and is verified in
 * full. `PeerVerifier.admit` would re-verify a resumed one anyway.
 *
 * `rejectUnauthorized` is off on purpose, and nothing unverified gets through
 * because of it: OpenSSL still verifies the chain against our roots, and
 * `PeerVerifier.admit` refuses every connection whose `socket.authorized` is
 * false (no certificate, an unknown CA, outside its validity window) before a
 * request is read. With it on, Node and Deno destroy such a connection
 * themselves after the handshake, without a reason and without telling the
 * server, so the refusal could be neither logged with its cause nor audited.
 */
export function serverTlsOptions(source: X509SvidSource) {
  return {
    ...credentialsFromSource(source),
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: MIN_TLS_VERSION,
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  } as const;
}

/**
 * Options for an `https.Agent` that presents our SVID and accepts only a server
 * whose SVID the matcher allows. Keep-alive reuses connections; cached TLS
 * sessions are off so that every new connection checks the server again.
 */
export function clientAgentOptions(source: X509SvidSource, authorize: Matcher): AgentOptions {
  return {
    ...credentialsFromSource(source),
    keepAlive: true,
    maxCachedSessions: 0,
    minVersion: MIN_TLS_VERSION,
    checkServerIdentity: checkServerSvid(source, authorize),
  };
}
