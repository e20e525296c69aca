/**
 * X509-SVIDs (X509-SVID.md): our own SVID as received from the Workload API
 * (`parseX509Svid`), and a peer's chain checked by SPIFFE's rules and
 * verified against the bundle of the peer's own trust domain
 * (`verifyX509Svid`, spiffe.md §2.2).
 *
 * The rules for single certificates are in `_svid_rules.ts`, path building
 * and validation in `_chain_path.ts`, and the cache of parsed certificates
 * that both read from in `_cert_cache.ts`.
 */
import { SvidInvalidError } from '../errors/errors.ts';
import { type ParsedCert, parseCertificate, parseRoot } from './_cert_cache.ts';
import { validatePath } from './_chain_path.ts';
import {
  checkKeyMatchesLeaf,
  checkLeaf,
  checkSigningCertificate,
  svidLabel,
} from './_svid_rules.ts';
import { splitDerCertificates, type X509BundleSet } from './bundle.ts';
import { derToPem } from './der.ts';
import type { SpiffeId } from './spiffe_id.ts';

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
const REDACTED = '[redacted]';

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
  const label = svidLabel('X509-SVID', id);
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
  const label = svidLabel(what, id);
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
    maxLength: MAX_CHAIN_LENGTH,
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
