import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import {
  assertSvidInvalid,
  bundleSetOf,
  createTestCa,
  type TestCa,
} from '../../test/harness/pki.ts';
import { X509Bundle } from './bundle.ts';
import { concatBytes } from './der.ts';
import { parseSpiffeId, parseTrustDomain } from './spiffe_id.ts';
import {
  createUncheckedX509Svid,
  MAX_CHAIN_LENGTH,
  parseX509Svid,
  verifyX509Svid,
} from './x509_svid.ts';

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

describe('verifyX509Svid() accepts valid SVIDs', () => {
  test('verifyX509Svid() accepts a leaf signed by the root of its trust domain', async () => {
    const svid = await caA.issueSvid(ID);
    const verified = verifyX509Svid(svid.chain, bundleSetOf(caA, caB));
    assert.equal(verified.id.toString(), ID);
    assert.equal(verified.serialNumber, svid.leaf.certificate.serialNumber.toLowerCase());
    assert.match(verified.serialNumber, /^[0-9a-f]+$/);
    assert.equal(verified.notAfter.getTime(), svid.leaf.certificate.notAfter.getTime());
    assert.equal(verified.notBefore.getTime(), svid.leaf.certificate.notBefore.getTime());
    assert.ok(Object.isFrozen(verified));
  });

  test('verifyX509Svid() accepts a leaf signed by an intermediate sent in the chain', async () => {
    const svid = await caAInter.issueSvid(ID);
    assert.equal(svid.chain.length, 2);
    const verified = verifyX509Svid(svid.chain, bundleSetOf(caAInter), { role: 'client' });
    assert.equal(verified.id.toString(), ID);
  });

  test('verifyX509Svid() accepts a chain that ends with the bundle root itself', async () => {
    const svid = await caAInter.issueSvid(ID, { includeRoot: true });
    assert.equal(svid.chain.length, 3);
    const verified = verifyX509Svid(svid.chain, bundleSetOf(caAInter), { role: 'server' });
    assert.equal(verified.id.toString(), ID);
  });

  test('verifyX509Svid() accepts a leaf whose root is one of several in the bundle', async () => {
    const svid = await caAInter.issueSvid(ID);
    const roots = [...caA.bundle().roots, ...caAInter.bundle().roots];
    const bundle = new X509Bundle(parseTrustDomain('a.org'), roots);
    assert.equal(verifyX509Svid(svid.chain, bundleSetOf(bundle)).id.toString(), ID);
  });

  test('verifyX509Svid() accepts a leaf without an extendedKeyUsage extension', async () => {
    const svid = await caA.issueSvid(ID, { extKeyUsage: null });
    assert.equal(verifyX509Svid(svid.chain, bundleSetOf(caA)).id.toString(), ID);
  });

  test('verifyX509Svid() reports the earliest notAfter of the path', async () => {
    const now = new Date();
    const ca = await createTestCa('a.org', {
      now,
      intermediate: { notAfter: new Date(now.getTime() + 5 * MINUTE_MS) },
    });
    const svid = await ca.issueSvid(ID);
    const verified = verifyX509Svid(svid.chain, bundleSetOf(ca), { now });
    assert.equal(verified.notAfter.getTime(), ca.intermediate?.certificate.notAfter.getTime());
    assert.ok(verified.notAfter < svid.notAfter);
  });

  test('verifyX509Svid() checks validity at the `now` it is given', async () => {
    const now = new Date();
    const ca = await createTestCa('a.org', {
      now,
      rootNotBefore: new Date(now.getTime() - 240 * MINUTE_MS),
    });
    const svid = await ca.issueSvid(ID, { validity: 'expired' });
    const then = new Date(svid.notAfter.getTime() - MINUTE_MS);
    assert.equal(verifyX509Svid(svid.chain, bundleSetOf(ca), { now: then }).id.toString(), ID);
    assertSvidInvalid(() => verifyX509Svid(svid.chain, bundleSetOf(ca), { now }), /has expired/);
  });

  test('verifyX509Svid() gives the same answer when the chain is verified again', async () => {
    const svid = await caAInter.issueSvid(ID);
    const bundles = bundleSetOf(caAInter);
    const first = verifyX509Svid(svid.chain, bundles);
    const second = verifyX509Svid(
      svid.chain.map((der) => new Uint8Array(der)),
      bundles,
    );
    assert.ok(first.id.equals(second.id));
    assert.equal(first.serialNumber, second.serialNumber);
  });
});

describe('verifyX509Svid() rejects malformed chains (step 1)', () => {
  test('verifyX509Svid() rejects an empty chain', () => {
    assertSvidInvalid(() => verifyX509Svid([], bundleSetOf(caA)), /certificate chain is empty/);
  });

  test('verifyX509Svid() rejects garbage bytes as the leaf', () => {
    const garbage = new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]);
    assertSvidInvalid(
      () => verifyX509Svid([garbage], bundleSetOf(caA)),
      /leaf certificate could not be parsed/,
    );
    assertSvidInvalid(
      () => verifyX509Svid([new Uint8Array([1, 2, 3, 4])], bundleSetOf(caA)),
      /leaf certificate could not be parsed/,
    );
  });

  test('verifyX509Svid() rejects garbage bytes as an intermediate', async () => {
    const svid = await caA.issueSvid(ID);
    assertSvidInvalid(
      () => verifyX509Svid([svid.chain[0] as Uint8Array, new Uint8Array(40)], bundleSetOf(caA)),
      /Certificate 1 of Peer X509-SVID "spiffe:\/\/a\.org\/spike\/nexus" could not be parsed/,
    );
  });

  test('verifyX509Svid() rejects a chain longer than the path cap', async () => {
    const svid = await caAInter.issueSvid(ID);
    const long = Array.from({ length: MAX_CHAIN_LENGTH + 1 }, (_, i) =>
      i === 0 ? (svid.chain[0] as Uint8Array) : (svid.chain[1] as Uint8Array),
    );
    assertSvidInvalid(
      () => verifyX509Svid(long, bundleSetOf(caAInter)),
      new RegExp(`has ${MAX_CHAIN_LENGTH + 1} certificates; at most ${MAX_CHAIN_LENGTH}`),
    );
  });
});

describe('verifyX509Svid() picks the bundle by the leaf trust domain only (step 7)', () => {
  test('verifyX509Svid() rejects a leaf when no bundle exists for its trust domain', async () => {
    const svid = await caB.issueSvid('spiffe://b.org/spike/keeper/1');
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bundleSetOf(caA)),
      /No trust bundle for trust domain "b\.org" of Peer X509-SVID "spiffe:\/\/b\.org\/spike\/keeper\/1"/,
    );
  });

  test('verifyX509Svid() rejects an a.org leaf signed by a CA trusted only for b.org', async () => {
    // CA-B signs a leaf that claims a.org; CA-B's root is trusted, but only
    // for b.org, so the chain must not verify.
    const forged = await caB.issueSvid(ID);
    assertSvidInvalid(
      () => verifyX509Svid(forged.chain, bundleSetOf(caB)),
      /No trust bundle for trust domain "a\.org"/,
    );
    assertSvidInvalid(
      () => verifyX509Svid(forged.chain, bundleSetOf(caA, caB)),
      /"spiffe:\/\/a\.org\/spike\/nexus" does not chain to a root of trust domain "a\.org"/,
    );
  });

  test('verifyX509Svid() rejects a leaf when its signer is filed under another trust domain', async () => {
    const svid = await caA.issueSvid(ID);
    const misfiled = bundleSetOf(caA.bundle('b.org'));
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, misfiled),
      /No trust bundle for trust domain/,
    );
    const bothMisfiled = bundleSetOf(caA.bundle('b.org'), caB.bundle('a.org'));
    assertSvidInvalid(
      () => verifyX509Svid(svid.chain, bothMisfiled),
      /does not chain to a root of trust domain "a\.org"/,
    );
  });
});

describe('parseX509Svid()', () => {
  test('parseX509Svid() parses a leaf with its intermediate and key', async () => {
    const issued = await caAInter.issueSvid(ID);
    const svid = parseX509Svid(issued.chainDer, issued.privateKeyPkcs8, { hint: 'internal' });
    assert.equal(svid.id.toString(), ID);
    assert.equal(svid.hint, 'internal');
    assert.equal(svid.chain.length, 2);
    assert.deepEqual([...(svid.chain[0] ?? [])], [...(issued.chain[0] ?? [])]);
    assert.equal(svid.notAfter.getTime(), issued.notAfter.getTime());
    assert.deepEqual([...svid.privateKeyPkcs8], [...issued.privateKeyPkcs8]);
    // The PEM forms are what node:tls takes.
    assert.equal(svid.certificatePem().match(/BEGIN CERTIFICATE/g)?.length, 2);
    const fromPem = new Uint8Array(new X509Certificate(svid.certificatePem()).raw);
    assert.deepEqual([...fromPem], [...(issued.chain[0] ?? [])]);
    assert.equal(createPrivateKey(svid.privateKeyPem()).asymmetricKeyType, 'ec');
    assert.equal(svid.certificatePem(), issued.certificatePem);
    assert.equal(svid.privateKeyPem(), issued.privateKeyPem);
  });

  test('parseX509Svid() defaults the hint to empty and keeps its own copy of the chain', async () => {
    const issued = await caA.issueSvid(ID);
    const chainDer = new Uint8Array(issued.chainDer);
    const svid = parseX509Svid(chainDer, issued.privateKeyPkcs8);
    assert.equal(svid.hint, '');
    chainDer.fill(0);
    assert.deepEqual([...(svid.chain[0] ?? [])], [...(issued.chain[0] ?? [])]);
    assert.ok(Object.isFrozen(svid.chain));
  });

  test('parseX509Svid() rejects a key that does not belong to the leaf', async () => {
    const issued = await caA.issueSvid(ID);
    const other = await caA.issueSvid(ID);
    assertSvidInvalid(
      () => parseX509Svid(issued.chainDer, other.privateKeyPkcs8),
      /Private key of X509-SVID "spiffe:\/\/a\.org\/spike\/nexus" does not match the leaf certificate/,
    );
  });

  test('parseX509Svid() rejects bytes that are not a PKCS#8 key', async () => {
    const issued = await caA.issueSvid(ID);
    assertSvidInvalid(
      () => parseX509Svid(issued.chainDer, new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])),
      /is not a PKCS#8 private key/,
    );
  });

  test('parseX509Svid() rejects an intermediate that is not a CA', async () => {
    const ca = await createTestCa('a.org', { intermediate: { isCa: false } });
    const issued = await ca.issueSvid(ID);
    assertSvidInvalid(
      () => parseX509Svid(issued.chainDer, issued.privateKeyPkcs8),
      /^Certificate 1 of X509-SVID ".*" is not a CA certificate/,
    );
  });

  test('parseX509Svid() rejects an intermediate without keyCertSign', async () => {
    const ca = await createTestCa('a.org', { intermediate: { keyUsage: [] } });
    const issued = await ca.issueSvid(ID);
    assertSvidInvalid(
      () => parseX509Svid(issued.chainDer, issued.privateKeyPkcs8),
      /^Certificate 1 of X509-SVID ".*" lacks the keyCertSign key usage/,
    );
  });

  test('parseX509Svid() applies the leaf rules', async () => {
    const rootPath = await caA.issueSvid('spiffe://a.org');
    assertSvidInvalid(
      () => parseX509Svid(rootPath.chainDer, rootPath.privateKeyPkcs8),
      /has no path; a leaf SVID needs a non-root path/,
    );
    const twoSans = await caA.issueSvid(ID, { uriSans: [ID, ID] });
    assertSvidInvalid(
      () => parseX509Svid(twoSans.chainDer, twoSans.privateKeyPkcs8),
      /has 2 URI SANs/,
    );
    const ca = await caA.issueSvid(ID, { isCa: true });
    assertSvidInvalid(() => parseX509Svid(ca.chainDer, ca.privateKeyPkcs8), /is a CA certificate/);
  });

  test('parseX509Svid() rejects an empty, truncated or garbage chain', async () => {
    const issued = await caA.issueSvid(ID);
    const key = issued.privateKeyPkcs8;
    assertSvidInvalid(() => parseX509Svid(new Uint8Array(0), key), /certificate chain is empty/);
    assertSvidInvalid(
      () => parseX509Svid(issued.chainDer.subarray(0, issued.chainDer.length - 1), key),
      /is not DER-encoded certificates/,
    );
    assertSvidInvalid(
      () => parseX509Svid(new Uint8Array([0xde, 0xad, 0xbe, 0xef]), key),
      /is not DER-encoded certificates/,
    );
    assertSvidInvalid(
      () => parseX509Svid(concatBytes([issued.chainDer, new Uint8Array([0x30, 0x00])]), key),
      /Certificate 1 of X509-SVID ".*" could not be parsed/,
    );
  });

  test('parseX509Svid() never shows the private key in JSON, inspect or strings', async () => {
    const issued = await caAInter.issueSvid(ID);
    const svid = parseX509Svid(issued.chainDer, issued.privateKeyPkcs8);
    const keyBase64 = Buffer.from(issued.privateKeyPkcs8).toString('base64');
    const renderings = [
      JSON.stringify(svid),
      JSON.stringify({ svid }),
      inspect(svid),
      inspect({ nested: { svid } }, { depth: 10, showHidden: true }),
      `${svid}`,
      String(svid),
      JSON.stringify({ ...svid }),
    ];
    assert.equal(JSON.stringify(svid), '"[redacted]"');
    assert.equal(inspect(svid), '[redacted]');
    assert.equal(`${svid}`, '[redacted]');
    for (const text of renderings) {
      assert.ok(!text.includes(keyBase64.slice(0, 24)), `key leaked in ${text}`);
      assert.ok(!text.includes('PRIVATE KEY'), `key leaked in ${text}`);
    }
    assert.ok(!Object.keys(svid).includes('privateKeyPkcs8'));
  });

  test('parseX509Svid() hands out copies of the key, so the served key cannot be changed', async () => {
    const issued = await caA.issueSvid(ID);
    const svid = parseX509Svid(issued.chainDer, issued.privateKeyPkcs8);
    const pem = svid.privateKeyPem();
    const first = svid.privateKeyPkcs8;
    assert.notEqual(first, svid.privateKeyPkcs8, 'a new array on every read');
    first.fill(0);
    assert.deepEqual([...svid.privateKeyPkcs8], [...issued.privateKeyPkcs8]);
    assert.equal(svid.privateKeyPem(), pem);
  });
});

describe('createUncheckedX509Svid()', () => {
  test('createUncheckedX509Svid() builds the same value as parseX509Svid() from valid parts', async () => {
    const issued = await caAInter.issueSvid(ID);
    const parsed = parseX509Svid(issued.chainDer, issued.privateKeyPkcs8, { hint: 'internal' });
    const built = createUncheckedX509Svid({
      id: parsed.id,
      chain: issued.chain,
      privateKeyPkcs8: issued.privateKeyPkcs8,
      notAfter: issued.notAfter,
      hint: 'internal',
    });
    assert.equal(Object.getPrototypeOf(built), Object.getPrototypeOf(parsed));
    assert.ok(built.id.equals(parsed.id));
    assert.equal(built.hint, 'internal');
    assert.equal(built.notAfter.getTime(), parsed.notAfter.getTime());
    assert.equal(built.certificatePem(), parsed.certificatePem());
    assert.equal(built.privateKeyPem(), parsed.privateKeyPem());
    assert.equal(inspect(built), '[redacted]');
    assert.equal(JSON.stringify({ built }), '{"built":"[redacted]"}');
    assert.ok(Object.isFrozen(built) && Object.isFrozen(built.chain));
  });

  test('createUncheckedX509Svid() checks nothing and keeps its own copies', async () => {
    const issued = await caA.issueSvid(ID);
    const other = await caA.issueSvid(ID);
    const key = new Uint8Array(other.privateKeyPkcs8);
    const leaf = new Uint8Array(issued.chain[0] as Uint8Array);
    const notAfter = new Date(0);
    // Another ID, a key of another SVID and a notAfter long past: all taken as given.
    const built = createUncheckedX509Svid({
      id: parseSpiffeId('spiffe://b.org/elsewhere'),
      chain: [leaf],
      privateKeyPkcs8: key,
      notAfter,
    });
    assert.equal(built.id.toString(), 'spiffe://b.org/elsewhere');
    assert.equal(built.hint, '');
    key.fill(0);
    leaf.fill(0);
    notAfter.setTime(1);
    assert.deepEqual([...built.privateKeyPkcs8], [...other.privateKeyPkcs8]);
    assert.deepEqual([...(built.chain[0] ?? [])], [...(issued.chain[0] ?? [])]);
    assert.equal(built.notAfter.getTime(), 0);
  });
});
