import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { describe, test } from 'node:test';
import { MAX_GENERATION, MAX_SHARES, SHARD_VALUE_BYTES, type Shard } from '../crypto/shard.ts';
import { InvalidRequestError } from '../errors/errors.ts';
import {
  parseGenerationsResponse,
  parseListShardsResponse,
  parsePruneRequest,
  parsePutShardRequest,
  shardToWire,
} from './keeper.ts';

function bytes(seed: number, length = SHARD_VALUE_BYTES): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (seed * 31 + i * 7) & 255);
}

function shard(overrides: Partial<Shard> = {}): Shard {
  return { generation: 3, index: 1, threshold: 2, value: bytes(1), ...overrides };
}

function base64(value: Uint8Array): string {
  return Buffer.from(value).toString('base64');
}

/** Asserts an InvalidRequestError that names `field` and does not echo `secret`. */
function assertInvalid(run: () => unknown, field: RegExp, secret?: string): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof InvalidRequestError, String(err));
    assert.equal(err.code, 'ERR_INVALID_REQUEST');
    assert.match(err.message, field);
    if (secret !== undefined && secret !== '') {
      assert.ok(!err.message.includes(secret), 'the message echoes the shard');
    }
    return true;
  });
}

describe('shardToWire() and parsePutShardRequest()', () => {
  test('round-trip a shard through JSON with standard padded base64', () => {
    const original = shard();
    const wire = JSON.parse(JSON.stringify(shardToWire(original)));
    assert.deepEqual(wire, {
      generation: 3,
      index: 1,
      threshold: 2,
      shard: base64(original.value),
    });
    assert.deepEqual(parsePutShardRequest(wire), original);
  });

  test('base64 encoding matches the platform for every length and byte', () => {
    for (let length = 0; length < 40; length++) {
      const value = bytes(length, length);
      const wire = shardToWire(shard({ value }));
      assert.equal(wire.shard, base64(value));
    }
    const all = Uint8Array.from({ length: 255 }, (_, i) => i);
    assert.equal(shardToWire(shard({ value: all })).shard, base64(all));
  });

  test('accepts the edges of every range', () => {
    const low = parsePutShardRequest(shardToWire(shard({ generation: 1, index: 1, threshold: 2 })));
    assert.deepEqual([low.generation, low.index, low.threshold], [1, 1, 2]);
    const high = parsePutShardRequest(
      shardToWire(shard({ generation: MAX_GENERATION, index: MAX_SHARES, threshold: MAX_SHARES })),
    );
    assert.deepEqual(
      [high.generation, high.index, high.threshold],
      [MAX_GENERATION, MAX_SHARES, MAX_SHARES],
    );
  });

  test('rejects a body that is not an object', () => {
    for (const body of [null, undefined, 'x', 1, [], true]) {
      assertInvalid(() => parsePutShardRequest(body), /JSON object/);
    }
  });

  test('rejects unknown fields by name', () => {
    const body = { ...shardToWire(shard()), extra: 1 };
    assertInvalid(() => parsePutShardRequest(body), /Unknown field "extra"/);
    const proto = JSON.parse(`{"__proto__": {}, ${JSON.stringify(shardToWire(shard())).slice(1)}`);
    assertInvalid(() => parsePutShardRequest(proto), /Unknown field "__proto__"/);
  });

  test('rejects missing fields by name', () => {
    for (const field of ['generation', 'index', 'threshold', 'shard'] as const) {
      const body: Record<string, unknown> = { ...shardToWire(shard()) };
      delete body[field];
      assertInvalid(() => parsePutShardRequest(body), new RegExp(`"${field}" is missing`));
    }
  });

  test('rejects wrong types, non-integers and out-of-range numbers', () => {
    const cases: Array<[string, unknown]> = [
      ['generation', 0],
      ['generation', MAX_GENERATION + 1],
      ['generation', 1.5],
      ['generation', '3'],
      ['generation', null],
      ['generation', Number.NaN],
      ['index', 0],
      ['index', MAX_SHARES + 1],
      ['index', -1],
      ['index', true],
      ['threshold', 1],
      ['threshold', MAX_SHARES + 1],
      ['threshold', 2.0000001],
      ['threshold', [2]],
    ];
    for (const [field, value] of cases) {
      const body = { ...shardToWire(shard()), [field]: value };
      assertInvalid(() => parsePutShardRequest(body), new RegExp(`Field "${field}" must be`));
    }
  });

  test('rejects bad base64 without echoing it', () => {
    const good = base64(bytes(9));
    const bad = [
      good.replace(/.$/, '*'),
      `${good} `,
      ` ${good}`,
      good.slice(0, 40),
      good.replace(/\+/g, '-').replace(/\//g, '_').replace(/^./, '-'),
      `${good.slice(0, 20)}\n${good.slice(20)}`,
      `${good}=`,
      `${good}====`,
    ];
    for (const encoded of bad) {
      const body = { ...shardToWire(shard()), shard: encoded };
      assertInvalid(() => parsePutShardRequest(body), /Field "shard" must/, encoded);
    }
    assertInvalid(
      () => parsePutShardRequest({ ...shardToWire(shard()), shard: 42 }),
      /Field "shard" must be a base64 string/,
    );
  });

  test('rejects base64 with non-zero bits under the padding (a second spelling)', () => {
    // 34 bytes end in "==": the last sextet carries 4 unused bits.
    const value = bytes(4, SHARD_VALUE_BYTES + 1);
    const canonical = base64(value);
    const last = canonical.at(-3) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const twin = alphabet[alphabet.indexOf(last) + 1] as string;
    const sloppy = `${canonical.slice(0, -3)}${twin}==`;
    assert.deepEqual(new Uint8Array(Buffer.from(sloppy, 'base64')), value);
    assertInvalid(
      () => parsePutShardRequest({ ...shardToWire(shard()), shard: sloppy }),
      /standard padded base64/,
      sloppy,
    );
  });

  test('rejects a shard of the wrong length without echoing it', () => {
    for (const length of [0, 1, SHARD_VALUE_BYTES - 1, SHARD_VALUE_BYTES + 1, 64]) {
      const encoded = base64(bytes(length, length));
      const body = { ...shardToWire(shard()), shard: encoded };
      assertInvalid(
        () => parsePutShardRequest(body),
        new RegExp(`"shard" must decode to ${SHARD_VALUE_BYTES} bytes`),
        encoded,
      );
    }
  });
});

describe('parsePruneRequest()', () => {
  test('accepts an integer generation', () => {
    assert.deepEqual(parsePruneRequest({ keepFrom: 4 }), { keepFrom: 4 });
    assert.deepEqual(parsePruneRequest({ keepFrom: MAX_GENERATION }), {
      keepFrom: MAX_GENERATION,
    });
  });

  test('rejects missing, unknown, wrong-typed and out-of-range values', () => {
    assertInvalid(() => parsePruneRequest({}), /"keepFrom" is missing/);
    assertInvalid(() => parsePruneRequest({ keepFrom: 1, all: true }), /Unknown field "all"/);
    for (const keepFrom of [0, -1, 1.5, '2', null, MAX_GENERATION + 1]) {
      assertInvalid(() => parsePruneRequest({ keepFrom }), /Field "keepFrom" must be an integer/);
    }
    assertInvalid(() => parsePruneRequest([]), /JSON object/);
  });

  test('cuts a long unknown field name short', () => {
    const name = 'x'.repeat(500);
    assert.throws(
      () => parsePruneRequest({ keepFrom: 1, [name]: 1 }),
      (err: Error) => err.message.length < 120,
    );
  });
});

describe('parseListShardsResponse()', () => {
  test('parses every shard of a listing', () => {
    const shards = [shard({ generation: 1 }), shard({ generation: 2, value: bytes(2) })];
    const body = JSON.parse(JSON.stringify({ shards: shards.map(shardToWire) }));
    assert.deepEqual(parseListShardsResponse(body), shards);
    assert.deepEqual(parseListShardsResponse({ shards: [] }), []);
  });

  test('names the entry and field of a bad shard without echoing it', () => {
    const secret = base64(bytes(5, 10));
    const body = {
      shards: [shardToWire(shard({ generation: 1 })), { ...shardToWire(shard()), shard: secret }],
    };
    assertInvalid(() => parseListShardsResponse(body), /"shards\[1\]\.shard"/, secret);
    assertInvalid(
      () => parseListShardsResponse({ shards: [{ ...shardToWire(shard()), index: 0 }] }),
      /"shards\[0\]\.index"/,
    );
    assertInvalid(
      () => parseListShardsResponse({ shards: [{ ...shardToWire(shard()), x: 1 }] }),
      /Unknown field "shards\[0\]\.x"/,
    );
    assertInvalid(
      () => parseListShardsResponse({ shards: [7] }),
      /"shards\[0\]" must be an object/,
    );
  });

  test('rejects two shards of one generation, a non-array and unknown fields', () => {
    const twice = { shards: [shardToWire(shard()), shardToWire(shard({ index: 2 }))] };
    assertInvalid(() => parseListShardsResponse(twice), /"shards\[1\]\.generation" repeats/);
    assertInvalid(() => parseListShardsResponse({ shards: {} }), /"shards" must be an array/);
    assertInvalid(() => parseListShardsResponse({}), /"shards" must be an array/);
    assertInvalid(() => parseListShardsResponse({ shards: [], more: 1 }), /Unknown field "more"/);
  });
});

describe('parseGenerationsResponse()', () => {
  test('parses ascending generations', () => {
    assert.deepEqual(parseGenerationsResponse({ generations: [] }), []);
    assert.deepEqual(parseGenerationsResponse({ generations: [1, 2, 9] }), [1, 2, 9]);
  });

  test('rejects unordered, repeated, non-integer and out-of-range entries', () => {
    assertInvalid(
      () => parseGenerationsResponse({ generations: [2, 1] }),
      /"generations\[1\]" must be greater/,
    );
    assertInvalid(
      () => parseGenerationsResponse({ generations: [2, 2] }),
      /"generations\[1\]" must be greater/,
    );
    for (const bad of [0, 1.5, '1', null, MAX_GENERATION + 1]) {
      assertInvalid(
        () => parseGenerationsResponse({ generations: [bad] }),
        /"generations\[0\]" must be an integer/,
      );
    }
    assertInvalid(() => parseGenerationsResponse({ generations: 1 }), /must be an array/);
    assertInvalid(() => parseGenerationsResponse({ generations: [], x: 1 }), /Unknown field "x"/);
    assertInvalid(() => parseGenerationsResponse('[]'), /JSON object/);
  });
});
