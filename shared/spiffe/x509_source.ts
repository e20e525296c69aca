/**
 * Where our own X509-SVID and the trust bundles come from. `X509Source`
 * follows the Workload API's `FetchX509SVID` stream and always holds the
 * latest good state; the mTLS helpers read it through `X509SvidSource` and
 * rebuild their TLS contexts when `onUpdate` fires. `FetchedX509Source`
 * holds what one call delivered, for a one-shot program (Pilot), which then
 * loads no gRPC client at all. `StaticX509Source` holds fixed values for
 * tests and tools.
 *
 * Like go-spiffe's X509Source, the bundles come from that one stream only:
 * the SVID's own trust-domain `bundle` plus `federated_bundles`. Every message
 * is the full state, so a trust domain missing from the latest message is
 * no longer trusted. (Mixing in `FetchX509Bundles` would keep a bundle one
 * stream dropped alive while the other still carries it.) Callers that want
 * only bundles use `WorkloadApiClient.watchX509Bundles`.
 *
 * An expired SVID is never handed out: once the current one passes its
 * notAfter without a replacement, `getX509Svid()` throws until a new one
 * arrives. The same happens while the Workload API denies us an identity
 * (`PermissionDenied`).
 */
import { X509Certificate } from 'node:crypto';
import { SvidInvalidError, WorkloadApiUnavailableError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { X509BundleSet } from './bundle.ts';
import { parseWorkloadApiAddress } from './workload_address.ts';
import type { createWorkloadApiClient, WorkloadApiClient } from './workload_api.ts';
import { fetchX509SvidOnce } from './workload_fetch_once.ts';
import type { X509SvidUpdate } from './workload_messages.ts';
import type { X509Svid } from './x509_svid.ts';

/** What the mTLS helpers consume. */
export interface X509SvidSource {
  /** The current default identity (svids[0], or the one with the wanted hint); throws if none. */
  getX509Svid(): X509Svid;
  /** Current bundles, at most one per trust domain (may be empty). */
  getX509Bundles(): X509BundleSet;
  /** Called after every accepted change; returns an unsubscribe function. */
  onUpdate(listener: () => void): () => void;
}

export interface X509SourceOptions {
  /** Workload API address, `unix:///path` or `tcp://IP:port`. */
  readonly address: string;
  readonly logger: Logger;
  /** How long `createX509Source` waits for a first SVID. Defaults to 30 s. */
  readonly timeoutMs?: number;
  /**
   * For a one-shot program (the CLI): the wait for a first SVID ends at the
   * first failed attempt (no socket at the path, nothing listening on it)
   * instead of retrying until `timeoutMs`. Services leave it off: their
   * agent may start after them.
   */
  readonly failFast?: boolean;
  /** Serve the SVID with this hint instead of the first one. */
  readonly hint?: string;
  /** Backoff step of the Workload API client (default 1000 ms); tests make it small. */
  readonly backoffUnitMs?: number;
}

/** How long `createX509Source` waits for a first SVID unless told otherwise. */
export const DEFAULT_FIRST_SVID_TIMEOUT_MS = 30_000;
/** Warn this close to expiry at most (or at 10% of the lifetime, if that is sooner). */
const EXPIRY_WARNING_MAX_MS = 5 * 60_000;
const EXPIRY_WARNING_FRACTION = 0.1;
/** setTimeout's largest delay; longer waits are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const EMPTY_BUNDLES = new X509BundleSet([]);

export class X509Source implements X509SvidSource {
  readonly #logger: Logger;
  readonly #hint: string | undefined;
  readonly #address: string;
  readonly #failFast: boolean;
  /** Set once the client's module has loaded (the constructor starts that). */
  #client: WorkloadApiClient | undefined;
  readonly #listeners = new Set<() => void>();
  readonly #readyWaiters = new Set<(error: Error | undefined) => void>();
  #current: X509Svid | undefined;
  #bundles: X509BundleSet = EMPTY_BUNDLES;
  #warnTimer: { close(): void } | undefined;
  #expiryTimer: { close(): void } | undefined;
  #lastError: Error | undefined;
  /** Why waiting for a first SVID is pointless: a final rejection, or with failFast a failure. */
  #hopeless: Error | undefined;
  #closed = false;

  /**
   * Starts watching the Workload API as soon as its client has loaded: the
   * gRPC client is imported here, not by this module, so that a program that
   * only fetches its SVID once (`fetchX509Source`) never loads grpc-js
   * (docs/decisions/0023). A malformed address throws at once.
   * `createX509Source` also waits for a first SVID.
   */
  constructor(options: X509SourceOptions) {
    this.#logger = options.logger;
    this.#hint = options.hint === undefined || options.hint === '' ? undefined : options.hint;
    this.#address = options.address;
    this.#failFast = options.failFast === true;
    parseWorkloadApiAddress(options.address);
    import('./workload_api.ts').then(
      (api) => {
        try {
          this.#watch(api.createWorkloadApiClient, options);
        } catch (err) {
          this.#giveUp(err instanceof Error ? err : new Error(String(err)));
        }
      },
      (err: unknown) => {
        this.#giveUp(
          new WorkloadApiUnavailableError('Failed to load the Workload API client', { cause: err }),
        );
      },
    );
  }

  #watch(create: typeof createWorkloadApiClient, options: X509SourceOptions): void {
    if (this.#closed) {
      return;
    }
    this.#client = create({
      address: options.address,
      logger: options.logger,
      ...(options.backoffUnitMs === undefined ? {} : { backoffUnitMs: options.backoffUnitMs }),
    });
    this.#client.watchX509Svids({
      onUpdate: (update) => this.#acceptSvids(update),
      onRedacted: (error) => this.#redactSvids(error),
      onError: (error) => {
        this.#lastError = error;
        if (this.#failFast && this.#current === undefined) {
          this.#giveUp(error);
        }
      },
      onRejected: (error) => {
        this.#lastError = error;
        this.#giveUp(error);
      },
    });
  }

  getX509Svid(): X509Svid {
    if (this.#closed) {
      throw new WorkloadApiUnavailableError('The X509 source is closed');
    }
    const svid = this.#current;
    if (svid === undefined) {
      const which = this.#hint === undefined ? '' : ` with hint "${this.#hint}"`;
      throw new WorkloadApiUnavailableError(
        `No X509-SVID${which} is available from the Workload API`,
        this.#lastError === undefined ? undefined : { cause: this.#lastError },
      );
    }
    if (Date.now() >= svid.notAfter.getTime()) {
      throw new WorkloadApiUnavailableError(
        `The X509-SVID "${svid.id.toString()}" expired at ${svid.notAfter.toISOString()} and no replacement has arrived`,
      );
    }
    return svid;
  }

  getX509Bundles(): X509BundleSet {
    return this.#bundles;
  }

  onUpdate(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Cancels the streams and every timer; afterwards `getX509Svid()` throws. Idempotent. */
  close(): void {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    this.#clearExpiryTimers();
    this.#client?.close();
    this.#listeners.clear();
    this.#settleWaiters(new WorkloadApiUnavailableError('The X509 source was closed'));
  }

  /**
   * Resolves once an unexpired SVID is available; rejects on timeout, on a
   * final rejection by the Workload API, or when the source is closed.
   */
  waitUntilReady(timeoutMs: number): Promise<void> {
    if (this.#hasUsableSvid()) {
      return Promise.resolve();
    }
    if (this.#hopeless !== undefined) {
      return Promise.reject(this.#hopeless);
    }
    if (this.#closed) {
      return Promise.reject(new WorkloadApiUnavailableError('The X509 source is closed'));
    }
    return new Promise<void>((resolve, reject) => {
      const settle = (error: Error | undefined): void => {
        clearTimeout(timer);
        this.#readyWaiters.delete(settle);
        if (error === undefined) {
          resolve();
        } else {
          reject(error);
        }
      };
      const timer = setTimeout(() => {
        const last = this.#lastError;
        settle(
          new WorkloadApiUnavailableError(
            `No X509-SVID arrived from the Workload API at ${this.#address} within ${timeoutMs} ms${
              last === undefined ? '' : ` (last error: ${last.message})`
            }`,
            last === undefined ? undefined : { cause: last },
          ),
        );
      }, timeoutMs);
      this.#readyWaiters.add(settle);
    });
  }

  // ------------------------------------------------------------ updates

  #acceptSvids(update: X509SvidUpdate): void {
    if (this.#closed) {
      return;
    }
    const selected = this.#select(update);
    if (selected !== undefined && Date.now() >= selected.notAfter.getTime()) {
      this.#logger.error(
        'Discarded an X509-SVID that has already expired; keeping the previous state',
        {
          spiffeId: selected.id.toString(),
          notAfter: selected.notAfter.toISOString(),
        },
      );
      return;
    }
    if (selected === undefined) {
      this.#logger.warn('The Workload API sent no X509-SVID with the wanted hint', {
        hint: this.#hint,
        offered: update.svids.map((svid) => svid.hint),
      });
    }
    const previous = this.#current;
    const svidChanged = !sameSvid(previous, selected);
    this.#current = selected;
    if (svidChanged && selected !== undefined) {
      this.#logger.info(previous === undefined ? 'Received X509-SVID' : 'Rotated X509-SVID', {
        spiffeId: selected.id.toString(),
        notAfter: selected.notAfter.toISOString(),
        ...(selected.hint === '' ? {} : { hint: selected.hint }),
        ...(previous === undefined ? {} : { previousNotAfter: previous.notAfter.toISOString() }),
      });
      this.#armExpiryTimers(selected);
    } else if (svidChanged) {
      this.#clearExpiryTimers();
    }
    const bundlesChanged = !update.bundles.equals(this.#bundles);
    if (bundlesChanged) {
      this.#bundles = update.bundles;
      this.#logger.info('Updated X.509 trust bundles', {
        trustDomains: this.#bundles.all().map((bundle) => bundle.trustDomain.name),
      });
    }
    if (svidChanged || bundlesChanged) {
      this.#notify();
    }
    if (selected !== undefined) {
      this.#settleWaiters(undefined);
    }
  }

  /** `PermissionDenied`: neither the SVID nor the bundles that came with it are served. */
  #redactSvids(error: WorkloadApiUnavailableError): void {
    this.#lastError = error;
    if (this.#closed || (this.#current === undefined && this.#bundles.size === 0)) {
      return;
    }
    const previous = this.#current;
    this.#current = undefined;
    this.#bundles = EMPTY_BUNDLES;
    this.#clearExpiryTimers();
    this.#logger.warn('X509-SVID redacted by the Workload API; not serving it any more', {
      ...(previous === undefined ? {} : { spiffeId: previous.id.toString() }),
    });
    this.#notify();
  }

  #select(update: X509SvidUpdate): X509Svid | undefined {
    if (this.#hint === undefined) {
      return update.svids[0];
    }
    return update.svids.find((svid) => svid.hint === this.#hint);
  }

  #hasUsableSvid(): boolean {
    return (
      !this.#closed && this.#current !== undefined && Date.now() < this.#current.notAfter.getTime()
    );
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener();
      } catch (err) {
        this.#logger.error('An X509 source listener failed', {
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
  }

  #giveUp(error: Error): void {
    this.#hopeless ??= error;
    this.#settleWaiters(error);
  }

  #settleWaiters(error: Error | undefined): void {
    for (const settle of [...this.#readyWaiters]) {
      settle(error);
    }
  }

  // ------------------------------------------------------------ expiry

  #armExpiryTimers(svid: X509Svid): void {
    this.#clearExpiryTimers();
    const notAfter = svid.notAfter.getTime();
    const notBefore = leafNotBefore(svid) ?? notAfter;
    const margin = Math.min(
      Math.max(0, notAfter - notBefore) * EXPIRY_WARNING_FRACTION,
      EXPIRY_WARNING_MAX_MS,
    );
    const fields = { spiffeId: svid.id.toString(), notAfter: svid.notAfter.toISOString() };
    this.#warnTimer = timerAt(notAfter - margin, () => {
      this.#warnTimer = undefined;
      this.#logger.warn('X509-SVID expires soon and no replacement has arrived', fields);
    });
    this.#expiryTimer = timerAt(notAfter, () => {
      this.#expiryTimer = undefined;
      this.#logger.error(
        'X509-SVID expired without a replacement; not serving it any more',
        fields,
      );
    });
  }

  #clearExpiryTimers(): void {
    if (this.#warnTimer !== undefined) {
      this.#warnTimer.close();
      this.#warnTimer = undefined;
    }
    if (this.#expiryTimer !== undefined) {
      this.#expiryTimer.close();
      this.#expiryTimer = undefined;
    }
  }
}

/**
 * Connects to the Workload API and resolves once a first SVID arrived.
 * Rejects with `WorkloadApiUnavailableError` after `timeoutMs` (default 30 s),
 * or with `failFast` at the first failure, and with `WorkloadApiRejectedError`
 * if the API or the runtime refuses the call for good; the source is closed
 * in every case.
 */
export async function createX509Source(options: X509SourceOptions): Promise<X509Source> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_FIRST_SVID_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
  }
  const source = new X509Source(options);
  try {
    await source.waitUntilReady(timeoutMs);
  } catch (err) {
    source.close();
    throw err;
  }
  return source;
}

/**
 * Fixed SVID and bundles, for tests and tools. `set()` simulates a rotation.
 * It hands out whatever it holds, expired or not, so tests can present bad
 * SVIDs on purpose.
 */
export class StaticX509Source implements X509SvidSource {
  #svid: X509Svid;
  #bundles: X509BundleSet;
  readonly #listeners = new Set<() => void>();

  constructor(svid: X509Svid, bundles: X509BundleSet) {
    this.#svid = svid;
    this.#bundles = bundles;
  }

  getX509Svid(): X509Svid {
    return this.#svid;
  }

  getX509Bundles(): X509BundleSet {
    return this.#bundles;
  }

  onUpdate(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Replaces both values and notifies every listener (a listener's error propagates). */
  set(svid: X509Svid, bundles: X509BundleSet): void {
    this.#svid = svid;
    this.#bundles = bundles;
    for (const listener of [...this.#listeners]) {
      listener();
    }
  }
}

/**
 * Our identity as one `FetchX509SVID` response delivered it, for a one-shot
 * program (Pilot): it never changes, so `onUpdate` never fires. Like
 * `X509Source`, it never hands out an SVID past its notAfter.
 */
export class FetchedX509Source implements X509SvidSource {
  readonly #svid: X509Svid;
  readonly #bundles: X509BundleSet;
  #closed = false;

  constructor(svid: X509Svid, bundles: X509BundleSet) {
    this.#svid = svid;
    this.#bundles = bundles;
  }

  getX509Svid(): X509Svid {
    if (this.#closed) {
      throw new WorkloadApiUnavailableError('The X509 source is closed');
    }
    if (Date.now() >= this.#svid.notAfter.getTime()) {
      throw new WorkloadApiUnavailableError(
        `The X509-SVID "${this.#svid.id.toString()}" expired at ${this.#svid.notAfter.toISOString()} and no replacement has arrived`,
      );
    }
    return this.#svid;
  }

  getX509Bundles(): X509BundleSet {
    return this.#bundles;
  }

  onUpdate(_listener: () => void): () => void {
    return () => {};
  }

  /** Afterwards `getX509Svid()` throws. Idempotent; nothing stays open. */
  close(): void {
    this.#closed = true;
  }
}

export interface FetchX509SourceOptions {
  /** Workload API address, `unix:///path` or `tcp://IP:port`. */
  readonly address: string;
  /** How long to wait for the SVID, connecting included. Defaults to 30 s. */
  readonly timeoutMs?: number;
}

/**
 * Fetches our SVID and bundles once (`fetchX509SvidOnce`: no gRPC client, no
 * watch) and holds them, taking the first SVID as `X509Source` does. Fails
 * at the first failure instead of retrying (a one-shot program has nothing
 * to wait for), with the errors of `fetchX509SvidOnce`, and with
 * `SvidInvalidError` for an SVID that has already expired.
 */
export async function fetchX509Source(options: FetchX509SourceOptions): Promise<FetchedX509Source> {
  const update = await fetchX509SvidOnce({
    address: options.address,
    timeoutMs: options.timeoutMs ?? DEFAULT_FIRST_SVID_TIMEOUT_MS,
  });
  const svid = update.svids[0];
  if (svid === undefined) {
    throw new SvidInvalidError('X509SVIDResponse has no SVIDs');
  }
  if (Date.now() >= svid.notAfter.getTime()) {
    throw new SvidInvalidError(
      `The Workload API at ${options.address} sent the X509-SVID "${svid.id.toString()}", which expired at ${svid.notAfter.toISOString()}`,
    );
  }
  return new FetchedX509Source(svid, update.bundles);
}

function sameSvid(a: X509Svid | undefined, b: X509Svid | undefined): boolean {
  if (a === undefined || b === undefined) {
    return a === b;
  }
  if (a.hint !== b.hint || a.chain.length !== b.chain.length) {
    return false;
  }
  return a.chain.every((der, i) => sameBytes(der, b.chain[i]));
}

function sameBytes(a: Uint8Array, b: Uint8Array | undefined): boolean {
  if (b === undefined || a.length !== b.length) {
    return false;
  }
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      return false;
    }
  }
  return true;
}

function leafNotBefore(svid: X509Svid): number | undefined {
  const leaf = svid.chain[0];
  if (leaf === undefined) {
    return undefined;
  }
  try {
    return new Date(new X509Certificate(leaf).validFrom).getTime();
  } catch {
    return undefined;
  }
}

/**
 * An unref'd timer that fires at an absolute time (at once if it has
 * passed), re-arming itself past setTimeout's 24.8-day limit. Informational
 * only, so it never keeps a process alive.
 */
function timerAt(when: number, callback: () => void): { close(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (): void => {
    const delay = when - Date.now();
    if (delay > MAX_TIMER_MS) {
      timer = setTimeout(arm, MAX_TIMER_MS);
    } else {
      timer = setTimeout(callback, Math.max(0, delay));
    }
    timer.unref();
  };
  arm();
  return {
    close() {
      if (timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
    },
  };
}
