/**
 * The SPIKE client for applications (and for Pilot): talks to Nexus over
 * SPIFFE mTLS with the caller's own X509-SVID, accepts only a server whose
 * SVID is Nexus's, and turns every answer into a checked value or a typed
 * `BrokerError`.
 *
 * - Connections are kept alive and reused, except one that the server may
 *   close after its answer (`Connection: close`, a 413, an answer before our
 *   whole body was sent); when the Workload API rotates our SVID, new
 *   connections use the new one (`MtlsClient` does all of this).
 * - Arguments are validated with the wire contract's own parsers before any
 *   request is sent, so a bad path fails with `InvalidRequestError` at once.
 * - With `retryDeadlineMs`, a sealed Nexus (503 `ERR_NOT_READY`), a rate
 *   limit (429 `ERR_RATE_LIMITED`, waiting at least its `Retry-After`) and a
 *   Nexus that cannot be reached are retried with backoff until the deadline.
 *   Only requests Nexus cannot have acted on are retried: refused connections,
 *   `ERR_NOT_READY` and `ERR_RATE_LIMITED` (both answered before the store is
 *   touched), and reads. A `Retry-After` beyond the deadline fails at once.
 * - With `deadline`, nothing waits past it: the first SVID of an owned
 *   source, each request and each retry get only the time that is left.
 * - The SVID source is either owned or borrowed, as the options say: from
 *   `workloadApiAddress` the client opens its own and closes it on `close()`;
 *   a `source` passed in stays the caller's and is left open.
 */

import type { KeyringStatusResponse, RotateDataKeyResponse } from '../shared/api/keyring.ts';
import { DEFAULT_NEXUS_URL } from '../shared/api/nexus_address.ts';
import {
  parseRestoreRequest,
  parseRotateRootKeyRequest,
  type RecoverResponse,
  type RestoreResponse,
  type RotateRootKeyRequest,
  type RotateRootKeyResponse,
  type StatusResponse,
} from '../shared/api/operator.ts';
import { PATHS } from '../shared/api/paths.ts';
import {
  type ListPoliciesResponse,
  type PolicyDocument,
  type PolicyResponse,
  parseListPoliciesResponse,
  parsePolicyDocument,
  parsePolicyResponse,
  policyPath,
} from '../shared/api/policies.ts';
import { parseSecretPath, parseSecretPrefix } from '../shared/api/secret_path.ts';
import {
  DEFAULT_WATCH_WAIT_MS,
  formatWaitQuery,
  type ListResponse,
  type MetadataResponse,
  parseListLimit,
  parsePutMetadataRequest,
  parsePutSecretRequest,
  parseVersionNumber,
  parseVersionsRequest,
  parseWatchRequest,
  type SecretResponse,
} from '../shared/api/secrets.ts';
import {
  MAX_SNAPSHOT_FILE_BYTES,
  SNAPSHOT_MEDIA_TYPE,
  type SnapshotRestoreResponse,
} from '../shared/api/snapshot.ts';
import {
  type CiphertextResult,
  type DataKeyResult,
  decodeWireBytes,
  encodeWireBytes,
  type HmacResult,
  type KeyResponse,
  keyRoute,
  type ListKeysResponse,
  parseBatchResponse,
  parseCiphertextResult,
  parseConfigureKeyRequest,
  parseDataKeyRequest,
  parseDataKeyResult,
  parseDecryptRequest,
  parseDecryptResult,
  parseEncryptRequest,
  parseHmacRequest,
  parseHmacResult,
  parseKeyName,
  parseKeyResponse,
  parseListKeysResponse,
  parseVerifyRequest,
  parseVerifyResult,
  type TransitRequest,
} from '../shared/api/transit.ts';
import {
  type BrokerError,
  ConfigError,
  InternalError,
  isBrokerError,
  NotFoundError,
  UnavailableError,
} from '../shared/errors/errors.ts';
import type { Logger } from '../shared/log/logger.ts';
import { delay } from '../shared/runtime/delay.ts';
import { isNexus } from '../shared/spiffe/identities.ts';
import { MtlsClient } from '../shared/spiffe/mtls_client.ts';
import { parseTrustDomain, type SpiffeId, TrustDomain } from '../shared/spiffe/spiffe_id.ts';
import { parseWorkloadApiAddress } from '../shared/spiffe/workload_address.ts';
import {
  createX509Source,
  DEFAULT_FIRST_SVID_TIMEOUT_MS,
  type X509SvidSource,
} from '../shared/spiffe/x509_source.ts';
import { errorFromResponse, transportFailure } from './_errors.ts';
import {
  parseKeyringStatusResponse,
  parseListResponse,
  parseMetadataResponse,
  parseRecoverResponse,
  parseRestoreResponse,
  parseRotateDataKeyResponse,
  parseRotateRootKeyResponse,
  parseSecretResponse,
  parseSnapshotRestoreResponse,
  parseStatusResponse,
  parseWatchResponse,
} from './_wire.ts';

/**
 * The options of `createSpikeClient`. Where our SVID comes from decides who
 * closes its source: give `workloadApiAddress` and the client owns the source
 * it opens (`OwnedSourceOptions`), or give `source` and the client borrows it
 * (`BorrowedSourceOptions`). Giving both is refused.
 */
export type SpikeClientOptions = OwnedSourceOptions | BorrowedSourceOptions;

/** The client opens its own source from the Workload API and closes it on `close()`. */
export interface OwnedSourceOptions extends CommonOptions {
  /** The Workload API, `unix:///path` or `tcp://IP:port` (required). */
  readonly workloadApiAddress?: string | undefined;
  /** How long to wait for our first SVID. Defaults to 30 s. */
  readonly workloadApiTimeoutMs?: number | undefined;
  readonly source?: undefined;
}

/** The client uses a source the caller opened; `close()` leaves it open for its owner. */
export interface BorrowedSourceOptions extends CommonOptions {
  readonly source: X509SvidSource;
  readonly workloadApiAddress?: undefined;
  readonly workloadApiTimeoutMs?: undefined;
}

interface CommonOptions {
  /** Where Nexus listens; `https:` only. Defaults to `https://localhost:8553`. */
  readonly nexusUrl?: URL | string | undefined;
  /** The trust domain Nexus must belong to. Defaults to our own SVID's. */
  readonly trustDomain?: TrustDomain | string | undefined;
  /** Timeout of each request, from connecting to the end of the answer. Defaults to 10 s. */
  readonly timeoutMs?: number | undefined;
  /**
   * The end of the client's whole time budget, for a one-shot program such
   * as Pilot: the wait for an owned source's first SVID, every request and
   * every retry end by then (each request's timeout is cut to what is
   * left). Defaults to none.
   */
  readonly deadline?: Date | undefined;
  /**
   * Retry a sealed Nexus (503 `ERR_NOT_READY`) and an unreachable one with
   * backoff for up to this long per call. Defaults to 0: no retry.
   */
  readonly retryDeadlineMs?: number | undefined;
  /** Where retries and the source's SVID rotations are logged. Defaults to no logging. */
  readonly logger?: Logger | undefined;
}

/** The options of `watch()`. */
export interface WatchOptions {
  /** The version you have; the first one yielded is any other. Default 0: none, so the current one comes first. */
  readonly newerThan?: number | undefined;
  /** How long each long-poll waits before it is sent again (1 ms to 60 s). Default 30 s. */
  readonly waitMs?: number | undefined;
  /** Ends the watch (and the long-poll in flight) when aborted. */
  readonly signal?: AbortSignal | undefined;
}

/** Failures a watch waits out: Nexus unreachable, sealed, busy, or failing for now. */
const WATCH_RETRIED_CODES: ReadonlySet<string> = new Set([
  'ERR_UNAVAILABLE',
  'ERR_NOT_READY',
  'ERR_RATE_LIMITED',
  'ERR_TOO_MANY_WATCHES',
  'ERR_INTERNAL',
]);
const WATCH_FIRST_BACKOFF_MS = 250;
const WATCH_MAX_BACKOFF_MS = 30_000;

/** `status()`: Nexus's answer plus its HTTP status (200 ready, 503 sealed). */
export type SpikeStatus = StatusResponse & { readonly httpStatus: number };

/** A policy as the caller writes it. */
export type PolicyInput = PolicyDocument;

const DEFAULT_TIMEOUT_MS = 10_000;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;

const SILENT_LOGGER: Logger = {
  debug: ignore,
  info: ignore,
  warn: ignore,
  error: ignore,
  child: () => SILENT_LOGGER,
};

function ignore(): void {
  // Logging is off unless the caller passes a logger.
}

// Only createSpikeClient() may construct a client.
const CONSTRUCT = Symbol('construct');

interface ClientInit {
  readonly origin: string;
  readonly source: X509SvidSource;
  /** Closed with the client: the source created from `workloadApiAddress`. */
  readonly ownedSource: { close(): void } | undefined;
  readonly trustDomain: TrustDomain;
  readonly timeoutMs: number;
  readonly retryDeadlineMs: number;
  /** Epoch milliseconds; Infinity when the client has no deadline. */
  readonly deadline: number;
  readonly logger: Logger;
}

interface Call {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly body?: unknown;
  /** A body sent as these bytes of this media type instead of JSON (a snapshot). */
  readonly upload?: { readonly bytes: Uint8Array; readonly mediaType: string };
  /** A 2xx answer is these bytes, up to `maxBytes`, instead of JSON (a snapshot). */
  readonly download?: { readonly maxBytes: number };
  /** Non-2xx statuses that are answers rather than errors (when they carry no error body; 304 never has one). */
  readonly answers?: readonly number[];
  /** This call's timeout instead of the client's (a long-poll waits longer). */
  readonly timeoutMs?: number;
  /** Ends the call (and its retries) when aborted, rejecting with the signal's reason. */
  readonly signal?: AbortSignal | undefined;
  /** A POST that changes nothing (a long-poll over several paths): retried after a dropped connection, as a GET is. */
  readonly changesNothing?: true;
}

interface Reply {
  readonly status: number;
  readonly body: unknown;
}

/**
 * Creates a client. With `workloadApiAddress`, connects to the Workload API
 * and waits (up to `workloadApiTimeoutMs`) for our first SVID; that source is
 * the client's. Invalid options are refused together with one `ConfigError`.
 */
export async function createSpikeClient(options: SpikeClientOptions): Promise<SpikeClient> {
  const problems: string[] = [];
  const origin = originOf(options.nexusUrl ?? DEFAULT_NEXUS_URL, problems);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    problems.push(`timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  const retryDeadlineMs = options.retryDeadlineMs ?? 0;
  if (!Number.isFinite(retryDeadlineMs) || retryDeadlineMs < 0) {
    problems.push(`retryDeadlineMs must be 0 or more milliseconds, got ${retryDeadlineMs}`);
  }
  let trustDomain: TrustDomain | undefined;
  if (options.trustDomain !== undefined) {
    try {
      trustDomain =
        options.trustDomain instanceof TrustDomain
          ? options.trustDomain
          : parseTrustDomain(options.trustDomain);
    } catch (err) {
      problems.push(`trustDomain is invalid: ${(err as Error).message}`);
    }
  }
  const deadline = options.deadline === undefined ? Infinity : options.deadline.getTime();
  if (Number.isNaN(deadline)) {
    problems.push('deadline must be a valid Date');
  }
  const workloadApiTimeoutMs = options.workloadApiTimeoutMs;
  if (options.source !== undefined) {
    // Options typed by hand (plain JavaScript) can still carry both.
    if (options.workloadApiAddress !== undefined || workloadApiTimeoutMs !== undefined) {
      problems.push(
        'give either source (borrowed) or workloadApiAddress (owned by the client), not both',
      );
    }
  } else if (options.workloadApiAddress === undefined || options.workloadApiAddress === '') {
    problems.push('workloadApiAddress is required when no source is given');
  } else {
    try {
      parseWorkloadApiAddress(options.workloadApiAddress);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (
    workloadApiTimeoutMs !== undefined &&
    (!Number.isFinite(workloadApiTimeoutMs) || workloadApiTimeoutMs <= 0)
  ) {
    problems.push(
      `workloadApiTimeoutMs must be a positive number of milliseconds, got ${workloadApiTimeoutMs}`,
    );
  }
  if (problems.length > 0) {
    throw new ConfigError(problems);
  }
  const logger = options.logger ?? SILENT_LOGGER;
  // The deadline cuts the wait for a first SVID short; 1 ms at least, so a
  // deadline already past still asks once and fails with the source's error.
  const firstSvidTimeoutMs = Math.max(
    1,
    Math.min(workloadApiTimeoutMs ?? DEFAULT_FIRST_SVID_TIMEOUT_MS, deadline - Date.now()),
  );
  const owned =
    options.source === undefined
      ? await createX509Source({
          address: options.workloadApiAddress as string,
          logger,
          timeoutMs: firstSvidTimeoutMs,
        })
      : undefined;
  const source = options.source ?? (owned as X509SvidSource);
  try {
    return new SpikeClient(CONSTRUCT, {
      origin,
      source,
      ownedSource: owned,
      trustDomain: trustDomain ?? source.getX509Svid().id.trustDomain,
      timeoutMs,
      retryDeadlineMs,
      deadline,
      logger,
    });
  } catch (err) {
    owned?.close();
    throw err;
  }
}

export class SpikeClient {
  readonly #origin: string;
  readonly #source: X509SvidSource;
  readonly #ownedSource: { close(): void } | undefined;
  readonly #mtls: MtlsClient;
  readonly #timeoutMs: number;
  readonly #retryDeadlineMs: number;
  readonly #deadline: number;
  readonly #logger: Logger;
  /** Aborted by close(), once: marks the client closed and cuts every retry back-off short. */
  readonly #closing = new AbortController();

  /** Use `createSpikeClient()`. */
  constructor(token: typeof CONSTRUCT, init: ClientInit) {
    if (token !== CONSTRUCT) {
      throw new TypeError('Use createSpikeClient() to create a SpikeClient');
    }
    this.#origin = init.origin;
    this.#source = init.source;
    this.#ownedSource = init.ownedSource;
    this.#timeoutMs = init.timeoutMs;
    this.#retryDeadlineMs = init.retryDeadlineMs;
    this.#deadline = init.deadline;
    this.#logger = init.logger;
    this.#mtls = new MtlsClient({
      source: init.source,
      authorizeServer: isNexus(init.trustDomain),
      timeoutMs: init.timeoutMs,
    });
  }

  /** Our own SPIFFE ID, from the current SVID. */
  spiffeId(): SpiffeId {
    return this.#source.getX509Svid().id;
  }

  // ------------------------------------------------------------ secrets

  /** The current version of a secret, or the given one. */
  async getSecret(
    path: string,
    options: { version?: number | undefined } = {},
  ): Promise<SecretResponse> {
    const route = secretRoute(PATHS.secretData, path);
    const query =
      options.version === undefined
        ? undefined
        : { version: String(parseVersionNumber(options.version, 'version')) };
    const reply = await this.#call({ method: 'GET', path: route, ...(query && { query }) });
    return this.#check(parseSecretResponse, reply, 'GET', route);
  }

  /**
   * One long-poll: waits up to `waitMs` (default 30 s, at most 60 s) for the
   * secret to be other than version `newerThan` (0: none), and returns what
   * a read of the current version then answers; `undefined` when the wait
   * ended first (or Nexus is stopping). A current version that is deleted or
   * destroyed, or a removed path, is `NotFoundError` as for `getSecret`.
   * `watch()` runs this in a loop.
   */
  async getSecretNewerThan(
    path: string,
    newerThan: number,
    options: { waitMs?: number | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<SecretResponse | undefined> {
    const route = secretRoute(PATHS.secretData, path);
    const waitMs = options.waitMs ?? DEFAULT_WATCH_WAIT_MS;
    const query = {
      newerThan: String(parseVersionNumber(newerThan, 'newerThan', 0)),
      wait: formatWaitQuery(waitMs),
    };
    const reply = await this.#call({
      method: 'GET',
      path: route,
      query,
      answers: [304],
      // Nexus answers by the end of the wait: only then does the client's timeout start.
      timeoutMs: waitMs + this.#timeoutMs,
      signal: options.signal,
    });
    return reply.status === 304 ? undefined : this.#check(parseSecretResponse, reply, 'GET', route);
  }

  /**
   * One long-poll over several paths (`POST /v1/secrets/watch`, up to
   * `MAX_WATCH_PATHS`): `known` maps each path to the version you have (0:
   * none). As soon as the current version of one or more of them is
   * another, resolves with those paths and their current versions (0: none,
   * as the current version was deleted or destroyed, or the path removed);
   * with `undefined` when the wait (`waitMs`, default 30 s, at most 60 s)
   * ended first or Nexus is stopping. Nothing is read: get what changed with
   * `getSecret`. One path you may not read refuses the whole request
   * (`AccessDeniedError`). It holds one connection however many paths it
   * names, where `getSecretNewerThan` holds one per path.
   */
  async waitForVersions(
    known: ReadonlyMap<string, number>,
    options: { waitMs?: number | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<Map<string, number> | undefined> {
    const waitMs = options.waitMs ?? DEFAULT_WATCH_WAIT_MS;
    const body = { versions: Object.fromEntries(known), wait: formatWaitQuery(waitMs) };
    // Parsed as Nexus parses it, so a malformed argument fails here, unsent.
    parseWatchRequest(body);
    const reply = await this.#call({
      method: 'POST',
      path: PATHS.secretWatch,
      body,
      changesNothing: true,
      answers: [304],
      // Nexus answers by the end of the wait: only then does the client's timeout start.
      timeoutMs: waitMs + this.#timeoutMs,
      signal: options.signal,
    });
    return reply.status === 304
      ? undefined
      : this.#check(parseWatchResponse, reply, 'POST', PATHS.secretWatch);
  }

  /**
   * The versions of a secret as they come: the current one first (or, with
   * `newerThan`, the first other than that one), then each new one, `null`
   * when the secret is gone (its current version deleted or destroyed, or
   * its path removed; the next version written comes after it). One
   * long-poll at a time (`getSecretNewerThan`), each waiting up to `waitMs`.
   * Nexus being unreachable, sealed or busy (`UnavailableError`,
   * `NotReadyError`, `RateLimitedError`, `TooManyWatchesError`, an internal
   * error) is retried with backoff (250 ms doubling to 30 s) for as long as
   * it lasts, each failure logged as a warning; any other error (access
   * denied, say) ends the iteration by throwing it. Ends quietly when
   * `signal` is aborted (the request in flight is cut at once), when the
   * loop breaks, or when the client closes.
   */
  watch(path: string, options: WatchOptions = {}): AsyncGenerator<SecretResponse | null, void> {
    // Checked now, before the first `next()`, so a bad argument throws at the call.
    secretRoute(PATHS.secretData, path);
    formatWaitQuery(options.waitMs ?? DEFAULT_WATCH_WAIT_MS);
    const newerThan = parseVersionNumber(options.newerThan ?? 0, 'newerThan', 0);
    return this.#watch(path, newerThan, options);
  }

  async *#watch(
    path: string,
    newerThan: number,
    options: WatchOptions,
  ): AsyncGenerator<SecretResponse | null, void> {
    const { signal } = options;
    const stop =
      signal === undefined ? this.#closing.signal : AbortSignal.any([this.#closing.signal, signal]);
    let have = newerThan;
    let failures = 0;
    while (!stop.aborted) {
      let next: SecretResponse | null | undefined;
      try {
        next = await this.getSecretNewerThan(path, have, { waitMs: options.waitMs, signal: stop });
        failures = 0;
      } catch (err) {
        if (stop.aborted) return;
        if (err instanceof NotFoundError && have !== 0) {
          next = null;
        } else if (isBrokerError(err) && WATCH_RETRIED_CODES.has(err.code)) {
          failures += 1;
          const backoffMs = Math.min(
            WATCH_FIRST_BACKOFF_MS * 2 ** (failures - 1),
            WATCH_MAX_BACKOFF_MS,
          );
          const waitMs = Math.round(backoffMs * (0.5 + Math.random() / 2));
          this.#logger.warn('A watch could not reach Nexus; trying again', {
            nexus: this.#origin,
            path,
            code: err.code,
            error: err.message,
            attempt: failures,
            delayMs: waitMs,
          });
          try {
            await delay(waitMs, { signal: stop });
          } catch {
            return;
          }
          continue;
        } else {
          throw err;
        }
      }
      if (next === undefined) continue;
      have = next === null ? 0 : next.version;
      yield next;
    }
  }

  /** Writes a new version; with `cas`, only if the current version is `cas` (0: must not exist). */
  async putSecret(
    path: string,
    data: Record<string, string>,
    options: { cas?: number | undefined } = {},
  ): Promise<MetadataResponse> {
    const route = secretRoute(PATHS.secretData, path);
    const body = parsePutSecretRequest(
      options.cas === undefined ? { data } : { data, cas: options.cas },
    );
    const reply = await this.#call({ method: 'PUT', path: route, body });
    return this.#check(parseMetadataResponse, reply, 'PUT', route);
  }

  /** The paths under `prefix` that we may list, a page at a time (`next` → `after`). */
  async listSecrets(
    options: {
      prefix?: string | undefined;
      limit?: number | undefined;
      after?: string | undefined;
    } = {},
  ): Promise<ListResponse> {
    const query: Record<string, string> = { prefix: parseSecretPrefix(options.prefix) };
    if (options.limit !== undefined) {
      query.limit = String(parseListLimit(String(options.limit)));
    }
    if (options.after !== undefined) {
      query.after = parseSecretPath(options.after);
    }
    const reply = await this.#call({ method: 'GET', path: PATHS.secretList, query });
    return this.#check(parseListResponse, reply, 'GET', PATHS.secretList);
  }

  /** Soft-deletes the given versions (default: the current one). */
  async deleteSecret(
    path: string,
    options: { versions?: number[] | undefined } = {},
  ): Promise<MetadataResponse> {
    const route = secretRoute(PATHS.secretData, path);
    const versions = versionsOf(options.versions, false);
    const query = versions === undefined ? undefined : { versions: versions.join(',') };
    const reply = await this.#call({ method: 'DELETE', path: route, ...(query && { query }) });
    return this.#check(parseMetadataResponse, reply, 'DELETE', route);
  }

  /** Undoes soft deletes of the given versions (default: the current one). */
  async undeleteSecret(
    path: string,
    options: { versions?: number[] | undefined } = {},
  ): Promise<MetadataResponse> {
    const route = secretRoute(PATHS.secretUndelete, path);
    const versions = versionsOf(options.versions, false);
    const body = versions === undefined ? {} : { versions };
    const reply = await this.#call({ method: 'POST', path: route, body });
    return this.#check(parseMetadataResponse, reply, 'POST', route);
  }

  /** Removes the data of the given versions for good. */
  async destroySecret(path: string, versions: number[]): Promise<MetadataResponse> {
    const route = secretRoute(PATHS.secretDestroy, path);
    const body = { versions: versionsOf(versions, true) };
    const reply = await this.#call({ method: 'POST', path: route, body });
    return this.#check(parseMetadataResponse, reply, 'POST', route);
  }

  async getMetadata(path: string): Promise<MetadataResponse> {
    const route = secretRoute(PATHS.secretMetadata, path);
    const reply = await this.#call({ method: 'GET', path: route });
    return this.#check(parseMetadataResponse, reply, 'GET', route);
  }

  /** Sets max versions (`null`: back to the default) and custom metadata. */
  async putMetadata(
    path: string,
    update: {
      maxVersions?: number | null | undefined;
      customMetadata?: Record<string, string> | undefined;
    },
  ): Promise<MetadataResponse> {
    const route = secretRoute(PATHS.secretMetadata, path);
    const body = parsePutMetadataRequest(update);
    const reply = await this.#call({ method: 'PUT', path: route, body });
    return this.#check(parseMetadataResponse, reply, 'PUT', route);
  }

  /**
   * Removes the path with every version and its metadata. With
   * `onlyDeleted`, Nexus removes it only if every version is deleted or
   * destroyed, and otherwise refuses with `ConflictError` and keeps it.
   */
  async deletePath(path: string, options: { readonly onlyDeleted?: boolean } = {}): Promise<void> {
    const route = secretRoute(PATHS.secretMetadata, path);
    const query = options.onlyDeleted === true ? '?onlyDeleted=true' : '';
    await this.#call({ method: 'DELETE', path: `${route}${query}` });
  }

  // ------------------------------------------------------------ policies

  async listPolicies(): Promise<ListPoliciesResponse> {
    const reply = await this.#call({ method: 'GET', path: PATHS.policies });
    return this.#check(parseListPoliciesResponse, reply, 'GET', PATHS.policies);
  }

  async getPolicy(name: string): Promise<PolicyResponse> {
    const route = policyPath(name);
    const reply = await this.#call({ method: 'GET', path: route });
    return this.#check(parsePolicyResponse, reply, 'GET', route);
  }

  /** Creates or replaces the policy named `policy.name`. */
  async putPolicy(policy: PolicyInput): Promise<PolicyResponse> {
    const body = parsePolicyDocument(policy);
    const route = policyPath(body.name);
    const reply = await this.#call({ method: 'PUT', path: route, body });
    return this.#check(parsePolicyResponse, reply, 'PUT', route);
  }

  async deletePolicy(name: string): Promise<void> {
    await this.#call({ method: 'DELETE', path: policyPath(name) });
  }

  // ------------------------------------------------------------ named keys

  /** The names of the keys we may list. */
  async listKeys(): Promise<ListKeysResponse> {
    const reply = await this.#call({ method: 'GET', path: PATHS.transitKeys });
    return this.#check(parseListKeysResponse, reply, 'GET', PATHS.transitKeys);
  }

  /** Creates a key (version 1); `ConflictError` when the name is taken. */
  async createKey(name: string): Promise<KeyResponse> {
    return this.#keyCall('POST', keyRoute(name));
  }

  /** A key's metadata (never its material). */
  async getKey(name: string): Promise<KeyResponse> {
    return this.#keyCall('GET', keyRoute(name));
  }

  /** Adds a version that encryption uses from now on; older ones still decrypt. */
  async rotateKey(name: string): Promise<KeyResponse> {
    return this.#keyCall('POST', `${keyRoute(name)}/rotate`);
  }

  /** Refuses ciphertext and HMACs of versions below `minDecryptionVersion` (1 to the latest). */
  async configureKey(
    name: string,
    options: { readonly minDecryptionVersion: number },
  ): Promise<KeyResponse> {
    const body = parseConfigureKeyRequest({ minDecryptionVersion: options.minDecryptionVersion });
    return this.#keyCall('POST', `${keyRoute(name)}/config`, body);
  }

  /** Deletes a key and every version: what was encrypted under it can no longer be decrypted. */
  async deleteKey(name: string): Promise<void> {
    await this.#call({ method: 'DELETE', path: keyRoute(name) });
  }

  /** Encrypts under the key's latest version; `context` (if any) must be given again to decrypt. */
  async encrypt(
    name: string,
    plaintext: Bytes,
    options: ContextOption = {},
  ): Promise<CiphertextResult> {
    const [result] = await this.#encryptItems(name, [{ plaintext, ...options }], false);
    return result as CiphertextResult;
  }

  /** As many items as `encrypt`, in one request (1 to 1000); all or nothing. */
  async encryptBatch(
    name: string,
    items: readonly { readonly plaintext: Bytes; readonly context?: Bytes | undefined }[],
  ): Promise<CiphertextResult[]> {
    return this.#encryptItems(name, items, true);
  }

  async #encryptItems(
    name: string,
    items: readonly { readonly plaintext: Bytes; readonly context?: Bytes | undefined }[],
    isBatch: boolean,
  ): Promise<CiphertextResult[]> {
    const wire = items.map((item) => ({
      plaintext: encodeWireBytes(bytesOf(item.plaintext)),
      ...contextOf(item.context),
    }));
    return this.#transit(
      PATHS.transitEncrypt,
      name,
      wire,
      isBatch,
      parseEncryptRequest,
      parseCiphertextResult,
    );
  }

  /** The plaintext of a ciphertext of this key, made with the same context. */
  async decrypt(
    name: string,
    ciphertext: string,
    options: ContextOption = {},
  ): Promise<Uint8Array> {
    const [plaintext] = await this.#decryptItems(name, [{ ciphertext, ...options }], false);
    return plaintext as Uint8Array;
  }

  /** As many items as `decrypt`, in one request (1 to 1000); all or nothing. */
  async decryptBatch(
    name: string,
    items: readonly { readonly ciphertext: string; readonly context?: Bytes | undefined }[],
  ): Promise<Uint8Array[]> {
    return this.#decryptItems(name, items, true);
  }

  async #decryptItems(
    name: string,
    items: readonly { readonly ciphertext: string; readonly context?: Bytes | undefined }[],
    isBatch: boolean,
  ): Promise<Uint8Array[]> {
    const results = await this.#transit(
      PATHS.transitDecrypt,
      name,
      items.map((item) => ({ ciphertext: item.ciphertext, ...contextOf(item.context) })),
      isBatch,
      parseDecryptRequest,
      parseDecryptResult,
    );
    return results.map((result) => decodeWireBytes(result.plaintext, 'plaintext'));
  }

  /** The same plaintext under the key's latest version, without it leaving Nexus. */
  async rewrap(
    name: string,
    ciphertext: string,
    options: ContextOption = {},
  ): Promise<CiphertextResult> {
    const [result] = await this.#rewrapItems(name, [{ ciphertext, ...options }], false);
    return result as CiphertextResult;
  }

  /** As many items as `rewrap`, in one request (1 to 1000); all or nothing. */
  async rewrapBatch(
    name: string,
    items: readonly { readonly ciphertext: string; readonly context?: Bytes | undefined }[],
  ): Promise<CiphertextResult[]> {
    return this.#rewrapItems(name, items, true);
  }

  async #rewrapItems(
    name: string,
    items: readonly { readonly ciphertext: string; readonly context?: Bytes | undefined }[],
    isBatch: boolean,
  ): Promise<CiphertextResult[]> {
    return this.#transit(
      PATHS.transitRewrap,
      name,
      items.map((item) => ({ ciphertext: item.ciphertext, ...contextOf(item.context) })),
      isBatch,
      parseDecryptRequest,
      parseCiphertextResult,
    );
  }

  /**
   * A fresh random data key (32 bytes unless `bytes` says 16 to 64), wrapped
   * under the key, and in plaintext unless `wrappedOnly`: envelope encryption.
   */
  async generateDataKey(name: string, options: DataKeyOptions = {}): Promise<DataKey> {
    const [result] = await this.#dataKeyItems(name, [options], false);
    return result as DataKey;
  }

  /** As many items as `generateDataKey`, in one request (1 to 1000); all or nothing. */
  async generateDataKeyBatch(name: string, items: readonly DataKeyOptions[]): Promise<DataKey[]> {
    return this.#dataKeyItems(name, items, true);
  }

  async #dataKeyItems(
    name: string,
    items: readonly DataKeyOptions[],
    isBatch: boolean,
  ): Promise<DataKey[]> {
    const results = await this.#transit(
      PATHS.transitDataKey,
      name,
      items.map((item) => ({
        ...(item.bytes === undefined ? {} : { bytes: item.bytes }),
        ...(item.wrappedOnly === undefined ? {} : { wrappedOnly: item.wrappedOnly }),
        ...contextOf(item.context),
      })),
      isBatch,
      parseDataKeyRequest,
      parseDataKeyResult,
    );
    return results.map(toDataKey);
  }

  /** The HMAC-SHA256 of `input` under the key's latest version. */
  async hmac(name: string, input: Bytes): Promise<HmacResult> {
    const [result] = await this.#hmacItems(name, [input], false);
    return result as HmacResult;
  }

  /** As many items as `hmac`, in one request (1 to 1000); all or nothing. */
  async hmacBatch(name: string, inputs: readonly Bytes[]): Promise<HmacResult[]> {
    return this.#hmacItems(name, inputs, true);
  }

  async #hmacItems(
    name: string,
    inputs: readonly Bytes[],
    isBatch: boolean,
  ): Promise<HmacResult[]> {
    return this.#transit(
      PATHS.transitHmac,
      name,
      inputs.map((input) => ({ input: encodeWireBytes(bytesOf(input)) })),
      isBatch,
      parseHmacRequest,
      parseHmacResult,
    );
  }

  /** Whether `hmac` is this key's HMAC of `input`. */
  async verifyHmac(name: string, input: Bytes, hmac: string): Promise<boolean> {
    const [valid] = await this.#verifyItems(name, [{ input, hmac }], false);
    return valid as boolean;
  }

  /** As many items as `verifyHmac`, in one request (1 to 1000); all or nothing. */
  async verifyHmacBatch(
    name: string,
    items: readonly { readonly input: Bytes; readonly hmac: string }[],
  ): Promise<boolean[]> {
    return this.#verifyItems(name, items, true);
  }

  async #verifyItems(
    name: string,
    items: readonly { readonly input: Bytes; readonly hmac: string }[],
    isBatch: boolean,
  ): Promise<boolean[]> {
    const results = await this.#transit(
      PATHS.transitVerify,
      name,
      items.map((item) => ({ input: encodeWireBytes(bytesOf(item.input)), hmac: item.hmac })),
      isBatch,
      parseVerifyRequest,
      parseVerifyResult,
    );
    return results.map((result) => result.valid);
  }

  // ------------------------------------------------------------ operator

  /** Ready (200) or sealed (503): both are answers, not errors. */
  async status(): Promise<SpikeStatus> {
    const reply = await this.#call({ method: 'GET', path: PATHS.status, answers: [503] });
    const status = this.#check(parseStatusResponse, reply, 'GET', PATHS.status);
    return { ...status, httpStatus: reply.status };
  }

  /** Break-glass: a full recovery split (recover role only). */
  async recover(): Promise<RecoverResponse> {
    const reply = await this.#call({ method: 'POST', path: PATHS.operatorRecover });
    return this.#check(parseRecoverResponse, reply, 'POST', PATHS.operatorRecover);
  }

  /** The keyring's terms, the rows under each, and the sweep (operator roles). */
  async keyringStatus(): Promise<KeyringStatusResponse> {
    const reply = await this.#call({ method: 'GET', path: PATHS.operatorKeyring });
    return this.#check(parseKeyringStatusResponse, reply, 'GET', PATHS.operatorKeyring);
  }

  /** Rotates the data key: a new keyring term, then a background sweep (superuser only). */
  async rotateDataKey(): Promise<RotateDataKeyResponse> {
    const reply = await this.#call({ method: 'POST', path: PATHS.operatorKeyringRotate });
    return this.#check(parseRotateDataKeyResponse, reply, 'POST', PATHS.operatorKeyringRotate);
  }

  /** Break-glass: submits one recovery shard (restore role only). */
  async restore(shard: string): Promise<RestoreResponse> {
    const body = parseRestoreRequest({ shard });
    const reply = await this.#call({ method: 'POST', path: PATHS.operatorRestore, body });
    return this.#check(parseRestoreResponse, reply, 'POST', PATHS.operatorRestore);
  }

  /** A new root key split onto the Keepers, optionally in a new shape (superuser only). */
  async rotateRootKey(request: RotateRootKeyRequest = {}): Promise<RotateRootKeyResponse> {
    const body = parseRotateRootKeyRequest(request);
    const path = PATHS.operatorRootKeyRotate;
    const reply = await this.#call({ method: 'POST', path, body });
    return this.#check(parseRotateRootKeyResponse, reply, 'POST', path);
  }

  /**
   * A snapshot of Nexus's database (superuser only), as the bytes of a
   * snapshot file (`shared/api/snapshot.ts`); check them with
   * `SnapshotReader` before trusting them. Held in memory, up to
   * `MAX_SNAPSHOT_FILE_BYTES`.
   */
  async saveSnapshot(): Promise<Uint8Array> {
    const reply = await this.#call({
      method: 'GET',
      path: PATHS.operatorSnapshot,
      download: { maxBytes: MAX_SNAPSHOT_FILE_BYTES },
    });
    if (!(reply.body instanceof Uint8Array)) {
      throw new InternalError(`Nexus at ${this.#origin} sent no snapshot`);
    }
    return reply.body;
  }

  /**
   * Replaces Nexus's database with a snapshot file's (superuser only). A
   * snapshot sealed under another root key is refused unless `force`; with
   * it, Nexus answers `state: "sealed"` until that key comes back.
   */
  async restoreSnapshot(
    file: Uint8Array,
    options: { readonly force?: boolean } = {},
  ): Promise<SnapshotRestoreResponse> {
    const reply = await this.#call({
      method: 'PUT',
      path: PATHS.operatorSnapshot,
      ...(options.force === true ? { query: { force: 'true' } } : {}),
      upload: { bytes: file, mediaType: SNAPSHOT_MEDIA_TYPE },
    });
    return this.#check(parseSnapshotRestoreResponse, reply, 'PUT', PATHS.operatorSnapshot);
  }

  /**
   * Closes kept-alive connections, ends pending retries, and closes the
   * source if this client created it (a source passed in stays open).
   * Idempotent.
   */
  close(): void {
    if (this.#closing.signal.aborted) {
      return;
    }
    this.#closing.abort();
    this.#mtls.close();
    this.#ownedSource?.close();
  }

  async #keyCall(method: 'GET' | 'POST', route: string, body?: unknown): Promise<KeyResponse> {
    const reply = await this.#call({
      method,
      path: route,
      ...(body === undefined ? {} : { body }),
    });
    return this.#check(parseKeyResponse, reply, method, route);
  }

  /**
   * One data call on a key: the items checked by the route's own parser
   * before anything is sent, one item or `{ batch }`, and each result
   * checked.
   */
  async #transit<I, R>(
    base: string,
    name: string,
    items: readonly I[],
    isBatch: boolean,
    check: (body: unknown) => TransitRequest<unknown>,
    parse: (body: unknown) => R,
  ): Promise<R[]> {
    const route = `${base}/${parseKeyName(name)}`;
    if (!isBatch && items.length !== 1) {
      throw new TypeError('A call without a batch sends exactly one item');
    }
    const body = isBatch ? { batch: items } : items[0];
    check(body);
    const reply = await this.#call({ method: 'POST', path: route, body });
    return this.#check(
      (answer) =>
        isBatch ? [...parseBatchResponse(answer, items.length, parse)] : [parse(answer)],
      reply,
      'POST',
      route,
    );
  }

  // ------------------------------------------------------------ transport

  /** Sends a call, retrying as the class comment says; throws the typed error otherwise. */
  async #call(call: Call): Promise<Reply> {
    const deadline = Math.min(Date.now() + this.#retryDeadlineMs, this.#deadline);
    for (let attempt = 1; ; attempt++) {
      if (this.#closing.signal.aborted) {
        throw new TypeError('SpikeClient is closed');
      }
      if (call.signal?.aborted === true) {
        throw call.signal.reason;
      }
      const outcome = await this.#attempt(call);
      if (!('error' in outcome)) {
        return outcome;
      }
      const { error, isRetrySafe, retryAfterMs = 0 } = outcome;
      const backoff = Math.min(FIRST_BACKOFF_MS * 2 ** (attempt - 1), MAX_BACKOFF_MS);
      const left = deadline - Date.now();
      if (!isRetrySafe || left <= 0 || retryAfterMs > left) {
        throw error;
      }
      const wait = Math.min(left, Math.max(retryAfterMs, backoff * (0.5 + Math.random() / 2)));
      this.#logger.debug('Nexus did not serve the request; retrying', {
        nexus: this.#origin,
        method: call.method,
        route: call.path,
        code: error.code,
        attempt,
        delayMs: Math.round(wait),
      });
      try {
        await delay(wait, {
          signal:
            call.signal === undefined
              ? this.#closing.signal
              : AbortSignal.any([this.#closing.signal, call.signal]),
        });
      } catch {
        // close() or the call's signal ended the wait: the checks at the top of the loop throw.
      }
    }
  }

  async #attempt(call: Call): Promise<Reply | Failed> {
    const url = new URL(call.path, this.#origin);
    for (const [name, value] of Object.entries(call.query ?? {})) {
      url.searchParams.set(name, value);
    }
    const hasBody = call.body !== undefined || call.upload !== undefined;
    const timeoutMs = Math.min(call.timeoutMs ?? this.#timeoutMs, this.#deadline - Date.now());
    if (timeoutMs <= 0) {
      return {
        error: new UnavailableError(
          `No time was left to call Nexus at ${this.#origin}: the client's deadline has passed`,
        ),
        isRetrySafe: false,
      };
    }
    let status: number;
    let text: string;
    let retryAfter: string | string[] | undefined;
    try {
      const res = await this.#mtls.request({
        method: call.method,
        url,
        timeoutMs,
        headers: hasBody
          ? {
              accept: 'application/json',
              'content-type': call.upload?.mediaType ?? 'application/json',
            }
          : { accept: 'application/json' },
        ...(hasBody && { body: call.upload?.bytes ?? JSON.stringify(call.body) }),
        ...(call.download === undefined ? {} : { maxBodyBytes: call.download.maxBytes }),
        ...(call.signal !== undefined && { signal: call.signal }),
      });
      if (call.download !== undefined && res.status >= 200 && res.status < 300) {
        return { status: res.status, body: res.body };
      }
      status = res.status;
      text = res.text();
      retryAfter = res.headers['retry-after'];
    } catch (err) {
      if (this.#closing.signal.aborted) {
        throw new TypeError('SpikeClient is closed');
      }
      if (call.signal?.aborted === true) {
        throw call.signal.reason;
      }
      const failure = transportFailure(err, this.#origin);
      return {
        error: failure.error,
        isRetrySafe:
          failure.error.code === 'ERR_UNAVAILABLE' &&
          (failure.isBeforeSend || call.method === 'GET' || call.changesNothing === true),
      };
    }
    if (status >= 200 && status < 300) {
      return { status, body: text === '' ? undefined : jsonOf(text, this.#origin, call) };
    }
    if (status === 304 && call.answers?.includes(304)) {
      return { status, body: undefined };
    }
    if (call.answers?.includes(status)) {
      const body = jsonOrUndefined(text);
      const isErrorBody = typeof body === 'object' && body !== null && 'error' in body;
      if (body !== undefined && !isErrorBody) {
        return { status, body };
      }
    }
    const error = errorFromResponse(status, text, this.#origin);
    if (error.code === 'ERR_RATE_LIMITED') {
      return { error, isRetrySafe: true, retryAfterMs: retryAfterMsOf(retryAfter) };
    }
    return { error, isRetrySafe: error.code === 'ERR_NOT_READY' };
  }

  /** Parses a 2xx body; a malformed one becomes `InternalError` naming the route. */
  #check<T>(parse: (body: unknown) => T, reply: Reply, method: string, route: string): T {
    try {
      return parse(reply.body);
    } catch (err) {
      throw new InternalError(
        `Nexus at ${this.#origin} sent an unexpected answer to ${method} ${route}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
}

/** Bytes, or text sent as its UTF-8 bytes. */
export type Bytes = Uint8Array | string;

export interface ContextOption {
  /** Bound to the ciphertext: the same context must be given to decrypt or rewrap it. */
  readonly context?: Bytes | undefined;
}

export interface DataKeyOptions extends ContextOption {
  /** 16 to 64; 32 when left out. */
  readonly bytes?: number | undefined;
  /** Answer the wrapped key only, for a party that will have it unwrapped later. */
  readonly wrappedOnly?: boolean | undefined;
}

/** A data key: wrapped, and in plaintext unless `wrappedOnly` was asked for. */
export interface DataKey {
  readonly ciphertext: string;
  readonly keyVersion: number;
  readonly plaintext?: Uint8Array;
}

function bytesOf(value: Bytes): Uint8Array {
  return typeof value === 'string' ? new TextEncoder().encode(value) : value;
}

function contextOf(context: Bytes | undefined): { context?: string } {
  return context === undefined ? {} : { context: encodeWireBytes(bytesOf(context)) };
}

function toDataKey(result: DataKeyResult): DataKey {
  const wrapped = { ciphertext: result.ciphertext, keyVersion: result.keyVersion };
  return result.plaintext === undefined
    ? wrapped
    : { ...wrapped, plaintext: decodeWireBytes(result.plaintext, 'plaintext') };
}

/** `https://host:port` of the Nexus URL; only `https:` is accepted. */
function originOf(value: URL | string, problems: string[]): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push(`nexusUrl "${String(value)}" is not a URL`);
    return '';
  }
  if (url.protocol !== 'https:') {
    problems.push(`nexusUrl "${url.href}" must use https:`);
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    problems.push(`nexusUrl "${url.origin}" must not have userinfo, a query or a fragment`);
  }
  if (url.pathname !== '/') {
    problems.push(`nexusUrl "${url.origin}${url.pathname}" must not have a path`);
  }
  return url.origin;
}

/** `/v1/secrets/data/app/db` from a route and a secret path, validated and encoded per segment. */
function secretRoute(base: string, path: string): string {
  const parsed = parseSecretPath(path);
  return `${base}/${parsed.split('/').map(encodeURIComponent).join('/')}`;
}

function versionsOf(versions: number[] | undefined, isRequired: boolean): number[] | undefined {
  if (versions === undefined && !isRequired) {
    return undefined;
  }
  const parsed = parseVersionsRequest(versions === undefined ? {} : { versions }, isRequired);
  return parsed.versions === undefined ? undefined : [...parsed.versions];
}

function jsonOf(text: string, origin: string, call: Call): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // No cause: the SyntaxError quotes part of the body, which may be a secret.
    throw new InternalError(
      `Nexus at ${origin} answered ${call.method} ${call.path} with a body that is not JSON`,
    );
  }
}

function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A call that Nexus did not serve, and whether (and when) it may be sent again. */
interface Failed {
  readonly error: BrokerError;
  readonly isRetrySafe: boolean;
  /** From a 429's `Retry-After` (delta-seconds); 0 when absent or not a number. */
  readonly retryAfterMs?: number;
}

function retryAfterMsOf(header: string | string[] | undefined): number {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && /^\d{1,6}$/.test(value.trim()) ? Number(value.trim()) * 1000 : 0;
}
