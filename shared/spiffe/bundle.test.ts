import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { createTestCa, type TestCa } from '../../test/harness/pki.ts';
import { BundleInvalidError } from '../errors/errors.ts';
import { parseDerCertificates, splitDerCertificates, X509Bundle, X509BundleSet } from './bundle.ts';
import { concatBytes } from './der.ts';
import { parseTrustDomain } from './spiffe_id.ts';

/** Asserts a BundleInvalidError (code ERR_BUNDLE_INVALID) whose message matches `reason`. */
function assertBundleInvalid(fn: () => unknown, reason: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BundleInvalidError, `expected BundleInvalidError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_BUNDLE_INVALID');
    assert.match(err.message, reason);
    return true;
  });
}

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

const A_ORG = parseTrustDomain('a.org');
const B_ORG = parseTrustDomain('b.org');

let caA: TestCa;
let caA2: TestCa;
let caB: TestCa;

before(async () => {
  [caA, caA2, caB] = await Promise.all([
    createTestCa('a.org'),
    createTestCa('a.org'),
    createTestCa('b.org'),
  ]);
});

describe('splitDerCertificates()', () => {
  test('splitDerCertificates() splits concatenated certificates at their DER boundaries', () => {
    const joined = concatBytes([caA.root.der, caB.root.der]);
    const pieces = splitDerCertificates(joined);
    assert.equal(pieces.length, 2);
    assert.deepEqual([...(pieces[0] ?? [])], [...caA.root.der]);
    assert.deepEqual([...(pieces[1] ?? [])], [...caB.root.der]);
  });

  test('splitDerCertificates() returns nothing for empty input', () => {
    assert.deepEqual(splitDerCertificates(new Uint8Array(0)), []);
  });

  test('splitDerCertificates() reads short and long length forms', () => {
    const short = bytes(0x30, 0x01, 0x05);
    const long = new Uint8Array([0x30, 0x81, 0x80, ...new Uint8Array(0x80)]);
    const pieces = splitDerCertificates(concatBytes([short, long]));
    assert.deepEqual(
      pieces.map((piece) => piece.length),
      [3, 0x83],
    );
  });

  test('splitDerCertificates() rejects a truncated certificate', () => {
    const truncated = caA.root.der.subarray(0, caA.root.der.length - 1);
    assert.throws(() => splitDerCertificates(truncated), RangeError);
    assert.throws(() => splitDerCertificates(bytes(0x30)), RangeError);
    assert.throws(() => splitDerCertificates(bytes(0x30, 0x82, 0x01)), RangeError);
  });

  test('splitDerCertificates() rejects bytes that are not a DER SEQUENCE', () => {
    assert.throws(() => splitDerCertificates(bytes(0xde, 0xad, 0xbe, 0xef)), RangeError);
    assert.throws(
      () => splitDerCertificates(concatBytes([caA.root.der, bytes(0x04, 0x00)])),
      RangeError,
    );
  });

  test('splitDerCertificates() rejects indefinite and oversized lengths', () => {
    assert.throws(() => splitDerCertificates(bytes(0x30, 0x80, 0x00, 0x00)), RangeError);
    assert.throws(() => splitDerCertificates(bytes(0x30, 0x85, 1, 0, 0, 0, 0)), RangeError);
  });
});

describe('parseDerCertificates()', () => {
  test('parseDerCertificates() parses several roots concatenated, in order', () => {
    const roots = parseDerCertificates(concatBytes([caA.root.der, caB.root.der]), 'Bundle');
    assert.equal(roots.length, 2);
    assert.ok(roots[0] instanceof X509Certificate);
    assert.deepEqual([...new Uint8Array(roots[0]?.raw ?? [])], [...caA.root.der]);
    assert.deepEqual([...new Uint8Array(roots[1]?.raw ?? [])], [...caB.root.der]);
  });

  test('parseDerCertificates() rejects empty input', () => {
    assertBundleInvalid(
      () => parseDerCertificates(new Uint8Array(0), 'Bundle of "a.org"'),
      /^Bundle of "a\.org" is empty$/,
    );
  });

  test('parseDerCertificates() rejects truncated DER', () => {
    const joined = concatBytes([caA.root.der, caB.root.der]);
    assertBundleInvalid(
      () => parseDerCertificates(joined.subarray(0, joined.length - 10), 'Bundle'),
      /^Bundle is not DER-encoded certificates$/,
    );
  });

  test('parseDerCertificates() rejects garbage bytes', () => {
    assertBundleInvalid(
      () => parseDerCertificates(bytes(0xde, 0xad, 0xbe, 0xef), 'Bundle'),
      /is not DER-encoded certificates/,
    );
  });

  test('parseDerCertificates() rejects a well-framed element that is not a certificate', () => {
    const joined = concatBytes([caA.root.der, bytes(0x30, 0x03, 0x02, 0x01, 0x00)]);
    assertBundleInvalid(
      () => parseDerCertificates(joined, 'Bundle'),
      /^Bundle has an unparsable certificate at index 1$/,
    );
  });
});

describe('X509Bundle', () => {
  test('X509Bundle gives its roots as PEM for node:tls and as DER for the Workload API', () => {
    const roots = parseDerCertificates(concatBytes([caA.root.der, caA2.root.der]), 'Bundle');
    const bundle = new X509Bundle(A_ORG, roots);
    assert.equal(bundle.pem().match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.equal(bundle.pem(), `${caA.rootPem}${caA2.rootPem}`);
    const der = bundle.der();
    assert.deepEqual([...(der[0] ?? [])], [...caA.root.der]);
    assert.deepEqual([...(der[1] ?? [])], [...caA2.root.der]);
    assert.ok(Object.isFrozen(bundle));
    assert.ok(Object.isFrozen(bundle.roots));
  });

  test('X509Bundle.equals() compares the trust domain and the roots', () => {
    assert.ok(caA.bundle().equals(caA.bundle()));
    assert.ok(!caA.bundle().equals(caA2.bundle()));
    assert.ok(!caA.bundle().equals(caA.bundle('b.org')));
  });
});

describe('X509BundleSet', () => {
  test('X509BundleSet finds the bundle of exactly the trust domain asked for', () => {
    const set = new X509BundleSet([caA.bundle(), caB.bundle()]);
    assert.equal(set.size, 2);
    assert.ok(set.get(A_ORG)?.equals(caA.bundle()));
    assert.ok(set.get(B_ORG)?.equals(caB.bundle()));
    assert.equal(set.get(parseTrustDomain('c.org')), undefined);
    assert.deepEqual(
      set.all().map((bundle) => bundle.trustDomain.name),
      ['a.org', 'b.org'],
    );
  });

  test('X509BundleSet rejects two bundles for the same trust domain', () => {
    assertBundleInvalid(
      () => new X509BundleSet([caA.bundle(), caB.bundle(), caA2.bundle()]),
      /^Duplicate bundle for trust domain "a\.org"$/,
    );
  });

  test('X509BundleSet can be empty', () => {
    const set = new X509BundleSet([]);
    assert.equal(set.size, 0);
    assert.equal(set.get(A_ORG), undefined);
  });

  test('X509BundleSet.equals() ignores order but not content', () => {
    const one = new X509BundleSet([caA.bundle(), caB.bundle()]);
    const same = new X509BundleSet([caB.bundle(), caA.bundle()]);
    const other = new X509BundleSet([caA2.bundle(), caB.bundle()]);
    const fewer = new X509BundleSet([caA.bundle()]);
    assert.ok(one.equals(same));
    assert.ok(!one.equals(other));
    assert.ok(!one.equals(fewer));
    assert.ok(!fewer.equals(one));
  });
});
