/**
 * The Keeper's shard routes, each read left to right as guard → validate →
 * act. TLS already admits only Nexus; every route still checks the peer
 * again (SPIKE's two layers). Logs carry generations and indexes, never
 * shard bytes. Each guard names the route's audit action, so a denied
 * request is audited with it too: `shard.contribute` (PUT), `shard.read`
 * (GET, the shard bytes), `shard.list` (the generations held, no bytes) and
 * `shard.prune`.
 */
import { Hono } from 'hono';
import {
  type GenerationsResponse,
  type ListShardsResponse,
  parsePruneRequest,
  parsePutShardRequest,
  shardToWire,
} from '../../shared/api/keeper.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { zeroize } from '../../shared/crypto/bytes.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import { isBrokerError } from '../../shared/errors/errors.ts';
import { authorize } from '../../shared/http/authorize.ts';
import type { PeerEnv } from '../../shared/http/peer.ts';
import { validateJson } from '../../shared/http/validate.ts';
import type { Logger } from '../../shared/log/logger.ts';
import { isNexus } from '../../shared/spiffe/identities.ts';
import type { TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import type { ShardHolder } from '../shard_holder.ts';

export interface ShardRoutesDeps {
  readonly trustDomain: TrustDomain;
  readonly holder: ShardHolder;
  readonly logger: Logger;
}

export function createShardRoutes(deps: ShardRoutesDeps): Hono<PeerEnv> {
  const { holder, logger } = deps;
  const nexusOnly = isNexus(deps.trustDomain);
  const routes = new Hono<PeerEnv>();

  routes.put(
    PATHS.keeperShards,
    authorize(nexusOnly, { logger, action: 'shard.contribute' }),
    validateJson<Shard, PeerEnv>(parsePutShardRequest),
    function putShard(c) {
      const shard = c.req.valid('json');
      const fields = { generation: shard.generation, index: shard.index };
      try {
        const result = holder.store(shard);
        logger.info(result.outcome === 'stored' ? 'Stored a shard' : 'Shard already held', fields);
      } catch (err) {
        logger.warn('Refused a shard', { ...fields, code: isBrokerError(err) ? err.code : 'bug' });
        throw err;
      } finally {
        zeroize(shard.value);
      }
      return c.json({ generations: holder.generations() } satisfies GenerationsResponse);
    },
  );

  routes.get(
    PATHS.keeperShards,
    authorize(nexusOnly, { logger, action: 'shard.read' }),
    function listShards(c) {
      const shards = holder.list();
      const body: ListShardsResponse = { shards: shards.map(shardToWire) };
      zeroize(...shards.map((shard) => shard.value));
      logger.info('Read shards', {
        shards: shards.map((shard) => ({ generation: shard.generation, index: shard.index })),
      });
      return c.json(body);
    },
  );

  routes.get(
    PATHS.keeperGenerations,
    authorize(nexusOnly, { logger, action: 'shard.list' }),
    function generations(c) {
      const held = holder.generations();
      logger.debug('Read generations', { generations: held });
      return c.json({ generations: held } satisfies GenerationsResponse);
    },
  );

  routes.post(
    PATHS.keeperPrune,
    authorize(nexusOnly, { logger, action: 'shard.prune' }),
    validateJson<{ keepFrom: number }, PeerEnv>(parsePruneRequest),
    function prune(c) {
      const { keepFrom } = c.req.valid('json');
      const result = holder.prune(keepFrom);
      if (result.applied) {
        logger.info('Pruned generations', { keepFrom, dropped: result.dropped });
      } else {
        logger.warn('Prune skipped: the generation to keep is not held', { keepFrom });
      }
      return c.json({ generations: holder.generations() } satisfies GenerationsResponse);
    },
  );

  return routes;
}
