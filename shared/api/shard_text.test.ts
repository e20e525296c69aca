import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeBase64Url } from '../crypto/base64.ts';
import { randomBytes } from '../crypto/bytes.ts';
import { splitRootKey } from '../crypto/shamir.ts';
import type { Shard } from '../crypto/shard.ts';
import { formatShardText, parseShardText } from './shard_text.ts';

/** A fixed shard: value bytes 0..31 and x coordinate 7. */
const SHARD: Shard = {
  generation: 12,
  index: 2,
  threshold: 3,
  value: Uint8Array.from({ length: 33 }, (_, i) => (i === 32 ? 7 : i)),
};
const VALUE_TEXT = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8H';

/** Builds shard text with a correct checksum around arbitrary fields. */
function withChecksum(body: string): string {
  const digest = sha256(new TextEncoder().encode(`${body}:`));
  const hex = [...digest.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${body}:${hex}`;
}

function assertInvalid(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseShardText(text),
    (err: unknown) => {
      assert.equal((err as { code?: unknown }).code, 'ERR_INVALID_REQUEST');
      assert.match((err as Error).message, pattern);
      // Never echo the value (or any long run of the text) back.
      assert.ok(!(err as Error).message.includes(VALUE_TEXT.slice(0, 10)));
      return true;
    },
  );
}

describe('formatShardText()', () => {
  test('writes the documented layout with a SHA-256 checksum', () => {
    const text = formatShardText(SHARD);
    const body = `spike-shard:v1:12:2:3:${VALUE_TEXT}`;
    assert.equal(text, withChecksum(body));
    assert.match(text, /^spike-shard:v1:12:2:3:[A-Za-z0-9_-]{44}:[0-9a-f]{8}$/);
  });

  test('refuses a malformed shard as a programming error', () => {
    assert.throws(() => formatShardText({ ...SHARD, index: 0 }), RangeError);
    assert.throws(() => formatShardText({ ...SHARD, value: new Uint8Array(32) }), RangeError);
  });
});

describe('parseShardText()', () => {
  test('reads back what formatShardText() wrote', () => {
    assert.deepEqual(parseShardText(formatShardText(SHARD)), SHARD);
  });

  test('round-trips real shards of a split', async () => {
    const shards = await splitRootKey(randomBytes(32), {
      shares: 5,
      threshold: 3,
      generation: 2 ** 31 - 1,
    });
    for (const shard of shards) {
      assert.deepEqual(parseShardText(formatShardText(shard)), shard);
    }
  });

  test('ignores whitespace around the text, as pasted from a terminal', () => {
    const text = formatShardText(SHARD);
    assert.deepEqual(parseShardText(`  ${text}\n`), SHARD);
    assert.deepEqual(parseShardText(`\t${text}\r\n`), SHARD);
  });

  test('catches any single-character typo through the checksum', () => {
    const text = formatShardText(SHARD);
    const valueStart = text.indexOf(VALUE_TEXT);
    for (let i = valueStart; i < valueStart + VALUE_TEXT.length; i++) {
      const replacement = text[i] === 'A' ? 'B' : 'A';
      const typo = text.slice(0, i) + replacement + text.slice(i + 1);
      assertInvalid(typo, /checksum does not match/);
    }
    // In the numbers too: a shard moved to another slot or generation.
    assertInvalid(text.replace(':12:2:3:', ':12:1:3:'), /checksum does not match/);
    assertInvalid(text.replace(':12:2:3:', ':13:2:3:'), /checksum does not match/);
    assertInvalid(text.replace(':12:2:3:', ':12:2:2:'), /checksum does not match/);
  });

  test('catches a typo in the checksum itself', () => {
    const text = formatShardText(SHARD);
    const last = text.at(-1) === '0' ? '1' : '0';
    assertInvalid(text.slice(0, -1) + last, /checksum does not match/);
  });

  test('refuses whitespace or other characters inside the text', () => {
    const text = formatShardText(SHARD);
    assertInvalid(text.replace(':v1:', ': v1:'), /whitespace/);
    assertInvalid(text.replace(':v1:', ':v1\n:'), /whitespace/);
    assertInvalid(text.replace('spike', 'spïke'), /printable ASCII/);
  });

  test('refuses another prefix, another version and a wrong field count', () => {
    const text = formatShardText(SHARD);
    assertInvalid(text.replace('spike-shard', 'spike-shards'), /must start with "spike-shard:"/);
    assertInvalid(text.replace(':v1:', ':v2:'), /version/);
    assertInvalid(text.replace(':v1:', ':V1:'), /version/);
    assertInvalid(`${text}:extra`, /expected 7 fields/);
    assertInvalid(withChecksum(`spike-shard:v1:12:2:${VALUE_TEXT}`), /expected 7 fields/);
    assertInvalid('', /empty/);
    assertInvalid('   ', /empty/);
    assertInvalid(`spike-shard:v1:${'1'.repeat(300)}`, /longer than/);
  });

  test('refuses a checksum that is not 8 lowercase hex digits', () => {
    const text = formatShardText(SHARD);
    const body = text.slice(0, text.lastIndexOf(':'));
    const checksum = text.slice(text.lastIndexOf(':') + 1);
    assertInvalid(`${body}:${checksum.toUpperCase()}X`, /8 lowercase hex digits/);
    assertInvalid(`${body}:${checksum.slice(0, 7)}`, /8 lowercase hex digits/);
    assertInvalid(`${body}:`, /8 lowercase hex digits/);
  });

  test('names the numeric field that is wrong, even under a valid checksum', () => {
    const value = VALUE_TEXT;
    assertInvalid(withChecksum(`spike-shard:v1:012:2:3:${value}`), /generation must be a decimal/);
    assertInvalid(withChecksum(`spike-shard:v1:+12:2:3:${value}`), /generation must be a decimal/);
    assertInvalid(withChecksum(`spike-shard:v1:0:2:3:${value}`), /generation must be an integer/);
    assertInvalid(
      withChecksum(`spike-shard:v1:2147483648:2:3:${value}`),
      /generation must be an integer/,
    );
    assertInvalid(withChecksum(`spike-shard:v1:12:x:3:${value}`), /index must be a decimal/);
    assertInvalid(withChecksum(`spike-shard:v1:12:0:3:${value}`), /index must be an integer/);
    assertInvalid(withChecksum(`spike-shard:v1:12:256:3:${value}`), /index must be an integer/);
    assertInvalid(withChecksum(`spike-shard:v1:12:2:-3:${value}`), /threshold must be a decimal/);
    assertInvalid(withChecksum(`spike-shard:v1:12:2:1:${value}`), /threshold must be an integer/);
    assertInvalid(
      withChecksum(`spike-shard:v1:12:2:99999999999999999999:${value}`),
      /threshold must be an integer/,
    );
  });

  test('refuses a value that is not 33 bytes of unpadded base64url', () => {
    const prefix = 'spike-shard:v1:12:2:3';
    const tooShort = encodeBase64Url(new Uint8Array(32).fill(1));
    const tooLong = encodeBase64Url(new Uint8Array(34).fill(1));
    assertInvalid(withChecksum(`${prefix}:${tooShort}`), /value must be 33 bytes/);
    assertInvalid(withChecksum(`${prefix}:${tooLong}`), /value must be 33 bytes/);
    assertInvalid(withChecksum(`${prefix}:${VALUE_TEXT}=`), /not unpadded base64url/);
    assertInvalid(withChecksum(`${prefix}:${VALUE_TEXT.replace('A', '+')}`), /base64url/);
    assertInvalid(withChecksum(`${prefix}:`), /value must be 33 bytes/);
  });

  test('refuses an x coordinate of 0', () => {
    const value = Uint8Array.from(SHARD.value);
    value[32] = 0;
    const text = withChecksum(`spike-shard:v1:12:2:3:${encodeBase64Url(value)}`);
    assertInvalid(text, /x coordinate/);
  });

  test('refuses a value that is not a string', () => {
    assert.throws(() => parseShardText(42 as never), { code: 'ERR_INVALID_REQUEST' });
  });
});
