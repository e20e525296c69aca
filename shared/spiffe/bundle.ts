/**
 * X.509 trust bundles: the CA certificates of one trust domain, and the set of
 * bundles a workload holds, keyed by trust domain. Verification always picks
 * the bundle of the peer's own trust domain; roots are never merged.
 */
import { X509Certificate } from 'node:crypto';
import { BundleInvalidError } from '../errors/errors.ts';
import type { TrustDomain } from './spiffe_id.ts';

export class X509Bundle {
  readonly trustDomain: TrustDomain;
  readonly roots: readonly X509Certificate[];
  readonly #pem: string;

  constructor(trustDomain: TrustDomain, roots: readonly X509Certificate[]) {
    this.trustDomain = trustDomain;
    this.roots = Object.freeze([...roots]);
    this.#pem = this.roots.map((root) => root.toString()).join('');
    Object.freeze(this);
  }

  /** The roots as concatenated PEM, the form `node:tls` takes as `ca`. */
  pem(): string {
    return this.#pem;
  }

  /** The roots as DER, for the Workload API's `bundle` field. */
  der(): Uint8Array[] {
    return this.roots.map((root) => new Uint8Array(root.raw));
  }

  equals(other: X509Bundle): boolean {
    return this.trustDomain.equals(other.trustDomain) && this.#pem === other.#pem;
  }
}

/** Immutable set of bundles, at most one per trust domain. */
export class X509BundleSet {
  readonly #byName: ReadonlyMap<string, X509Bundle>;

  constructor(bundles: Iterable<X509Bundle>) {
    const byName = new Map<string, X509Bundle>();
    for (const bundle of bundles) {
      if (byName.has(bundle.trustDomain.name)) {
        throw new BundleInvalidError(
          `Duplicate bundle for trust domain "${bundle.trustDomain.name}"`,
        );
      }
      byName.set(bundle.trustDomain.name, bundle);
    }
    this.#byName = byName;
    Object.freeze(this);
  }

  /** The bundle of exactly this trust domain, or undefined. */
  get(trustDomain: TrustDomain): X509Bundle | undefined {
    return this.#byName.get(trustDomain.name);
  }

  all(): X509Bundle[] {
    return [...this.#byName.values()];
  }

  get size(): number {
    return this.#byName.size;
  }

  equals(other: X509BundleSet): boolean {
    if (other.size !== this.size) {
      return false;
    }
    for (const bundle of this.#byName.values()) {
      const theirs = other.#byName.get(bundle.trustDomain.name);
      if (theirs === undefined || !theirs.equals(bundle)) {
        return false;
      }
    }
    return true;
  }
}

/**
 * Splits one or more ASN.1 DER certificates concatenated without separators
 * (the Workload API's encoding for chains and bundles). Only the outer
 * SEQUENCE framing is read here; each piece is then parsed by node:crypto.
 */
export function splitDerCertificates(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const length = derElementLength(bytes, offset);
    out.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
  return out;
}

/** Parses concatenated DER certificates; throws `BundleInvalidError` on any bad byte. */
export function parseDerCertificates(bytes: Uint8Array, what: string): X509Certificate[] {
  if (bytes.length === 0) {
    throw new BundleInvalidError(`${what} is empty`);
  }
  let pieces: Uint8Array[];
  try {
    pieces = splitDerCertificates(bytes);
  } catch (err) {
    throw new BundleInvalidError(`${what} is not DER-encoded certificates`, { cause: err });
  }
  return pieces.map((piece, i) => {
    try {
      return new X509Certificate(piece);
    } catch (err) {
      throw new BundleInvalidError(`${what} has an unparsable certificate at index ${i}`, {
        cause: err,
      });
    }
  });
}

/** Total length (header + content) of the DER SEQUENCE that starts at `offset`. */
function derElementLength(bytes: Uint8Array, offset: number): number {
  if (bytes[offset] !== 0x30) {
    throw new RangeError(`Expected a DER SEQUENCE at offset ${offset}`);
  }
  const first = bytes[offset + 1];
  if (first === undefined) {
    throw new RangeError('Truncated DER length');
  }
  let header = 2;
  let length = first;
  if (first & 0x80) {
    const count = first & 0x7f;
    // Indefinite lengths are not DER; more than 4 length bytes is absurd here.
    if (count === 0 || count > 4) {
      throw new RangeError('Unsupported DER length encoding');
    }
    length = 0;
    for (let i = 0; i < count; i++) {
      const b = bytes[offset + 2 + i];
      if (b === undefined) {
        throw new RangeError('Truncated DER length');
      }
      length = length * 256 + b;
    }
    header += count;
  }
  const total = header + length;
  if (offset + total > bytes.length) {
    throw new RangeError('Truncated DER element');
  }
  return total;
}
