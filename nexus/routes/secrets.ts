/**
 * The secret routes (see shared/api/secrets.ts for the table). Each reads
 * guard → validate → act: the guard parses the path from the URL and asks the
 * access checker before the store is touched, so a caller that may not read
 * a path cannot tell whether it exists (403, never 404).
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
  MAX_LIST_LIMIT,
  type MetadataResponse,
  parseListLimit,
  parsePutMetadataRequest,
  parsePutSecretRequest,
  parseVersionQuery,
  parseVersionsQuery,
  parseVersionsRequest,
  type SecretResponse,
} from '../../shared/api/secrets.ts';
import { InvalidRequestError } from '../../shared/errors/errors.ts';
import { setAudit } from '../../shared/http/audit.ts';
import { authorizeRequest } from '../../shared/http/authorize.ts';
import type { PeerEnv } from '../../shared/http/peer.ts';
import { validateJson } from '../../shared/http/validate.ts';
import type { Logger } from '../../shared/log/logger.ts';
import { isPilotRecover, isPilotRestore } from '../../shared/spiffe/identities.ts';
import type { SpiffeId, TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { isReservedPath } from '../access/check_access.ts';
import type { Permission } from '../access/permissions.ts';
import type { SecretMetadata, SecretStore } from '../store/secret_store.ts';

/** What the routes need of the access checker. */
export interface SecretAccess {
  isAllowed(peer: SpiffeId, permission: Permission, path: string): boolean;
}

export interface SecretRoutesDeps {
  readonly trustDomain: TrustDomain;
  readonly store: SecretStore;
  readonly access: SecretAccess;
  readonly logger: Logger;
}

const DATA = `${PATHS.secretData}/:path{.+}`;
const METADATA = `${PATHS.secretMetadata}/:path{.+}`;
const UNDELETE = `${PATHS.secretUndelete}/:path{.+}`;
const DESTROY = `${PATHS.secretDestroy}/:path{.+}`;

/** The secret path of the URL, parsed; `sys/` is reserved for the broker. */
function pathOf(c: Context): SecretPath {
  const path = parseSecretPath(c.req.param('path'));
  if (isReservedPath(path)) {
    throw new InvalidRequestError('Secret paths under "sys/" are reserved');
  }
  return path;
}

export function createSecretRoutes(deps: SecretRoutesDeps): Hono<PeerEnv> {
  const { store, access, logger } = deps;
  const routes = new Hono<PeerEnv>();

  // The guard also names the audit action, so a denial is audited with it.
  const may = (permission: Permission, action: string) =>
    authorizeRequest(
      (c, peer) => {
        const path = pathOf(c);
        setAudit(c, { action, resource: path });
        return access.isAllowed(peer, permission, path);
      },
      `${permission} on the requested secret path`,
      { logger },
    );

  routes.get(DATA, may('read', 'secret.read'), async (c) => {
    const path = pathOf(c);
    const version = parseVersionQuery(c.req.query('version'), 'version');
    const secret = await store.get(path, version);
    const body: SecretResponse = {
      path: secret.path,
      version: secret.version,
      data: secret.data,
      createdAt: secret.createdAt.toISOString(),
    };
    return c.json(body);
  });

  routes.put(DATA, may('write', 'secret.write'), validateJson(parsePutSecretRequest), async (c) => {
    const path = pathOf(c);
    const { data, cas } = c.req.valid('json');
    const metadata = await store.put(path, data, cas === undefined ? {} : { cas });
    return c.json(metadataToWire(metadata));
  });

  routes.delete(DATA, may('delete', 'secret.delete'), async (c) => {
    const path = pathOf(c);
    const versions = parseVersionsQuery(c.req.query('versions'));
    return c.json(metadataToWire(await store.softDelete(path, versions)));
  });

  routes.post(
    UNDELETE,
    may('write', 'secret.undelete'),
    validateJson((body) => parseVersionsRequest(body, false)),
    async (c) => {
      const path = pathOf(c);
      return c.json(metadataToWire(await store.undelete(path, c.req.valid('json').versions)));
    },
  );

  routes.post(
    DESTROY,
    may('delete', 'secret.destroy'),
    validateJson((body) => parseVersionsRequest(body, true)),
    async (c) => {
      const path = pathOf(c);
      const versions = c.req.valid('json').versions ?? [];
      return c.json(metadataToWire(await store.destroy(path, versions)));
    },
  );

  routes.get(METADATA, may('read', 'metadata.read'), async (c) => {
    const path = pathOf(c);
    return c.json(metadataToWire(await store.readMetadata(path)));
  });

  routes.put(
    METADATA,
    may('write', 'metadata.write'),
    validateJson(parsePutMetadataRequest),
    async (c) => {
      const path = pathOf(c);
      return c.json(metadataToWire(await store.writeMetadata(path, c.req.valid('json'))));
    },
  );

  routes.delete(METADATA, may('delete', 'secret.delete_path'), async (c) => {
    const path = pathOf(c);
    await store.deletePath(path);
    return c.body(null, 204);
  });

  // Listing is authorized per path: the guard admits members of our trust
  // domain except the operator roles (which have their operator routes
  // only), and the answer holds only the paths the caller may list.
  const isRecover = isPilotRecover(deps.trustDomain);
  const isRestore = isPilotRestore(deps.trustDomain);
  routes.get(
    PATHS.secretList,
    authorizeRequest(
      (c, peer) => {
        setAudit(c, { action: 'secret.list', resource: parseSecretPrefix(c.req.query('prefix')) });
        return peer.isMemberOf(deps.trustDomain) && !isRecover(peer) && !isRestore(peer);
      },
      'a member of the trust domain other than the recover and restore roles (each listed path is then checked)',
      { logger },
    ),
    async (c) => {
      const prefix = parseSecretPrefix(c.req.query('prefix'));
      const limit = parseListLimit(c.req.query('limit'));
      const afterRaw = c.req.query('after');
      let after = afterRaw === undefined ? undefined : parseSecretPath(afterRaw);
      const peer = c.get('peer').id;
      // The cursor (`next`) is always a path of the answer, so it names only
      // paths the caller may list: the store is scanned until the answer is
      // full or the prefix is exhausted. The first query asks for one page,
      // which is all it takes when the caller may list everything there;
      // later ones read a thousand paths at a time, so the cost is one query
      // per thousand paths under the prefix that the caller may not list.
      const paths: SecretPath[] = [];
      let next: SecretPath | undefined;
      for (let chunk = limit; ; chunk = MAX_LIST_LIMIT) {
        const found = await store.list(prefix, {
          limit: chunk,
          ...(after === undefined ? {} : { after }),
        });
        let index = 0;
        for (; index < found.paths.length && paths.length < limit; index++) {
          const path = found.paths[index] as SecretPath;
          if (!isReservedPath(path) && access.isAllowed(peer, 'list', path)) {
            paths.push(path);
          }
        }
        const hasMore = index < found.paths.length || found.next !== undefined;
        if (paths.length === limit && hasMore) {
          next = paths[paths.length - 1];
          break;
        }
        if (found.next === undefined) {
          break;
        }
        after = found.next;
      }
      const body: ListResponse = next === undefined ? { paths } : { paths, next };
      return c.json(body);
    },
  );

  return routes;
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
