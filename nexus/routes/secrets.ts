/**
 * The secret routes (see shared/api/secrets.ts for the table). Each reads
 * guard → validate → act: the guard parses the path from the URL and asks the
 * access checker before the store is touched, so a caller that may not read
 * a path cannot tell whether it exists (403, never 404); the handler takes
 * the path the guard checked.
 */
import { type Context, Hono } from 'hono';
import { PATHS } from '../../shared/api/paths.ts';
import {
  parseSecretPath,
  parseSecretPrefix,
  type SecretPath,
} from '../../shared/api/secret_path.ts';
import {
  type ListResponse,
  type MetadataResponse,
  parseListLimit,
  parseOnlyDeletedQuery,
  parsePutMetadataRequest,
  parsePutSecretRequest,
  parseVersionQuery,
  parseVersionsQuery,
  parseVersionsRequest,
  parseWatchQuery,
  parseWatchRequest,
  type WatchResponse,
} from '../../shared/api/secrets.ts';
import { InvalidRequestError } from '../../shared/errors/errors.ts';
import { setAudit } from '../../shared/http/audit.ts';
import {
  authorize,
  type CheckOutcome,
  type GuardedEnv,
  type RequestCheck,
  refuseAccess,
} from '../../shared/http/authorize.ts';
import type { PeerEnv } from '../../shared/http/peer.ts';
import { validateJson } from '../../shared/http/validate.ts';
import type { Logger } from '../../shared/log/logger.ts';
import type { SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import { type AccessChecker, isReservedPath } from '../access/check_access.ts';
import { listVisible } from '../access/list_visible.ts';
import type { Permission } from '../access/permissions.ts';
import type { SecretMetadata, SecretStore, SecretVersion } from '../store/secret_store.ts';
import { type ClientGone, goneOnAbort, type SecretWatches } from './secret_watch.ts';

export interface SecretRoutesDeps {
  readonly store: SecretStore;
  readonly access: AccessChecker;
  readonly logger: Logger;
  /** Where long-poll reads wait. */
  readonly watches: SecretWatches;
}

/** The route of one secret's data, as the audit trail names it. */
export const DATA = `${PATHS.secretData}/:path{.+}`;
const METADATA = `${PATHS.secretMetadata}/:path{.+}`;
const UNDELETE = `${PATHS.secretUndelete}/:path{.+}`;
const DESTROY = `${PATHS.secretDestroy}/:path{.+}`;

export function createSecretRoutes(deps: SecretRoutesDeps): Hono<PeerEnv> {
  const { store, access, logger, watches } = deps;
  const routes = new Hono<PeerEnv>();

  /**
   * The guard of a route on one secret path: it parses the path of the URL
   * and asks the access checker (`decideSecretAccess`); the handler gets the
   * path as `c.get('target')`.
   */
  function may(permission: Permission, action: string) {
    const check: RequestCheck<SecretPath> = {
      description: `${permission} on the requested secret path`,
      decide(c, peer) {
        return decideSecretAccess(access, peer, permission, c.req.param('path'));
      },
    };
    return authorize(check, { action, logger });
  }

  // Served before the app for most reads (secret_read.ts); this route
  // answers the rest (HEAD, other queries, and every refusal).
  routes.get(DATA, may('read', 'secret.read'), async (c) => {
    if (c.req.query('newerThan') !== undefined || c.req.query('wait') !== undefined) {
      return await watch(c);
    }
    const version = parseVersionQuery(c.req.query('version'), 'version');
    return answerSecret(c, await store.get(c.get('target'), version));
  });

  /**
   * A long-poll read (`?newerThan=N&wait=30s`, `secret_watch.ts`): admitted
   * by the read's guard, audited as `secret.watch` once it answers.
   */
  async function watch(c: Context<GuardedEnv<SecretPath>>): Promise<Response> {
    setAudit(c, { action: 'secret.watch' });
    const query = parseWatchQuery(
      c.req.query('newerThan'),
      c.req.query('wait'),
      c.req.query('version'),
    );
    const secret = await watches.wait(
      c.get('target'),
      query,
      c.get('peer').id.toString(),
      clientGone(c),
    );
    return secret === undefined ? c.body(null, 304) : answerSecret(c, secret);
  }

  routes.put(DATA, may('write', 'secret.write'), validateJson(parsePutSecretRequest), async (c) => {
    const { data, cas } = c.req.valid('json');
    const metadata = await store.put(c.get('target'), data, cas === undefined ? {} : { cas });
    return c.json(metadataToWire(metadata));
  });

  routes.delete(DATA, may('delete', 'secret.delete'), async (c) => {
    const versions = parseVersionsQuery(c.req.query('versions'));
    return c.json(metadataToWire(await store.softDelete(c.get('target'), versions)));
  });

  routes.post(
    UNDELETE,
    may('write', 'secret.undelete'),
    validateJson((body) => parseVersionsRequest(body, false)),
    async (c) => {
      const { versions } = c.req.valid('json');
      return c.json(metadataToWire(await store.undelete(c.get('target'), versions)));
    },
  );

  routes.post(
    DESTROY,
    may('delete', 'secret.destroy'),
    validateJson((body) => parseVersionsRequest(body, true)),
    async (c) => {
      const versions = c.req.valid('json').versions ?? [];
      return c.json(metadataToWire(await store.destroy(c.get('target'), versions)));
    },
  );

  routes.get(METADATA, may('read', 'metadata.read'), async (c) => {
    return c.json(metadataToWire(await store.readMetadata(c.get('target'))));
  });

  routes.put(
    METADATA,
    may('write', 'metadata.write'),
    validateJson(parsePutMetadataRequest),
    async (c) => {
      return c.json(
        metadataToWire(await store.writeMetadata(c.get('target'), c.req.valid('json'))),
      );
    },
  );

  routes.delete(METADATA, may('delete', 'secret.delete_path'), async (c) => {
    const onlyDeleted = parseOnlyDeletedQuery(c.req.query('onlyDeleted'));
    await store.deletePath(c.get('target'), { onlyDeleted });
    return c.body(null, 204);
  });

  // Listing is authorized per path: the guard admits members of our trust
  // domain except the operator roles (which have their operator routes
  // only), and the answer holds only the paths the caller may list.
  const mayList: RequestCheck<string> = {
    description:
      'a member of the trust domain other than the recover and restore roles (each listed path is then checked)',
    decide(c, peer) {
      const prefix = parseSecretPrefix(c.req.query('prefix'));
      return { ...access.explainList(peer), target: prefix, resource: prefix };
    },
  };
  routes.get(PATHS.secretList, authorize(mayList, { action: 'secret.list', logger }), async (c) => {
    const after = c.req.query('after');
    const page = await listVisible(
      { store, access },
      {
        peer: c.get('peer').id,
        prefix: c.get('target'),
        limit: parseListLimit(c.req.query('limit')),
        after: after === undefined ? undefined : parseSecretPath(after),
      },
    );
    return c.json(page satisfies ListResponse);
  });

  // A long-poll over several paths (ADR 0033). Its paths are in the body, so
  // the guard admits members of our trust domain but the operator roles (as
  // the list does), and the handler checks `read` on every path before it
  // looks any up: one path refused refuses the request.
  const mayWatch: RequestCheck<undefined> = {
    description:
      'a member of the trust domain other than the recover and restore roles (read on each watched path is then checked)',
    decide(_c, peer) {
      return { ...access.explainList(peer), target: undefined };
    },
  };
  routes.post(
    PATHS.secretWatch,
    authorize(mayWatch, { action: 'secret.watch', logger }),
    validateJson(parseWatchRequest),
    async (c) => {
      const { versions, waitMs } = c.req.valid('json');
      const peer = c.get('peer').id;
      // Every path decided before any refusal acts, so a reserved path is a
      // 400 wherever it sits; nothing is looked up until all are allowed.
      const outcomes = [...versions.keys()].map((path) =>
        decideSecretAccess(access, peer, 'read', path),
      );
      const refused = outcomes.find((outcome) => !outcome.allowed);
      if (refused !== undefined) {
        setAudit(c, {
          resource: refused.target,
          decision: { reason: refused.reason, policy: null },
        });
        refuseAccess(
          c,
          peer,
          { rule: 'read on each watched path', reason: refused.reason, resource: refused.target },
          logger,
        );
      }
      const reasons = new Set(outcomes.map((outcome) => outcome.reason));
      const policies = new Set(outcomes.flatMap((outcome) => outcome.policy ?? []));
      // Every path is named, and every reason and policy that admitted one.
      setAudit(c, {
        resource: [...versions.keys()].join(','),
        decision: {
          reason: [...reasons].join(','),
          policy: policies.size === 0 ? null : [...policies].join(','),
        },
      });
      const changed = await watches.waitForAny(versions, waitMs, peer.toString(), clientGone(c));
      if (changed === undefined) return c.body(null, 304);
      return c.json({ versions: Object.fromEntries(changed) } satisfies WatchResponse);
    },
  );

  return routes;
}

/**
 * The access decision on one secret path named by a request: the path is
 * parsed (`sys/` is reserved for the broker; a malformed or reserved path is
 * `ERR_INVALID_REQUEST`) and checked, and named as the audited resource.
 */
export function decideSecretAccess(
  access: AccessChecker,
  peer: SpiffeId,
  permission: Permission,
  rawPath: unknown,
): CheckOutcome<SecretPath> {
  const path = parseSecretPath(rawPath);
  if (isReservedPath(path)) {
    throw new InvalidRequestError('Secret paths under "sys/" are reserved');
  }
  const decision = access.explain(peer, permission, path);
  return {
    allowed: decision.allowed,
    reason: decision.reason,
    policy: decision.policy,
    target: path,
    resource: path,
  };
}

/**
 * Where the watch hears that the client went away: the node response behind
 * the adapter. The fetch `Request`'s own signal would do the same, but asking
 * for it makes the adapter build a whole `Request` (headers, body stream,
 * controller) for a request that may wait a minute.
 */
function clientGone<E extends PeerEnv>(c: Context<E>): ClientGone {
  // Undefined without the adapter (`app.request()` in tests).
  const outgoing = (c.env as PeerEnv['Bindings'] | undefined)?.outgoing;
  return outgoing === undefined ? goneOnAbort(c.req.raw.signal) : outgoing;
}

/** A read's answer, as `secretAnswer` writes it. */
function answerSecret(c: Context, secret: SecretVersion): Response {
  return c.body(secretAnswer(secret), 200, { 'Content-Type': 'application/json' });
}

/**
 * A read's answer (`SecretResponse`) as JSON text, with the data as the
 * store opened it rather than parsed and written again.
 */
export function secretAnswer(secret: SecretVersion): string {
  return `{"path":${JSON.stringify(secret.path)},"version":${secret.version},"data":${secret.dataJson},"createdAt":"${secret.createdAt.toISOString()}"}`;
}

export function metadataToWire(metadata: SecretMetadata): MetadataResponse {
  return {
    path: metadata.path,
    createdAt: metadata.createdAt.toISOString(),
    updatedAt: metadata.updatedAt.toISOString(),
    currentVersion: metadata.currentVersion,
    oldestVersion: metadata.oldestVersion,
    maxVersions: metadata.maxVersions,
    maxVersionsOverride: metadata.maxVersionsOverride,
    versions: metadata.versions.map((version) => ({
      version: version.version,
      createdAt: version.createdAt.toISOString(),
      deletedAt: version.deletedAt === null ? null : version.deletedAt.toISOString(),
      destroyed: version.destroyed,
    })),
    customMetadata: metadata.customMetadata,
  };
}
