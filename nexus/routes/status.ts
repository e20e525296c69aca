/**
 * `GET /v1/status`: ready (200) or sealed (503), as Vault's health route
 * answers, with which Keepers answer and the generations they hold, our own
 * SPIFFE ID and SVID expiry, and the counts of refused handshakes and denied
 * requests since start. For the
 * operator roles only; liveness without data is `GET /v1/health`.
 */
import { Hono } from 'hono';
import type { RootKeyStatusBody, StatusResponse } from '../../shared/api/operator.ts';
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
import type { SpiffeId, TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import type { RootKey } from '../root_key/root_key.ts';
import type { KeeperStatus, RootKeyStatus } from '../root_key/root_key_manager.ts';

export interface StatusRoutesDeps {
  readonly trustDomain: TrustDomain;
  readonly rootKey: RootKey;
  readonly keeperStatus: () => readonly KeeperStatus[];
  /** The root key's split shape, last rotation and last recovery export (root_key_manager.ts). */
  readonly rootKeyStatus?: () => RootKeyStatus;
  /**
   * Our X509 source. What a SPIFFE deployment monitors, our identity's expiry
   * and the authentication failures below, is read per request.
   */
  readonly identity: { getX509Svid(): { readonly id: SpiffeId; readonly notAfter: Date } };
  /** The server's PeerVerifier: TLS connections refused since start (no, invalid or unauthorized SVID). */
  readonly refusals: { readonly refusedCount: number };
  /** Requests denied by a role or policy since start, counted by the audit trail. */
  readonly deniedRequests: { readonly value: number };
  readonly logger: Logger;
}

export function createStatusRoutes(deps: StatusRoutesDeps): Hono<PeerEnv> {
  const td = deps.trustDomain;
  const operators = matchEither(isPilotSuperuser(td), isPilotRecover(td), isPilotRestore(td));
  const routes = new Hono<PeerEnv>();
  routes.get(
    PATHS.status,
    authorize(operators, { logger: deps.logger, action: 'status.read' }),
    (c) => {
      const svid = deps.identity.getX509Svid();
      const body: StatusResponse = {
        state: deps.rootKey.state,
        spiffeId: svid.id.toString(),
        svidNotAfter: svid.notAfter.toISOString(),
        refusedHandshakes: deps.refusals.refusedCount,
        deniedRequests: deps.deniedRequests.value,
        keepers: deps.keeperStatus().map((keeper) => ({
          name: keeper.name,
          reachable: keeper.reachable,
          generations: [...keeper.generations],
        })),
        ...(deps.rootKeyStatus === undefined || !deps.rootKey.isReady
          ? {}
          : { rootKey: rootKeyBody(deps.rootKeyStatus(), deps.rootKey.generation) }),
      };
      return c.json(body, deps.rootKey.isReady ? 200 : 503);
    },
  );
  return routes;
}

function rootKeyBody(status: RootKeyStatus, generation: number | undefined): RootKeyStatusBody {
  const { lastRotation, lastRecoveryExport } = status;
  return {
    generation: generation ?? null,
    shares: status.shares,
    threshold: status.threshold,
    lastRotation:
      lastRotation === undefined
        ? null
        : { generation: lastRotation.generation, at: lastRotation.at.toISOString() },
    lastRecoveryExport:
      lastRecoveryExport === undefined
        ? null
        : {
            generation: lastRecoveryExport.generation,
            at: lastRecoveryExport.at.toISOString(),
            stale:
              lastRotation !== undefined && lastRecoveryExport.generation < lastRotation.generation,
          },
  };
}
