/**
 * Wire contract of Nexus's break-glass operator routes and its status route.
 * Recovery shards travel as text (see shard_text.ts) so an operator can keep
 * them offline and paste them back.
 */
import { InvalidRequestError } from '../errors/errors.ts';

/** `POST /v1/operator/recover` → a full recovery split. */
export interface RecoverResponse {
  readonly generation: number;
  readonly threshold: number;
  readonly shards: readonly string[];
}

/** `POST /v1/operator/restore` body. */
export interface RestoreRequest {
  readonly shard: string;
}

/** `POST /v1/operator/restore` → progress. */
export interface RestoreResponse {
  readonly generation: number;
  readonly collected: number;
  readonly threshold: number;
  readonly remaining: number;
  readonly restored: boolean;
}

/** `GET /v1/status`: 200 when ready, 503 when sealed. */
export interface StatusResponse {
  readonly state: 'ready' | 'sealed';
  readonly spiffeId: string;
  readonly svidNotAfter: string;
  readonly refusedHandshakes: number;
  readonly deniedRequests: number;
  readonly keepers: readonly {
    readonly name: string;
    readonly reachable: boolean;
    readonly generations: readonly number[];
  }[];
}

/** At most this many characters of shard text are read (a v1 shard is ~90). */
export const MAX_SHARD_TEXT_LENGTH = 512;

export function parseRestoreRequest(body: unknown): RestoreRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError('The body must be a JSON object with a "shard" field');
  }
  const keys = Object.keys(body);
  const unknown = keys.filter((key) => key !== 'shard');
  if (unknown.length > 0) {
    // Not quoted: a shard pasted in the wrong place would be echoed.
    throw new InvalidRequestError(
      `The body has ${unknown.length} unknown field(s); its only field is "shard"`,
    );
  }
  const shard = (body as { shard?: unknown }).shard;
  if (typeof shard !== 'string' || shard.length === 0) {
    throw new InvalidRequestError('Field "shard" must be a non-empty string');
  }
  if (shard.length > MAX_SHARD_TEXT_LENGTH) {
    throw new InvalidRequestError(
      `Field "shard" is longer than ${MAX_SHARD_TEXT_LENGTH} characters`,
    );
  }
  return { shard };
}
