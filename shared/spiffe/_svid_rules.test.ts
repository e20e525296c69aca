import { before, describe, test } from 'node:test';
import {
  assertSvidInvalid,
  bundleSetOf,
  createTestCa,
  type TestCa,
  type TestSvid,
} from '../../test/harness/pki.ts';
import { verifyX509Svid } from './x509_svid.ts';

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
