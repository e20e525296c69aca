/**
 * The data key's routes (docs/keys.md, "Rotating the data key"): its status
 * for the operator roles, and its rotation for a superuser. They carry
 * counts and times, never key material.
 */
import { Hono } from 'hono';
import type { KeyringStatusResponse, RotateDataKeyResponse } from '../../shared/api/keyring.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { authorize } from '../../shared/http/authorize.ts';
import type { PeerEnv } from '../../shared/http/peer.ts';
import type { Logger } from '../../shared/log/logger.ts';
import {
  isPilotRecover,
  isPilotRestore,
  isPilotSuperuser,
} from '../../shared/spiffe/identities.ts';
import { matchEither } from '../../shared/spiffe/match.ts';
import type { TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import type { DataKey } from '../keyring/data_key.ts';

export interface KeyringRoutesDeps {
  readonly trustDomain: TrustDomain;
  readonly dataKey: DataKey;
  readonly logger: Logger;
}

export function createKeyringRoutes(deps: KeyringRoutesDeps): Hono<PeerEnv> {
  const { trustDomain: td, dataKey, logger } = deps;
  const operators = matchEither(isPilotSuperuser(td), isPilotRecover(td), isPilotRestore(td));
  const routes = new Hono<PeerEnv>();

  routes.get(
    PATHS.operatorKeyring,
    authorize(operators, { logger, action: 'keyring.read' }),
    async (c) => {
      const body: KeyringStatusResponse = await dataKey.status();
      return c.json(body);
    },
  );

  routes.post(
    PATHS.operatorKeyringRotate,
    authorize(isPilotSuperuser(td), { logger, action: 'keyring.rotate' }),
    async (c) => {
      const term = await dataKey.rotate();
      logger.info('Operator rotated the data key', {
        peer: c.get('peer').id.toString(),
        term: term.term,
      });
      const body: RotateDataKeyResponse = { term };
      return c.json(body);
    },
  );

  return routes;
}
