/**
 * The text form of a recovery shard, which operators keep offline (printed or
 * in a password manager) and paste back for a break-glass restore:
 *
 * ```
 * spike-shard:v1:<generation>:<index>:<threshold>:<value>:<checksum>
 * ```
 *
 * - `generation`, `index`, `threshold`: decimal integers without sign or
 *   leading zeros (generation 1..2147483647, index 1..255, threshold 2..255);
 * - `value`: the share bytes (33; the last one is the x coordinate) in
 *   base64url without padding (44 characters);
 * - `checksum`: the first 8 lowercase hex digits of SHA-256 over the ASCII
 *   text before it, final `:` included. It catches a typo before the shard
 *   reaches Shamir, where a wrong byte would silently yield a wrong key.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { decodeBase64Url, encodeBase64Url } from '../crypto/base64.ts';
import { findShardProblem } from '../crypto/shamir.ts';
import type { Shard } from '../crypto/shard.ts';
import { InvalidRequestError } from '../errors/errors.ts';

export const SHARD_TEXT_PREFIX = 'spike-shard';
export const SHARD_TEXT_VERSION = 'v1';
const CHECKSUM_HEX_DIGITS = 8;
/** Well above a valid text's length (about 80); anything longer is refused before hashing. */
const MAX_SHARD_TEXT_LENGTH = 256;
const FIELD_COUNT = 7;

const DECIMAL_REGEXP = /^(?:0|[1-9][0-9]*)$/;
const CHECKSUM_REGEXP = /^[0-9a-f]{8}$/;
const PRINTABLE_ASCII_REGEXP = /^[\x21-\x7e]*$/;

/** The text form of `shard`. Throws `RangeError` for a malformed shard (a bug). */
export function formatShardText(shard: Shard): string {
  const problem = findShardProblem(shard);
  if (problem !== undefined) {
    throw new RangeError(`Cannot format the shard: ${problem}`);
  }
  const body = [
    SHARD_TEXT_PREFIX,
    SHARD_TEXT_VERSION,
    String(shard.generation),
    String(shard.index),
    String(shard.threshold),
    encodeBase64Url(shard.value),
  ].join(':');
  return `${body}:${checksumOf(`${body}:`)}`;
}

/**
 * Parses the text form of a shard. Whitespace around it is ignored; anything
 * else that is not exactly the format throws `InvalidRequestError` naming the
 * part that is wrong, without repeating the text.
 */
export function parseShardText(text: string): Shard {
  if (typeof text !== 'string') {
    throw new InvalidRequestError('Shard text must be a string');
  }
  const trimmed = text.trim();
  if (trimmed.length === 0) {
    throw new InvalidRequestError('Shard text is empty');
  }
  if (trimmed.length > MAX_SHARD_TEXT_LENGTH) {
    throw new InvalidRequestError(
      `Malformed shard text: longer than ${MAX_SHARD_TEXT_LENGTH} characters`,
    );
  }
  if (!PRINTABLE_ASCII_REGEXP.test(trimmed)) {
    throw new InvalidRequestError(
      'Malformed shard text: it contains whitespace or characters outside printable ASCII',
    );
  }
  const fields = trimmed.split(':');
  if (fields[0] !== SHARD_TEXT_PREFIX) {
    throw new InvalidRequestError(
      `Malformed shard text: it must start with "${SHARD_TEXT_PREFIX}:"`,
    );
  }
  if (fields[1] !== SHARD_TEXT_VERSION) {
    throw new InvalidRequestError(
      `Unsupported shard text version: only "${SHARD_TEXT_VERSION}" is known`,
    );
  }
  if (fields.length !== FIELD_COUNT) {
    throw new InvalidRequestError(
      `Malformed shard text: expected ${FIELD_COUNT} fields separated by ":", found ${fields.length}`,
    );
  }
  const [, , generationText, indexText, thresholdText, valueText, checksum] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (!CHECKSUM_REGEXP.test(checksum)) {
    throw new InvalidRequestError(
      `Malformed shard text: the checksum must be ${CHECKSUM_HEX_DIGITS} lowercase hex digits`,
    );
  }
  if (checksumOf(trimmed.slice(0, trimmed.length - checksum.length)) !== checksum) {
    throw new InvalidRequestError(
      'Shard text checksum does not match: the text was changed or mistyped',
    );
  }
  const generation = parseDecimal(generationText, 'generation');
  const index = parseDecimal(indexText, 'index');
  const threshold = parseDecimal(thresholdText, 'threshold');
  let value: Uint8Array;
  try {
    value = decodeBase64Url(valueText);
  } catch {
    throw new InvalidRequestError(
      'Malformed shard text: the value is not unpadded base64url (A-Z, a-z, 0-9, "-", "_")',
    );
  }
  const shard: Shard = { generation, index, threshold, value };
  const problem = findShardProblem(shard);
  if (problem !== undefined) {
    value.fill(0);
    throw new InvalidRequestError(`Malformed shard text: ${problem}`);
  }
  return shard;
}

function parseDecimal(text: string, name: string): number {
  // Zero and overlong numbers pass here; findShardProblem() refuses them as out of range.
  if (!DECIMAL_REGEXP.test(text)) {
    throw new InvalidRequestError(
      `Malformed shard text: the ${name} must be a decimal integer without sign or leading zeros`,
    );
  }
  return Number(text);
}

function checksumOf(text: string): string {
  const digest = sha256(new TextEncoder().encode(text));
  let hex = '';
  for (const byte of digest.subarray(0, CHECKSUM_HEX_DIGITS / 2)) {
    hex += byte.toString(16).padStart(2, '0');
  }
  return hex;
}
