import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidRequestError } from '../errors/errors.ts';
import {
  DEFAULT_WATCH_WAIT_MS,
  formatWaitQuery,
  MAX_CUSTOM_METADATA_KEY_LENGTH,
  MAX_CUSTOM_METADATA_VALUE_LENGTH,
  MAX_KEY_LENGTH,
  MAX_VERSION,
  MAX_WATCH_PATHS,
  MAX_WATCH_WAIT_MS,
  parsePutMetadataRequest,
  parsePutSecretRequest,
  parseStringMap,
  parseWatchQuery,
  parseWatchRequest,
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

describe('parseWatchQuery() and formatWaitQuery()', () => {
  test('takes newerThan from 0 and a wait in s or ms up to the maximum, 30s by default', () => {
    assert.deepEqual(parseWatchQuery('0', undefined, undefined), {
      newerThan: 0,
      waitMs: DEFAULT_WATCH_WAIT_MS,
    });
    assert.deepEqual(parseWatchQuery('7', '60s', undefined), { newerThan: 7, waitMs: 60_000 });
    assert.deepEqual(parseWatchQuery(String(MAX_VERSION), '1ms', undefined), {
      newerThan: MAX_VERSION,
      waitMs: 1,
    });
    assert.equal(parseWatchQuery('1', `${MAX_WATCH_WAIT_MS}ms`, undefined).waitMs, 60_000);
  });

  test('refuses anything else, never echoing the value', () => {
    const cases: [string | undefined, string | undefined, string | undefined][] = [
      [undefined, '1s', undefined],
      ['1', undefined, '1'],
      ['', undefined, undefined],
      ['-1', undefined, undefined],
      ['01', undefined, undefined],
      ['1.0', undefined, undefined],
      [String(MAX_VERSION + 1), undefined, undefined],
      ['1', '0s', undefined],
      ['1', '61s', undefined],
      ['1', '60001ms', undefined],
      ['1', '1m', undefined],
      ['1', '30', undefined],
      ['1', ' 1s', undefined],
      ['1', '1.5s', undefined],
      ['1', 'SECRETs', undefined],
    ];
    for (const [newerThan, wait, version] of cases) {
      assert.throws(
        () => parseWatchQuery(newerThan, wait, version),
        (err: unknown) => err instanceof InvalidRequestError && !err.message.includes('SECRET'),
        `${newerThan} ${wait} ${version}`,
      );
    }
  });

  test('formats a wait the parser reads back, and refuses one it would not', () => {
    assert.equal(formatWaitQuery(30_000), '30000ms');
    assert.equal(parseWatchQuery('1', formatWaitQuery(1), undefined).waitMs, 1);
    for (const bad of [0, -1, 1.5, MAX_WATCH_WAIT_MS + 1, Number.NaN]) {
      assert.throws(() => formatWaitQuery(bad), InvalidRequestError, String(bad));
    }
  });
});

describe('parseWatchRequest()', () => {
  test('keeps the paths in the order sent, a "__proto__" path too, with a 30 s wait by default', () => {
    const parsed = parseWatchRequest(JSON.parse('{"versions":{"b/x":3,"__proto__":0,"a":7}}'));
    assert.deepEqual(
      [...parsed.versions],
      [
        ['b/x', 3],
        ['__proto__', 0],
        ['a', 7],
      ],
    );
    assert.equal(parsed.waitMs, DEFAULT_WATCH_WAIT_MS);
    assert.equal(parseWatchRequest({ versions: { a: 0 }, wait: '500ms' }).waitMs, 500);
  });

  test(`takes 1 to ${MAX_WATCH_PATHS} paths and refuses anything else, never echoing a value`, () => {
    const paths = (count: number) =>
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`p/${i}`, 0]));
    assert.equal(
      parseWatchRequest({ versions: paths(MAX_WATCH_PATHS) }).versions.size,
      MAX_WATCH_PATHS,
    );
    for (const body of [
      null,
      { versions: paths(0) },
      { versions: paths(MAX_WATCH_PATHS + 1) },
      { versions: [['a', 0]] },
      { versions: { a: 'SECRET' } },
      { versions: { a: MAX_VERSION + 1 } },
      { versions: { '': 0 } },
      { versions: { a: 0 }, wait: 'SECRETs' },
      { versions: { a: 0 }, wait: 1000 },
      { versions: { a: 0 }, SECRET: 1 },
    ]) {
      assert.throws(
        () => parseWatchRequest(body),
        (err: unknown) => err instanceof InvalidRequestError && !err.message.includes('SECRET'),
        JSON.stringify(body),
      );
    }
  });
});
