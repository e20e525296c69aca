/**
 * What SVID verification needs from a certificate, read once and remembered.
 *
 * Two parsers read every certificate: the ASN.1 schema of RFC 5280
 * (`@peculiar/asn1-x509` over `@peculiar/asn1-schema`) for the extensions
 * (node:crypto exposes neither the keyUsage bits nor the raw URI SAN entries,
 * nor which extensions are critical), and node:crypto for the issuer and
 * signature checks, which must be synchronous. These are the schema classes
 * @peculiar/x509 is built on, without its wrapper, whose dependency injection
 * needs a Reflect metadata polyfill and which costs every program tens of
 * milliseconds to load (the agent keeps it for building certificates, in
 * `_x509.ts`). Parsing costs more than the rest of a verification, so what
 * was read from a certificate is remembered by its exact DER bytes in a small
 * LRU cache (the facts depend on those bytes alone; time and trust are checked
 * on every call). Peers that reconnect with the same SVID, and intermediates
 * shared by a whole trust domain, are then parsed once. Bundle roots are
 * parsed once per root object.
 */
import { type KeyObject, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityInfoAccessSyntax,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  CertificatePolicies,
  CRLDistributionPoints,
  ExtendedKeyUsage,
  IssueAlternativeName,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_certificatePolicies,
  id_ce_cRLDistributionPoints,
  id_ce_extKeyUsage,
  id_ce_issuerAltName,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_pe_authorityInfoAccess,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  type Time,
} from '@peculiar/asn1-x509';
import { SvidInvalidError } from '../errors/errors.ts';

/** Bits of `CertInfo.keyUsage` (bit 0 of the BIT STRING is 1). */
export const KU_DIGITAL_SIGNATURE = KeyUsageFlags.digitalSignature;
export const KU_KEY_CERT_SIGN = KeyUsageFlags.keyCertSign;
export const KU_CRL_SIGN = KeyUsageFlags.cRLSign;

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

/** Extensions this module understands; any other critical one is refused (RFC 5280 §4.2). */
const KNOWN_EXTENSIONS: ReadonlySet<string> = new Set([
  id_ce_subjectKeyIdentifier,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_basicConstraints,
  id_ce_authorityKeyIdentifier,
  id_ce_extKeyUsage,
]);

/**
 * Extensions whose value must parse by its schema when present, critical or
 * not, though nothing here reads them: a malformed one makes the whole
 * certificate unparsable, as it did when @peculiar/x509 read these (fail
 * closed on a certificate no careful CA would issue).
 */
const VALIDATED_ONLY: ReadonlyMap<string, new () => object> = new Map<string, new () => object>([
  [id_ce_subjectKeyIdentifier, SubjectKeyIdentifier],
  [id_ce_authorityKeyIdentifier, AuthorityKeyIdentifier],
  [id_ce_cRLDistributionPoints, CRLDistributionPoints],
  [id_pe_authorityInfoAccess, AuthorityInfoAccessSyntax],
  [id_ce_issuerAltName, IssueAlternativeName],
  [id_ce_certificatePolicies, CertificatePolicies],
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
 * Reads the facts this module needs from one DER certificate. Throws
 * `SvidInvalidError` if the certificate or one of the extensions above cannot
 * be parsed, if an extension appears twice, or if an extension we do not
 * understand is critical. Only URI entries of the SAN count; entries of other
 * kinds (DNS names, otherName…) are allowed beside them (X509-SVID §2).
 */
function readCertInfo(der: Uint8Array, publicKey: KeyObject, what: string): CertInfo {
  let certificate: Certificate;
  try {
    certificate = AsnConvert.parse(der, Certificate);
  } catch (err) {
    throw new SvidInvalidError(`${what} could not be parsed`, { cause: err });
  }
  const tbs = certificate.tbsCertificate;
  const seen = new Set<string>();
  let uriSans: string[] = [];
  let isCa = false;
  let pathLength: number | undefined;
  let keyUsage: number | undefined;
  let extKeyUsage: string[] | undefined;
  for (const ext of tbs.extensions ?? []) {
    const type = ext.extnID;
    if (seen.has(type)) {
      throw new SvidInvalidError(`${what} has more than one extension "${type}"`);
    }
    seen.add(type);
    try {
      if (type === id_ce_subjectAltName) {
        uriSans = uriEntries(AsnConvert.parse(ext.extnValue, SubjectAlternativeName));
      } else if (type === id_ce_basicConstraints) {
        const constraints = AsnConvert.parse(ext.extnValue, BasicConstraints);
        isCa = constraints.cA;
        pathLength = constraints.pathLenConstraint;
      } else if (type === id_ce_keyUsage) {
        keyUsage = AsnConvert.parse(ext.extnValue, KeyUsage).toNumber();
      } else if (type === id_ce_extKeyUsage) {
        extKeyUsage = Array.from(AsnConvert.parse(ext.extnValue, ExtendedKeyUsage), String);
      } else {
        const schema = VALIDATED_ONLY.get(type);
        if (schema !== undefined) {
          AsnConvert.parse(ext.extnValue, schema);
        }
      }
    } catch (err) {
      throw new SvidInvalidError(`${what} could not be parsed`, { cause: err });
    }
    if (ext.critical && !KNOWN_EXTENSIONS.has(type)) {
      throw new SvidInvalidError(`${what} has an unsupported critical extension "${type}"`);
    }
  }
  let notBefore: Date;
  let notAfter: Date;
  try {
    notBefore = timeOf(tbs.validity.notBefore);
    notAfter = timeOf(tbs.validity.notAfter);
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
    serialNumber: serialHex(new Uint8Array(tbs.serialNumber)),
    rsaKeyBits,
  };
}

/**
 * The URI entries of a certificate's (first) SAN extension, read without
 * checking anything else; throws if the certificate or the SAN cannot be
 * parsed. For naming a refused peer only.
 */
export function readUriSans(der: Uint8Array): string[] {
  const certificate = AsnConvert.parse(der, Certificate);
  const san = certificate.tbsCertificate.extensions?.find(
    (ext) => ext.extnID === id_ce_subjectAltName,
  );
  if (san === undefined) {
    return [];
  }
  return uriEntries(AsnConvert.parse(san.extnValue, SubjectAlternativeName));
}

/** The URI entries of a SAN, as a plain array; the kind of each entry is its ASN.1 CHOICE tag. */
function uriEntries(names: SubjectAlternativeName): string[] {
  const uris: string[] = [];
  for (const name of names) {
    if (name.uniformResourceIdentifier !== undefined) {
      uris.push(name.uniformResourceIdentifier);
    }
  }
  return uris;
}

/** UTCTime or GeneralizedTime, whichever the CHOICE holds. */
function timeOf(time: Time): Date {
  const date = time.utcTime ?? time.generalTime;
  if (date === undefined || Number.isNaN(date.getTime())) {
    throw new TypeError('a validity time is missing or invalid');
  }
  return date;
}

/**
 * The serial number as lowercase hex of its INTEGER content, without the
 * 00 that DER puts before a first byte of 0x80 or more.
 */
function serialHex(content: Uint8Array): string {
  const bytes =
    content.length > 1 && content[0] === 0 && (content[1] as number) > 0x7f
      ? content.subarray(1)
      : content;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** The certificate's public key; one node:crypto cannot read is refused (it could verify nothing). */
function publicKeyOf(node: NodeX509Certificate, what: string): KeyObject {
  try {
    return node.publicKey;
  } catch (err) {
    throw new SvidInvalidError(`${what} has a public key that could not be read`, { cause: err });
  }
}
