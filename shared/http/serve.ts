/**
 * Serves a Hono app over SPIFFE mTLS with @hono/node-server on node:https, on
 * Node and Deno alike. Peers are verified and authorized once per connection
 * (refused ones are destroyed before a request is read); SVID and bundle
 * rotations swap the SecureContext so new handshakes use the new certificate.
 */

import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createAdaptorServer } from '@hono/node-server';
import type { Logger } from '../log/logger.ts';
import type { Matcher } from '../spiffe/match.ts';
import { PeerVerifier, serverTlsOptions } from '../spiffe/mtls.ts';
import type { X509SvidSource } from '../spiffe/x509_source.ts';

export interface ServeMtlsOptions {
  readonly fetch: (request: Request, env: never) => Response | Promise<Response>;
  readonly source: X509SvidSource;
  /** Which peers may connect at all; routes narrow further. */
  readonly authorize: Matcher;
  readonly logger: Logger;
  readonly port: number;
  readonly hostname?: string;
  /** Time allowed for a client to send request headers (slow-loris guard). */
  readonly headersTimeoutMs?: number;
  /** Time allowed for a whole request. */
  readonly requestTimeoutMs?: number;
}

export interface MtlsServer {
  readonly port: number;
  readonly hostname: string;
  readonly verifier: PeerVerifier;
  close(): Promise<void>;
}

export async function serveMtls(options: ServeMtlsOptions): Promise<MtlsServer> {
  const { source, logger } = options;
  const verifier = new PeerVerifier({ source, authorize: options.authorize, logger });
  const server = createAdaptorServer({
    fetch: options.fetch as never,
    createServer,
    serverOptions: serverTlsOptions(source),
  }) as Server;
  server.headersTimeout = options.headersTimeoutMs ?? 10_000;
  server.requestTimeout = options.requestTimeoutMs ?? 30_000;

  server.on('secureConnection', (socket: TLSSocket) => {
    verifier.admit(socket);
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    verifier.refuse(socket, {
      reason: `TLS handshake failed: ${err.code ?? err.message}`,
      ...(socket.remoteAddress === undefined ? {} : { remoteAddress: socket.remoteAddress }),
    });
  });

  const unsubscribe = source.onUpdate(function rotateServerCredentials() {
    let tlsOptions: ReturnType<typeof serverTlsOptions>;
    try {
      tlsOptions = serverTlsOptions(source);
    } catch (err) {
      // Our SVID was withdrawn or has expired: the TLS context would keep
      // presenting it, so refuse connections until a usable one arrives.
      const reason = err instanceof Error ? err.message : String(err);
      verifier.suspend(reason);
      logger.error('No usable SVID of our own; refusing connections until one arrives', {
        error: reason,
      });
      return;
    }
    server.setSecureContext({ ...tlsOptions });
    if (verifier.isSuspended) {
      verifier.resume();
      logger.info('Serving again with a new SVID');
    }
    logger.info('Swapped the TLS credentials after an SVID or bundle update', {
      spiffeId: source.getX509Svid().id.toString(),
      notAfter: source.getX509Svid().notAfter.toISOString(),
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.hostname ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    unsubscribe();
    throw err;
  });
  // After listening, a server error (e.g. EMFILE on accept under a flood) is
  // logged instead of taking the program down.
  server.on('error', (err: Error & { code?: string }) => {
    logger.error('HTTPS server error', { error: err.code ?? err.message });
  });
  const address = server.address() as AddressInfo;

  return {
    port: address.port,
    hostname: address.address,
    verifier,
    close() {
      unsubscribe();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
    },
  };
}
