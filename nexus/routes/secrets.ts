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

/** How many store pages one list request may scan while filtering by permission. */
const MAX_LIST_SCAN_PAGES = 20;

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
  // domain, and the answer holds only the paths the caller may list.
  routes.get(
    PATHS.secretList,
    authorizeRequest(
      (_c, peer) => peer.isMemberOf(deps.trustDomain),
      'a member of the trust domain (each listed path is then checked)',
      { logger },
    ),
    async (c) => {
      const prefix = parseSecretPrefix(c.req.query('prefix'));
      const limit = parseListLimit(c.req.query('limit'));
      const afterRaw = c.req.query('after');
      let after = afterRaw === undefined ? undefined : parseSecretPath(afterRaw);
      const peer = c.get('peer').id;
      setAudit(c, { action: 'secret.list', resource: prefix });
      const paths: string[] = [];
      let next: SecretPath | undefined;
      for (let page = 0; page < MAX_LIST_SCAN_PAGES && paths.length < limit; page++) {
        const found = await store.list(prefix, {
          limit: limit - paths.length,
          ...(after === undefined ? {} : { after }),
        });
        for (const path of found.paths) {
          if (!isReservedPath(path) && access.isAllowed(peer, 'list', path)) {
            paths.push(path);
          }
        }
        next = found.next;
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
