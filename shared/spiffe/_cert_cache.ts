/**
 * What SVID verification needs from a certificate, read once and remembered.
 *
 * Two parsers read every certificate: `@peculiar/x509` for the extensions
 * (node:crypto exposes neither the keyUsage bits nor the raw URI SAN
 * entries), and node:crypto for the issuer and signature checks, which must be
 * synchronous. Parsing with @peculiar/x509 costs about a millisecond per
 * certificate, more than the rest of a verification, so what was read from a
 * certificate is remembered by its exact DER bytes in a small LRU cache (the
 * facts depend on those bytes alone; time and trust are checked on every
 * call). Peers that reconnect with the same SVID, and intermediates shared by
 * a whole trust domain, are then parsed once. Bundle roots are parsed once per
 * root object.
 */
import { type KeyObject, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { SvidInvalidError } from '../errors/errors.ts';
import { x509 } from './_x509.ts';

/** Bits of `CertInfo.keyUsage`. */
export const KU_DIGITAL_SIGNATURE = x509.KeyUsageFlags.digitalSignature;
export const KU_KEY_CERT_SIGN = x509.KeyUsageFlags.keyCertSign;
export const KU_CRL_SIGN = x509.KeyUsageFlags.cRLSign;

/**
 * What the SVID rules and path validation need from one certificate, read
 * once. `keyUsage` is undefined when the extension is absent; `extKeyUsage`
 * likewise.
 */
export interface CertInfo {
  readonly der: Uint8Array;
  readonly uriSans: readonly string[];
  readonly isCa: boolean;
  readonly pathLength: number | undefined;
  readonly keyUsage: number | undefined;
  readonly extKeyUsage: readonly string[] | undefined;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialNumber: string;
  /** The modulus length of an RSA key (RSA-PSS too); undefined for any other kind of key. */
  readonly rsaKeyBits: number | undefined;
}

/** A parsed certificate: its facts plus the node:crypto object for signatures. */
export interface ParsedCert {
  readonly info: CertInfo;
  readonly node: NodeX509Certificate;
  /** Read once with the certificate, as node:crypto builds a new KeyObject per access. */
  readonly publicKey: KeyObject;
}

const OID_SUBJECT_KEY_IDENTIFIER = '2.5.29.14';
const OID_KEY_USAGE = '2.5.29.15';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_AUTHORITY_KEY_IDENTIFIER = '2.5.29.35';
const OID_EXT_KEY_USAGE = '2.5.29.37';
/** Extensions this module understands; any other critical one is refused (RFC 5280 §4.2). */
const KNOWN_EXTENSIONS: ReadonlySet<string> = new Set([
  OID_SUBJECT_KEY_IDENTIFIER,
  OID_KEY_USAGE,
  OID_SUBJECT_ALT_NAME,
  OID_BASIC_CONSTRAINTS,
  OID_AUTHORITY_KEY_IDENTIFIER,
  OID_EXT_KEY_USAGE,
]);

/** How many parsed certificates the cache keeps (least recently used go first). */
const MAX_CACHED_CERTIFICATES = 1024;
/** Parsed certificates keyed by their DER as a latin1 string (one char per byte). */
const CERT_CACHE = new Map<string, ParsedCert>();
/** Roots of bundles, parsed once per root object; an unreadable root is remembered too. */
const ROOT_CACHE = new WeakMap<NodeX509Certificate, ParsedCert | Error>();

/**
 * Parses one certificate of a chain, or takes it from the cache. Equal DER
 * bytes give the same object, which path building relies on to use a
 * certificate sent twice only once.
 */
export function parseCertificate(der: Uint8Array, what: string): ParsedCert {
  const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
  const cached = CERT_CACHE.get(key);
  if (cached !== undefined) {
    // Move to the most recently used end.
    CERT_CACHE.delete(key);
    CERT_CACHE.set(key, cached);
    return cached;
  }
  const own = new Uint8Array(der);
  // node:crypto (native, fast) first, so that garbage fails cheaply.
  let node: NodeX509Certificate;
  try {
    node = new NodeX509Certificate(own);
  } catch (err) {
    throw new SvidInvalidError(`${what} could not be parsed`, { cause: err });
  }
  const publicKey = publicKeyOf(node, what);
  const info = readCertInfo(own, publicKey, what);
  const parsed: ParsedCert = { info, node, publicKey };
  CERT_CACHE.set(key, parsed);
  if (CERT_CACHE.size > MAX_CACHED_CERTIFICATES) {
    const oldest = CERT_CACHE.keys().next();
    if (oldest.done !== true) {
      CERT_CACHE.delete(oldest.value);
    }
  }
  return parsed;
}

/** A bundle root, parsed on first use; an `Error` if it cannot be read. */
export function parseRoot(root: NodeX509Certificate): ParsedCert | Error {
  const cached = ROOT_CACHE.get(root);
  if (cached !== undefined) {
    return cached;
  }
  let result: ParsedCert | Error;
  try {
    const what = 'Bundle root certificate';
    const publicKey = publicKeyOf(root, what);
    const info = readCertInfo(new Uint8Array(root.raw), publicKey, what);
    result = { info, node: root, publicKey };
  } catch (err) {
    // An unreadable root can never anchor a path.
    result = err instanceof Error ? err : new Error(String(err));
  }
  ROOT_CACHE.set(root, result);
  return result;
}

/**
 * Reads the facts this module needs from one DER certificate with
 * @peculiar/x509. Throws `SvidInvalidError` if the certificate or one of its
 * extensions cannot be parsed, if an extension appears twice, or if an
 * extension we do not understand is critical. @peculiar/x509 cannot read some
 * otherName SAN entries; such a certificate is refused as unparsable, which
 * fails closed.
 */
function readCertInfo(der: Uint8Array, publicKey: KeyObject, what: string): CertInfo {
  let cert: x509.X509Certificate;
  let extensions: readonly x509.Extension[];
  try {
    cert = new x509.X509Certificate(der);
    extensions = cert.extensions;
  } catch (err) {
    throw new SvidInvalidError(`${what} could not be parsed`, { cause: err });
  }
  const seen = new Set<string>();
  let uriSans: string[] = [];
  let isCa = false;
  let pathLength: number | undefined;
  let keyUsage: number | undefined;
  let extKeyUsage: string[] | undefined;
  for (const ext of extensions) {
    if (seen.has(ext.type)) {
      throw new SvidInvalidError(`${what} has more than one extension "${ext.type}"`);
    }
    seen.add(ext.type);
    if (ext instanceof x509.SubjectAlternativeNameExtension) {
      // The GeneralName type comes from the ASN.1 CHOICE tag of each entry.
      uriSans = ext.names.items.filter((name) => name.type === 'url').map((name) => name.value);
    } else if (ext instanceof x509.BasicConstraintsExtension) {
      isCa = ext.ca;
      pathLength = ext.pathLength;
    } else if (ext instanceof x509.KeyUsagesExtension) {
      keyUsage = ext.usages;
    } else if (ext instanceof x509.ExtendedKeyUsageExtension) {
      extKeyUsage = ext.usages.map(String);
    } else if (ext.critical && !KNOWN_EXTENSIONS.has(ext.type)) {
      throw new SvidInvalidError(`${what} has an unsupported critical extension "${ext.type}"`);
    }
  }
  let notBefore: Date;
  let notAfter: Date;
  let serialNumber: string;
  try {
    notBefore = cert.notBefore;
    notAfter = cert.notAfter;
    serialNumber = cert.serialNumber.toLowerCase();
  } catch (err) {
    throw new SvidInvalidError(`${what} could not be parsed`, { cause: err });
  }
  const keyType = publicKey.asymmetricKeyType;
  const rsaKeyBits =
    keyType === 'rsa' || keyType === 'rsa-pss'
      ? (publicKey.asymmetricKeyDetails?.modulusLength ?? 0)
      : undefined;
  return {
    der,
    uriSans,
    isCa,
    pathLength,
    keyUsage,
    extKeyUsage,
    notBefore,
    notAfter,
    serialNumber,
    rsaKeyBits,
  };
}

/** The certificate's public key; one node:crypto cannot read is refused (it could verify nothing). */
function publicKeyOf(node: NodeX509Certificate, what: string): KeyObject {
  try {
    return node.publicKey;
  } catch (err) {
    throw new SvidInvalidError(`${what} has a public key that could not be read`, { cause: err });
  }
}
