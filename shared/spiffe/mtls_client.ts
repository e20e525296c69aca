/**
 * An HTTPS client over SPIFFE mTLS, for Pilot, Nexus (to Keepers) and the
 * SDK. It presents our current SVID, accepts only a server whose SVID the
 * matcher allows, and reuses kept-alive connections. When the source rotates,
 * new connections use the new SVID while requests in flight finish on the old
 * ones, so no request fails because of a rotation.
 */
import { Agent, request as httpsRequest } from 'node:https';
import { UnavailableError } from '../errors/errors.ts';
import type { Matcher } from './match.ts';
import { clientAgentOptions } from './mtls.ts';
import type { X509SvidSource } from './x509_source.ts';

const DEFAULT_TIMEOUT_MS = 30_000;

export interface MtlsRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array | string;
  readonly timeoutMs?: number;
}

export interface MtlsResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Uint8Array;
  text(): string;
  json(): unknown;
}

export interface MtlsClientOptions {
  readonly source: X509SvidSource;
  /** Which server SPIFFE IDs are acceptable (hostnames are not checked). */
  readonly authorizeServer: Matcher;
  readonly timeoutMs?: number;
}

export class MtlsClient {
  readonly #source: X509SvidSource;
  readonly #authorizeServer: Matcher;
  readonly #timeoutMs: number;
  readonly #unsubscribe: () => void;
  #agent: Agent;
  #closed = false;

  constructor(options: MtlsClientOptions) {
    this.#source = options.source;
    this.#authorizeServer = options.authorizeServer;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#agent = this.#newAgent();
    this.#unsubscribe = this.#source.onUpdate(() => this.#rotate());
  }

  request(req: MtlsRequest): Promise<MtlsResponse> {
    if (this.#closed) {
      return Promise.reject(new TypeError('MtlsClient is closed'));
    }
    if (req.url.protocol !== 'https:') {
      return Promise.reject(
        new TypeError(`Only https URLs are supported, got "${req.url.protocol}"`),
      );
    }
    const timeoutMs = req.timeoutMs ?? this.#timeoutMs;
    const body = typeof req.body === 'string' ? new TextEncoder().encode(req.body) : req.body;
    return new Promise<MtlsResponse>((resolve, reject) => {
      const outgoing = httpsRequest(
        req.url,
        {
          method: req.method,
          agent: this.#agent,
          headers: {
            ...req.headers,
            ...(body === undefined ? {} : { 'content-length': String(body.byteLength) }),
          },
          timeout: timeoutMs,
        },
        (incoming) => {
          const chunks: Uint8Array[] = [];
          incoming.on('data', (chunk: Uint8Array) => chunks.push(chunk));
          incoming.on('error', reject);
          incoming.on('end', () => {
            const bytes = concat(chunks);
            resolve({
              status: incoming.statusCode ?? 0,
              headers: incoming.headers,
              body: bytes,
              text: () => new TextDecoder().decode(bytes),
              json: () => JSON.parse(new TextDecoder().decode(bytes)) as unknown,
            });
          });
        },
      );
      outgoing.on('timeout', () => {
        outgoing.destroy(
          new UnavailableError(`Request to ${req.url.origin} timed out after ${timeoutMs}ms`),
        );
      });
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }

  /** Closes idle connections and stops following rotations. */
  close(): void {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    this.#unsubscribe();
    this.#agent.destroy();
  }

  #newAgent(): Agent {
    return new Agent(clientAgentOptions(this.#source, this.#authorizeServer));
  }

  #rotate(): void {
    if (this.#closed) {
      return;
    }
    const retired = this.#agent;
    this.#agent = this.#newAgent();
    retire(retired, this.#timeoutMs);
  }
}

/**
 * Lets an agent's busy sockets finish their requests, then closes them; idle
 * ones close now. After the longest request timeout everything is closed.
 */
function retire(agent: Agent, graceMs: number): void {
  // Node's Agent reads this flag when a socket is freed: busy sockets close
  // after their response instead of returning to the pool.
  (agent as Agent & { keepAlive: boolean }).keepAlive = false;
  for (const sockets of Object.values(agent.freeSockets)) {
    for (const socket of sockets ?? []) {
      socket.destroy();
    }
  }
  setTimeout(() => agent.destroy(), graceMs).unref();
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const chunk of chunks) {
    length += chunk.byteLength;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
