import assert from 'node:assert/strict';
import type { webcrypto } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { GeneralName, OtherName, SubjectAlternativeName } from '@peculiar/asn1-x509';
import { assertSvidInvalid, createTestCa, type TestCa } from '../../test/harness/pki.ts';
import {
  KU_DIGITAL_SIGNATURE,
  KU_KEY_CERT_SIGN,
  parseCertificate,
  parseRoot,
  readUriSans,
} from './_cert_cache.ts';
import { x509 } from './_x509.ts';

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

const SIGNING = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
let keys: webcrypto.CryptoKeyPair | undefined;

/** A self-signed certificate with exactly the extensions given (parsing checks no signature). */
async function certificateWith(
  extensions: x509.Extension[],
  serialNumber = '01',
): Promise<Uint8Array> {
  keys ??= (await crypto.subtle.generateKey(SIGNING, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber,
    name: 'CN=extensions test',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    keys,
    signingAlgorithm: SIGNING,
    extensions,
  });
  return new Uint8Array(cert.rawData);
}

function uriSan(uri: string): x509.Extension {
  return new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }]);
}

/** An extension whose value is the given bytes, whatever its type says they should be. */
function raw(oid: string, value: number[], critical = false): x509.Extension {
  return new x509.Extension(oid, critical, new Uint8Array(value));
}

describe('parseCertificate() on extensions', () => {
  test('an extension it does not understand is refused when critical and ignored otherwise', async () => {
    const critical = await certificateWith([uriSan(ID), raw('1.2.3.4.5', [0x05, 0x00], true)]);
    assertSvidInvalid(
      () => parseCertificate(critical, 'Test certificate'),
      /^Test certificate has an unsupported critical extension "1\.2\.3\.4\.5"$/,
    );
    const plain = await certificateWith([uriSan(ID), raw('1.2.3.4.5', [0x05, 0x00])]);
    assert.deepEqual(parseCertificate(plain, 'leaf').info.uriSans, [ID]);
  });

  test('an extension that appears twice is refused', async () => {
    const twice = await certificateWith([
      uriSan(ID),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ]);
    assertSvidInvalid(
      () => parseCertificate(twice, 'Test certificate'),
      /^Test certificate has more than one extension "2\.5\.29\.15"$/,
    );
  });

  test('a malformed value of an extension it reads, or of one it only checks, is refused', async () => {
    // An OCTET STRING where keyUsage's BIT STRING belongs; a CRL distribution
    // point list that is an INTEGER; both non-critical.
    for (const extension of [
      raw('2.5.29.15', [0x04, 0x01, 0x00]),
      raw('2.5.29.31', [0x02, 0x01, 0x01]),
    ]) {
      const der = await certificateWith([uriSan(ID), extension]);
      assertSvidInvalid(
        () => parseCertificate(der, 'Test certificate'),
        /^Test certificate could not be parsed$/,
      );
    }
  });

  test('reads keyUsage bits, basicConstraints with pathLen, and the extendedKeyUsage OIDs', async () => {
    const der = await certificateWith([
      new x509.BasicConstraintsExtension(true, 2, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1']),
    ]);
    const { info } = parseCertificate(der, 'ca');
    assert.equal(info.isCa, true);
    assert.equal(info.pathLength, 2);
    assert.equal(info.keyUsage, KU_KEY_CERT_SIGN | x509.KeyUsageFlags.cRLSign);
    assert.deepEqual(info.extKeyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.deepEqual(info.uriSans, []);
  });

  test('only URI entries of the SAN count; DNS names and otherName entries may stand beside them', async () => {
    const names = new SubjectAlternativeName([
      new GeneralName({ dNSName: 'nexus.example' }),
      new GeneralName({
        otherName: new OtherName({
          typeId: '1.2.3.4',
          value: AsnConvert.serialize(new OctetString(new Uint8Array([1, 2]))),
        }),
      }),
      new GeneralName({ uniformResourceIdentifier: ID }),
    ]);
    const der = await certificateWith([
      raw('2.5.29.17', [...new Uint8Array(AsnConvert.serialize(names))]),
    ]);
    assert.deepEqual(parseCertificate(der, 'leaf').info.uriSans, [ID]);
  });

  test('the serial number is the hex of the INTEGER without the 00 that keeps it positive', async () => {
    assert.equal(
      parseCertificate(await certificateWith([], '0102'), 'a').info.serialNumber,
      '0102',
    );
    // DER writes 0x80ff as 00 80 ff.
    assert.equal(
      parseCertificate(await certificateWith([], '80ff'), 'b').info.serialNumber,
      '80ff',
    );
  });
});

describe('readUriSans()', () => {
  test('reads a certificate from a view into a larger buffer', async () => {
    const der = await certificateWith([uriSan(ID)], '0a');
    const padded = new Uint8Array(der.length + 8);
    padded.set(der, 5);
    assert.deepEqual(readUriSans(padded.subarray(5, 5 + der.length)), [ID]);
    assert.deepEqual(readUriSans(await certificateWith([], '0b')), []);
  });
});
