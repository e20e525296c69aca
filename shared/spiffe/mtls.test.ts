import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bundleSetOf, createTestCa } from '../../test/harness/pki.ts';
import { serverTlsOptions } from './mtls.ts';
import { StaticX509Source } from './x509_source.ts';

const NEXUS = 'spiffe://example.org/spike/nexus';

describe('serverTlsOptions()', () => {
  test('requests a client certificate and leaves the verdict to PeerVerifier', async () => {
    const ca = await createTestCa('example.org');
    const svid = await ca.issueSvid(NEXUS);
    const options = serverTlsOptions(new StaticX509Source(svid.x509Svid(), bundleSetOf(ca)));
    assert.equal(options.requestCert, true);
    // With true, Node and Deno drop a failed chain themselves, without a reason or an audit event.
    assert.equal(options.rejectUnauthorized, false);
    assert.equal(options.minVersion, 'TLSv1.3');
  });
});
