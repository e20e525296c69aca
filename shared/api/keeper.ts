/**
 * The Keeper wire contract: the JSON bodies of the shard routes and strict
 * parsers for each, used by the Keeper on requests and by Nexus on
 * responses. A parser returns a typed value or throws `InvalidRequestError`
 * naming the offending field; it never echoes a shard.
 *
 * - `PUT  /v1/shards`             `ShardWire` → `GenerationsResponse`
 * - `GET  /v1/shards`             → `ListShardsResponse`
 * - `GET  /v1/shards/generations` → `GenerationsResponse`
 * - `POST /v1/shards/prune`       `PruneRequest` → `GenerationsResponse`
 */

import { MAX_GENERATION, MAX_SHARES, SHARD_VALUE_BYTES, type Shard } from '../crypto/shard.ts';
import { InvalidRequestError } from '../errors/errors.ts';

/** A shard on the wire: its bytes as standard, padded base64. */
export interface ShardWire {
  readonly generation: number;
  readonly index: number;
  readonly threshold: number;
  readonly shard: string;
}

export interface ListShardsResponse {
  readonly shards: readonly ShardWire[];
}

/** The generations a Keeper holds, ascending. */
export interface GenerationsResponse {
  readonly generations: readonly number[];
}

export interface PruneRequest {
  /** Drop every generation older than this one, if this one is held. */
  readonly keepFrom: number;
}

const SHARD_FIELDS = ['generation', 'index', 'threshold', 'shard'] as const;
const MIN_THRESHOLD = 2;

/** The body of `PUT /v1/shards` (and each entry of a listing) for a shard. */
export function shardToWire(shard: Shard): ShardWire {
  return {
    generation: shard.generation,
    index: shard.index,
    threshold: shard.threshold,
    shard: encodeBase64(shard.value),
  };
}

/** `PUT /v1/shards`: the shard to hold. */
export function parsePutShardRequest(body: unknown): Shard {
  return parseShard(body, '');
}

/** `POST /v1/shards/prune`. */
export function parsePruneRequest(body: unknown): PruneRequest {
  const object = requireObject(body, 'body', ['keepFrom']);
  return { keepFrom: requireInteger(object, 'keepFrom', '', 1, MAX_GENERATION) };
}

/** `GET /v1/shards` as Nexus receives it: one shard per generation, ascending or not. */
export function parseListShardsResponse(body: unknown): Shard[] {
  const object = requireObject(body, 'body', ['shards']);
  const list = object.shards;
  if (!Array.isArray(list)) {
    throw new InvalidRequestError('Field "shards" must be an array');
  }
  const seen = new Set<number>();
  const shards: Shard[] = [];
  list.forEach((entry: unknown, i: number) => {
    const shard = parseShard(entry, `shards[${i}].`);
    if (seen.has(shard.generation)) {
      throw new InvalidRequestError(
        `Field "shards[${i}].generation" repeats a generation already listed`,
      );
    }
    seen.add(shard.generation);
    shards.push(shard);
  });
  return shards;
}

/** The answer of `PUT /v1/shards`, `GET /v1/shards/generations` and prune. */
export function parseGenerationsResponse(body: unknown): number[] {
  const object = requireObject(body, 'body', ['generations']);
  const list = object.generations;
  if (!Array.isArray(list)) {
    throw new InvalidRequestError('Field "generations" must be an array');
  }
  const generations: number[] = [];
  list.forEach((value: unknown, i: number) => {
    const field = `generations[${i}]`;
    if (!isIntegerIn(value, 1, MAX_GENERATION)) {
      throw new InvalidRequestError(
        `Field "${field}" must be an integer from 1 to ${MAX_GENERATION}`,
      );
    }
    const previous = generations.at(-1);
    if (previous !== undefined && value <= previous) {
      throw new InvalidRequestError(`Field "${field}" must be greater than the one before it`);
    }
    generations.push(value);
  });
  return generations;
}

function parseShard(body: unknown, prefix: string): Shard {
  const object = requireObject(body, prefix === '' ? 'body' : prefix.slice(0, -1), SHARD_FIELDS);
  const generation = requireInteger(object, 'generation', prefix, 1, MAX_GENERATION);
  const index = requireInteger(object, 'index', prefix, 1, MAX_SHARES);
  const threshold = requireInteger(object, 'threshold', prefix, MIN_THRESHOLD, MAX_SHARES);
  const encoded = object.shard;
  const field = `${prefix}shard`;
  if (encoded === undefined) {
    throw new InvalidRequestError(`Field "${field}" is missing`);
  }
  if (typeof encoded !== 'string') {
    throw new InvalidRequestError(`Field "${field}" must be a base64 string`);
  }
  const value = decodeBase64(encoded);
  if (value === undefined) {
    throw new InvalidRequestError(`Field "${field}" must be standard padded base64`);
  }
  if (value.length !== SHARD_VALUE_BYTES) {
    value.fill(0);
    throw new InvalidRequestError(`Field "${field}" must decode to ${SHARD_VALUE_BYTES} bytes`);
  }
  return { generation, index, threshold, value };
}

/** A plain JSON object with only the allowed keys; `where` names it in messages. */
function requireObject(
  body: unknown,
  where: string,
  allowed: readonly string[],
): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError(
      where === 'body' ? 'The body must be a JSON object' : `Field "${where}" must be an object`,
    );
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) {
      const prefix = where === 'body' ? '' : `${where}.`;
      throw new InvalidRequestError(`Unknown field ${quoteName(`${prefix}${key}`)}`);
    }
  }
  return record;
}

function requireInteger(
  object: Record<string, unknown>,
  key: string,
  prefix: string,
  min: number,
  max: number,
): number {
  const value = object[key];
  const field = `${prefix}${key}`;
  if (value === undefined) {
    throw new InvalidRequestError(`Field "${field}" is missing`);
  }
  if (!isIntegerIn(value, min, max)) {
    throw new InvalidRequestError(`Field "${field}" must be an integer from ${min} to ${max}`);
  }
  return value;
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

/** A field name from the peer, quoted and cut short: names are echoed, values never. */
function quoteName(name: string): string {
  const MAX = 64;
  return JSON.stringify(name.length > MAX ? `${name.slice(0, MAX)}…` : name);
}

// Base64 (RFC 4648 §4, with padding) written out here: the wire contract
// stays free of runtime globals, and decoding writes straight into a
// Uint8Array that the caller can zeroize, with no intermediate binary string.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BASE64_REGEXP = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const SEXTETS: ReadonlyMap<string, number> = new Map(
  [...ALPHABET].map((char, i) => [char, i] as const),
);

function encodeBase64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const b0 = bytes[i] as number;
    const b1 = bytes[i + 1];
    const b2 = bytes[i + 2];
    const triple = (b0 << 16) | ((b1 ?? 0) << 8) | (b2 ?? 0);
    out += ALPHABET[(triple >> 18) & 63];
    out += ALPHABET[(triple >> 12) & 63];
    out += b1 === undefined ? '=' : ALPHABET[(triple >> 6) & 63];
    out += b2 === undefined ? '=' : ALPHABET[triple & 63];
  }
  return out;
}

/** Canonical base64 only: padded, no whitespace, unused bits zero; else undefined. */
function decodeBase64(text: string): Uint8Array | undefined {
  if (!BASE64_REGEXP.test(text)) {
    return undefined;
  }
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - padding);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let quad = 0;
    for (let j = 0; j < 4; j++) {
      const char = text[i + j] as string;
      quad = (quad << 6) | (char === '=' ? 0 : (SEXTETS.get(char) as number));
    }
    const bytes = [(quad >> 16) & 255, (quad >> 8) & 255, quad & 255];
    for (const byte of bytes) {
      if (o < out.length) {
        out[o++] = byte;
      }
    }
    bytes.fill(0);
    const isLast = i + 4 === text.length;
    // Non-zero bits under the padding would give a second spelling of the same bytes.
    if (
      isLast &&
      ((padding === 1 && (quad & 0xff) !== 0) || (padding === 2 && (quad & 0xffff) !== 0))
    ) {
      out.fill(0);
      return undefined;
    }
  }
  return out;
}
