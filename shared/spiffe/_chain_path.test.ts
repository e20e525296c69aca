import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import {
  assertSvidInvalid,
  bundleSetOf,
  createTestCa,
  type TestCa,
} from '../../test/harness/pki.ts';
import { verifyX509Svid } from './x509_svid.ts';

// Path building and validation of _chain_path.ts, seen through verifyX509Svid().

const ID = 'spiffe://a.org/spike/nexus';
const MINUTE_MS = 60_000;

let caA: TestCa; // a.org, issues from the root
let caAInter: TestCa; // a.org, issues from an intermediate
let caB: TestCa; // b.org

before(async () => {
  [caA, caAInter, caB] = await Promise.all([
    createTestCa('a.org'),
    createTestCa('a.org', { intermediate: true }),
    createTestCa('b.org'),
  ]);
});

describe('verifyX509Svid() validates the certification path (step 8)', () => {
  test('verifyX509Svid() rejects a leaf signed by another CA of the same trust domain name', async () => {
    const impostor = await createTestCa('a.org');
    const svid = await impostor.issueSvid(ID);
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(caA)),
      /does not chain to a root of trust domain "a\.org"/,
    );
  });

  test('verifyX509Svid() rejects a leaf whose intermediate was left out of the chain', async () => {
    const svid = await caAInter.issueSvid(ID, { includeIntermediate: false });
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(caAInter)),
      /does not chain to a root/,
    );
  });

  test('verifyX509Svid() rejects an intermediate from another CA of the same trust domain', async () => {
    const other = await createTestCa('a.org', { intermediate: true });
    const svid = await other.issueSvid(ID);
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(caAInter)),
      /does not chain to a root/,
    );
  });

  test('verifyX509Svid() rejects an expired leaf and says so', async () => {
    const svid = await caA.issueSvid(ID, { validity: 'expired' });
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(caA)),
      /^Peer X509-SVID "spiffe:\/\/a\.org\/spike\/nexus" has expired: it was valid until /,
    );
  });

  test('verifyX509Svid() rejects a leaf that is not yet valid and says so', async () => {
    const svid = await caA.issueSvid(ID, { validity: 'notYetValid' });
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(caA)),
      /^Peer X509-SVID ".*" is not yet valid: it is valid from /,
    );
  });

  test('verifyX509Svid() rejects a chain whose intermediate has expired', async () => {
    const ca = await createTestCa('a.org', { intermediate: { validity: 'expired' } });
    const svid = await ca.issueSvid(ID);
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(ca)),
      /^Intermediate certificate 1 of Peer X509-SVID ".*" has expired/,
    );
  });

  test('verifyX509Svid() rejects a chain whose intermediate is not yet valid', async () => {
    const ca = await createTestCa('a.org', { intermediate: { validity: 'notYetValid' } });
    const svid = await ca.issueSvid(ID);
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(ca)),
      /^Intermediate certificate 1 of .* is not yet valid/,
    );
  });

  test('verifyX509Svid() rejects a chain whose root has expired', async () => {
    const now = new Date();
    const ca = await createTestCa('a.org', {
      now,
      rootNotBefore: new Date(now.getTime() - 120 * MINUTE_MS),
      rootNotAfter: new Date(now.getTime() - MINUTE_MS),
    });
    const svid = await ca.issueSvid(ID);
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(ca), { now }),
      /^Root certificate of trust domain "a\.org" for .* has expired/,
    );
  });

  test('verifyX509Svid() rejects an intermediate that is not a CA', async () => {
    const ca = await createTestCa('a.org', { intermediate: { isCa: false } });
    const svid = await ca.issueSvid(ID);
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(ca)),
      /^Intermediate certificate 1 of .* is not a CA certificate/,
    );
  });

  test('verifyX509Svid() rejects an intermediate without keyCertSign', async () => {
    const ca = await createTestCa('a.org', {
      intermediate: { keyUsage: ['digitalSignature', 'cRLSign'] },
    });
    const svid = await ca.issueSvid(ID);
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(ca)),
      /^Intermediate certificate 1 of .* lacks the keyCertSign key usage/,
    );
  });

  test('verifyX509Svid() rejects a path longer than the root pathLenConstraint allows', async () => {
    const ca = await createTestCa('a.org', { intermediate: true, rootPathLength: 0 });
    const svid = await ca.issueSvid(ID);
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(ca)),
      /^Root certificate .* allows 0 intermediate certificates below it, but the path has 1/,
    );
  });

  test('verifyX509Svid() ignores extra certificates the path does not need', async () => {
    const svid = await caAInter.issueSvid(ID);
    const unrelated = (await caB.issueSvid('spiffe://b.org/x')).chain[0] as Uint8Array;
    const chain = [svid.chain[0] as Uint8Array, unrelated, svid.chain[1] as Uint8Array];
    assert.equal(verifyX509Svid(chain, bundleSetOf(caAInter)).id.toString(), ID);
  });
});

describe('verifyX509Svid() bounds the work a hostile chain can cause', () => {
  test('verifyX509Svid() uses a repeated intermediate once and still verifies', async () => {
    const svid = await caAInter.issueSvid(ID);
    const inter = svid.chain[1] as Uint8Array;
    const chain = [svid.chain[0] as Uint8Array, ...Array.from({ length: 7 }, () => inter)];
    assert.equal(verifyX509Svid(chain, bundleSetOf(caAInter)).id.toString(), ID);
  });

  test('verifyX509Svid() rejects a chain padded with certificates that lead nowhere', async () => {
    const svid = await caAInter.issueSvid(ID, { includeIntermediate: false });
    const stranger = await createTestCa('a.org', { intermediate: true });
    const padding = stranger.intermediate?.der as Uint8Array;
    const chain = [svid.chain[0] as Uint8Array, ...Array.from({ length: 7 }, () => padding)];
    assertSvidInvalid(
      () => verifyX509Svid(chain, bundleSetOf(caAInter)),
      /does not chain to a root of trust domain "a\.org"/,
    );
  });
});
