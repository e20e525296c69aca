import type { ErrorCode } from './errors.ts';

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 429 | 500 | 502 | 503;

/** THE table from error code to HTTP status. Nothing else chooses a status. */
export const STATUS_BY_CODE = {
  ERR_UNAUTHENTICATED: 401,
  ERR_ACCESS_DENIED: 403,
  ERR_INVALID_REQUEST: 400,
  ERR_NOT_FOUND: 404,
  ERR_CONFLICT: 409,
  ERR_PAYLOAD_TOO_LARGE: 413,
  ERR_NOT_READY: 503,
  ERR_DECRYPTION_FAILED: 500,
  ERR_INTERNAL: 500,
  ERR_CONFIG_INVALID: 500,
  ERR_SPIFFE_ID_INVALID: 400,
  ERR_SVID_INVALID: 401,
  ERR_BUNDLE_INVALID: 500,
  ERR_WORKLOAD_API_UNAVAILABLE: 503,
  ERR_WORKLOAD_API_REJECTED: 500,
  ERR_UNAVAILABLE: 503,
  ERR_SERVER_UNTRUSTED: 503,
  ERR_SHAMIR_INVALID_SHARDS: 400,
  ERR_SHAMIR_NOT_ENOUGH_SHARDS: 400,
  ERR_ALREADY_UNSEALED: 409,
  ERR_RATE_LIMITED: 429,
  // A bad answer from upstream, as an HTTP gateway would say it.
  ERR_RESPONSE_TOO_LARGE: 502,
  ERR_USAGE: 400,
  ERR_QUOTA_EXCEEDED: 403,
  ERR_BODY_INCOMPLETE: 400,
  ERR_TOO_MANY_WATCHES: 429,
} as const satisfies Record<ErrorCode, ErrorStatus>;

export function statusForCode(code: ErrorCode): ErrorStatus {
  return STATUS_BY_CODE[code];
}
