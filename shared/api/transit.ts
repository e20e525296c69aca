/**
 * Wire contract of named encryption keys (encryption as a service, Vault's
 * "transit"). Key material never crosses it: callers name a key and send
 * data, Nexus answers with ciphertext, plaintext or HMACs.
 *
 * | Route | Permission on `sys/keys/{name}` | What |
 * |---|---|---|
 * | `GET /v1/transit/keys` | list (per key) | the key names the caller may list |
 * | `POST /v1/transit/keys/{name}` | write | create a key (409 if it exists) |
 * | `GET /v1/transit/keys/{name}` | read | its metadata, never its material |
 * | `POST /v1/transit/keys/{name}/rotate` | write | a new latest version |
 * | `POST /v1/transit/keys/{name}/config` | write | `{ minDecryptionVersion }` |
 * | `DELETE /v1/transit/keys/{name}` | delete | the key and every version (204) |
 * | `POST /v1/transit/encrypt/{name}` | encrypt | plaintext → ciphertext |
 * | `POST /v1/transit/decrypt/{name}` | decrypt | ciphertext → plaintext |
 * | `POST /v1/transit/rewrap/{name}` | rewrap | ciphertext → ciphertext of the latest version |
 * | `POST /v1/transit/datakey/{name}` | encrypt | a fresh data key, wrapped (and in plaintext unless `wrappedOnly`) |
 * | `POST /v1/transit/hmac/{name}` | hmac | input → HMAC |
 * | `POST /v1/transit/verify/{name}` | hmac | input and HMAC → whether it is valid |
 *
 * Every data route takes one item, or `{ "batch": [item, …] }` and answers
 * `{ "batch": [result, …] }` in the same order. Bytes travel as standard
 * padded base64. A ciphertext or an HMAC is `spike:v<version>:<base64>`:
 * the key version that made it, so rotation needs nothing of the caller.
 *
 * Parsers are strict: unknown fields, wrong types and values beyond a limit
 * are refused with InvalidRequestError naming the field (and the item of a
 * batch), never its value.
 */
import { decodeBase64, encodeBase64 } from '../crypto/base64.ts';
import { InvalidRequestError } from '../errors/errors.ts';
import { PATHS } from './paths.ts';

/** Characters of a key name. */
export const MAX_KEY_NAME_LENGTH = 64;
/** Items in one batch. */
export const MAX_TRANSIT_BATCH_ITEMS = 1000;
/** Bytes of one plaintext or HMAC input (decoded). */
export const MAX_TRANSIT_ITEM_BYTES = 64 * 1024;
/** Bytes of one context (decoded). */
export const MAX_CONTEXT_BYTES = 1024;
/** Bytes of a data key: the choices, and the default. */
export const MIN_DATA_KEY_BYTES = 16;
export const MAX_DATA_KEY_BYTES = 64;
export const DEFAULT_DATA_KEY_BYTES = 32;
/** Versions one key may have; a rotation beyond it is refused (409). */
export const MAX_KEY_VERSIONS = 1000;
/** The prefix of every ciphertext and HMAC. */
export const CIPHERTEXT_PREFIX = 'spike';
/** Bytes a sealed item adds to its plaintext: layout, nonce and tag (shared/crypto/aead.ts). */
const SEALED_OVERHEAD_BYTES = 41;
/** The longest ciphertext text: a sealed item of the largest plaintext, in base64, with its prefix. */
export const MAX_CIPHERTEXT_LENGTH =
  CIPHERTEXT_PREFIX.length +
  12 +
  Math.ceil((MAX_TRANSIT_ITEM_BYTES + SEALED_OVERHEAD_BYTES) / 3) * 4;
/** The largest key version. */
const MAX_KEY_VERSION = 2 ** 31 - 1;

const KEY_NAME_REGEXP = /^[A-Za-z0-9._-]+$/;
const CIPHERTEXT_REGEXP = /^spike:v([1-9][0-9]{0,9}):([A-Za-z0-9+/=]+)$/;

// ------------------------------------------------------------ keys

/** A key version as its metadata lists it. */
export interface KeyVersionWire {
  readonly version: number;
  readonly createdAt: string;
}

/** A key's metadata: never its material. */
export interface KeyResponse {
  readonly name: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** The version encryption, rewrap, data keys and HMACs use. */
  readonly latestVersion: number;
  /** Ciphertext and HMACs of older versions are refused (`ERR_KEY_VERSION_TOO_OLD`). */
  readonly minDecryptionVersion: number;
  /** Every version, oldest first. */
  readonly versions: readonly KeyVersionWire[];
}

/** `GET /v1/transit/keys`: the names the caller may list, in byte order. */
export interface ListKeysResponse {
  readonly keys: readonly string[];
}

/** `POST /v1/transit/keys/{name}/config`. */
export interface ConfigureKeyRequest {
  readonly minDecryptionVersion: number;
}

/** 1..64 characters of letters, digits, `.`, `_` and `-`; never `.` or `..`. */
export function parseKeyName(value: unknown, field = 'name'): string {
  if (typeof value !== 'string' || value === '') {
    throw new InvalidRequestError(`Field "${field}" must be a non-empty key name`);
  }
  if (value.length > MAX_KEY_NAME_LENGTH) {
    throw new InvalidRequestError(
      `Field "${field}" must be at most ${MAX_KEY_NAME_LENGTH} characters (got ${value.length})`,
    );
  }
  if (!KEY_NAME_REGEXP.test(value)) {
    throw new InvalidRequestError(
      `Field "${field}" may contain only letters, digits, ".", "_" and "-"`,
    );
  }
  // A URL path segment of "." or ".." is resolved away by clients.
  if (value === '.' || value === '..') {
    throw new InvalidRequestError(`Field "${field}" must not be "." or ".."`);
  }
  return value;
}

export function parseConfigureKeyRequest(body: unknown): ConfigureKeyRequest {
  const fields = objectWith(body, ['minDecryptionVersion'], 'The body');
  return { minDecryptionVersion: versionOf(fields.minDecryptionVersion, 'minDecryptionVersion') };
}

export function parseKeyResponse(body: unknown): KeyResponse {
  const fields = objectWith(
    body,
    ['name', 'createdAt', 'updatedAt', 'latestVersion', 'minDecryptionVersion', 'versions'],
    'The answer',
  );
  if (!Array.isArray(fields.versions)) {
    throw new InvalidRequestError('Field "versions" must be an array');
  }
  return {
    name: parseKeyName(fields.name),
    createdAt: timestampOf(fields.createdAt, 'createdAt'),
    updatedAt: timestampOf(fields.updatedAt, 'updatedAt'),
    latestVersion: versionOf(fields.latestVersion, 'latestVersion'),
    minDecryptionVersion: versionOf(fields.minDecryptionVersion, 'minDecryptionVersion'),
    versions: fields.versions.map((item: unknown, i: number) => {
      const version = objectWith(item, ['version', 'createdAt'], `Item ${i + 1} of "versions"`);
      return {
        version: versionOf(version.version, 'version'),
        createdAt: timestampOf(version.createdAt, 'createdAt'),
      };
    }),
  };
}

export function parseListKeysResponse(body: unknown): ListKeysResponse {
  const fields = objectWith(body, ['keys'], 'The answer');
  if (!Array.isArray(fields.keys)) {
    throw new InvalidRequestError('Field "keys" must be an array');
  }
  return { keys: fields.keys.map((name: unknown) => parseKeyName(name, 'keys')) };
}

/** The route of one key: `/v1/transit/keys/{name}`. */
export function keyRoute(name: string): string {
  return `${PATHS.transitKeys}/${parseKeyName(name)}`;
}

// ------------------------------------------------------------ bytes

/** Bytes as the wire carries them: standard padded base64. */
export function encodeWireBytes(bytes: Uint8Array): string {
  return encodeBase64(bytes);
}

/** The bytes of a wire field; InvalidRequestError naming `field` when it is not padded base64. */
export function decodeWireBytes(value: unknown, field: string): Uint8Array {
  return base64Of(value, field);
}

// ------------------------------------------------------------ ciphertext

/** A ciphertext or HMAC taken apart: the key version, and the bytes. */
export interface VersionedBytes {
  readonly version: number;
  readonly bytes: Uint8Array;
}

/** `spike:v<version>:<base64>`. */
export function formatVersioned(version: number, bytes: Uint8Array): string {
  if (!Number.isSafeInteger(version) || version < 1 || version > MAX_KEY_VERSION) {
    throw new RangeError(`A key version must be an integer from 1, got ${String(version)}`);
  }
  return `${CIPHERTEXT_PREFIX}:v${version}:${encodeBase64(bytes)}`;
}

/** Takes `spike:v<version>:<base64>` apart; InvalidRequestError naming `field` otherwise. */
export function parseVersioned(value: unknown, field: string): VersionedBytes {
  if (typeof value !== 'string' || value.length > MAX_CIPHERTEXT_LENGTH) {
    throw new InvalidRequestError(
      `Field "${field}" must be a string "spike:v<version>:<base64>" of at most ${MAX_CIPHERTEXT_LENGTH} characters`,
    );
  }
  const match = CIPHERTEXT_REGEXP.exec(value);
  const version = Number(match?.[1]);
  if (match === null || version > MAX_KEY_VERSION) {
    throw new InvalidRequestError(`Field "${field}" must look like "spike:v<version>:<base64>"`);
  }
  return { version, bytes: base64Of(match[2], field) };
}

// ------------------------------------------------------------ data operations

/** One item, or a batch of them, as a route takes it. */
export interface TransitRequest<I> {
  readonly items: readonly I[];
  /** Whether the body was `{ "batch": [...] }` (then the answer is one too). */
  readonly isBatch: boolean;
}

/** The answer to a batch: its results in the order of its items. */
export interface BatchResponse<R> {
  readonly batch: readonly R[];
}

export interface EncryptItem {
  readonly plaintext: Uint8Array;
  /** Bound to the ciphertext as associated data; empty when not given. */
  readonly context: Uint8Array;
}

export interface DecryptItem {
  readonly ciphertext: string;
  readonly context: Uint8Array;
}

export interface DataKeyItem {
  readonly context: Uint8Array;
  readonly bytes: number;
  /** Answer only the wrapped key, for a party that will have it unwrapped later. */
  readonly wrappedOnly: boolean;
}

export interface HmacItem {
  readonly input: Uint8Array;
}

export interface VerifyItem {
  readonly input: Uint8Array;
  readonly hmac: string;
}

/** Encrypt, rewrap and data keys answer a ciphertext and the key version that made it. */
export interface CiphertextResult {
  readonly ciphertext: string;
  readonly keyVersion: number;
}

export interface DecryptResult {
  /** Base64. */
  readonly plaintext: string;
}

export interface DataKeyResult extends CiphertextResult {
  /** Base64; absent with `wrappedOnly`. */
  readonly plaintext?: string;
}

export interface HmacResult {
  readonly hmac: string;
  readonly keyVersion: number;
}

export interface VerifyResult {
  readonly valid: boolean;
}

export function parseEncryptRequest(body: unknown): TransitRequest<EncryptItem> {
  return requestOf(body, (item, where) => {
    const fields = objectWith(item, ['plaintext', 'context'], where);
    return {
      plaintext: bytesOf(fields.plaintext, 'plaintext', MAX_TRANSIT_ITEM_BYTES),
      context: contextOf(fields.context),
    };
  });
}

/** Decrypt and rewrap take the same items. */
export function parseDecryptRequest(body: unknown): TransitRequest<DecryptItem> {
  return requestOf(body, (item, where) => {
    const fields = objectWith(item, ['ciphertext', 'context'], where);
    parseVersioned(fields.ciphertext, 'ciphertext');
    return { ciphertext: fields.ciphertext as string, context: contextOf(fields.context) };
  });
}

export function parseDataKeyRequest(body: unknown): TransitRequest<DataKeyItem> {
  return requestOf(body, (item, where) => {
    const fields = objectWith(item, ['context', 'bytes', 'wrappedOnly'], where);
    if (fields.wrappedOnly !== undefined && typeof fields.wrappedOnly !== 'boolean') {
      throw new InvalidRequestError('Field "wrappedOnly" must be true or false');
    }
    const bytes = fields.bytes === undefined ? DEFAULT_DATA_KEY_BYTES : fields.bytes;
    if (
      typeof bytes !== 'number' ||
      !Number.isInteger(bytes) ||
      bytes < MIN_DATA_KEY_BYTES ||
      bytes > MAX_DATA_KEY_BYTES
    ) {
      throw new InvalidRequestError(
        `Field "bytes" must be an integer from ${MIN_DATA_KEY_BYTES} to ${MAX_DATA_KEY_BYTES}`,
      );
    }
    return { context: contextOf(fields.context), bytes, wrappedOnly: fields.wrappedOnly === true };
  });
}

export function parseHmacRequest(body: unknown): TransitRequest<HmacItem> {
  return requestOf(body, (item, where) => {
    const fields = objectWith(item, ['input'], where);
    return { input: bytesOf(fields.input, 'input', MAX_TRANSIT_ITEM_BYTES) };
  });
}

export function parseVerifyRequest(body: unknown): TransitRequest<VerifyItem> {
  return requestOf(body, (item, where) => {
    const fields = objectWith(item, ['input', 'hmac'], where);
    parseVersioned(fields.hmac, 'hmac');
    return {
      input: bytesOf(fields.input, 'input', MAX_TRANSIT_ITEM_BYTES),
      hmac: fields.hmac as string,
    };
  });
}

// ------------------------------------------------------------ answers

export function parseCiphertextResult(body: unknown): CiphertextResult {
  const fields = objectWith(body, ['ciphertext', 'keyVersion'], 'The answer');
  parseVersioned(fields.ciphertext, 'ciphertext');
  return {
    ciphertext: fields.ciphertext as string,
    keyVersion: versionOf(fields.keyVersion, 'keyVersion'),
  };
}

export function parseDecryptResult(body: unknown): DecryptResult {
  const fields = objectWith(body, ['plaintext'], 'The answer');
  base64Of(fields.plaintext, 'plaintext');
  return { plaintext: fields.plaintext as string };
}

export function parseDataKeyResult(body: unknown): DataKeyResult {
  const fields = objectWith(body, ['ciphertext', 'keyVersion', 'plaintext'], 'The answer');
  const wrapped = parseCiphertextResult({
    ciphertext: fields.ciphertext,
    keyVersion: fields.keyVersion,
  });
  if (fields.plaintext === undefined) return wrapped;
  base64Of(fields.plaintext, 'plaintext');
  return { ...wrapped, plaintext: fields.plaintext as string };
}

export function parseHmacResult(body: unknown): HmacResult {
  const fields = objectWith(body, ['hmac', 'keyVersion'], 'The answer');
  parseVersioned(fields.hmac, 'hmac');
  return { hmac: fields.hmac as string, keyVersion: versionOf(fields.keyVersion, 'keyVersion') };
}

export function parseVerifyResult(body: unknown): VerifyResult {
  const fields = objectWith(body, ['valid'], 'The answer');
  if (typeof fields.valid !== 'boolean') {
    throw new InvalidRequestError('Field "valid" must be true or false');
  }
  return { valid: fields.valid };
}

/** A batch answer of `count` results, each checked by `parse`. */
export function parseBatchResponse<R>(
  body: unknown,
  count: number,
  parse: (item: unknown) => R,
): readonly R[] {
  const fields = objectWith(body, ['batch'], 'The answer');
  if (!Array.isArray(fields.batch) || fields.batch.length !== count) {
    throw new InvalidRequestError(`Field "batch" must be an array of ${count} results`);
  }
  return fields.batch.map(parse);
}

// ------------------------------------------------------------ helpers

/** One item, or `{ batch: [...] }` of 1..MAX_TRANSIT_BATCH_ITEMS items; errors name the item. */
function requestOf<I>(
  body: unknown,
  parseItem: (item: unknown, where: string) => I,
): TransitRequest<I> {
  if (typeof body === 'object' && body !== null && !Array.isArray(body) && 'batch' in body) {
    const fields = objectWith(body, ['batch'], 'A batch body');
    const { batch } = fields;
    if (!Array.isArray(batch) || batch.length === 0 || batch.length > MAX_TRANSIT_BATCH_ITEMS) {
      throw new InvalidRequestError(
        `Field "batch" must be an array of 1 to ${MAX_TRANSIT_BATCH_ITEMS} items`,
      );
    }
    const items = batch.map((item: unknown, i: number) => {
      try {
        return parseItem(item, `Item ${i + 1} of the batch`);
      } catch (err) {
        if (err instanceof InvalidRequestError && !err.message.startsWith('Item ')) {
          throw new InvalidRequestError(`Item ${i + 1} of the batch: ${err.message}`);
        }
        throw err;
      }
    });
    return { items, isBatch: true };
  }
  return { items: [parseItem(body, 'The body')], isBatch: false };
}

function objectWith(
  value: unknown,
  allowed: readonly string[],
  where: string,
): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRequestError(`${where} must be a JSON object`);
  }
  for (const [index, key] of Object.keys(value).entries()) {
    if (!allowed.includes(key)) {
      // Named by position and length only: a misplaced field may hold data.
      throw new InvalidRequestError(
        `${where} has an unknown field (key ${index + 1}, ${key.length} characters); the fields are ${allowed.map((name) => `"${name}"`).join(', ')}`,
      );
    }
  }
  return value as Record<string, unknown>;
}

function base64Of(value: unknown, field: string): Uint8Array {
  try {
    return decodeBase64(value as string);
  } catch {
    throw new InvalidRequestError(`Field "${field}" must be padded standard base64`);
  }
}

function bytesOf(value: unknown, field: string, max: number): Uint8Array {
  // Four characters of base64 carry three bytes: refuse a long text before decoding it.
  if (typeof value === 'string' && value.length > Math.ceil(max / 3) * 4) {
    throw new InvalidRequestError(`Field "${field}" must decode to at most ${max} bytes`);
  }
  const bytes = base64Of(value, field);
  if (bytes.length > max) {
    bytes.fill(0);
    throw new InvalidRequestError(`Field "${field}" must decode to at most ${max} bytes`);
  }
  return bytes;
}

function contextOf(value: unknown): Uint8Array {
  return value === undefined ? new Uint8Array(0) : bytesOf(value, 'context', MAX_CONTEXT_BYTES);
}

function versionOf(value: unknown, field: string): number {
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 1 ||
    value > MAX_KEY_VERSION
  ) {
    throw new InvalidRequestError(
      `Field "${field}" must be an integer from 1 to ${MAX_KEY_VERSION}`,
    );
  }
  return value;
}

function timestampOf(value: unknown, field: string): string {
  if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) {
    throw new InvalidRequestError(`Field "${field}" must be an ISO 8601 time`);
  }
  return value;
}
