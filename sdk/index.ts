/**
 * `spike-ts/sdk`: the client applications (and Pilot) use to talk to Nexus.
 * See sdk/README.md.
 */

export type {
  RecoverResponse,
  RestoreResponse,
  StatusResponse,
} from '../shared/api/operator.ts';
export type {
  ListPoliciesResponse,
  PolicyDocument,
  PolicyPermission,
  PolicyResponse,
} from '../shared/api/policies.ts';
export type {
  ListResponse,
  MetadataResponse,
  SecretResponse,
  VersionInfoWire,
} from '../shared/api/secrets.ts';
/** The most paths one `waitForVersions()` may name. */
export { MAX_WATCH_PATHS } from '../shared/api/secrets.ts';
export type { SnapshotRestoreResponse } from '../shared/api/snapshot.ts';
export type {
  CiphertextResult,
  HmacResult,
  KeyResponse,
  KeyVersionWire,
  ListKeysResponse,
} from '../shared/api/transit.ts';
export {
  AccessDeniedError,
  AlreadyUnsealedError,
  BrokerError,
  CiphertextInvalidError,
  ConfigError,
  ConflictError,
  DecryptionFailedError,
  type ErrorCode,
  InternalError,
  InvalidRequestError,
  isBrokerError,
  KeyVersionTooOldError,
  NotFoundError,
  NotReadyError,
  PayloadTooLargeError,
  RateLimitedError,
  ServerUntrustedError,
  SvidInvalidError,
  TooManyWatchesError,
  UnauthenticatedError,
  UnavailableError,
  WorkloadApiUnavailableError,
} from '../shared/errors/errors.ts';
export type { Logger } from '../shared/log/logger.ts';
export {
  parseSpiffeId,
  parseTrustDomain,
  SpiffeId,
  TrustDomain,
} from '../shared/spiffe/spiffe_id.ts';
export {
  createX509Source,
  type X509Source,
  type X509SourceOptions,
  type X509SvidSource,
} from '../shared/spiffe/x509_source.ts';
export {
  type BorrowedSourceOptions,
  type Bytes,
  type ContextOption,
  createSpikeClient,
  type DataKey,
  type DataKeyOptions,
  type OwnedSourceOptions,
  type PolicyInput,
  SpikeClient,
  type SpikeClientOptions,
  type SpikeStatus,
  type WatchOptions,
} from './client.ts';
