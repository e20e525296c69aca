import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { assertSvidInvalid, createTestCa, type TestCa } from '../../test/harness/pki.ts';
import {
  KU_DIGITAL_SIGNATURE,
  KU_KEY_CERT_SIGN,
  parseCertificate,
  parseRoot,
} from './_cert_cache.ts';

const ID = 'spiffe://a.org/spike/nexus';

let ca: TestCa;

before(async () => {
  ca = await createTestCa('a.org', { intermediate: true });
});

describe('parseCertificate()', () => {
  test('parseCertificate() reads the facts the SVID rules need', async () => {
    const svid = await ca.issueSvid(ID);
    const leaf = parseCertificate(svid.chain[0] as Uint8Array, 'leaf');
    assert.deepEqual(leaf.info.uriSans, [ID]);
    assert.equal(leaf.info.isCa, false);
    assert.ok(((leaf.info.keyUsage ?? 0) & KU_DIGITAL_SIGNATURE) !== 0);
    assert.equal(leaf.info.serialNumber, svid.leaf.certificate.serialNumber.toLowerCase());
    const intermediate = parseCertificate(svid.chain[1] as Uint8Array, 'intermediate');
    assert.equal(intermediate.info.isCa, true);
    assert.ok(((intermediate.info.keyUsage ?? 0) & KU_KEY_CERT_SIGN) !== 0);
  });

  test('parseCertificate() returns one object for equal bytes and keeps its own copy', async () => {
    const svid = await ca.issueSvid(ID);
    const bytes = new Uint8Array(svid.chain[0] as Uint8Array);
    const first = parseCertificate(bytes, 'leaf');
    bytes.fill(0);
    const second = parseCertificate(new Uint8Array(svid.chain[0] as Uint8Array), 'leaf');
    assert.equal(second, first);
    assert.deepEqual([...first.info.der], [...(svid.chain[0] as Uint8Array)]);
  });

  test('parseCertificate() names the certificate when it cannot be parsed', () => {
    assertSvidInvalid(
      () => parseCertificate(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]), 'Test certificate'),
      /^Test certificate could not be parsed$/,
    );
  });
});

describe('parseRoot()', () => {
  test('parseRoot() parses a bundle root once per root object', () => {
    const root = ca.bundle().roots[0];
    assert.ok(root !== undefined);
    const first = parseRoot(root);
    assert.ok(!(first instanceof Error));
    assert.equal(first.info.isCa, true);
    assert.equal(parseRoot(root), first);
  });
});
