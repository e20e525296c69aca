/**
 * X509-SVIDs (X509-SVID.md): our own SVID as received from the Workload API
 * (`parseX509Svid`), and a peer's chain checked by SPIFFE's rules and
 * verified against the bundle of the peer's own trust domain
 * (`verifyX509Svid`, spiffe.md §2.2).
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
import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  X509Certificate as NodeX509Certificate,
} from 'node:crypto';
import { InvalidSpiffeIdError, SvidInvalidError } from '../errors/errors.ts';
import { x509 } from './_x509.ts';
import { splitDerCertificates, type X509BundleSet } from './bundle.ts';
import { derToPem } from './der.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe_id.ts';

/** Our own identity, as received from the Workload API. */
export interface X509Svid {
  readonly id: SpiffeId;
  /** DER certificates, leaf first, then intermediates. */
  readonly chain: readonly Uint8Array[];
  /** DER PKCS#8 private key of the leaf: a fresh copy on every read. */
  readonly privateKeyPkcs8: Uint8Array;
  /** The leaf's notAfter. */
  readonly notAfter: Date;
  /** The Workload API's hint for telling several SVIDs apart; may be empty. */
  readonly hint: string;
  /** Leaf and intermediates as PEM: what node:tls takes as `cert`. */
  certificatePem(): string;
  /** The key as PKCS#8 PEM: what node:tls takes as `key`. */
  privateKeyPem(): string;
}

/** The outcome of verifying a peer's chain. */
export interface VerifiedSvid {
  readonly id: SpiffeId;
  /**
   * The window in which this verification holds: the latest notBefore and the
   * earliest notAfter over every certificate of the verified path (leaf,
   * intermediates and root), so a cached result never outlives any of them.
   */
  readonly notAfter: Date;
  readonly notBefore: Date;
  /** The leaf's serial number, lowercase hex. */
  readonly serialNumber: string;
}

export interface ParseX509SvidOptions {
  readonly hint?: string;
}

export interface VerifyX509SvidOptions {
  /** The moment to check validity at; defaults to the current time. */
  readonly now?: Date;
  /** Which side of the connection the peer is; used in messages only. */
  readonly role?: 'client' | 'server';
}

/**
 * A path holds at most this many certificates, leaf and root included, and a
 * peer may present at most this many. This bounds the work a hostile chain
 * can cause. The one limit for every place that collects or checks a chain.
 */
export const MAX_CHAIN_LENGTH = 8;
/** Upper bound on the path-building steps, whatever the chain looks like. */
const MAX_PATH_SEARCH_STEPS = 256;
const REDACTED = '[redacted]';

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
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

const KU_DIGITAL_SIGNATURE = x509.KeyUsageFlags.digitalSignature;
const KU_KEY_CERT_SIGN = x509.KeyUsageFlags.keyCertSign;
const KU_CRL_SIGN = x509.KeyUsageFlags.cRLSign;

/**
 * What this module needs from one certificate, read once. `keyUsage` is
 * undefined when the extension is absent; `extKeyUsage` likewise.
 */
interface CertInfo {
  readonly der: Uint8Array;
  readonly uriSans: readonly string[];
  readonly isCa: boolean;
  readonly pathLength: number | undefined;
  readonly keyUsage: number | undefined;
  readonly extKeyUsage: readonly string[] | undefined;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialNumber: string;
}

/** A parsed certificate: its facts plus the node:crypto object for signatures. */
interface ParsedCert {
  readonly info: CertInfo;
  readonly node: NodeX509Certificate;
  /** Created on first use, as node:crypto builds a new KeyObject per access. */
  publicKey: KeyObject | undefined;
}

/** How many parsed certificates the cache keeps (least recently used go first). */
const MAX_CACHED_CERTIFICATES = 1024;
/** Parsed certificates keyed by their DER as a latin1 string (one char per byte). */
const CERT_CACHE = new Map<string, ParsedCert>();
/** Roots of bundles, parsed once per root object; an unreadable root is remembered too. */
const ROOT_CACHE = new WeakMap<NodeX509Certificate, ParsedCert | Error>();

/**
 * Parses our own SVID: `chainDer` is the Workload API's `x509_svid` field
 * (concatenated DER, leaf first) and `keyPkcs8` its `x509_svid_key` field.
 * Applies go-spiffe's `Parse` checks plus the leaf rules of spiffe.md §2.2:
 * exactly one URI SAN holding a leaf SPIFFE ID, a leaf that is no CA and has a
 * proper keyUsage (and EKU, if present), every other certificate a CA with
 * keyCertSign, and a private key that belongs to the leaf.
 */
export function parseX509Svid(
  chainDer: Uint8Array,
  keyPkcs8: Uint8Array,
  options: ParseX509SvidOptions = {},
): X509Svid {
  if (chainDer.length === 0) {
    throw new SvidInvalidError('X509-SVID certificate chain is empty');
  }
  let pieces: Uint8Array[];
  try {
    pieces = splitDerCertificates(chainDer);
  } catch (err) {
    throw new SvidInvalidError('X509-SVID certificate chain is not DER-encoded certificates', {
      cause: err,
    });
  }
  const chain = pieces.map((piece) => new Uint8Array(piece));
  const leaf = parseCertificate(chain[0] as Uint8Array, 'X509-SVID leaf certificate');
  const id = checkLeaf(leaf.info, 'X509-SVID');
  const label = `X509-SVID ${quote(id)}`;
  for (let i = 1; i < chain.length; i++) {
    const what = `Certificate ${i} of ${label}`;
    checkSigningCertificate(parseCertificate(chain[i] as Uint8Array, what).info, what);
  }
  checkKeyMatchesLeaf(leaf.node, keyPkcs8, label);
  return new ParsedX509Svid({
    id,
    chain,
    privateKeyPkcs8: new Uint8Array(keyPkcs8),
    notAfter: new Date(leaf.info.notAfter.getTime()),
    hint: options.hint ?? '',
  });
}

/** The parts of an `X509Svid`, for `createUncheckedX509Svid`. */
export interface X509SvidParts {
  readonly id: SpiffeId;
  /** DER certificates, leaf first. */
  readonly chain: readonly Uint8Array[];
  readonly privateKeyPkcs8: Uint8Array;
  readonly notAfter: Date;
  readonly hint?: string;
}

/**
 * Builds an `X509Svid` from its parts WITHOUT ANY VALIDATION: the chain is
 * not parsed, the ID not compared with the certificate and the key not
 * matched with the leaf. Only for values that were already validated, or for
 * tests that need deliberately bad SVIDs; everything received from outside
 * goes through `parseX509Svid`. The result is the same class as
 * `parseX509Svid` returns (own copies of the bytes, key redacted from JSON,
 * inspect and strings).
 */
export function createUncheckedX509Svid(parts: X509SvidParts): X509Svid {
  return new ParsedX509Svid({
    id: parts.id,
    chain: parts.chain.map((der) => new Uint8Array(der)),
    privateKeyPkcs8: new Uint8Array(parts.privateKeyPkcs8),
    notAfter: new Date(parts.notAfter.getTime()),
    hint: parts.hint ?? '',
  });
}

/**
 * Verifies a peer's chain (leaf first, the rest untrusted intermediates) as an
 * X509-SVID, running spiffe.md §2.2 steps 1–8 in order. Only the bundle of the
 * leaf's own trust domain is consulted. Throws `SvidInvalidError`.
 */
export function verifyX509Svid(
  chain: readonly Uint8Array[],
  bundles: X509BundleSet,
  options: VerifyX509SvidOptions = {},
): VerifiedSvid {
  const now = options.now ?? new Date();
  const what = options.role === undefined ? 'Peer X509-SVID' : `Peer ${options.role} X509-SVID`;
  // Step 1: a leaf, and not more certificates than a path may hold.
  if (chain.length === 0) {
    throw new SvidInvalidError(`${what} certificate chain is empty`);
  }
  if (chain.length > MAX_CHAIN_LENGTH) {
    throw new SvidInvalidError(
      `${what} certificate chain has ${chain.length} certificates; at most ${MAX_CHAIN_LENGTH} are accepted`,
    );
  }
  // Steps 2–6: the leaf's own rules.
  const leaf = parseCertificate(chain[0] as Uint8Array, `${what} leaf certificate`);
  const id = checkLeaf(leaf.info, what);
  const label = `${what} ${quote(id)}`;
  // Step 7: the bundle of the leaf's trust domain, and no other.
  const bundle = bundles.get(id.trustDomain);
  if (bundle === undefined) {
    throw new SvidInvalidError(
      `No trust bundle for trust domain "${id.trustDomain.name}" of ${label}`,
    );
  }
  // Step 8: path validation against that bundle's roots.
  const intermediates = chain
    .slice(1)
    .map((der, i) => parseCertificate(der, `Certificate ${i + 1} of ${label}`));
  const roots: ParsedCert[] = [];
  for (const root of bundle.roots) {
    const parsed = parseRoot(root);
    if (!(parsed instanceof Error)) {
      roots.push(parsed);
    }
  }
  const path = validatePath(leaf, intermediates, roots, {
    now,
    label,
    trustDomain: id.trustDomain.name,
  });
  let notBefore = leaf.info.notBefore;
  let notAfter = leaf.info.notAfter;
  for (const cert of path) {
    if (cert.info.notBefore > notBefore) {
      notBefore = cert.info.notBefore;
    }
    if (cert.info.notAfter < notAfter) {
      notAfter = cert.info.notAfter;
    }
  }
  // Copies: the cached Dates must not be reachable by callers.
  return Object.freeze({
    id,
    notBefore: new Date(notBefore.getTime()),
    notAfter: new Date(notAfter.getTime()),
    serialNumber: leaf.info.serialNumber,
  });
}

class ParsedX509Svid implements X509Svid {
  readonly id: SpiffeId;
  readonly chain: readonly Uint8Array[];
  readonly notAfter: Date;
  readonly hint: string;
  readonly #key: Uint8Array;
  readonly #certificatePem: string;

  constructor(fields: {
    id: SpiffeId;
    chain: readonly Uint8Array[];
    privateKeyPkcs8: Uint8Array;
    notAfter: Date;
    hint: string;
  }) {
    this.id = fields.id;
    this.chain = Object.freeze([...fields.chain]);
    this.notAfter = fields.notAfter;
    this.hint = fields.hint;
    this.#key = fields.privateKeyPkcs8;
    this.#certificatePem = this.chain.map((der) => derToPem(der, 'CERTIFICATE')).join('');
    Object.freeze(this);
  }

  /**
   * A getter on the prototype: never an own property, so never enumerated.
   * Returns a copy, so no caller can change the key this SVID serves.
   */
  get privateKeyPkcs8(): Uint8Array {
    return new Uint8Array(this.#key);
  }

  certificatePem(): string {
    return this.#certificatePem;
  }

  privateKeyPem(): string {
    return derToPem(this.#key, 'PRIVATE KEY');
  }

  toJSON(): string {
    return REDACTED;
  }

  toString(): string {
    return REDACTED;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return REDACTED;
  }

  [Symbol.for('Deno.customInspect')](): string {
    return REDACTED;
  }
}

/**
 * Steps 2–6 on a leaf: exactly one URI SAN, a strict SPIFFE ID with a
 * non-root path, cA=false, keyUsage present with digitalSignature and without
 * keyCertSign/cRLSign, and an EKU (if present) with serverAuth and clientAuth.
 */
function checkLeaf(leaf: CertInfo, what: string): SpiffeId {
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
  const label = `${what} ${quote(id)}`;
  // Step 4: X509-SVID §3.1, a leaf ID names a workload, not the trust domain.
  if (id.path === '') {
    throw new SvidInvalidError(`${label} has no path; a leaf SVID needs a non-root path`);
  }
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

/** A certificate that signs others: cA=true and keyCertSign (X509-SVID §4.1, §4.3). */
function checkSigningCertificate(info: CertInfo, what: string): void {
  if (!info.isCa) {
    throw new SvidInvalidError(`${what} is not a CA certificate`);
  }
  if (info.keyUsage === undefined || (info.keyUsage & KU_KEY_CERT_SIGN) === 0) {
    throw new SvidInvalidError(`${what} lacks the keyCertSign key usage`);
  }
}

interface PathContext {
  readonly now: Date;
  readonly label: string;
  readonly trustDomain: string;
}

/**
 * Builds paths leaf → intermediates → root, where each link is a node:crypto
 * `checkIssued` plus a signature check, and returns the first path that also
 * passes the constraint checks. If paths exist but none passes, the first
 * path's failure is reported, so the message says what is wrong (for example
 * an expired intermediate) rather than that no path exists.
 *
 * A root ends a path either because the peer sent it (exact DER equality) or
 * because it issued and signed the last certificate of the path.
 */
function validatePath(
  leaf: ParsedCert,
  intermediates: readonly ParsedCert[],
  roots: readonly ParsedCert[],
  ctx: PathContext,
): ParsedCert[] {
  let firstFailure: SvidInvalidError | undefined;
  let steps = 0;
  const path: ParsedCert[] = [leaf];
  // A certificate sent twice is one object (from the cache), so used once.
  const used = new Set<ParsedCert>([leaf]);
  // Memo of issuer checks for this call: child → (issuer → result).
  const memo = new Map<ParsedCert, Map<ParsedCert, boolean>>();

  function issued(child: ParsedCert, issuer: ParsedCert): boolean {
    let results = memo.get(child);
    if (results === undefined) {
      results = new Map();
      memo.set(child, results);
    }
    let result = results.get(issuer);
    if (result === undefined) {
      result = isIssuedBy(child, issuer);
      results.set(issuer, result);
    }
    return result;
  }

  // Returns a valid path, or undefined to keep searching.
  function extend(): ParsedCert[] | undefined {
    steps += 1;
    if (steps > MAX_PATH_SEARCH_STEPS) {
      throw new SvidInvalidError(
        `${ctx.label} has a certificate chain too tangled to verify within ${MAX_PATH_SEARCH_STEPS} steps`,
      );
    }
    const current = path[path.length - 1] as ParsedCert;
    const candidates: ParsedCert[][] = [];
    if (path.length > 1) {
      const sentRoot = roots.find((root) => bytesEqual(root.info.der, current.info.der));
      if (sentRoot !== undefined) {
        candidates.push([...path.slice(0, -1), sentRoot]);
      }
    }
    if (candidates.length === 0 && path.length < MAX_CHAIN_LENGTH) {
      for (const root of roots) {
        if (issued(current, root)) {
          candidates.push([...path, root]);
        }
      }
    }
    for (const candidate of candidates) {
      try {
        checkPath(candidate, ctx);
        return candidate;
      } catch (err) {
        if (!(err instanceof SvidInvalidError)) {
          throw err;
        }
        firstFailure ??= err;
      }
    }
    // Nothing follows a root, and a path never grows past the cap.
    if (candidates.length > 0 || path.length >= MAX_CHAIN_LENGTH) {
      return undefined;
    }
    for (const next of intermediates) {
      if (used.has(next) || !issued(current, next)) {
        continue;
      }
      used.add(next);
      path.push(next);
      const found = extend();
      path.pop();
      used.delete(next);
      if (found !== undefined) {
        return found;
      }
    }
    return undefined;
  }

  const found = extend();
  if (found !== undefined) {
    return found;
  }
  throw (
    firstFailure ??
    new SvidInvalidError(
      `${ctx.label} does not chain to a root of trust domain "${ctx.trustDomain}"`,
    )
  );
}

/**
 * Constraint checks on a complete path (leaf first, root last): every issuer
 * is a CA with keyCertSign (a root may omit keyUsage, as RFC 5280 trust
 * anchors may), pathLenConstraint holds, and every certificate is within its
 * validity window at `now`.
 */
function checkPath(path: readonly ParsedCert[], ctx: PathContext): void {
  const last = path.length - 1;
  for (let i = 1; i < path.length; i++) {
    const info = (path[i] as ParsedCert).info;
    const what = describeInPath(i, last, ctx);
    if (!info.isCa) {
      throw new SvidInvalidError(`${what} is not a CA certificate`);
    }
    const mayOmitKeyUsage = i === last && info.keyUsage === undefined;
    if (!mayOmitKeyUsage && ((info.keyUsage ?? 0) & KU_KEY_CERT_SIGN) === 0) {
      throw new SvidInvalidError(`${what} lacks the keyCertSign key usage`);
    }
    // Intermediates below this issuer, not counting the leaf (RFC 5280 §4.2.1.9).
    const below = i - 1;
    if (info.pathLength !== undefined && below > info.pathLength) {
      throw new SvidInvalidError(
        `${what} allows ${info.pathLength} intermediate certificates below it, but the path has ${below}`,
      );
    }
  }
  for (let i = 0; i < path.length; i++) {
    const info = (path[i] as ParsedCert).info;
    if (ctx.now > info.notAfter) {
      throw new SvidInvalidError(
        `${describeInPath(i, last, ctx)} has expired: it was valid until ${info.notAfter.toISOString()}`,
      );
    }
    if (ctx.now < info.notBefore) {
      throw new SvidInvalidError(
        `${describeInPath(i, last, ctx)} is not yet valid: it is valid from ${info.notBefore.toISOString()}`,
      );
    }
  }
}

function describeInPath(index: number, last: number, ctx: PathContext): string {
  if (index === 0) {
    return ctx.label;
  }
  if (index === last) {
    return `Root certificate of trust domain "${ctx.trustDomain}" for ${ctx.label}`;
  }
  return `Intermediate certificate ${index} of ${ctx.label}`;
}

/**
 * Whether `child` names `issuer` as its issuer and carries its valid signature.
 * The exact name match comes first because OpenSSL's `checkIssued` also
 * refuses an issuer without keyCertSign; `checkPath` reports that case by name
 * instead of as a missing path. The signature check decides either way.
 */
function isIssuedBy(child: ParsedCert, issuer: ParsedCert): boolean {
  try {
    if (child.node.issuer !== issuer.node.subject && !child.node.checkIssued(issuer.node)) {
      return false;
    }
    issuer.publicKey ??= issuer.node.publicKey;
    return child.node.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** Parses one certificate of a chain, or takes it from the cache. */
function parseCertificate(der: Uint8Array, what: string): ParsedCert {
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
  const info = readCertInfo(own, what);
  const parsed: ParsedCert = { info, node, publicKey: undefined };
  CERT_CACHE.set(key, parsed);
  if (CERT_CACHE.size > MAX_CACHED_CERTIFICATES) {
    const oldest = CERT_CACHE.keys().next();
    if (oldest.done !== true) {
      CERT_CACHE.delete(oldest.value);
    }
  }
  return parsed;
}

/** A bundle root, parsed on first use. */
function parseRoot(root: NodeX509Certificate): ParsedCert | Error {
  const cached = ROOT_CACHE.get(root);
  if (cached !== undefined) {
    return cached;
  }
  let result: ParsedCert | Error;
  try {
    const info = readCertInfo(new Uint8Array(root.raw), 'Bundle root certificate');
    result = { info, node: root, publicKey: undefined };
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
function readCertInfo(der: Uint8Array, what: string): CertInfo {
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
  };
}

/** go-spiffe `Parse`: the private key must belong to the leaf's public key. */
function checkKeyMatchesLeaf(leaf: NodeX509Certificate, keyPkcs8: Uint8Array, label: string): void {
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

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) {
    return false;
  }
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      return false;
    }
  }
  return true;
}

function quote(id: SpiffeId): string {
  return JSON.stringify(id.toString());
}
