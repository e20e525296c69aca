/**
 * Everything Pilot prints: data to stdout, diagnostics to stderr, and the
 * mirror of the HTTP status table: error code → exit status.
 */
import { type ErrorCode, isBrokerError } from '../shared/errors/errors.ts';

export const EXIT_BY_CODE = {
  ERR_UNAUTHENTICATED: 3,
  ERR_ACCESS_DENIED: 3,
  ERR_INVALID_REQUEST: 2,
  ERR_NOT_FOUND: 4,
  ERR_CONFLICT: 5,
  ERR_PAYLOAD_TOO_LARGE: 2,
  ERR_NOT_READY: 6,
  ERR_KEEPER_UNAVAILABLE: 6,
  ERR_DECRYPTION_FAILED: 1,
  ERR_INTERNAL: 1,
  ERR_CONFIG_INVALID: 2,
  ERR_SPIFFE_ID_INVALID: 2,
  ERR_SVID_INVALID: 3,
  ERR_BUNDLE_INVALID: 1,
  ERR_WORKLOAD_API_UNAVAILABLE: 7,
  ERR_WORKLOAD_API_REJECTED: 7,
  ERR_UNAVAILABLE: 7,
  ERR_SHAMIR_INVALID_SHARDS: 2,
  ERR_SHAMIR_NOT_ENOUGH_SHARDS: 2,
  ERR_ALREADY_UNSEALED: 5,
} as const satisfies Record<ErrorCode, number>;

export type OutputFormat = 'human' | 'json';

export function printData(data: Readonly<Record<string, unknown>>, format: OutputFormat): void {
  if (format === 'json') {
    console.log(JSON.stringify(data, null, 2));
    return;
  }
  for (const [key, value] of Object.entries(data)) {
    console.log(`${key}: ${String(value)}`);
  }
}

/** Prints a short message for a failure and returns the exit status for it. */
export function reportFailure(err: unknown): number {
  if (isBrokerError(err)) {
    console.error(`spike: ${err.message} [${err.code}]`);
    return EXIT_BY_CODE[err.code];
  }
  console.error(`spike: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
}
