/**
 * How Nexus talks to one Keeper. The production link goes over SPIFFE mTLS
 * (`createHttpsKeeperLink`); the fault simulation uses in-process Keepers.
 */
import { errorFromBody } from '../../shared/api/error_body.ts';
import {
  parseGenerationsResponse,
  parseListShardsResponse,
  shardToWire,
} from '../../shared/api/keeper.ts';
import { PATHS } from '../../shared/api/paths.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import { UnavailableError } from '../../shared/errors/errors.ts';
import type { MtlsClient } from '../../shared/spiffe/mtls_client.ts';

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

/** A Keeper reached over SPIFFE mTLS; the client checks the server is a Keeper. */
export function createHttpsKeeperLink(url: URL, client: MtlsClient, timeoutMs: number): KeeperLink {
  async function call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await client.request({
      method,
      url: new URL(path, url),
      timeoutMs,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
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
  };
}
