import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidRequestError } from '../errors/errors.ts';
import {
  formatVersioned,
  MAX_CIPHERTEXT_LENGTH,
  MAX_TRANSIT_BATCH_ITEMS,
  MAX_TRANSIT_ITEM_BYTES,
  parseDataKeyRequest,
  parseDecryptRequest,
  parseEncryptRequest,
  parseKeyName,
  parseVersioned,
} from './transit.ts';

const refused = (run: () => unknown, message: RegExp) =>
  assert.throws(
    run,
    (err: unknown) => err instanceof InvalidRequestError && message.test(err.message),
  );

describe('ciphertext text', () => {
  test('spike:v<N>:<base64> round-trips; anything else is refused', () => {
    const bytes = Uint8Array.from([1, 2, 3, 250]);
    const text = formatVersioned(12, bytes);
    assert.equal(text, 'spike:v12:AQID+g==');
    assert.deepEqual(parseVersioned(text, 'ciphertext'), { version: 12, bytes });
    for (const bad of [
      'vault:v1:AQID',
      'spike:v0:AQID',
      'spike:v01:AQID',
      'spike:v2147483648:AQID',
      'spike:v1:AQI',
      'spike:v1:',
      'spike:v1:AQID\n',
      `spike:v1:${'A'.repeat(MAX_CIPHERTEXT_LENGTH)}`,
      42,
    ]) {
      refused(() => parseVersioned(bad, 'ciphertext'), /"ciphertext"/);
    }
    assert.throws(() => formatVersioned(0, bytes), RangeError);
  });
});

describe('request parsers', () => {
  test('one item, or a batch of 1 to 1000 whose errors name the item', () => {
    assert.equal(parseEncryptRequest({ plaintext: 'AA==' }).isBatch, false);
    const batch = parseEncryptRequest({ batch: [{ plaintext: 'AA==' }, { plaintext: '' }] });
    assert.equal(batch.isBatch, true);
    assert.deepEqual(batch.items[1]?.plaintext, new Uint8Array(0));
    assert.deepEqual(batch.items[0]?.context, new Uint8Array(0));
    refused(() => parseEncryptRequest({ batch: [] }), /1 to 1000 items/);
    refused(
      () =>
        parseEncryptRequest({
          batch: Array.from({ length: MAX_TRANSIT_BATCH_ITEMS + 1 }, () => ({ plaintext: '' })),
        }),
      /1 to 1000 items/,
    );
    refused(
      () => parseEncryptRequest({ batch: [{ plaintext: 'AA==' }, { plaintext: 'AA=' }] }),
      /^Item 2 of the batch: Field "plaintext"/,
    );
    refused(() => parseEncryptRequest({ batch: [{ plaintext: '' }], extra: 1 }), /unknown field/);
  });

  test('sizes are bounded before decoding, and an unknown field is named by position only', () => {
    const big = 'A'.repeat((Math.ceil(MAX_TRANSIT_ITEM_BYTES / 3) + 1) * 4);
    refused(() => parseEncryptRequest({ plaintext: big }), /at most 65536 bytes/);
    refused(() => parseEncryptRequest({ plaintext: '', context: 'A'.repeat(2000) }), /"context"/);
    assert.throws(
      () => parseEncryptRequest({ plaintext: '', 'secret-key-name': 1 }),
      (err: unknown) => err instanceof InvalidRequestError && !err.message.includes('secret-key'),
    );
  });

  test('decrypt needs a well-formed ciphertext; data keys take 16 to 64 bytes and no null', () => {
    refused(() => parseDecryptRequest({ ciphertext: 'nope' }), /"ciphertext"/);
    assert.equal(parseDataKeyRequest({}).items[0]?.bytes, 32);
    assert.equal(parseDataKeyRequest({ bytes: 64, wrappedOnly: true }).items[0]?.wrappedOnly, true);
    for (const bytes of [15, 65, 32.5, '32', null]) {
      refused(() => parseDataKeyRequest({ bytes }), /"bytes"/);
    }
    refused(() => parseDataKeyRequest({ wrappedOnly: 'yes' }), /"wrappedOnly"/);
  });

  test('key names are those of policies: 1 to 64 of [A-Za-z0-9._-], never . or ..', () => {
    assert.equal(parseKeyName('orders.v2_x-1'), 'orders.v2_x-1');
    for (const bad of ['', '.', '..', 'a/b', 'a b', 'é', 'x'.repeat(65), null]) {
      refused(() => parseKeyName(bad), /"name"/);
    }
  });
});
