import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import {
  FETCH_X509_BUNDLES_PATH,
  FETCH_X509_SVID_PATH,
  workloadApiServiceDefinition,
} from './workload_proto.ts';

function here(name: string): string {
  return fileURLToPath(new URL(name, import.meta.url));
}

/** The method's definition, which must exist. */
function method(name: string) {
  const definition = workloadApiServiceDefinition()[name];
  assert.ok(definition !== undefined, `no method ${name}`);
  return definition;
}

describe('workload_proto', () => {
  test('the committed descriptor is workload.proto as it is now (run node scripts/workload_proto.js)', () => {
    const root = new protobuf.Root().loadSync(here('./workload.proto'), { keepCase: true });
    root.resolveAll();
    const committed = JSON.parse(readFileSync(here('./workload_proto.json'), 'utf8'));
    assert.deepEqual(committed, JSON.parse(JSON.stringify(root.toJSON())));
  });

  test('names every method of the service with its path and streaming', () => {
    const definition = workloadApiServiceDefinition();
    assert.deepEqual(
      Object.entries(definition).map(([name, m]) => [
        name,
        m.path,
        m.requestStream,
        m.responseStream,
      ]),
      [
        ['FetchX509SVID', FETCH_X509_SVID_PATH, false, true],
        ['FetchX509Bundles', FETCH_X509_BUNDLES_PATH, false, true],
        ['FetchJWTSVID', '/SpiffeWorkloadAPI/FetchJWTSVID', false, false],
        ['FetchJWTBundles', '/SpiffeWorkloadAPI/FetchJWTBundles', false, true],
        ['ValidateJWTSVID', '/SpiffeWorkloadAPI/ValidateJWTSVID', false, false],
        ['FetchWITSVID', '/SpiffeWorkloadAPI/FetchWITSVID', false, true],
        ['FetchWITBundles', '/SpiffeWorkloadAPI/FetchWITBundles', false, true],
      ],
    );
    assert.equal(workloadApiServiceDefinition(), definition);
  });

  test('an X509SVIDResponse goes through the wire with the proto field names', () => {
    const fetch = method('FetchX509SVID');
    const message = {
      svids: [
        {
          spiffe_id: 'spiffe://example.org/a',
          x509_svid: Buffer.from([1, 2, 3]),
          x509_svid_key: Buffer.from([4]),
          bundle: Buffer.from([5, 6]),
          hint: 'internal',
        },
      ],
      crl: [Buffer.from([7])],
      federated_bundles: { 'spiffe://partner.test': Buffer.from([8, 9]) },
    };
    const bytes = fetch.responseSerialize(message);
    assert.ok(Buffer.isBuffer(bytes));
    assert.deepEqual(fetch.responseDeserialize(bytes), message);
  });

  test('absent fields decode to their defaults, and an empty request is zero bytes', () => {
    const fetch = method('FetchX509SVID');
    assert.deepEqual(fetch.responseDeserialize(Buffer.alloc(0)), {
      svids: [],
      crl: [],
      federated_bundles: {},
    });
    assert.equal(fetch.requestSerialize({}).length, 0);
    assert.deepEqual(fetch.requestDeserialize(Buffer.alloc(0)), {});
  });

  test('the JWT messages resolve google.protobuf.Struct from the descriptor', () => {
    const validate = method('ValidateJWTSVID');
    const claims = { fields: { aud: { stringValue: 'spike' } } };
    const decoded = validate.responseDeserialize(
      validate.responseSerialize({ spiffe_id: 'spiffe://example.org/a', claims }),
    ) as { claims: { fields: Record<string, { stringValue?: string }> } };
    assert.equal(decoded.claims.fields.aud?.stringValue, 'spike');
  });

  test('bytes that are not the message, and values that are not objects, are refused', () => {
    const fetch = method('FetchX509SVID');
    // Field 1 (svids) as a length-delimited entry that runs past the end.
    assert.throws(() => fetch.responseDeserialize(Buffer.from([0x0a, 0x05, 0x01])));
    assert.throws(() => fetch.responseSerialize([]), /expected a X509SVIDResponse object/);
    assert.throws(() => fetch.responseSerialize(null), /expected a X509SVIDResponse object/);
  });
});
