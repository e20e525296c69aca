import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { rawSvid } from '../../test/harness/fake_workload_api.ts';
import { createTestCa, type TestCa, type TestSvid } from '../../test/harness/pki.ts';
import { parseX509BundlesResponse, parseX509SvidResponse } from './workload_messages.ts';

let ca: TestCa;
let federatedCa: TestCa;
let svidA: TestSvid;
let svidOther: TestSvid;

before(async () => {
  ca = await createTestCa('example.org');
  federatedCa = await createTestCa('partner.test');
  svidA = await ca.issueSvid('spiffe://example.org/spike/nexus');
  svidOther = await ca.issueSvid('spiffe://example.org/spike/keeper/1');
});

describe('parseX509SvidResponse()', () => {
  test('keeps several SVIDs in order with their hints', () => {
    const update = parseX509SvidResponse({
      svids: [rawSvid(svidA, ca, 'internal'), rawSvid(svidOther, ca, 'external')],
    });
    assert.deepEqual(
      update.svids.map((svid) => [svid.id.toString(), svid.hint]),
      [
        ['spiffe://example.org/spike/nexus', 'internal'],
        ['spiffe://example.org/spike/keeper/1', 'external'],
      ],
    );
    assert.equal(update.bundles.size, 1);
  });

  test('refuses two SVIDs of one trust domain with different bundles', () => {
    assert.throws(
      () =>
        parseX509SvidResponse({
          svids: [rawSvid(svidA, ca), { ...rawSvid(svidOther, ca), bundle: federatedCa.root.der }],
        }),
      { code: 'ERR_BUNDLE_INVALID' },
    );
  });

  test('refuses a message that is not an object', () => {
    assert.throws(() => parseX509SvidResponse(null), { code: 'ERR_SVID_INVALID' });
  });
});

describe('parseX509BundlesResponse()', () => {
  test('refuses a bare trust domain name as key', () => {
    assert.throws(
      () => parseX509BundlesResponse({ bundles: { 'example.org': ca.root.der } }),
      /must be a trust domain ID/,
    );
  });
});
