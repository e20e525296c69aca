/**
 * A throwaway PKI for tests, minted at run time: no key is ever written to the
 * repository or to disk.
 *
 * ```ts
 * const ca = await createTestCa('example.org', { intermediate: true });
 * const svid = await ca.issueSvid('spiffe://example.org/spike/nexus');
 * svid.chain;            // DER certificates, leaf first, then the intermediate
 * svid.chainDer;         // the same, concatenated (the Workload API's x509_svid field)
 * svid.privateKeyPkcs8;  // DER PKCS#8 (the Workload API's x509_svid_key field)
 * svid.certificatePem;   // node:tls `cert`; svid.privateKeyPem is node:tls `key`
 * svid.x509Svid();       // an X509Svid value, without validation (bad variants work too)
 * ca.bundle();           // X509Bundle holding the root
 * bundleSetOf(ca, other) // X509BundleSet, one bundle per CA (or pass bundles)
 * ```
 *
 * `issueSvid` takes overrides that mint deliberately bad SVIDs: no or several
 * URI SANs (`uriSans`), a CA flag (`isCa`), other key usages (`keyUsage`, `[]`
 * omits the extension), other or no EKUs (`extKeyUsage`, `null` omits it), a
 * validity window in the past or future (`validity`, or `notBefore` and
 * `notAfter`), the signer (`signer`) and what goes into the chain
 * (`includeIntermediate`, `includeRoot`). `createTestCa` options give a bad or
 * expired intermediate. All CAs of one trust domain share the same subject
 * names, as SPIRE's do, so only keys and signatures tell them apart
 * (`rootSubject` copies another CA's, e.g. a running agent's).
 *
 * Hostile certificates for a running broker:
 *
 * ```ts
 * const real = await adoptTestCa(td, { certificatePem, privateKeyPem }); // the agent's CA
 * await real.issueSvid(id, { validity: 'expired' });  // signed by the CA the broker trusts
 * real.rootAsSvid();                                  // the trust domain's CA itself as a leaf
 * await selfSignedSvid(id);                           // a leaf that signed itself
 * ```
 */

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import {
  type ExtKeyUsageName,
  type IssuedCertificate,
  type Issuer,
  importSigningKey,
  issueCertificate,
  type KeyUsageName,
} from '../../agent/certificate.ts';
import { SvidInvalidError } from '../../shared/errors/errors.ts';
import { x509 } from '../../shared/spiffe/_x509.ts';
import { X509Bundle, X509BundleSet } from '../../shared/spiffe/bundle.ts';
import { concatBytes, derToPem } from '../../shared/spiffe/der.ts';
import {
  parseSpiffeId,
  parseTrustDomain,
  type TrustDomain,
} from '../../shared/spiffe/spiffe_id.ts';
import { createUncheckedX509Svid, type X509Svid } from '../../shared/spiffe/x509_svid.ts';

/** The shared helper under the name older tests use. */

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const CA_KEY_USAGE: readonly KeyUsageName[] = ['keyCertSign', 'cRLSign', 'digitalSignature'];
/** What SPIRE puts on a workload X509-SVID. */
const LEAF_KEY_USAGE: readonly KeyUsageName[] = [
  'digitalSignature',
  'keyEncipherment',
  'keyAgreement',
];
const LEAF_EXT_KEY_USAGE: readonly ExtKeyUsageName[] = ['serverAuth', 'clientAuth'];

/** Validity shortcuts, relative to the CA's `now`. */
export type TestValidity = 'valid' | 'expired' | 'notYetValid';

export interface TestIntermediateOptions {
  /** Defaults to true; false mints a non-CA "intermediate" that still signs. */
  readonly isCa?: boolean;
  /** Defaults to keyCertSign, cRLSign, digitalSignature; `[]` omits the extension. */
  readonly keyUsage?: readonly KeyUsageName[];
  readonly validity?: TestValidity;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

export interface TestCaOptions {
  /** Issue SVIDs from an intermediate CA below the root (default: from the root). */
  readonly intermediate?: boolean | TestIntermediateOptions;
  /** The reference time for default validity windows; defaults to the current time. */
  readonly now?: Date;
  readonly rootNotBefore?: Date;
  readonly rootNotAfter?: Date;
  /** Root pathLenConstraint; absent means none. */
  readonly rootPathLength?: number;
  /** The root's subject, e.g. another CA's to impersonate it; defaults to a test name. */
  readonly rootSubject?: string;
}

export interface SvidOverrides {
  /** URI SANs, written as given; defaults to `[spiffeId]`. `[]` gives none. */
  readonly uriSans?: readonly string[];
  readonly dnsSans?: readonly string[];
  /** Defaults to `O=SPIKE test`. An empty subject makes the SAN extension critical. */
  readonly subject?: string;
  readonly isCa?: boolean;
  /** Defaults to digitalSignature, keyEncipherment, keyAgreement; `[]` omits the extension. */
  readonly keyUsage?: readonly KeyUsageName[];
  /** Defaults to serverAuth and clientAuth; `null` omits the extension. */
  readonly extKeyUsage?: readonly ExtKeyUsageName[] | null;
  /** 'expired' ended an hour ago; 'notYetValid' starts in an hour. */
  readonly validity?: TestValidity;
  /** Exact window; each wins over `validity`. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Who signs the leaf; defaults to the intermediate if the CA has one. */
  readonly signer?: 'root' | 'intermediate';
  /** Put the intermediate into the chain when it signed the leaf (default true). */
  readonly includeIntermediate?: boolean;
  /** Put the root at the end of the chain (default false). */
  readonly includeRoot?: boolean;
}

export interface TestSvid {
  /** The SPIFFE ID string the SVID was requested for (not necessarily in its SAN). */
  readonly spiffeId: string;
  readonly leaf: IssuedCertificate;
  /** DER certificates, leaf first. */
  readonly chain: readonly Uint8Array[];
  /** The chain's DER concatenated without separators. */
  readonly chainDer: Uint8Array;
  readonly privateKeyPkcs8: Uint8Array;
  /** Leaf and intermediates (and the root if included), PEM. */
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly notAfter: Date;
  /**
   * The SVID as an `X509Svid` value, built without any checks so that bad
   * variants can be served too. Throws if `spiffeId` is not a valid SPIFFE ID.
   */
  x509Svid(options?: { hint?: string }): X509Svid;
}

export interface TestCa {
  readonly trustDomain: TrustDomain;
  readonly root: IssuedCertificate;
  readonly intermediate: IssuedCertificate | undefined;
  /** The root as PEM (node:tls `ca`). */
  readonly rootPem: string;
  issueSvid(spiffeId: string, overrides?: SvidOverrides): Promise<TestSvid>;
  /** The root certificate itself, with its key, presented as if it were a leaf SVID. */
  rootAsSvid(): TestSvid;
  /** A bundle of this CA's root for its trust domain, or for another name. */
  bundle(trustDomainName?: string): X509Bundle;
}

/** Mints a root CA (and optionally an intermediate) for `trustDomainName`. */
export async function createTestCa(
  trustDomainName: string,
  options: TestCaOptions = {},
): Promise<TestCa> {
  const trustDomain = parseTrustDomain(trustDomainName);
  const now = options.now ?? new Date();
  const root = await issueCertificate({
    subject: options.rootSubject ?? `O=SPIKE test, CN=${trustDomain.name} root`,
    uriSans: [trustDomain.idString()],
    isCa: true,
    ...(options.rootPathLength === undefined ? {} : { pathLength: options.rootPathLength }),
    keyUsage: CA_KEY_USAGE,
    notBefore: options.rootNotBefore ?? new Date(now.getTime() - HOUR_MS),
    notAfter: options.rootNotAfter ?? new Date(now.getTime() + 24 * HOUR_MS),
  });
  let intermediate: IssuedCertificate | undefined;
  if (options.intermediate !== undefined && options.intermediate !== false) {
    const o: TestIntermediateOptions = options.intermediate === true ? {} : options.intermediate;
    const window = validityWindow(now, o.validity ?? 'valid', {
      notBefore: new Date(now.getTime() - HOUR_MS),
      notAfter: new Date(now.getTime() + 12 * HOUR_MS),
    });
    intermediate = await issueCertificate(
      {
        subject: `O=SPIKE test, CN=${trustDomain.name} intermediate`,
        uriSans: [trustDomain.idString()],
        isCa: o.isCa ?? true,
        keyUsage: o.keyUsage ?? CA_KEY_USAGE,
        notBefore: o.notBefore ?? window.notBefore,
        notAfter: o.notAfter ?? window.notAfter,
      },
      asIssuer(root),
    );
  }
  return makeTestCa(trustDomain, root, intermediate, now);
}

/**
 * A test CA around an existing root and its key, such as the embedded agent's
 * CA in a broker's data folder, so that tests can sign hostile SVIDs that the
 * broker's trust bundle anchors. The key stays in memory.
 */
export async function adoptTestCa(
  trustDomainName: string,
  pems: { readonly certificatePem: string; readonly privateKeyPem: string },
  options: { readonly now?: Date } = {},
): Promise<TestCa> {
  const certificate = new x509.X509Certificate(pems.certificatePem);
  const privateKeyPkcs8 = new Uint8Array(x509.PemConverter.decodeFirst(pems.privateKeyPem));
  const root: IssuedCertificate = {
    certificate,
    der: new Uint8Array(certificate.rawData),
    privateKey: await importSigningKey(privateKeyPkcs8),
    privateKeyPkcs8,
  };
  return makeTestCa(parseTrustDomain(trustDomainName), root, undefined, options.now ?? new Date());
}

/**
 * A leaf X509-SVID that signed itself (no CA at all): the shape of an SVID,
 * anchored by nothing a bundle holds.
 */
export async function selfSignedSvid(
  spiffeId: string,
  options: { readonly now?: Date } = {},
): Promise<TestSvid> {
  const t = (options.now ?? new Date()).getTime();
  const leaf = await issueCertificate({
    subject: 'O=SPIKE test, CN=self-signed',
    uriSans: [spiffeId],
    isCa: false,
    keyUsage: LEAF_KEY_USAGE,
    extKeyUsage: LEAF_EXT_KEY_USAGE,
    notBefore: new Date(t - 10_000),
    notAfter: new Date(t + HOUR_MS),
  });
  return createTestSvid(spiffeId, leaf, [leaf.der]);
}

function makeTestCa(
  trustDomain: TrustDomain,
  root: IssuedCertificate,
  intermediate: IssuedCertificate | undefined,
  now: Date,
): TestCa {
  const rootPem = derToPem(root.der, 'CERTIFICATE');

  async function issueSvid(spiffeId: string, overrides: SvidOverrides = {}): Promise<TestSvid> {
    const signedByIntermediate =
      intermediate !== undefined && (overrides.signer ?? 'intermediate') === 'intermediate';
    if (overrides.signer === 'intermediate' && intermediate === undefined) {
      throw new TypeError('This test CA has no intermediate; pass { intermediate: true }');
    }
    const window = validityWindow(now, overrides.validity ?? 'valid', {
      notBefore: new Date(now.getTime() - 10_000),
      notAfter: new Date(now.getTime() + HOUR_MS),
    });
    const extKeyUsage =
      overrides.extKeyUsage === null ? undefined : (overrides.extKeyUsage ?? LEAF_EXT_KEY_USAGE);
    const leaf = await issueCertificate(
      {
        subject: overrides.subject ?? 'O=SPIKE test',
        uriSans: overrides.uriSans ?? [spiffeId],
        ...(overrides.dnsSans === undefined ? {} : { dnsSans: overrides.dnsSans }),
        isCa: overrides.isCa ?? false,
        keyUsage: overrides.keyUsage ?? LEAF_KEY_USAGE,
        ...(extKeyUsage === undefined ? {} : { extKeyUsage }),
        notBefore: overrides.notBefore ?? window.notBefore,
        notAfter: overrides.notAfter ?? window.notAfter,
      },
      asIssuer(signedByIntermediate && intermediate !== undefined ? intermediate : root),
    );
    const chain: Uint8Array[] = [leaf.der];
    if (
      signedByIntermediate &&
      intermediate !== undefined &&
      (overrides.includeIntermediate ?? true)
    ) {
      chain.push(intermediate.der);
    }
    if (overrides.includeRoot === true) {
      chain.push(root.der);
    }
    return createTestSvid(spiffeId, leaf, chain);
  }

  function bundle(trustDomainName?: string): X509Bundle {
    const td = trustDomainName === undefined ? trustDomain : parseTrustDomain(trustDomainName);
    return new X509Bundle(td, [new X509Certificate(root.der)]);
  }

  function rootAsSvid(): TestSvid {
    return createTestSvid(trustDomain.idString(), root, [root.der]);
  }

  return Object.freeze({ trustDomain, root, intermediate, rootPem, issueSvid, rootAsSvid, bundle });
}

/** One bundle per CA (its own trust domain), or the bundles as given. */
export function bundleSetOf(...items: ReadonlyArray<TestCa | X509Bundle>): X509BundleSet {
  return new X509BundleSet(
    items.map((item) => (item instanceof X509Bundle ? item : item.bundle())),
  );
}

/**
 * Asserts that `fn` throws a SvidInvalidError (code ERR_SVID_INVALID) whose
 * message matches `reason` and carries no certificate.
 */
export function assertSvidInvalid(fn: () => unknown, reason: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SvidInvalidError, `expected SvidInvalidError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_SVID_INVALID');
    assert.match(err.message, reason);
    assert.doesNotMatch(err.message, /BEGIN|MII/, 'messages never carry certificates');
    return true;
  });
}

function createTestSvid(
  spiffeId: string,
  leaf: IssuedCertificate,
  chain: readonly Uint8Array[],
): TestSvid {
  const notAfter = leaf.certificate.notAfter;
  return Object.freeze({
    spiffeId,
    leaf,
    chain: Object.freeze([...chain]),
    chainDer: concatBytes(chain),
    privateKeyPkcs8: leaf.privateKeyPkcs8,
    certificatePem: chain.map((der) => derToPem(der, 'CERTIFICATE')).join(''),
    privateKeyPem: derToPem(leaf.privateKeyPkcs8, 'PRIVATE KEY'),
    notAfter,
    x509Svid(options: { hint?: string } = {}): X509Svid {
      return createUncheckedX509Svid({
        id: parseSpiffeId(spiffeId),
        chain,
        privateKeyPkcs8: leaf.privateKeyPkcs8,
        notAfter,
        ...(options.hint === undefined ? {} : { hint: options.hint }),
      });
    },
  });
}

function asIssuer(issued: IssuedCertificate): Issuer {
  return { certificate: issued.certificate, privateKey: issued.privateKey };
}

function validityWindow(
  now: Date,
  validity: TestValidity,
  valid: { notBefore: Date; notAfter: Date },
): { notBefore: Date; notAfter: Date } {
  const t = now.getTime();
  switch (validity) {
    case 'valid':
      return valid;
    case 'expired':
      return { notBefore: new Date(t - 2 * HOUR_MS), notAfter: new Date(t - HOUR_MS) };
    case 'notYetValid':
      return { notBefore: new Date(t + HOUR_MS), notAfter: new Date(t + 2 * HOUR_MS) };
  }
}
