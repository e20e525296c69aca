/**
 * The routes of named encryption keys (see shared/api/transit.ts for the
 * table), each guard → validate → act. The guard parses the key name of the
 * URL and asks the access checker for the route's permission on the key's
 * path, `sys/keys/{name}`, before the store is touched: a caller that may
 * not use a key cannot tell whether it exists (403, never 404). The audit
 * event names the action and the key; never plaintext, ciphertext or keys.
 */
import type { Context } from 'hono';
import { Hono } from 'hono';
import { PATHS } from '../../shared/api/paths.ts';
import {
  type BatchResponse,
  type KeyResponse,
  type ListKeysResponse,
  parseConfigureKeyRequest,
  parseDataKeyRequest,
  parseDecryptRequest,
  parseEncryptRequest,
  parseHmacRequest,
  parseKeyName,
  parseVerifyRequest,
  type TransitRequest,
} from '../../shared/api/transit.ts';
import { authorize, type RequestCheck } from '../../shared/http/authorize.ts';
import type { PeerEnv } from '../../shared/http/peer.ts';
import { validateJson } from '../../shared/http/validate.ts';
import type { Logger } from '../../shared/log/logger.ts';
import type { AccessChecker } from '../access/check_access.ts';
import { keyPath, type Permission } from '../access/permissions.ts';
import type { TransitKeyInfo, TransitKeyStore } from '../store/transit_key_store.ts';
import { dataKey, decrypt, encrypt, hmac, rewrap, verify } from '../transit/transit.ts';

export interface TransitRoutesDeps {
  readonly store: TransitKeyStore;
  readonly access: AccessChecker;
  readonly logger: Logger;
}

const KEY = `${PATHS.transitKeys}/:name`;

export function createTransitRoutes(deps: TransitRoutesDeps): Hono<PeerEnv> {
  const { store, access, logger } = deps;
  const routes = new Hono<PeerEnv>();

  /** The guard of a route on one key: `permission` on `sys/keys/{name}`; the handler gets the name. */
  function may(permission: Permission, action: string) {
    const check: RequestCheck<string> = {
      description: `${permission} on the requested key`,
      decide(c, peer) {
        const name = parseKeyName(c.req.param('name'));
        const decision = access.explain(peer, permission, keyPath(name));
        return { ...decision, target: name, resource: name };
      },
    };
    return authorize(check, { action, logger });
  }

  // Any member of the trust domain may ask; the answer holds the keys it may list.
  const mayList: RequestCheck<undefined> = {
    description:
      'a member of the trust domain other than the recover and restore roles (each listed key is then checked)',
    decide(_c, peer) {
      return { ...access.explainList(peer), target: undefined };
    },
  };
  routes.get(PATHS.transitKeys, authorize(mayList, { action: 'key.list', logger }), async (c) => {
    const peer = c.get('peer').id;
    const names = await store.list();
    const keys = names.filter((name) => access.isAllowed(peer, 'list', keyPath(name)));
    return c.json({ keys } satisfies ListKeysResponse);
  });

  routes.post(KEY, may('write', 'key.create'), async (c) => {
    const info = await store.create(c.get('target'));
    logger.info('Key created', { peer: c.get('peer').id.toString(), key: info.name });
    return c.json(keyToWire(info));
  });

  routes.get(KEY, may('read', 'key.read'), async (c) => {
    return c.json(keyToWire(await store.get(c.get('target'))));
  });

  routes.post(`${KEY}/rotate`, may('write', 'key.rotate'), async (c) => {
    const info = await store.rotate(c.get('target'));
    logger.info('Key rotated', {
      peer: c.get('peer').id.toString(),
      key: info.name,
      version: info.latestVersion,
    });
    return c.json(keyToWire(info));
  });

  routes.post(
    `${KEY}/config`,
    may('write', 'key.configure'),
    validateJson(parseConfigureKeyRequest),
    async (c) => {
      const info = await store.configure(c.get('target'), c.req.valid('json'));
      logger.info('Key configured', {
        peer: c.get('peer').id.toString(),
        key: info.name,
        minDecryptionVersion: info.minDecryptionVersion,
      });
      return c.json(keyToWire(info));
    },
  );

  routes.delete(KEY, may('delete', 'key.delete'), async (c) => {
    const name = c.get('target');
    await store.delete(name);
    logger.info('Key deleted', { peer: c.get('peer').id.toString(), key: name });
    return c.body(null, 204);
  });

  routes.post(
    `${PATHS.transitEncrypt}/:name`,
    may('encrypt', 'transit.encrypt'),
    validateJson(parseEncryptRequest),
    async (c) => answer(c, c.req.valid('json'), (items) => encrypt(store, c.get('target'), items)),
  );

  routes.post(
    `${PATHS.transitDecrypt}/:name`,
    may('decrypt', 'transit.decrypt'),
    validateJson(parseDecryptRequest),
    async (c) => answer(c, c.req.valid('json'), (items) => decrypt(store, c.get('target'), items)),
  );

  routes.post(
    `${PATHS.transitRewrap}/:name`,
    may('rewrap', 'transit.rewrap'),
    validateJson(parseDecryptRequest),
    async (c) => answer(c, c.req.valid('json'), (items) => rewrap(store, c.get('target'), items)),
  );

  routes.post(
    `${PATHS.transitDataKey}/:name`,
    may('encrypt', 'transit.datakey'),
    validateJson(parseDataKeyRequest),
    async (c) => answer(c, c.req.valid('json'), (items) => dataKey(store, c.get('target'), items)),
  );

  routes.post(
    `${PATHS.transitHmac}/:name`,
    may('hmac', 'transit.hmac'),
    validateJson(parseHmacRequest),
    async (c) => answer(c, c.req.valid('json'), (items) => hmac(store, c.get('target'), items)),
  );

  routes.post(
    `${PATHS.transitVerify}/:name`,
    may('hmac', 'transit.verify'),
    validateJson(parseVerifyRequest),
    async (c) => answer(c, c.req.valid('json'), (items) => verify(store, c.get('target'), items)),
  );

  return routes;
}

/** One result for one item, `{ batch: [...] }` for a batch. */
async function answer<I, R>(
  c: Context,
  request: TransitRequest<I>,
  act: (items: readonly I[]) => Promise<R[]>,
): Promise<Response> {
  const results = await act(request.items);
  return c.json(
    request.isBatch ? ({ batch: results } satisfies BatchResponse<R>) : (results[0] as object),
  );
}

export function keyToWire(info: TransitKeyInfo): KeyResponse {
  return {
    name: info.name,
    createdAt: info.createdAt.toISOString(),
    updatedAt: info.updatedAt.toISOString(),
    latestVersion: info.latestVersion,
    minDecryptionVersion: info.minDecryptionVersion,
    versions: info.versions.map((version) => ({
      version: version.version,
      createdAt: version.createdAt.toISOString(),
    })),
  };
}
