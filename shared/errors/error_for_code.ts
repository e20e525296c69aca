/**
 * The error class of each code: what a client makes of an error body it
 * received (the SDK, so Pilot too, and Nexus reading a Keeper's answer), so
 * callers can use `instanceof` as well as `err.code`. Every code has a row,
 * so a new code without one fails to compile.
 */
import {
  AccessDeniedError,
  AlreadyUnsealedError,
  AuditNotIntactError,
  AuditUnavailableError,
  BodyIncompleteError,
  BrokerError,
  BundleInvalidError,
  CiphertextInvalidError,
  ConflictError,
  DecryptionFailedError,
  type ErrorCode,
  InternalError,
  InvalidRequestError,
  InvalidSpiffeIdError,
  KeepersUnavailableError,
  KeyVersionTooOldError,
  NotFoundError,
  NotReadyError,
  PayloadTooLargeError,
  QuotaExceededError,
  RateLimitedError,
  ResponseTooLargeError,
  ServerUntrustedError,
  ShamirInvalidShardsError,
  ShamirNotEnoughShardsError,
  SnapshotCorruptError,
  SnapshotInvalidError,
  SvidInvalidError,
  TooManyWatchesError,
  UnauthenticatedError,
  UnavailableError,
  UsageError,
  WorkloadApiRejectedError,
  WorkloadApiUnavailableError,
} from './errors.ts';

type ErrorFactory = (message: string) => BrokerError;

const ERROR_BY_CODE = {
  ERR_UNAUTHENTICATED: (message) => new UnauthenticatedError(message),
  ERR_ACCESS_DENIED: (message) => new AccessDeniedError(message),
  ERR_INVALID_REQUEST: (message) => new InvalidRequestError(message),
  ERR_NOT_FOUND: (message) => new NotFoundError(message),
  ERR_CONFLICT: (message) => new ConflictError(message),
  ERR_PAYLOAD_TOO_LARGE: (message) => new PayloadTooLargeError(message),
  ERR_NOT_READY: (message) => new NotReadyError(message),
  // One fixed message for every cause, whatever the sender wrote.
  ERR_DECRYPTION_FAILED: () => new DecryptionFailedError(),
  ERR_INTERNAL: (message) => new InternalError(message),
  // ConfigError is built from a list of problems, which a message is not.
  ERR_CONFIG_INVALID: (message) => new BrokerError('ERR_CONFIG_INVALID', message),
  ERR_SPIFFE_ID_INVALID: (message) => new InvalidSpiffeIdError(message),
  ERR_SVID_INVALID: (message) => new SvidInvalidError(message),
  ERR_BUNDLE_INVALID: (message) => new BundleInvalidError(message),
  ERR_WORKLOAD_API_UNAVAILABLE: (message) => new WorkloadApiUnavailableError(message),
  ERR_WORKLOAD_API_REJECTED: (message) => new WorkloadApiRejectedError(message),
  ERR_UNAVAILABLE: (message) => new UnavailableError(message),
  ERR_SERVER_UNTRUSTED: (message) => new ServerUntrustedError(message),
  ERR_SHAMIR_INVALID_SHARDS: (message) => new ShamirInvalidShardsError(message),
  ERR_SHAMIR_NOT_ENOUGH_SHARDS: (message) => new ShamirNotEnoughShardsError(message),
  ERR_ALREADY_UNSEALED: (message) => new AlreadyUnsealedError(message),
  ERR_RATE_LIMITED: (message) => new RateLimitedError(message),
  ERR_RESPONSE_TOO_LARGE: (message) => new ResponseTooLargeError(message),
  ERR_USAGE: (message) => new UsageError(message),
  ERR_QUOTA_EXCEEDED: (message) => new QuotaExceededError(message),
  ERR_BODY_INCOMPLETE: (message) => new BodyIncompleteError(message),
  ERR_AUDIT_UNAVAILABLE: (message) => new AuditUnavailableError(message),
  ERR_AUDIT_NOT_INTACT: (message) => new AuditNotIntactError(message),
  ERR_SNAPSHOT_CORRUPT: (message) => new SnapshotCorruptError(message),
  ERR_SNAPSHOT_INVALID: (message) => new SnapshotInvalidError(message),
  ERR_TOO_MANY_WATCHES: (message) => new TooManyWatchesError(message),
  ERR_CIPHERTEXT_INVALID: (message) => new CiphertextInvalidError(message),
  ERR_KEY_VERSION_TOO_OLD: (message) => new KeyVersionTooOldError(message),
  ERR_KEEPERS_UNAVAILABLE: (message) => new KeepersUnavailableError(message),
} satisfies Record<ErrorCode, ErrorFactory>;

/** The error of `code` with `message`, as the class that raises that code. */
export function errorForCode(code: ErrorCode, message: string): BrokerError {
  return ERROR_BY_CODE[code](message);
}
