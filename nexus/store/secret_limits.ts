/**
 * Size limits of what the secret store accepts, checked before anything is
 * encrypted or written. The numbers are the wire contract's
 * (`shared/api/secrets.ts`); the checks here hold for every caller of the
 * store, not only the routes. Beyond a limit the caller gets
 * InvalidRequestError; messages name the limit, never a value.
 *
 * Lengths count characters (Unicode code points). Strings must be well-formed
 * UTF-16: a lone surrogate would be replaced by U+FFFD when encoded, so the
 * stored value would silently differ from the one given.
 */
import {
  MAX_CUSTOM_METADATA_KEY_LENGTH,
  MAX_CUSTOM_METADATA_KEYS,
  MAX_CUSTOM_METADATA_VALUE_LENGTH,
  MAX_DATA_KEYS,
  MAX_KEPT_VERSIONS,
  MAX_KEY_LENGTH,
  MAX_SECRET_DATA_BYTES,
} from '../../shared/api/secrets.ts';
import { InvalidRequestError } from '../../shared/errors/errors.ts';

const LONE_SURROGATE_REGEXP = /[\uD800-\uDFFF]/u;

const encoder = new TextEncoder();

/** Checks a secret version's data against the limits. */
export function checkSecretData(data: unknown): asserts data is Readonly<Record<string, string>> {
  const entries = plainEntries(data, 'Secret data');
  if (entries.length > MAX_DATA_KEYS) {
    throw new InvalidRequestError(
      `Secret data may have at most ${MAX_DATA_KEYS} keys (got ${entries.length})`,
    );
  }
  let bytes = 2;
  for (const [key, value] of entries) {
    checkString(key, 'A secret data key', 1, MAX_KEY_LENGTH);
    checkString(value, 'A secret data value', 0, Number.POSITIVE_INFINITY);
    // The JSON form: "key":"value", plus a comma; escapes counted exactly.
    bytes += encoder.encode(JSON.stringify(key)).length + 1;
    bytes += encoder.encode(JSON.stringify(value)).length + 1;
    if (bytes > MAX_SECRET_DATA_BYTES + 1) {
      throw new InvalidRequestError(
        `Secret data may be at most ${MAX_SECRET_DATA_BYTES} bytes when serialised`,
      );
    }
  }
}

/** Checks a path's custom metadata against the limits. */
export function checkCustomMetadata(
  metadata: unknown,
): asserts metadata is Readonly<Record<string, string>> {
  const entries = plainEntries(metadata, 'Custom metadata');
  if (entries.length > MAX_CUSTOM_METADATA_KEYS) {
    throw new InvalidRequestError(
      `Custom metadata may have at most ${MAX_CUSTOM_METADATA_KEYS} entries (got ${entries.length})`,
    );
  }
  for (const [key, value] of entries) {
    checkString(key, 'A custom metadata key', 1, MAX_CUSTOM_METADATA_KEY_LENGTH);
    checkString(value, 'A custom metadata value', 0, MAX_CUSTOM_METADATA_VALUE_LENGTH);
  }
}

/** Checks a cap on kept versions: an integer in 1..MAX_KEPT_VERSIONS. */
export function checkMaxVersions(value: unknown, name = 'maxVersions'): asserts value is number {
  if (
    typeof value !== 'number' ||
    !Number.isSafeInteger(value) ||
    value < 1 ||
    value > MAX_KEPT_VERSIONS
  ) {
    throw new InvalidRequestError(
      `${name} must be an integer from 1 to ${MAX_KEPT_VERSIONS} (got ${String(value)})`,
    );
  }
}

function plainEntries(value: unknown, what: string): [string, unknown][] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRequestError(`${what} must be an object of string values`);
  }
  return Object.entries(value);
}

function checkString(value: unknown, what: string, min: number, max: number): void {
  if (typeof value !== 'string') {
    throw new InvalidRequestError(`${what} must be a string`);
  }
  if (LONE_SURROGATE_REGEXP.test(value)) {
    throw new InvalidRequestError(`${what} must be well-formed Unicode`);
  }
  if (max === Number.POSITIVE_INFINITY) return;
  const length = codePointLength(value, max);
  if (length < min || length > max) {
    throw new InvalidRequestError(
      min > 0
        ? `${what} must be ${min} to ${max} characters long`
        : `${what} must be at most ${max} characters long`,
    );
  }
}

/** Code points in `text`, counting no further than just past `max`. */
function codePointLength(text: string, max: number): number {
  let count = 0;
  for (const _ of text) {
    if (++count > max) break;
  }
  return count;
}
