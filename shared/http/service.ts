/**
 * Start-up shared by the mTLS services (Nexus, Keeper), in the order a main
 * reads: `openIdentity` fetches our SVID from the Workload API and refuses to
 * run under the wrong identity; the main then creates the `PeerVerifier`
 * (subscribing the audit trail to its refusals) and the app that finds its
 * peers through that verifier; `startMtlsService` serves the app and returns
 * what `runService` needs to stop it.
 */
import type { IdentityConfig, ListenConfig } from '../config/common.ts';
import { AccessDeniedError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import type { Matcher } from '../spiffe/match.ts';
import type { PeerVerifier } from '../spiffe/peer_verifier.ts';
import { formatWorkloadApiAddress } from '../spiffe/workload_address.ts';
import { createX509Source, type X509Source } from '../spiffe/x509_source.ts';
import {
  type FetchHandler,
  type MtlsServer,
  type RequestShortcut,
  type ServerLimits,
  serveMtls,
} from './serve.ts';

export interface OpenIdentityOptions {
  readonly identity: IdentityConfig;
  /** Our own SPIFFE ID must match this (e.g. a Keeper must be a Keeper). */
  readonly ownRole: Matcher;
  readonly logger: Logger;
}

/**
 * Our X509 source, once it holds an SVID of our trust domain that `ownRole`
 * allows; otherwise the source is closed and an AccessDeniedError thrown.
 */
export async function openIdentity(options: OpenIdentityOptions): Promise<X509Source> {
  const { identity, ownRole } = options;
  const source = await createX509Source({
    address: formatWorkloadApiAddress(identity.workloadApiAddress),
    logger: options.logger,
    timeoutMs: identity.sourceTimeoutMs,
  });
  const own = source.getX509Svid().id;
  if (!own.isMemberOf(identity.trustDomain) || !ownRole(own)) {
    source.close();
    throw new AccessDeniedError(
      `This program's SPIFFE ID "${own}" is not allowed for it: expected ${ownRole.description}`,
    );
  }
  return source;
}

/**
 * Whether we hold an unexpired SVID and serve with it (the verifier is not
 * refusing every connection for want of one): the part of readiness every
 * mTLS service shares.
 */
export function hasUsableSvid(
  source: X509Source,
  verifier: PeerVerifier,
  now: number = Date.now(),
): boolean {
  if (verifier.isSuspended) {
    return false;
  }
  try {
    return source.getX509Svid().notAfter.getTime() > now;
  } catch {
    return false;
  }
}

export interface MtlsServiceOptions {
  /** The app's `app.fetch`. */
  readonly fetch: FetchHandler;
  /** Answers some requests before the app (`RequestShortcut`). */
  readonly shortcut?: RequestShortcut | undefined;
  /** From `openIdentity`; the service owns it from here and closes it last. */
  readonly source: X509Source;
  /** Admits each connection's peer; the app finds its peers through it. */
  readonly verifier: PeerVerifier;
  readonly logger: Logger;
  readonly listen: ListenConfig;
  readonly version: string;
  /** Timeouts and connection caps of the server; unset fields take the defaults. */
  readonly limits?: Partial<ServerLimits>;
  /** Runs at stop, after the server closed and before the source does. */
  readonly onStop?: () => Promise<void> | void;
}

export interface MtlsService {
  /** Closes the server (answering requests in flight), summarizes open refusal windows, runs `onStop`, then closes the source. */
  stop(): Promise<void>;
}

/** Serves the app over mTLS; if it cannot, closes the source and throws. */
export async function startMtlsService(options: MtlsServiceOptions): Promise<MtlsService> {
  const { source, logger } = options;
  let server: MtlsServer;
  try {
    server = await serveMtls({
      fetch: options.fetch,
      shortcut: options.shortcut,
      source,
      verifier: options.verifier,
      logger,
      port: options.listen.port,
      hostname: options.listen.host,
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    });
  } catch (err) {
    source.close();
    throw err;
  }
  const svid = source.getX509Svid();
  logger.info('Listening', {
    version: options.version,
    spiffeId: svid.id.toString(),
    trustDomain: svid.id.trustDomain.name,
    address: `https://${server.hostname}:${server.port}`,
    svidNotAfter: svid.notAfter.toISOString(),
  });
  return {
    async stop() {
      logger.info('Stopping');
      await server.close();
      // The refusals counted in summary windows still open are written now,
      // while the audit sink (closed by onStop) still takes them.
      options.verifier.flushRefusals();
      await options.onStop?.();
      source.close();
      logger.info('Stopped');
    },
  };
}
