/**
 * How the SDK turns what went wrong on the wire into the broker's typed
 * errors: an error body becomes the subclass of its code (so callers can use
 * `instanceof` as well as `err.code`), a missing or malformed body a generic
 * `UnavailableError` or `InternalError`, and a failed connection an
 * `UnavailableError` naming the Nexus URL.
 */
import { errorFromBody } from '../shared/api/error_body.ts';
import {
  AccessDeniedError,
  AlreadyUnsealedError,
  BrokerError,
  ConflictError,
  DecryptionFailedError,
  type ErrorCode,
  InternalError,
  InvalidRequestError,
  InvalidSpiffeIdError,
  isBrokerError,
  NotFoundError,
  NotReadyError,
  PayloadTooLargeError,
  RateLimitedError,
  ShamirInvalidShardsError,
  ShamirNotEnoughShardsError,
  SvidInvalidError,
  UnauthenticatedError,
  UnavailableError,
  WorkloadApiRejectedError,
  WorkloadApiUnavailableError,
} from '../shared/errors/errors.ts';
import { isNeverSent } from '../shared/spiffe/mtls_client.ts';

type ErrorFactory = (message: string) => BrokerError;

function generic(code: ErrorCode): ErrorFactory {
  return function createGenericError(message) {
    return new BrokerError(code, message);
  };
}

/** Every code has a class here, so a new code without one fails to compile. */
const ERROR_BY_CODE = {
  ERR_UNAUTHENTICATED: (message) => new UnauthenticatedError(message),
  ERR_ACCESS_DENIED: (message) => new AccessDeniedError(message),
  ERR_INVALID_REQUEST: (message) => new InvalidRequestError(message),
  ERR_NOT_FOUND: (message) => new NotFoundError(message),
  ERR_CONFLICT: (message) => new ConflictError(message),
  ERR_PAYLOAD_TOO_LARGE: (message) => new PayloadTooLargeError(message),
  ERR_NOT_READY: (message) => new NotReadyError(message),
  ERR_KEEPER_UNAVAILABLE: generic('ERR_KEEPER_UNAVAILABLE'),
  ERR_DECRYPTION_FAILED: () => new DecryptionFailedError(),
  ERR_INTERNAL: (message) => new InternalError(message),
  ERR_CONFIG_INVALID: generic('ERR_CONFIG_INVALID'),
  ERR_SPIFFE_ID_INVALID: (message) => new InvalidSpiffeIdError(message),
  ERR_SVID_INVALID: (message) => new SvidInvalidError(message),
  ERR_BUNDLE_INVALID: generic('ERR_BUNDLE_INVALID'),
  ERR_WORKLOAD_API_UNAVAILABLE: (message) => new WorkloadApiUnavailableError(message),
  ERR_WORKLOAD_API_REJECTED: (message) => new WorkloadApiRejectedError(message),
  ERR_UNAVAILABLE: (message) => new UnavailableError(message),
  ERR_SHAMIR_INVALID_SHARDS: (message) => new ShamirInvalidShardsError(message),
  ERR_SHAMIR_NOT_ENOUGH_SHARDS: (message) => new ShamirNotEnoughShardsError(message),
  ERR_ALREADY_UNSEALED: (message) => new AlreadyUnsealedError(message),
  ERR_RATE_LIMITED: (message) => new RateLimitedError(message),
} satisfies Record<ErrorCode, ErrorFactory>;

/** The error a non-2xx answer stands for. `body` is the raw response text. */
export function errorFromResponse(status: number, text: string, origin: string): BrokerError {
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    body = undefined;
  }
  const error = errorFromBody(body);
  if (error !== undefined) {
    return ERROR_BY_CODE[error.code](error.message);
  }
  if (status === 502 || status === 503 || status === 504) {
    return new UnavailableError(`Nexus at ${origin} answered ${status} without an error body`);
  }
  return new InternalError(`Nexus at ${origin} answered ${status} with an unexpected body`);
}

/** What a failed request means, and whether sending it again is harmless. */
export interface TransportFailure {
  readonly error: BrokerError;
  /** True when Nexus cannot have acted on the request (it never got it). */
  readonly isBeforeSend: boolean;
}

/**
 * A request that got no answer. Broker errors raised on our side (no SVID
 * from the Workload API, a server that is not Nexus) are kept as they are;
 * anything else means Nexus could not be reached.
 *
 * Whether it is safe to send again is decided by what happened to the
 * connections (`isNeverSent`), not by the error code: on Deno a request that
 * Nexus executed can end in `ECONNREFUSED`, because the runtime re-sends it
 * on a new connection by itself when the kept-alive one closes first.
 */
export function transportFailure(err: unknown, origin: string): TransportFailure {
  if (isBrokerError(err) && err.code !== 'ERR_UNAVAILABLE') {
    return { error: err, isBeforeSend: false };
  }
  const reason = err instanceof Error ? err.message : String(err);
  return {
    error: new UnavailableError(`Nexus is unreachable at ${origin}: ${reason}`, { cause: err }),
    isBeforeSend: isNeverSent(err),
  };
}
