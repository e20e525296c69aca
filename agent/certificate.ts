/**
 * Minting of X.509 certificates (CA and leaf) with EC P-256 keys. The agent's
 * CA uses it for X509-SVIDs; tests use it to build good and deliberately bad
 * certificates. It writes nothing to disk.
 */
import type { webcrypto } from 'node:crypto';
import { x509 } from '../shared/spiffe/_x509.ts';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export type KeyUsageName =
  | 'digitalSignature'
  | 'keyEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign';

export type ExtKeyUsageName = 'serverAuth' | 'clientAuth';

export interface CertificateProfile {
  /** Distinguished name, e.g. `O=SPIKE, CN=agent`. Empty means an empty subject. */
  readonly subject: string;
  /** URI SANs, written as given (tests need invalid ones too). */
  readonly uriSans?: readonly string[];
  readonly dnsSans?: readonly string[];
  readonly isCa: boolean;
  readonly pathLength?: number;
  /** Key usages; an empty list omits the extension. */
  readonly keyUsage: readonly KeyUsageName[];
  /** Extended key usages; absent omits the extension. */
  readonly extKeyUsage?: readonly ExtKeyUsageName[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export type { CryptoKey, CryptoKeyPair };

export interface Issuer {
  readonly certificate: x509.X509Certificate;
  readonly privateKey: CryptoKey;
}

export interface IssuedCertificate {
  readonly certificate: x509.X509Certificate;
  /** DER of the certificate. */
  readonly der: Uint8Array;
  readonly privateKey: CryptoKey;
  /** Unencrypted PKCS#8 DER of the private key (only if the key is extractable). */
  readonly privateKeyPkcs8: Uint8Array;
}

const KEY_USAGE_FLAGS: Record<KeyUsageName, number> = {
  digitalSignature: x509.KeyUsageFlags.digitalSignature,
  keyEncipherment: x509.KeyUsageFlags.keyEncipherment,
  keyAgreement: x509.KeyUsageFlags.keyAgreement,
  keyCertSign: x509.KeyUsageFlags.keyCertSign,
  cRLSign: x509.KeyUsageFlags.cRLSign,
};

const EXT_KEY_USAGE_OIDS: Record<ExtKeyUsageName, string> = {
  serverAuth: x509.ExtendedKeyUsage.serverAuth,
  clientAuth: x509.ExtendedKeyUsage.clientAuth,
};

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** Imports an unencrypted PKCS#8 P-256 key as a non-extractable signing key. */
export async function importSigningKey(pkcs8: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('pkcs8', toArrayBuffer(pkcs8), EC_ALGORITHM, false, ['sign']);
}

/**
 * Issues a certificate for a fresh key pair. Without an issuer the
 * certificate is self-signed (a root CA).
 */
export async function issueCertificate(
  profile: CertificateProfile,
  issuer?: Issuer,
): Promise<IssuedCertificate> {
  const keys = await generateKeyPair();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(profile.isCa, profile.pathLength, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (profile.keyUsage.length > 0) {
    let flags = 0;
    for (const usage of profile.keyUsage) {
      flags |= KEY_USAGE_FLAGS[usage];
    }
    extensions.push(new x509.KeyUsagesExtension(flags, true));
  }
  if (profile.extKeyUsage !== undefined) {
    extensions.push(
      new x509.ExtendedKeyUsageExtension(profile.extKeyUsage.map((u) => EXT_KEY_USAGE_OIDS[u])),
    );
  }
  const names: x509.JsonGeneralName[] = [
    ...(profile.uriSans ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(profile.dnsSans ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  if (names.length > 0) {
    // RFC 5280 §4.1.2.6: with an empty subject the SAN extension is critical.
    extensions.push(new x509.SubjectAlternativeNameExtension(names, profile.subject === ''));
  }
  if (issuer !== undefined) {
    extensions.push(
      await x509.AuthorityKeyIdentifierExtension.create(issuer.certificate.publicKey),
    );
  }
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: profile.subject,
    issuer: issuer === undefined ? profile.subject : issuer.certificate.subject,
    notBefore: profile.notBefore,
    notAfter: profile.notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: issuer === undefined ? keys.privateKey : issuer.privateKey,
    extensions,
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    certificate,
    der: new Uint8Array(certificate.rawData),
    privateKey: keys.privateKey,
    privateKeyPkcs8: pkcs8,
  };
}

/** A positive 128-bit serial number, as hex (RFC 5280 allows up to 20 bytes). */
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
