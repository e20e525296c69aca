/**
 * The X509-SVID rules for single certificates (X509-SVID.md, spiffe.md §2.2
 * steps 2–6): what a leaf must be, what a certificate that signs others must
 * be, how strong a key must be, and go-spiffe's check that our own private
 * key belongs to our leaf.
 * Path building and validation are in `_chain_path.ts`.
 */
import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  type X509Certificate as NodeX509Certificate,
} from 'node:crypto';
import { InvalidSpiffeIdError, SvidInvalidError } from '../errors/errors.ts';
import {
  type CertInfo,
  KU_CRL_SIGN,
  KU_DIGITAL_SIGNATURE,
  KU_KEY_CERT_SIGN,
} from './_cert_cache.ts';
import { bytesEqual } from './der.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe_id.ts';

/**
 * The shortest RSA key accepted in any certificate of a path, leaf or CA
 * (NIST SP 800-57 part 1: 2048 bits for anything in use after 2010; SPIRE's
 * RSA choice is rsa-2048). X509-SVID sets no key size, so this is a rule of
 * ours: a 1024-bit key can be factored by a determined attacker, who could
 * then sign SVIDs or impersonate one.
 */
export const MIN_RSA_KEY_BITS = 2048;

const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** How messages name an SVID: what it is, then its ID in quotes. */
export function svidLabel(what: string, id: SpiffeId): string {
  return `${what} ${JSON.stringify(id.toString())}`;
}

/**
 * Steps 2–6 on a leaf: exactly one URI SAN, a strict SPIFFE ID with a
 * non-root path, cA=false, keyUsage present with digitalSignature and without
 * keyCertSign/cRLSign, and an EKU (if present) with serverAuth and clientAuth.
 */
export function checkLeaf(leaf: CertInfo, what: string): SpiffeId {
  // Step 2: count the URI entries of the SAN extension itself.
  if (leaf.uriSans.length === 0) {
    throw new SvidInvalidError(`${what} leaf certificate has no URI SAN`);
  }
  if (leaf.uriSans.length > 1) {
    throw new SvidInvalidError(
      `${what} leaf certificate has ${leaf.uriSans.length} URI SANs; exactly one is allowed`,
    );
  }
  // Step 3: the strict parser of spiffe_id.ts; its message quotes the URI.
  let id: SpiffeId;
  try {
    id = parseSpiffeId(leaf.uriSans[0] as string);
  } catch (err) {
    if (err instanceof InvalidSpiffeIdError) {
      throw new SvidInvalidError(`${what} has an invalid SPIFFE ID: ${err.message}`, {
        cause: err,
      });
    }
    throw err;
  }
  const label = svidLabel(what, id);
  // Step 4: X509-SVID §3.1, a leaf ID names a workload, not the trust domain.
  if (id.path === '') {
    throw new SvidInvalidError(`${label} has no path; a leaf SVID needs a non-root path`);
  }
  checkKeyStrength(leaf, label);
  // Step 5.
  if (leaf.isCa) {
    throw new SvidInvalidError(`${label} is a CA certificate; a leaf must have cA=false`);
  }
  // Step 6 (X509-SVID §4.3): keyUsage is mandatory on every SVID.
  if (leaf.keyUsage === undefined) {
    throw new SvidInvalidError(`${label} has no keyUsage extension`);
  }
  if ((leaf.keyUsage & KU_KEY_CERT_SIGN) !== 0) {
    throw new SvidInvalidError(
      `${label} has the keyCertSign key usage, which a leaf must not have`,
    );
  }
  if ((leaf.keyUsage & KU_CRL_SIGN) !== 0) {
    throw new SvidInvalidError(`${label} has the cRLSign key usage, which a leaf must not have`);
  }
  if ((leaf.keyUsage & KU_DIGITAL_SIGNATURE) === 0) {
    throw new SvidInvalidError(`${label} lacks the digitalSignature key usage`);
  }
  // X509-SVID §4.4: an EKU, if present, must hold both serverAuth and
  // clientAuth. We demand both whatever role the peer plays here, because an
  // SVID is meant to serve as client and server alike; an SVID that holds only
  // one is misissued, and accepting it on one side only would make failures
  // depend on the direction of the connection.
  if (leaf.extKeyUsage !== undefined) {
    for (const [oid, name] of [
      [EKU_SERVER_AUTH, 'serverAuth'],
      [EKU_CLIENT_AUTH, 'clientAuth'],
    ] as const) {
      if (!leaf.extKeyUsage.includes(oid)) {
        throw new SvidInvalidError(
          `${label} has an extendedKeyUsage without ${name}; an SVID must allow both serverAuth and clientAuth`,
        );
      }
    }
  }
  return id;
}

/** A certificate that signs others: cA=true and keyCertSign (X509-SVID §4.1, §4.3), and a strong key. */
export function checkSigningCertificate(info: CertInfo, what: string): void {
  if (!info.isCa) {
    throw new SvidInvalidError(`${what} is not a CA certificate`);
  }
  if (info.keyUsage === undefined || (info.keyUsage & KU_KEY_CERT_SIGN) === 0) {
    throw new SvidInvalidError(`${what} lacks the keyCertSign key usage`);
  }
  checkKeyStrength(info, what);
}

/** An RSA key of at least `MIN_RSA_KEY_BITS` (other kinds of key are the TLS layer's to judge). */
export function checkKeyStrength(info: CertInfo, what: string): void {
  if (info.rsaKeyBits !== undefined && info.rsaKeyBits < MIN_RSA_KEY_BITS) {
    throw new SvidInvalidError(
      `${what} has a ${info.rsaKeyBits}-bit RSA key; at least ${MIN_RSA_KEY_BITS} bits are required`,
    );
  }
}

/** go-spiffe `Parse`: the private key must belong to the leaf's public key. */
export function checkKeyMatchesLeaf(
  leaf: NodeX509Certificate,
  keyPkcs8: Uint8Array,
  label: string,
): void {
  let privateKey: KeyObject;
  try {
    // A view, not a copy, so that no second copy of the key is left behind.
    const view = Buffer.from(keyPkcs8.buffer, keyPkcs8.byteOffset, keyPkcs8.byteLength);
    privateKey = createPrivateKey({ key: view, format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw new SvidInvalidError(`Private key of ${label} is not a PKCS#8 private key`, {
      cause: err,
    });
  }
  let matches: boolean;
  try {
    const fromKey = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
    const fromLeaf = leaf.publicKey.export({
      format: 'der',
      type: 'spki',
    });
    matches = bytesEqual(fromKey, fromLeaf);
  } catch (err) {
    throw new SvidInvalidError(`Private key of ${label} could not be compared with the leaf`, {
      cause: err,
    });
  }
  if (!matches) {
    throw new SvidInvalidError(`Private key of ${label} does not match the leaf certificate`);
  }
}
