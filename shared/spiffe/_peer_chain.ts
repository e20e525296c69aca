/**
 * The certificate chain a TLS peer presented, as DER, for `verifyX509Svid`:
 * used on both ends, by the server's `PeerVerifier` and the client's
 * `checkServerSvid`.
 */
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import { MAX_CHAIN_LENGTH } from './x509_svid.ts';

/**
 * A hostile peer cannot make us walk an endless issuer chain. One more than
 * the verifier accepts, so an over-long chain is refused, not cut short.
 */
const MAX_COLLECTED_CHAIN = MAX_CHAIN_LENGTH + 1;

/** Collects the peer's certificate chain as DER, leaf first. */
export function peerChain(certificate: PeerCertificate | DetailedPeerCertificate): Uint8Array[] {
  const chain: Uint8Array[] = [];
  const seen = new Set<string>();
  let current: PeerCertificate | undefined = certificate;
  while (current?.raw !== undefined && chain.length < MAX_COLLECTED_CHAIN) {
    if (seen.has(current.fingerprint256)) {
      break;
    }
    seen.add(current.fingerprint256);
    chain.push(new Uint8Array(current.raw));
    const next: PeerCertificate | undefined = (current as Partial<DetailedPeerCertificate>)
      .issuerCertificate;
    current = next;
  }
  return chain;
}
