/**
 * The one error hierarchy of the broker. Every failure a caller must tell
 * apart has its own subclass and `code`; messages never carry secret values.
 */

export const ERROR_CODES = [
  'ERR_UNAUTHENTICATED',
  'ERR_ACCESS_DENIED',
  'ERR_INVALID_REQUEST',
  'ERR_NOT_FOUND',
  'ERR_CONFLICT',
  'ERR_PAYLOAD_TOO_LARGE',
  'ERR_NOT_READY',
  'ERR_DECRYPTION_FAILED',
  'ERR_INTERNAL',
  'ERR_CONFIG_INVALID',
  'ERR_SPIFFE_ID_INVALID',
  'ERR_SVID_INVALID',
  'ERR_BUNDLE_INVALID',
  'ERR_WORKLOAD_API_UNAVAILABLE',
  'ERR_WORKLOAD_API_REJECTED',
  'ERR_UNAVAILABLE',
  'ERR_SERVER_UNTRUSTED',
  'ERR_SHAMIR_INVALID_SHARDS',
  'ERR_SHAMIR_NOT_ENOUGH_SHARDS',
  'ERR_ALREADY_UNSEALED',
  'ERR_RATE_LIMITED',
  'ERR_RESPONSE_TOO_LARGE',
  'ERR_USAGE',
  'ERR_QUOTA_EXCEEDED',
  'ERR_BODY_INCOMPLETE',
  'ERR_AUDIT_UNAVAILABLE',
  'ERR_AUDIT_NOT_INTACT',
  'ERR_SNAPSHOT_CORRUPT',
  'ERR_SNAPSHOT_INVALID',
  'ERR_TOO_MANY_WATCHES',
  'ERR_CIPHERTEXT_INVALID',
  'ERR_KEY_VERSION_TOO_OLD',
  'ERR_KEEPERS_UNAVAILABLE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface BrokerErrorOptions {
  readonly cause?: unknown;
}

export class BrokerError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: BrokerErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** No or no valid peer SVID. Normally stopped at the TLS layer already. */
export class UnauthenticatedError extends BrokerError {
  constructor(message = 'A valid X509-SVID is required', options?: BrokerErrorOptions) {
    super('ERR_UNAUTHENTICATED', message, options);
  }
}

/** A role or policy says no. The message never says which rule. */
export class AccessDeniedError extends BrokerError {
  constructor(message = 'Access denied', options?: BrokerErrorOptions) {
    super('ERR_ACCESS_DENIED', message, options);
  }
}

export class InvalidRequestError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_INVALID_REQUEST', message, options);
  }
}

export class NotFoundError extends BrokerError {
  constructor(message = 'Not found', options?: BrokerErrorOptions) {
    super('ERR_NOT_FOUND', message, options);
  }
}

export class InternalError extends BrokerError {
  constructor(message = 'Internal error', options?: BrokerErrorOptions) {
    super('ERR_INTERNAL', message, options);
  }
}

/** Start-up configuration is wrong; `problems` lists every bad variable at once. */
export class ConfigError extends BrokerError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('ERR_CONFIG_INVALID', `Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = Object.freeze([...problems]);
  }
}

/** A string is not a valid SPIFFE ID or trust domain name (SPIFFE-ID.md §2). */
export class InvalidSpiffeIdError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_SPIFFE_ID_INVALID', message, options);
  }
}

/** A certificate chain is not a valid X509-SVID, or does not verify. */
export class SvidInvalidError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_SVID_INVALID', message, options);
  }
}

/** A trust bundle is malformed (for example, bad DER or a duplicate trust domain). */
export class BundleInvalidError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_BUNDLE_INVALID', message, options);
  }
}

/** The Workload API could not be reached or did not deliver an identity in time. */
export class WorkloadApiUnavailableError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_WORKLOAD_API_UNAVAILABLE', message, options);
  }
}

/** The Workload API refused the call for good (InvalidArgument, Unimplemented). */
export class WorkloadApiRejectedError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_WORKLOAD_API_REJECTED', message, options);
  }
}

/**
 * A Workload API address (`SPIFFE_ENDPOINT_SOCKET` syntax) is malformed. A
 * configuration error with a one-line message, so config readers can list
 * it among their problems as is.
 */
export class InvalidWorkloadApiAddressError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_CONFIG_INVALID', message, options);
  }
}

/** A remote service (Nexus, a Keeper) could not be reached or did not answer in time. */
export class UnavailableError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_UNAVAILABLE', message, options);
  }
}

/**
 * The server a client connected to is not one it trusts: its certificate
 * does not chain to our trust bundle (another CA, another trust domain), or
 * its SPIFFE ID is not the expected server's. A trust problem, unlike
 * `UnavailableError`: trying again does not help, the configuration does.
 */
export class ServerUntrustedError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_SERVER_UNTRUSTED', message, options);
  }
}

/** Nexus is sealed: the root key has not been recovered yet. */
export class NotReadyError extends BrokerError {
  constructor(
    message = 'Nexus is sealed: the root key has not been recovered yet',
    options?: BrokerErrorOptions,
  ) {
    super('ERR_NOT_READY', message, options);
  }
}

/** The request conflicts with the current state (e.g. a different value already stored). */
export class ConflictError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_CONFLICT', message, options);
  }
}

export class PayloadTooLargeError extends BrokerError {
  constructor(message = 'Request body is too large', options?: BrokerErrorOptions) {
    super('ERR_PAYLOAD_TOO_LARGE', message, options);
  }
}

/**
 * A server's answer is larger than the client reads for that call: the
 * client stops reading and closes the connection (a client-side error, which
 * no server sends).
 */
export class ResponseTooLargeError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_RESPONSE_TOO_LARGE', message, options);
  }
}

/**
 * The request body ended before it was whole: the connection closed, or the
 * upload was aborted, before the declared `Content-Length` or the last chunk
 * arrived. Nothing of it was used.
 */
export class BodyIncompleteError extends BrokerError {
  constructor(
    message = 'The request body ended before it was complete',
    options?: BrokerErrorOptions,
  ) {
    super('ERR_BODY_INCOMPLETE', message, options);
  }
}

/** Stored or supplied data failed authentication. One fixed message for every cause. */
export class DecryptionFailedError extends BrokerError {
  constructor(options?: BrokerErrorOptions) {
    super('ERR_DECRYPTION_FAILED', 'Decryption failed', options);
  }
}

/** A restore was attempted on a Nexus that already holds its root key. */
export class AlreadyUnsealedError extends BrokerError {
  constructor(
    message = 'Nexus is already unsealed: restore is only for a sealed Nexus',
    options?: BrokerErrorOptions,
  ) {
    super('ERR_ALREADY_UNSEALED', message, options);
  }
}

/**
 * A set of shards cannot be combined: mixed generations or thresholds,
 * duplicate indexes or x coordinates, or a malformed shard. Never names bytes.
 */
export class ShamirInvalidShardsError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_SHAMIR_INVALID_SHARDS', message, options);
  }
}

/** Fewer shards than the split's threshold were given. */
export class ShamirNotEnoughShardsError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_SHAMIR_NOT_ENOUGH_SHARDS', message, options);
  }
}

/**
 * The caller's SPIFFE ID sent more requests than its rate allows. The answer
 * carries `Retry-After`; other identities are not affected.
 */
export class RateLimitedError extends BrokerError {
  /** Whole seconds until a request would be admitted again (at least 1). */
  readonly retryAfterSeconds: number;

  constructor(
    message = 'Too many requests from this SPIFFE ID',
    options?: BrokerErrorOptions & { readonly retryAfterSeconds?: number },
  ) {
    super('ERR_RATE_LIMITED', message, options);
    this.retryAfterSeconds = Math.max(1, Math.ceil(options?.retryAfterSeconds ?? 1));
  }
}

/**
 * A command line that does not fit the command: an unknown command or
 * option, a missing or extra argument, an option value of the wrong kind.
 * Raised by Pilot before anything is sent; no route answers with it.
 */
export class UsageError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_USAGE', message, options);
  }
}

/**
 * A write would take a secret namespace beyond its storage quota (paths or
 * bytes). Nothing was written; deleting or destroying makes room.
 */
export class QuotaExceededError extends BrokerError {
  constructor(message = 'The storage quota is exceeded', options?: BrokerErrorOptions) {
    super('ERR_QUOTA_EXCEEDED', message, options);
  }
}

/**
 * A long-poll read would take Nexus beyond its number of waiting reads, in
 * all or for the caller's SPIFFE ID. Nothing waits; the client may try
 * again later (a read without the wait is not affected).
 */
export class TooManyWatchesError extends BrokerError {
  constructor(message = 'Too many long-poll reads are waiting', options?: BrokerErrorOptions) {
    super('ERR_TOO_MANY_WATCHES', message, options);
  }
}

/**
 * A ciphertext or HMAC given to a named key does not open or verify under it:
 * made under another key or with another context, altered, or naming a key
 * version the key does not have. Caller data, not stored data: no integrity
 * alarm. One fixed message, so nothing tells the causes apart.
 */
export class CiphertextInvalidError extends BrokerError {
  constructor(
    message = 'The ciphertext does not open under this key with this context',
    options?: BrokerErrorOptions,
  ) {
    super('ERR_CIPHERTEXT_INVALID', message, options);
  }
}

/**
 * A ciphertext or HMAC made under a key version below the key's minimum
 * decryption version: the key refuses it on purpose, whether or not it is
 * authentic.
 */
export class KeyVersionTooOldError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_KEY_VERSION_TOO_OLD', message, options);
  }
}

export function isBrokerError(err: unknown): err is BrokerError {
  return err instanceof BrokerError;
}

/**
 * The audit trail cannot be written (a full disk, a closed pipe) and the
 * server fails closed: it refuses requests until a write succeeds again.
 */
export class AuditUnavailableError extends BrokerError {
  constructor(
    message = 'The audit trail cannot be written; requests are refused until it can',
    options?: BrokerErrorOptions,
  ) {
    super('ERR_AUDIT_UNAVAILABLE', message, options);
  }
}

/**
 * `spike audit verify` found an audit log that is not as its writer wrote
 * it: a line edited, inserted, deleted or moved, the end cut, or a key that
 * does not fit. Raised by Pilot; no route answers with it.
 */
export class AuditNotIntactError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_AUDIT_NOT_INTACT', message, options);
  }
}

/**
 * A snapshot or export file is damaged: its checksum does not match, it ends
 * before the length its header declares, it has bytes after that, or its
 * header is malformed. Nothing was restored or imported.
 */
export class SnapshotCorruptError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_SNAPSHOT_CORRUPT', message, options);
  }
}

/**
 * A snapshot that is whole but cannot be restored here: not a database of
 * this broker, a newer schema than this Nexus knows, a broker that was never
 * initialised, or a backend without online snapshots. Nothing was restored.
 */
export class SnapshotInvalidError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_SNAPSHOT_INVALID', message, options);
  }
}

/**
 * Too few Keepers took the shards of a new root key for it to be used (a
 * root-key rotation); nothing changed and the old key stays in use.
 */
export class KeepersUnavailableError extends BrokerError {
  constructor(message: string, options?: BrokerErrorOptions) {
    super('ERR_KEEPERS_UNAVAILABLE', message, options);
  }
}
