/**
 * Decoding of the Workload API's X.509 messages (Workload API §5): a decoded
 * `X509SVIDResponse` or `X509BundlesResponse` becomes typed values, checked
 * completely, or a `BrokerError` naming the first problem. Every message
 * carries the full state, so a caller that gets an error keeps its previous
 * good state. Plain objects in, values out: no gRPC here.
 */
import { BundleInvalidError, SvidInvalidError } from '../errors/errors.ts';
import { parseDerCertificates, X509Bundle, X509BundleSet } from './bundle.ts';
import { parseSpiffeId, parseTrustDomain, type TrustDomain } from './spiffe_id.ts';
import { parseX509Svid, type X509Svid } from './x509_svid.ts';

/** One accepted `X509SVIDResponse`. */
export interface X509SvidUpdate {
  /** At least one; the first is the default identity. */
  readonly svids: readonly X509Svid[];
  /** The SVIDs' own trust-domain bundles plus the federated ones. */
  readonly bundles: X509BundleSet;
  /** DER CRLs, passed through unparsed. */
  readonly crls: readonly Uint8Array[];
}

/** One accepted `X509BundlesResponse`. */
export interface X509BundlesUpdate {
  readonly bundles: X509BundleSet;
  readonly crls: readonly Uint8Array[];
}

/**
 * Turns a decoded `X509SVIDResponse` into typed values, or throws a
 * `BrokerError` naming the first problem. Every mandatory field must be set;
 * each SVID's `spiffe_id` must match its certificate; the SVIDs' own bundles
 * and the federated bundles must not name a trust domain twice.
 */
export function parseX509SvidResponse(raw: unknown): X509SvidUpdate {
  const message = asRecord(raw, 'X509SVIDResponse');
  const rawSvids = asArray(message.svids);
  if (rawSvids.length === 0) {
    throw new SvidInvalidError('X509SVIDResponse has no SVIDs');
  }
  const svids: X509Svid[] = [];
  const ownBundles = new Map<string, X509Bundle>();
  rawSvids.forEach((item, index) => {
    const where = `X509SVIDResponse.svids[${index}]`;
    const entry = asRecord(item, where);
    const idText = requiredString(entry.spiffe_id, `${where}.spiffe_id`);
    const chain = requiredBytes(entry.x509_svid, `${where}.x509_svid`);
    const key = requiredBytes(entry.x509_svid_key, `${where}.x509_svid_key`);
    const bundleBytes = requiredBytes(entry.bundle, `${where}.bundle`);
    const hint = optionalString(entry.hint, `${where}.hint`);
    const id = parseSpiffeId(idText);
    const svid = parseX509Svid(chain, key, hint === '' ? {} : { hint });
    if (!svid.id.equals(id)) {
      throw new SvidInvalidError(
        `${where}.spiffe_id "${idText}" does not match the certificate's ID "${svid.id.toString()}"`,
      );
    }
    const bundle = new X509Bundle(
      id.trustDomain,
      parseDerCertificates(bundleBytes, `${where}.bundle`),
    );
    const earlier = ownBundles.get(id.trustDomain.name);
    if (earlier !== undefined && !earlier.equals(bundle)) {
      throw new BundleInvalidError(
        `${where}.bundle differs from an earlier bundle for trust domain "${id.trustDomain.name}"`,
      );
    }
    ownBundles.set(id.trustDomain.name, bundle);
    svids.push(svid);
  });
  const federated = parseBundleMap(message.federated_bundles, 'X509SVIDResponse.federated_bundles');
  for (const bundle of federated) {
    if (ownBundles.has(bundle.trustDomain.name)) {
      throw new BundleInvalidError(
        `X509SVIDResponse.federated_bundles repeats the SVIDs' own trust domain "${bundle.trustDomain.name}"`,
      );
    }
  }
  return Object.freeze({
    svids: Object.freeze(svids),
    bundles: new X509BundleSet([...ownBundles.values(), ...federated]),
    crls: parseCrls(message.crl, 'X509SVIDResponse.crl'),
  });
}

/** Turns a decoded `X509BundlesResponse` into typed values, or throws. */
export function parseX509BundlesResponse(raw: unknown): X509BundlesUpdate {
  const message = asRecord(raw, 'X509BundlesResponse');
  const bundles = parseBundleMap(message.bundles, 'X509BundlesResponse.bundles');
  if (bundles.length === 0) {
    throw new BundleInvalidError('X509BundlesResponse.bundles is empty');
  }
  return Object.freeze({
    bundles: new X509BundleSet(bundles),
    crls: parseCrls(message.crl, 'X509BundlesResponse.crl'),
  });
}

/**
 * A `map<string, bytes>` keyed by trust-domain ID (`spiffe://td`, exactly:
 * no path, no bare name). Keys that name the same trust domain twice are
 * refused by X509BundleSet.
 */
function parseBundleMap(value: unknown, where: string): X509Bundle[] {
  if (value === undefined || value === null) {
    return [];
  }
  const map = asRecord(value, where);
  const bundles: X509Bundle[] = [];
  const seen = new Set<string>();
  for (const [key, bytes] of Object.entries(map)) {
    let trustDomain: TrustDomain;
    try {
      trustDomain = parseTrustDomain(key);
    } catch (err) {
      throw new BundleInvalidError(`${where} has an invalid trust domain key "${key}"`, {
        cause: err,
      });
    }
    if (trustDomain.idString() !== key) {
      throw new BundleInvalidError(
        `${where} key "${key}" must be a trust domain ID such as "${trustDomain.idString()}"`,
      );
    }
    if (seen.has(trustDomain.name)) {
      throw new BundleInvalidError(`${where} names trust domain "${trustDomain.name}" twice`);
    }
    seen.add(trustDomain.name);
    const der = requiredBytes(bytes, `${where}["${key}"]`);
    bundles.push(new X509Bundle(trustDomain, parseDerCertificates(der, `${where}["${key}"]`)));
  }
  return bundles;
}

function parseCrls(value: unknown, where: string): readonly Uint8Array[] {
  return Object.freeze(asArray(value).map((item, i) => toBytes(item, `${where}[${i}]`)));
}

function asRecord(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SvidInvalidError(`${where} is not a message`);
  }
  return value as Record<string, unknown>;
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function requiredString(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new SvidInvalidError(`${where} is missing`);
  }
  return value;
}

function optionalString(value: unknown, where: string): string {
  if (value === undefined || value === null) {
    return '';
  }
  if (typeof value !== 'string') {
    throw new SvidInvalidError(`${where} is not a string`);
  }
  return value;
}

function requiredBytes(value: unknown, where: string): Uint8Array {
  const bytes = value === undefined || value === null ? new Uint8Array(0) : toBytes(value, where);
  if (bytes.length === 0) {
    throw new SvidInvalidError(`${where} is missing`);
  }
  return bytes;
}

/** A plain Uint8Array view (grpc hands out Buffers; shared/ signatures use Uint8Array). */
function toBytes(value: unknown, where: string): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new SvidInvalidError(`${where} is not bytes`);
  }
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}
