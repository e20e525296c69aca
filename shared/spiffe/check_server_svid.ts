/**
 * The client's check of the server it connected to: hostnames mean nothing
 * for SVIDs, so the server's chain is verified as an X509-SVID and its SPIFFE
 * ID authorized, in place of Node's hostname check.
 */
import type { PeerCertificate } from 'node:tls';
import { isBrokerError, SvidInvalidError } from '../errors/errors.ts';
import { peerChain } from './_peer_chain.ts';
import type { Matcher } from './match.ts';
import type { X509SvidSource } from './x509_source.ts';
import { verifyX509Svid } from './x509_svid.ts';

/** A `checkServerIdentity` for clients: the server must present an SVID `authorize` allows. */
export function checkServerSvid(
  source: X509SvidSource,
  authorize: Matcher,
): (host: string, certificate: PeerCertificate) => Error | undefined {
  return function checkServerIdentity(_host, certificate) {
    try {
      const peer = verifyX509Svid(peerChain(certificate), source.getX509Bundles(), {
        role: 'server',
      });
      if (!authorize(peer.id)) {
        return new SvidInvalidError(
          `Server "${peer.id}" is not the expected one: expected ${authorize.description}`,
        );
      }
      return undefined;
    } catch (err) {
      return isBrokerError(err) ? err : new SvidInvalidError(String(err));
    }
  };
}
