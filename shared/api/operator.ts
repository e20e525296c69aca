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

/** `POST /v1/operator/root-key/rotate` body: the new split's shape (the current one for what is omitted). */
export interface RotateRootKeyRequest {
  readonly shares?: number;
  readonly threshold?: number;
}

/** `POST /v1/operator/root-key/rotate` → the new key's split (no key material). */
export interface RotateRootKeyResponse {
  readonly generation: number;
  readonly shares: number;
  readonly threshold: number;
  /** The Keepers that hold the new key's shards. */
  readonly keepers: readonly string[];
  readonly rotatedAt: string;
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
  /**
   * The root key's split (while ready): the committed generation, the
   * split's shape, the last rotation this Nexus made or picked up since it
   * started, and the last recovery split it exported. Recovery shards of a
   * generation below `lastRotation.generation` rebuild a retired key: stale.
   */
  readonly rootKey?: RootKeyStatusBody | undefined;
}

export interface RootKeyStatusBody {
  readonly generation: number | null;
  readonly shares: number;
  readonly threshold: number;
  readonly lastRotation: { readonly generation: number; readonly at: string } | null;
  readonly lastRecoveryExport: {
    readonly generation: number;
    readonly at: string;
    /** Made before the last rotation: it rebuilds the old root key only. */
    readonly stale: boolean;
  } | null;
}

/** At most this many shards in a split (one byte of x coordinate). */
const MAX_SPLIT_SHARES = 255;

export function parseRotateRootKeyRequest(body: unknown): RotateRootKeyRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError(
      'The body must be a JSON object with optional "shares" and "threshold" fields',
    );
  }
  const unknown = Object.keys(body).filter((key) => key !== 'shares' && key !== 'threshold');
  if (unknown.length > 0) {
    throw new InvalidRequestError(
      `Unknown field(s) ${unknown.map((key) => JSON.stringify(key.slice(0, 64))).join(', ')}; the fields are "shares" and "threshold"`,
    );
  }
  const fields = body as { shares?: unknown; threshold?: unknown };
  const shares = optionalCount(fields.shares, 'shares', 1);
  const threshold = optionalCount(fields.threshold, 'threshold', 2);
  if (shares !== undefined && threshold !== undefined && threshold > shares) {
    throw new InvalidRequestError(
      `Field "threshold" (${threshold}) must not exceed "shares" (${shares})`,
    );
  }
  return {
    ...(shares === undefined ? {} : { shares }),
    ...(threshold === undefined ? {} : { threshold }),
  };
}

function optionalCount(value: unknown, name: string, min: number): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (
    !Number.isSafeInteger(value) ||
    (value as number) < min ||
    (value as number) > MAX_SPLIT_SHARES
  ) {
    throw new InvalidRequestError(
      `Field "${name}" must be an integer from ${min} to ${MAX_SPLIT_SHARES}`,
    );
  }
  return value as number;
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
