/**
 * Start-up shared by the mTLS services (Nexus, Keeper): fetch our SVID from
 * the Workload API, refuse to run under the wrong identity, and serve an app
 * over SPIFFE mTLS, auditing every connection refused at the TLS layer.
 * Returns what `runService` needs to stop it.
 */
import type { IdentityConfig, ListenConfig } from '../config/common.ts';
import { AccessDeniedError } from '../errors/errors.ts';
import type { AuditSink } from '../log/audit_log.ts';
import type { Logger } from '../log/logger.ts';
import type { Matcher } from '../spiffe/match.ts';
import { formatWorkloadApiAddress } from '../spiffe/workload_address.ts';
import { createX509Source, type X509SvidSource } from '../spiffe/x509_source.ts';
import { auditRefusals } from './audit.ts';
import type { GetPeer } from './peer.ts';
import { peerFromConnection } from './peer.ts';
import { type MtlsServer, type ServerLimits, serveMtls } from './serve.ts';

export interface MtlsServiceOptions {
  readonly identity: IdentityConfig;
  readonly logger: Logger;
  /** Our own SPIFFE ID must match this (e.g. a Keeper must be a Keeper). */
  readonly ownRole: Matcher;
  /** Which peers may connect at all. */
  readonly authorizePeers: Matcher;
  readonly listen: ListenConfig;
  readonly version: string;
  /** Builds the app; it may also use our X509 source (e.g. for its own mTLS clients). */
  readonly createFetch: (
    getPeer: GetPeer,
    source: X509SvidSource,
  ) => (request: Request, env: never) => Response | Promise<Response>;
  /**
   * Where connections refused at the TLS layer are audited (one `tls.connect`
   * event each); the app audits requests with the same sink.
   */
  readonly audit?: { readonly sink: AuditSink; readonly component: string };
  /** Timeouts and connection caps of the server; unset fields take the defaults. */
  readonly limits?: Partial<ServerLimits>;
  /** Runs at stop, after the server closed and before the source does. */
  readonly onStop?: () => Promise<void> | void;
}

export interface MtlsService {
  readonly server: MtlsServer;
  stop(): Promise<void>;
}

export async function startMtlsService(options: MtlsServiceOptions): Promise<MtlsService> {
  const { identity, logger } = options;
  const source = await createX509Source({
    address: formatWorkloadApiAddress(identity.workloadApiAddress),
    logger,
    timeoutMs: identity.sourceTimeoutMs,
  });
  try {
    const own = source.getX509Svid().id;
    if (!own.isMemberOf(identity.trustDomain) || !options.ownRole(own)) {
      throw new AccessDeniedError(
        `This program's SPIFFE ID "${own}" is not allowed for it: expected ${options.ownRole.description}`,
      );
    }
    // The app finds each request's peer through the server's verifier, which
    // exists only once the server does; the indirection breaks that cycle.
    let getPeer: GetPeer = () => undefined;
    const server = await serveMtls({
      fetch: options.createFetch((c) => getPeer(c), source),
      source,
      authorize: options.authorizePeers,
      logger,
      port: options.listen.port,
      hostname: options.listen.host,
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    });
    getPeer = peerFromConnection(server.verifier);
    // Subscribed in the same turn as the listen callback, before any
    // connection can be accepted, so no refusal goes unaudited.
    const stopAuditingRefusals =
      options.audit === undefined
        ? undefined
        : server.verifier.onRefusal(auditRefusals(options.audit));
    logger.info('Listening', {
      version: options.version,
      spiffeId: own.toString(),
      trustDomain: identity.trustDomain.name,
      address: `https://${server.hostname}:${server.port}`,
      svidNotAfter: source.getX509Svid().notAfter.toISOString(),
    });
    return {
      server,
      async stop() {
        logger.info('Stopping');
        await server.close();
        stopAuditingRefusals?.();
        await options.onStop?.();
        source.close();
        logger.info('Stopped');
      },
    };
  } catch (err) {
    source.close();
    throw err;
  }
}
