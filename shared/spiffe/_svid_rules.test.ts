import assert from 'node:assert/strict';
import { type webcrypto, X509Certificate } from 'node:crypto';
import { before, describe, test } from 'node:test';
import {
  assertSvidInvalid,
  bundleSetOf,
  createTestCa,
  type TestCa,
  type TestSvid,
} from '../../test/harness/pki.ts';
import { x509 } from './_x509.ts';
import { X509Bundle } from './bundle.ts';
import { parseTrustDomain } from './spiffe_id.ts';
import { parseX509Svid, verifyX509Svid } from './x509_svid.ts';

// The rules of _svid_rules.ts, seen through verifyX509Svid(), which names the
// SVID in their messages.

const ID = 'spiffe://a.org/spike/nexus';

let caA: TestCa; // a.org
let caB: TestCa; // b.org

before(async () => {
  [caA, caB] = await Promise.all([createTestCa('a.org'), createTestCa('b.org')]);
});

describe('verifyX509Svid() rejects leaves that break the SVID rules (steps 2–6)', () => {
  const cases: ReadonlyArray<
    readonly [name: string, issue: (ca: TestCa) => Promise<TestSvid>, reason: RegExp]
  > = [
    ['a leaf with no URI SAN', (ca) => ca.issueSvid(ID, { uriSans: [] }), /has no URI SAN/],
    [
      'a leaf with no URI SAN but a DNS SAN',
      (ca) => ca.issueSvid(ID, { uriSans: [], dnsSans: ['nexus.a.org'] }),
      /has no URI SAN/,
    ],
    [
      'a leaf with two URI SANs',
      (ca) => ca.issueSvid(ID, { uriSans: [ID, 'spiffe://a.org/other'] }),
      /has 2 URI SANs; exactly one is allowed/,
    ],
    [
      'a leaf whose SPIFFE ID has no path',
      (ca) => ca.issueSvid('spiffe://a.org'),
      /"spiffe:\/\/a\.org" has no path; a leaf SVID needs a non-root path/,
    ],
    [
      'a leaf whose URI SAN is not a SPIFFE ID',
      (ca) => ca.issueSvid('https://a.org/spike/nexus'),
      /has an invalid SPIFFE ID: .*"https:\/\/a\.org\/spike\/nexus".*scheme/,
    ],
    [
      'a leaf whose SPIFFE ID is not strictly valid',
      (ca) => ca.issueSvid('spiffe://A.org/spike/nexus'),
      /has an invalid SPIFFE ID: .*invalid trust domain/,
    ],
    [
      'a leaf with the CA flag',
      (ca) => ca.issueSvid(ID, { isCa: true }),
      /is a CA certificate; a leaf must have cA=false/,
    ],
    [
      'a leaf with the keyCertSign key usage',
      (ca) => ca.issueSvid(ID, { keyUsage: ['digitalSignature', 'keyCertSign'] }),
      /has the keyCertSign key usage, which a leaf must not have/,
    ],
    [
      'a leaf with the cRLSign key usage',
      (ca) => ca.issueSvid(ID, { keyUsage: ['digitalSignature', 'cRLSign'] }),
      /has the cRLSign key usage, which a leaf must not have/,
    ],
    [
      'a leaf without the digitalSignature key usage',
      (ca) => ca.issueSvid(ID, { keyUsage: ['keyEncipherment', 'keyAgreement'] }),
      /lacks the digitalSignature key usage/,
    ],
    [
      'a leaf without a keyUsage extension',
      (ca) => ca.issueSvid(ID, { keyUsage: [] }),
      /has no keyUsage extension/,
    ],
    [
      'a leaf whose extendedKeyUsage has only serverAuth',
      (ca) => ca.issueSvid(ID, { extKeyUsage: ['serverAuth'] }),
      /extendedKeyUsage without clientAuth/,
    ],
    [
      'a leaf whose extendedKeyUsage has only clientAuth',
      (ca) => ca.issueSvid(ID, { extKeyUsage: ['clientAuth'] }),
      /extendedKeyUsage without serverAuth/,
    ],
  ];

  for (const [name, issue, reason] of cases) {
    test(`verifyX509Svid() rejects ${name}`, async () => {
      const svid = await issue(caA);
      assertSvidInvalid(() => verifyX509Svid(svid.chain, bundleSetOf(caA)), reason);
    });
  }

  test('verifyX509Svid() demands both EKUs even when the peer is only a client', async () => {
    const svid = await caA.issueSvid(ID, { extKeyUsage: ['clientAuth'] });
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(caA), { role: 'client' }),
      /^Peer client X509-SVID ".*" has an extendedKeyUsage without serverAuth/,
    );
  });

  test('verifyX509Svid() checks the leaf rules before it looks for a bundle', async () => {
    const svid = await caB.issueSvid(ID, { uriSans: [] });
    assertSvidInvalid(() => verifyX509Svid(svid.chain, bundleSetOf(caA)), /has no URI SAN/);
  });
});

describe('RSA keys under 2048 bits are refused, in the leaf and in the CAs of its path', () => {
  type CryptoKey = webcrypto.CryptoKey;
  type CryptoKeyPair = webcrypto.CryptoKeyPair;
  const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;
  const HOUR_MS = 3_600_000;

  function rsaKeys(bits: number): Promise<CryptoKeyPair> {
    return crypto.subtle.generateKey(
      { ...RSA, modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ['sign', 'verify'],
    ) as Promise<CryptoKeyPair>;
  }

  interface Signer {
    readonly subject: string;
    readonly key: CryptoKey;
    readonly algorithm: typeof RSA | { readonly name: 'ECDSA'; readonly hash: 'SHA-256' };
  }

  /** A certificate for `publicKey` signed by `signer` (itself when it has the same subject). */
  async function mint(
    publicKey: CryptoKey,
    signer: Signer,
    profile: { readonly subject: string; readonly ca: boolean; readonly id: string },
  ): Promise<Uint8Array> {
    const usage = profile.ca
      ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
      : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: '0102',
      subject: profile.subject,
      issuer: signer.subject,
      notBefore: new Date(Date.now() - HOUR_MS),
      notAfter: new Date(Date.now() + HOUR_MS),
      signingAlgorithm: signer.algorithm,
      publicKey,
      signingKey: signer.key,
      extensions: [
        new x509.BasicConstraintsExtension(profile.ca, undefined, true),
        new x509.KeyUsagesExtension(usage, true),
        ...(profile.ca
          ? []
          : [
              new x509.ExtendedKeyUsageExtension([
                x509.ExtendedKeyUsage.serverAuth,
                x509.ExtendedKeyUsage.clientAuth,
              ]),
            ]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: profile.id }]),
      ],
    });
    return new Uint8Array(cert.rawData);
  }

  function rootOf(ca: TestCa): Signer {
    return {
      subject: ca.root.certificate.subject,
      key: ca.root.privateKey,
      algorithm: { name: 'ECDSA', hash: 'SHA-256' },
    };
  }

  /** A leaf with an RSA key of `bits`, signed by caA's (EC) root. */
  async function rsaLeaf(bits: number): Promise<Uint8Array> {
    const keys = await rsaKeys(bits);
    return mint(keys.publicKey, rootOf(caA), { subject: 'O=SPIKE test', ca: false, id: ID });
  }

  test('a peer leaf with a 1024-bit RSA key', async () => {
    const leaf = await rsaLeaf(1024);
    assertSvidInvalid(
      () => verifyX509Svid([leaf], bundleSetOf(caA)),
      /^Peer X509-SVID "spiffe:\/\/a\.org\/spike\/nexus" has a 1024-bit RSA key; at least 2048 bits are required$/,
    );
  });

  test('our own SVID with a 1024-bit RSA key', async () => {
    const keys = await rsaKeys(1024);
    const leaf = await mint(keys.publicKey, rootOf(caA), {
      subject: 'O=SPIKE test',
      ca: false,
      id: ID,
    });
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
    assertSvidInvalid(() => parseX509Svid(leaf, pkcs8), /has a 1024-bit RSA key/);
  });

  test('an intermediate CA with a 1024-bit RSA key', async () => {
    const caKeys = await rsaKeys(1024);
    const intermediate = await mint(caKeys.publicKey, rootOf(caA), {
      subject: 'O=SPIKE test, CN=weak intermediate',
      ca: true,
      id: 'spiffe://a.org',
    });
    const leafKeys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const leaf = await mint(
      leafKeys.publicKey,
      { subject: 'O=SPIKE test, CN=weak intermediate', key: caKeys.privateKey, algorithm: RSA },
      { subject: 'O=SPIKE test', ca: false, id: ID },
    );
    assertSvidInvalid(
      () => verifyX509Svid([leaf, intermediate], bundleSetOf(caA)),
      /^Intermediate certificate 1 of .* has a 1024-bit RSA key/,
    );
  });

  test('a root of the bundle with a 1024-bit RSA key', async () => {
    const rootKeys = await rsaKeys(1024);
    const root: Signer = {
      subject: 'O=SPIKE test, CN=weak root',
      key: rootKeys.privateKey,
      algorithm: RSA,
    };
    const rootDer = await mint(rootKeys.publicKey, root, {
      subject: root.subject,
      ca: true,
      id: 'spiffe://a.org',
    });
    const leafKeys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const leaf = await mint(leafKeys.publicKey, root, {
      subject: 'O=SPIKE test',
      ca: false,
      id: ID,
    });
    const bundle = new X509Bundle(parseTrustDomain('a.org'), [new X509Certificate(rootDer)]);
    assertSvidInvalid(
      () => verifyX509Svid([leaf], bundleSetOf(bundle)),
      /^Root certificate of trust domain "a\.org" .* has a 1024-bit RSA key/,
    );
  });

  test('a leaf with a 2048-bit RSA key is accepted', async () => {
    const leaf = await rsaLeaf(2048);
    assert.equal(verifyX509Svid([leaf], bundleSetOf(caA)).id.toString(), ID);
  });
});
