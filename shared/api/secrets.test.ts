import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidRequestError } from '../errors/errors.ts';
import {
  MAX_CUSTOM_METADATA_KEY_LENGTH,
  MAX_CUSTOM_METADATA_VALUE_LENGTH,
  MAX_KEY_LENGTH,
  parsePutMetadataRequest,
  parsePutSecretRequest,
  parseStringMap,
} from './secrets.ts';

const DATA_LIMITS = { field: 'data', maxKeys: 10, maxKeyLength: MAX_KEY_LENGTH };

describe('parseStringMap()', () => {
  test('keeps a key named "__proto__" as an ordinary key instead of dropping it', () => {
    const map = parseStringMap(JSON.parse('{"__proto__":"x","a":"b"}'), DATA_LIMITS);
    assert.deepEqual(Object.keys(map).sort(), ['__proto__', 'a']);
    assert.equal(Object.getOwnPropertyDescriptor(map, '__proto__')?.value, 'x');
    assert.equal(Object.getPrototypeOf(map), Object.prototype);
    assert.equal(JSON.stringify(map), '{"__proto__":"x","a":"b"}');
  });

  test('keeps "constructor" and "toString" keys as given', () => {
    const map = parseStringMap({ constructor: 'c', toString: 't' }, DATA_LIMITS);
    assert.deepEqual({ ...map }, { constructor: 'c', toString: 't' });
  });
});

describe('parsePutSecretRequest() and parsePutMetadataRequest()', () => {
  test('carry a "__proto__" key of data and customMetadata through', () => {
    const put = parsePutSecretRequest(JSON.parse('{"data":{"__proto__":"v"}}'));
    assert.deepEqual(Object.keys(put.data), ['__proto__']);
    const metadata = parsePutMetadataRequest(JSON.parse('{"customMetadata":{"__proto__":"v"}}'));
    assert.deepEqual(Object.keys(metadata.customMetadata ?? {}), ['__proto__']);
  });

  test('refuse a body whose own "__proto__" member is not a known field', () => {
    assert.throws(() => parsePutSecretRequest(JSON.parse('{"data":{},"__proto__":{"cas":0}}')), {
      code: 'ERR_INVALID_REQUEST',
    });
  });
});

describe('the wire refuses what the store would refuse, with the same numbers', () => {
  test('a custom metadata key or value over its limit is refused at the edge', () => {
    const atKeyLimit = 'k'.repeat(MAX_CUSTOM_METADATA_KEY_LENGTH);
    const atValueLimit = 'v'.repeat(MAX_CUSTOM_METADATA_VALUE_LENGTH);
    assert.deepEqual(
      parsePutMetadataRequest({ customMetadata: { [atKeyLimit]: atValueLimit } }).customMetadata,
      { [atKeyLimit]: atValueLimit },
    );
    assert.throws(() => parsePutMetadataRequest({ customMetadata: { [`${atKeyLimit}k`]: 'v' } }), {
      code: 'ERR_INVALID_REQUEST',
      message: /longer than 128 characters/,
    });
    assert.throws(() => parsePutMetadataRequest({ customMetadata: { k: `${atValueLimit}v` } }), {
      code: 'ERR_INVALID_REQUEST',
      message: /value longer than 512 characters/,
    });
  });

  test('a data key over its limit is refused at the edge', () => {
    const atLimit = 'k'.repeat(MAX_KEY_LENGTH);
    assert.deepEqual(Object.keys(parsePutSecretRequest({ data: { [atLimit]: 'v' } }).data), [
      atLimit,
    ]);
    assert.throws(() => parsePutSecretRequest({ data: { [`${atLimit}k`]: 'v' } }), {
      code: 'ERR_INVALID_REQUEST',
    });
  });
});

describe('secret parsers never echo a key of secret data or an unknown field', () => {
  const KEY = 'aws-AKIA-s3cr3t-name';

  for (const [what, parse] of [
    [
      'a data value that is not a string',
      () => parsePutSecretRequest({ data: { ok: 'v', [KEY]: 1 } }),
    ],
    [
      'a data key that is too long',
      () => parsePutSecretRequest({ data: { [KEY.repeat(20)]: 'v' } }),
    ],
    ['data sent without its wrapper', () => parsePutSecretRequest({ [KEY]: 'v' })],
    [
      'a custom metadata value that is too long',
      () => parsePutMetadataRequest({ customMetadata: { [KEY]: 'v'.repeat(600) } }),
    ],
    ['an unknown field of a metadata update', () => parsePutMetadataRequest({ [KEY]: 1 })],
  ] as const) {
    test(`${what}: the key is named by its position and length`, () => {
      assert.throws(parse, (err: unknown) => {
        assert.ok(err instanceof InvalidRequestError);
        assert.doesNotMatch(err.message, /s3cr3t/);
        assert.match(err.message, /key \d+ \(\d+ characters\)/);
        return true;
      });
    });
  }

  test('an unknown field says which fields there are', () => {
    assert.throws(
      () => parsePutSecretRequest({ data: {}, [KEY]: 'v' }),
      /^InvalidRequestError: Unknown field: key 2 \(20 characters\) of the body; the fields are "data", "cas"$/,
    );
  });
});
