/**
 * Break-glass operator routes (SPIKE's roles): recover exports a full
 * recovery split for offline safekeeping (recover role only); restore takes
 * shards one at a time and unseals Nexus at the threshold (restore role only).
 * A superuser is refused on both. Root-key rotation is the superuser's, as
 * snapshots are: it changes no secret and exports nothing.
 */
import { Hono } from 'hono';
import {
  parseRestoreRequest,
  parseRotateRootKeyRequest,
  type RecoverResponse,
  type RestoreResponse,
  type RotateRootKeyResponse,
} from '../../shared/api/operator.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { formatShardText, parseShardText } from '../../shared/api/shard_text.ts';
import { zeroize } from '../../shared/crypto/bytes.ts';
import { authorize } from '../../shared/http/authorize.ts';
import type { PeerEnv } from '../../shared/http/peer.ts';
import { validateJson } from '../../shared/http/validate.ts';
import type { Logger } from '../../shared/log/logger.ts';
import {
  isPilotRecover,
  isPilotRestore,
  isPilotSuperuser,
} from '../../shared/spiffe/identities.ts';
import type { TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import type { RootKeyManager } from '../root_key/root_key_manager.ts';

export interface OperatorRoutesDeps {
  readonly trustDomain: TrustDomain;
  readonly manager: RootKeyManager;
  readonly logger: Logger;
}

export function createOperatorRoutes(deps: OperatorRoutesDeps): Hono<PeerEnv> {
  const { manager, logger } = deps;
  const routes = new Hono<PeerEnv>();

  routes.post(
    PATHS.operatorRecover,
    authorize(isPilotRecover(deps.trustDomain), { logger, action: 'root_key.recover' }),
    async (c) => {
      const shards = await manager.recoveryShards();
      try {
        const first = shards[0];
        const body: RecoverResponse = {
          generation: first?.generation ?? 0,
          threshold: first?.threshold ?? 0,
          shards: shards.map(formatShardText),
        };
        logger.info('Operator recover: handed out a recovery split', {
          peer: c.get('peer').id.toString(),
          generation: body.generation,
          shares: shards.length,
        });
        return c.json(body);
      } finally {
        zeroize(...shards.map((shard) => shard.value));
      }
    },
  );

  routes.post(
    PATHS.operatorRestore,
    authorize(isPilotRestore(deps.trustDomain), { logger, action: 'root_key.restore' }),
    validateJson(parseRestoreRequest),
    async (c) => {
      const shard = parseShardText(c.req.valid('json').shard);
      const progress = await manager.restore(shard);
      logger.info('Operator restore: shard accepted', {
        peer: c.get('peer').id.toString(),
        generation: progress.generation,
        collected: progress.collected,
        remaining: progress.remaining,
        restored: progress.restored,
      });
      const body: RestoreResponse = progress;
      return c.json(body);
    },
  );

  routes.post(
    PATHS.operatorRootKeyRotate,
    authorize(isPilotSuperuser(deps.trustDomain), { logger, action: 'root_key.rotate' }),
    validateJson(parseRotateRootKeyRequest),
    async (c) => {
      const result = await manager.rotateRootKey(c.req.valid('json'));
      logger.warn('Operator rotated the root key', {
        peer: c.get('peer').id.toString(),
        generation: result.generation,
        shares: result.shares,
        threshold: result.threshold,
      });
      const body: RotateRootKeyResponse = {
        generation: result.generation,
        shares: result.shares,
        threshold: result.threshold,
        keepers: result.keepers,
        rotatedAt: result.rotatedAt.toISOString(),
      };
      return c.json(body);
    },
  );

  return routes;
}
