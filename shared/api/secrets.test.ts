import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parsePutMetadataRequest, parsePutSecretRequest, parseStringMap } from './secrets.ts';

describe('parseStringMap()', () => {
  test('keeps a key named "__proto__" as an ordinary key instead of dropping it', () => {
    const map = parseStringMap(JSON.parse('{"__proto__":"x","a":"b"}'), 'data', 10);
    assert.deepEqual(Object.keys(map).sort(), ['__proto__', 'a']);
    assert.equal(Object.getOwnPropertyDescriptor(map, '__proto__')?.value, 'x');
    assert.equal(Object.getPrototypeOf(map), Object.prototype);
    assert.equal(JSON.stringify(map), '{"__proto__":"x","a":"b"}');
  });

  test('keeps "constructor" and "toString" keys as given', () => {
    const map = parseStringMap({ constructor: 'c', toString: 't' }, 'data', 10);
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
