/**
 * How Nexus talks to one Keeper. The production link goes over SPIFFE mTLS
 * (`createHttpsKeeperLink`); the fault simulation uses in-process Keepers.
 *
 * Each HTTPS link admits exactly one server SPIFFE ID, the one configured
 * for its position, on every call: shard i is handed to, and read from, only
 * the Keeper registered for peer i. Another Keeper's SVID at that address is
 * refused before anything is sent (logged, and audited as `keeper.connect`).
 * And each answer is read up to `KEEPER_MAX_ANSWER_BYTES`: a larger or
 * endless one fails that call only.
 */
import { errorFromBody } from '../../shared/api/error_body.ts';
import {
  parseGenerationsResponse,
  parseListShardsResponse,
  shardToWire,
} from '../../shared/api/keeper.ts';
import { PATHS } from '../../shared/api/paths.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import {
  type ErrorCode,
  ResponseTooLargeError,
  UnavailableError,
} from '../../shared/errors/errors.ts';
import type { AuditSink } from '../../shared/log/audit_log.ts';
import type { Logger } from '../../shared/log/logger.ts';
import { matchId } from '../../shared/spiffe/match.ts';
import { isServerRefused, MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import type { SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import type { X509SvidSource } from '../../shared/spiffe/x509_source.ts';

export interface KeeperLink {
  /** For logs: the Keeper's URL or name. Never a shard. */
  readonly name: string;
  /** Stores a shard; a Keeper keeps older generations until told to prune. */
  putShard(shard: Shard): Promise<void>;
  /** Every shard the Keeper holds, all generations. */
  listShards(): Promise<Shard[]>;
  /** The generations the Keeper holds (no shard bytes). */
  generations(): Promise<number[]>;
  /** Drops generations older than `keepFrom`, if the Keeper holds `keepFrom`. */
  prune(keepFrom: number): Promise<void>;
}

/**
 * The most Nexus reads of one Keeper answer. The largest real one, a listing
 * of all the generations a Keeper holds (8 by default, about 110 bytes
 * each), is under 1 KiB; errors are smaller still.
 */
export const KEEPER_MAX_ANSWER_BYTES = 64 * 1024;

/** The audit action of a Keeper whose certificate or SPIFFE ID Nexus refused. */
export const KEEPER_CONNECT_ACTION = 'keeper.connect';

export interface HttpsKeeperLinkOptions {
  readonly url: URL;
  /** The only SPIFFE ID the server at `url` may present. */
  readonly id: SpiffeId;
  /** Nexus's own SVID and bundles. */
  readonly source: X509SvidSource;
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** Where refusals of the server are audited. */
  readonly auditSink?: AuditSink;
  /** Bytes read of one answer at most (default `KEEPER_MAX_ANSWER_BYTES`). */
  readonly maxAnswerBytes?: number;
  readonly now?: () => number;
}

export interface HttpsKeeperLink extends KeeperLink {
  /** Closes its connections. */
  close(): void;
}

/** A Keeper reached over SPIFFE mTLS, which must present exactly `options.id`. */
export function createHttpsKeeperLink(options: HttpsKeeperLinkOptions): HttpsKeeperLink {
  const { url, id, logger, auditSink } = options;
  const now = options.now ?? Date.now;
  // One client per Keeper: its connections are verified against this
  // Keeper's ID only, and never shared with another position.
  const client = new MtlsClient({
    source: options.source,
    authorizeServer: matchId(id),
    timeoutMs: options.timeoutMs,
    maxResponseBytes: options.maxAnswerBytes ?? KEEPER_MAX_ANSWER_BYTES,
  });
  // The last problem reported, so that a Keeper that stays wrong is logged
  // and audited once per kind of failure, not at every periodic check.
  let reported: string | undefined;

  function report(err: unknown): void {
    const refused = isServerRefused(err);
    if (!refused && !(err instanceof ResponseTooLargeError)) {
      return;
    }
    const reason = err instanceof Error ? err.message : String(err);
    if (reported === reason) {
      return;
    }
    reported = reason;
    if (!refused) {
      logger.warn('A Keeper answered more than Nexus reads; the call failed', {
        keeper: url.origin,
        error: reason,
      });
      return;
    }
    logger.warn('Refused the server at a Keeper address: it is not the Keeper registered there', {
      keeper: url.origin,
      expected: id.toString(),
      error: reason,
    });
    auditSink?.write({
      ts: new Date(now()).toISOString(),
      trailId: crypto.randomUUID(),
      component: 'nexus',
      peer: null,
      claimedPeer: null,
      method: null,
      route: null,
      action: KEEPER_CONNECT_ACTION,
      resource: url.origin,
      decision: null,
      outcome: 'denied',
      status: 401,
      errorCode: 'ERR_SVID_INVALID' satisfies ErrorCode,
      durationMs: 0,
      reason: reason.slice(0, 512),
      remoteAddress: url.host,
    });
  }

  async function call(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: Awaited<ReturnType<MtlsClient['request']>>;
    try {
      res = await client.request({
        method,
        url: new URL(path, url),
        ...(body === undefined
          ? {}
          : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
    } catch (err) {
      report(err);
      throw err;
    }
    if (reported !== undefined) {
      logger.info('A Keeper answers as expected again', { keeper: url.origin });
      reported = undefined;
    }
    let parsed: unknown;
    try {
      parsed = res.body.byteLength === 0 ? undefined : res.json();
    } catch {
      throw new UnavailableError(
        `Keeper ${url.origin} answered ${res.status} with a body that is not JSON`,
      );
    }
    if (res.status < 200 || res.status >= 300) {
      const err = errorFromBody(parsed);
      throw err ?? new UnavailableError(`Keeper ${url.origin} answered ${res.status}`);
    }
    return parsed;
  }
  return {
    name: url.origin,
    async putShard(shard) {
      await call('PUT', PATHS.keeperShards, shardToWire(shard));
    },
    async listShards() {
      return parseListShardsResponse(await call('GET', PATHS.keeperShards));
    },
    async generations() {
      return parseGenerationsResponse(await call('GET', PATHS.keeperGenerations));
    },
    async prune(keepFrom) {
      await call('POST', PATHS.keeperPrune, { keepFrom });
    },
    close() {
      client.close();
    },
  };
}
