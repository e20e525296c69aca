/**
 * The operations listener of a program: plain HTTP, off unless its address
 * is configured, meant for loopback or a pod network where a load balancer,
 * a Kubernetes probe or Prometheus can reach it without an SVID.
 *
 * - `GET /live`: 200 while the process runs and its event loop turns.
 * - `GET /ready`: 200 when the program can serve, else 503 with a one-word
 *   reason (`starting`, `sealed`, `database_unreachable`, `no_svid`,
 *   `stopping`, `check_timed_out`, `check_failed`).
 * - `GET /metrics`: every metric in the Prometheus text format.
 *
 * It answers nothing else and reads no request body. None of its answers
 * holds a secret, a path or a caller's SPIFFE ID, so it needs no
 * authentication; what it serves is as public as the network it listens on
 * (docs/operations.md).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from './metrics.ts';

/** What `/ready` answers: ready, or not with one word saying why. */
export type Readiness =
  | { readonly ready: true }
  | { readonly ready: false; readonly reason: string };

export type ReadinessCheck = () => Readiness | Promise<Readiness>;

export const OPS_PATHS = Object.freeze({
  live: '/live',
  ready: '/ready',
  metrics: '/metrics',
});

/** A readiness check that has not answered within this is `check_timed_out`. */
export const DEFAULT_READY_TIMEOUT_MS = 2_000;

export const READY: Readiness = Object.freeze({ ready: true });

export function notReady(reason: string): Readiness {
  return Object.freeze({ ready: false, reason });
}

export interface OpsServerOptions {
  /** An IP address or `localhost`, as the TLS listeners take. */
  readonly host: string;
  /** 0 asks the system for a free port; `OpsServer.port` says which. */
  readonly port: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The deadline of one readiness check; default `DEFAULT_READY_TIMEOUT_MS`. */
  readonly readyTimeoutMs?: number;
}

export interface OpsServer {
  readonly host: string;
  readonly port: number;
  /** `http://host:port`. */
  readonly url: string;
  /**
   * What `/ready` asks from now on. Until the first call it answers
   * `starting`: the listener opens before the program is up, so that
   * liveness is answered during a slow start.
   */
  setReadiness(check: ReadinessCheck): void;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/** Bounds for a client that connects and sends slowly or nothing. */
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const MAX_HEADER_BYTES = 8 * 1024;
const MAX_CONNECTIONS = 64;

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const { metrics, logger } = options;
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  let check: ReadinessCheck = () => notReady('starting');
  // Probes that arrive while a check runs share it: a flood of /ready costs
  // one database round trip at a time, not one each.
  let inFlight: Promise<Readiness> | undefined;
  const readiness = (): Promise<Readiness> => {
    inFlight ??= withDeadline(check, readyTimeoutMs).finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  const server: Server = createServer(
    {
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      maxHeaderSize: MAX_HEADER_BYTES,
    },
    (req, res) => {
      answer(req, res, metrics, readiness).catch((err: unknown) => {
        logger.error('The operations listener failed to answer', {
          error: err instanceof Error ? err.message : String(err),
        });
        if (!res.headersSent) {
          send(res, req.method === 'HEAD', 500, { status: 'error' });
        } else {
          res.destroy();
        }
      });
    },
  );
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err: Error & { code?: string }) => {
    logger.error('Operations listener error', { error: err.code ?? err.message });
  });
  const address = server.address() as AddressInfo;
  const host = address.address;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  logger.info('Serving probes and metrics over plain HTTP', {
    address: url,
    paths: Object.values(OPS_PATHS),
  });
  let closing: Promise<void> | undefined;
  return {
    host,
    port: address.port,
    url,
    setReadiness(next) {
      check = next;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      return closing;
    },
  };
}

async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  metrics: Metrics,
  readiness: () => Promise<Readiness>,
): Promise<void> {
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, false, 405, { status: 'method_not_allowed' });
    return;
  }
  const target = req.url ?? '';
  const query = target.indexOf('?');
  const path = query === -1 ? target : target.slice(0, query);
  switch (path) {
    case OPS_PATHS.live:
      send(res, head, 200, { status: 'live' });
      return;
    case OPS_PATHS.ready: {
      const state = await readiness();
      if (state.ready) {
        send(res, head, 200, { status: 'ready' });
      } else {
        send(res, head, 503, { status: 'not_ready', reason: state.reason });
      }
      return;
    }
    case OPS_PATHS.metrics: {
      const text = await metrics.text();
      res.writeHead(200, {
        'Content-Type': metrics.contentType,
        'Content-Length': Buffer.byteLength(text),
        'Cache-Control': 'no-store',
      });
      res.end(head ? undefined : text);
      return;
    }
    default:
      send(res, head, 404, { status: 'not_found' });
  }
}

function send(res: ServerResponse, head: boolean, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(head ? undefined : text);
}

/** The check's answer, `check_failed` if it threw, or `check_timed_out` after `ms`. */
async function withDeadline(check: ReadinessCheck, ms: number): Promise<Readiness> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<Readiness>((resolve) => {
    timer = setTimeout(() => resolve(notReady('check_timed_out')), ms);
  });
  try {
    return await Promise.race([
      Promise.resolve()
        .then(check)
        .catch(() => notReady('check_failed')),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
