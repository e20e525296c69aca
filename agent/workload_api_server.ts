/**
 * The SPIFFE Workload API (gRPC) served for one registration on its own unix
 * socket. Whoever can open the socket receives that registration's identity.
 *
 * Node cannot read a unix socket peer's credentials (SO_PEERCRED), so this
 * server cannot tell callers apart the way SPIRE's workload attestors do.
 * Instead there is one socket per identity, in an owner-only directory, and
 * each socket file is chmod 0600: the file system is the attestation. Any
 * process of the agent's user can still open any of the sockets.
 *
 * Only the X.509 profile is served. JWT and WIT RPCs answer Unimplemented.
 */
import { chmod, lstat, mkdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import {
  type handleUnaryCall,
  type Metadata,
  Server,
  ServerCredentials,
  type ServerErrorResponse,
  type ServerWritableStream,
  status,
  type UntypedHandleCall,
} from '@grpc/grpc-js';
import { OWNER_ONLY_DIRECTORY, refuseLooseMode } from '../shared/config/file_modes.ts';
import { ConfigError } from '../shared/errors/errors.ts';
import type { Logger } from '../shared/log/logger.ts';
import type { TrustDomain } from '../shared/spiffe/spiffe_id.ts';
import {
  WORKLOAD_API_HEADER,
  workloadApiServiceDefinition,
} from '../shared/spiffe/workload_proto.ts';
import type { IssuedSvid } from './ca.ts';
import type { Registration } from './registrations.ts';

/** What SPIRE answers a call without the header. */
const SECURITY_HEADER_MESSAGE = 'security header missing from request';
/** How long close() lets gRPC finish gracefully before forcing it. */
const SHUTDOWN_TIMEOUT_MS = 2_000;

/** The SVID of this socket's registration, and its rotations. */
export interface SvidSource {
  current(): IssuedSvid;
  subscribe(listener: (svid: IssuedSvid) => void): () => void;
}

/** The trust bundle (concatenated CA DER) of the agent's trust domain, and its changes. */
export interface BundleSource {
  readonly trustDomain: TrustDomain;
  current(): Uint8Array;
  subscribe(listener: (bundle: Uint8Array) => void): () => void;
}

export interface WorkloadApiServerOptions {
  readonly registration: Registration;
  readonly svids: SvidSource;
  readonly bundle: BundleSource;
  readonly logger: Logger;
}

type StreamCall = ServerWritableStream<unknown, unknown>;

export class WorkloadApiServer {
  readonly registration: Registration;
  /** `unix:///absolute/path.sock`, the value for SPIFFE_ENDPOINT_SOCKET. */
  readonly address: string;
  readonly socketPath: string;
  readonly #server: Server;
  readonly #streams: Map<StreamCall, () => void>;
  readonly #logger: Logger;
  #closing: Promise<void> | undefined;

  constructor(parts: {
    readonly registration: Registration;
    readonly server: Server;
    readonly streams: Map<StreamCall, () => void>;
    readonly logger: Logger;
  }) {
    this.registration = parts.registration;
    this.socketPath = parts.registration.socketPath;
    this.address = socketAddress(parts.registration.socketPath);
    this.#server = parts.server;
    this.#streams = parts.streams;
    this.#logger = parts.logger;
  }

  /** Number of open streams, for tests and diagnostics. */
  openStreams(): number {
    return this.#streams.size;
  }

  /** Ends every open stream, stops the server and removes the socket file. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const [call, release] of this.#streams) {
      release();
      call.end();
    }
    this.#streams.clear();
    await shutdown(this.#server);
    await rm(this.socketPath, { force: true });
    this.#logger.debug('Workload API socket closed', { address: this.address });
  }
}

/** `unix://` plus the absolute path: `unix:///run/x.sock`. */
export function socketAddress(socketPath: string): string {
  return `unix://${socketPath}`;
}

/**
 * Makes sure the socket directory exists and is owner-only (0700). A new one
 * is created so; an existing one that grants group or other any access is
 * refused rather than changed, since it may be shared (such as `/tmp`).
 */
export async function ensureSocketDir(path: string): Promise<void> {
  const created = await mkdir(path, { recursive: true, mode: 0o700 });
  if (created !== undefined) {
    await chmod(path, 0o700);
    return;
  }
  const info = await lstat(path);
  if (!info.isDirectory()) {
    throw new ConfigError([`Socket directory "${path}" exists but is not a directory`]);
  }
  refuseLooseMode(
    'Socket directory',
    path,
    info.mode,
    OWNER_ONLY_DIRECTORY,
    'or choose another SPIKE_AGENT_SOCKET_DIR',
  );
}

/**
 * Binds a Workload API server to the registration's socket (replacing a
 * stale socket file, never any other kind of file) and makes the socket
 * owner-only. The socket directory must exist (see `ensureSocketDir`).
 */
export async function startWorkloadApiServer(
  options: WorkloadApiServerOptions,
): Promise<WorkloadApiServer> {
  const { registration } = options;
  const logger = options.logger.child({ registration: registration.name });
  await removeStaleSocket(registration.socketPath);

  const streams = new Map<StreamCall, () => void>();
  const server = new Server();
  server.addService(
    workloadApiServiceDefinition(),
    createHandlers({ ...options, logger }, streams),
  );
  const address = socketAddress(registration.socketPath);
  try {
    await bind(server, address);
  } catch (err) {
    // Not bound: whatever is at the path now is not ours to remove.
    server.forceShutdown();
    throw err;
  }
  try {
    await chmod(registration.socketPath, 0o600);
  } catch (err) {
    server.forceShutdown();
    await rm(registration.socketPath, { force: true });
    throw err;
  }
  logger.info('Serving the Workload API', {
    address,
    spiffeId: registration.spiffeId.toString(),
  });
  return new WorkloadApiServer({ registration, server, streams, logger });
}

function createHandlers(
  options: WorkloadApiServerOptions,
  streams: Map<StreamCall, () => void>,
): Record<string, UntypedHandleCall> {
  const { svids, bundle, logger } = options;

  function openStream(call: StreamCall, rpc: string, subscribe: () => () => void): void {
    if (!hasSecurityHeader(call.metadata)) {
      logger.warn('Refused a Workload API call without the security header', { rpc });
      call.emit('error', invalidArgument());
      return;
    }
    const unsubscribe = subscribe();
    let isReleased = false;
    const release = () => {
      if (!isReleased) {
        isReleased = true;
        unsubscribe();
        streams.delete(call);
      }
    };
    streams.set(call, release);
    call.on('cancelled', () => {
      release();
      logger.debug('Workload API stream cancelled by the client', { rpc });
    });
    call.on('error', release);
    call.on('close', release);
    logger.debug('Workload API stream opened', { rpc });
  }

  function FetchX509SVID(call: StreamCall): void {
    openStream(call, 'FetchX509SVID', () => {
      call.write(x509SvidResponse(svids.current(), bundle.current()));
      const offSvid = svids.subscribe((svid) => {
        call.write(x509SvidResponse(svid, bundle.current()));
      });
      const offBundle = bundle.subscribe((der) => {
        call.write(x509SvidResponse(svids.current(), der));
      });
      return () => {
        offSvid();
        offBundle();
      };
    });
  }

  function FetchX509Bundles(call: StreamCall): void {
    openStream(call, 'FetchX509Bundles', () => {
      call.write(x509BundlesResponse(bundle.trustDomain, bundle.current()));
      return bundle.subscribe((der) => {
        call.write(x509BundlesResponse(bundle.trustDomain, der));
      });
    });
  }

  const handlers: Record<string, UntypedHandleCall> = { FetchX509SVID, FetchX509Bundles };
  for (const [name, method] of Object.entries(workloadApiServiceDefinition())) {
    if (handlers[name] === undefined) {
      handlers[name] = method.responseStream ? unimplementedStream(name) : unimplementedUnary(name);
    }
  }
  return handlers;
}

function x509SvidResponse(svid: IssuedSvid, bundle: Uint8Array): Record<string, unknown> {
  return {
    svids: [
      {
        spiffe_id: svid.spiffeId.toString(),
        // The CA signs leaves directly, so the chain is the leaf alone.
        x509_svid: svid.certificateDer,
        x509_svid_key: svid.privateKeyPkcs8(),
        bundle,
        hint: '',
      },
    ],
    crl: [],
    federated_bundles: {},
  };
}

function x509BundlesResponse(
  trustDomain: TrustDomain,
  bundle: Uint8Array,
): Record<string, unknown> {
  return { crl: [], bundles: { [trustDomain.idString()]: bundle } };
}

function unimplementedMessage(name: string): string {
  return `${name} is not implemented by the SPIKE agent: it serves X509-SVIDs only`;
}

function unimplementedStream(name: string): UntypedHandleCall {
  return function unimplemented(call: StreamCall): void {
    call.emit(
      'error',
      hasSecurityHeader(call.metadata)
        ? grpcError(status.UNIMPLEMENTED, unimplementedMessage(name))
        : invalidArgument(),
    );
  };
}

function unimplementedUnary(name: string): UntypedHandleCall {
  const handler: handleUnaryCall<unknown, unknown> = (call, callback) => {
    callback(
      hasSecurityHeader(call.metadata)
        ? grpcError(status.UNIMPLEMENTED, unimplementedMessage(name))
        : invalidArgument(),
    );
  };
  return handler;
}

/** Exactly one `workload.spiffe.io` value, and it is exactly `true`. */
function hasSecurityHeader(metadata: Metadata): boolean {
  const values = metadata.get(WORKLOAD_API_HEADER);
  return values.length === 1 && values[0] === 'true';
}

function invalidArgument(): Partial<ServerErrorResponse> {
  return grpcError(status.INVALID_ARGUMENT, SECURITY_HEADER_MESSAGE);
}

function grpcError(code: status, details: string): Partial<ServerErrorResponse> {
  return { code, details, message: details };
}

/**
 * Removes a leftover socket file. Any other kind of file at the path is
 * refused, and so is a socket that accepts a connection: another agent (a
 * second spike-local on the same data folder, say) serves it, and removing
 * it would cut that agent's workloads off from their identities.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(path);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') {
      return;
    }
    throw err;
  }
  if (!info.isSocket()) {
    throw new ConfigError([
      `"${path}" exists and is not a socket; the agent will not replace it. Remove it or choose another SPIKE_AGENT_SOCKET_DIR`,
    ]);
  }
  if (await isServed(path)) {
    throw new ConfigError([
      `"${path}" is served by another running agent; the agent will not replace it. Stop that agent or choose another SPIKE_AGENT_SOCKET_DIR`,
    ]);
  }
  await rm(path, { force: true });
}

/**
 * Whether something listens on the unix socket: a connection is accepted.
 * Only a refusal (nobody listens) or a vanished file means stale; any other
 * error counts as served, so a socket is removed only when provably dead.
 */
function isServed(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (err: Error) => {
      socket.destroy();
      const { code } = err as { code?: unknown };
      resolve(code !== 'ECONNREFUSED' && code !== 'ENOENT');
    });
  });
}

function bind(server: Server, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (err) => {
      if (err === null) {
        resolve();
      } else {
        reject(err);
      }
    });
  });
}

/** Graceful shutdown, forced after SHUTDOWN_TIMEOUT_MS. */
function shutdown(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, SHUTDOWN_TIMEOUT_MS);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
