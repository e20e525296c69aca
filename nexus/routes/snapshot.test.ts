/**
 * The snapshot routes on a real SQLite file, in process: only the superuser
 * may save or restore; a saved answer is a whole snapshot file; any damage
 * to an upload (a cut, a flipped bit, bytes added, garbage) is a specific
 * 400, changes nothing and leaves no scratch file; a whole snapshot that
 * holds no database of this broker is ERR_SNAPSHOT_INVALID.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ShardHolder } from '../../keeper/shard_holder.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import { formatSnapshotHeader } from '../../shared/api/snapshot.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import { createBaseApp } from '../../shared/http/app.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import { fcParameters, injectedPeer, send } from '../../test/harness/hostile.ts';
import { loadPolicyCache } from '../access/policy_cache.ts';
import type { KeeperLink } from '../root_key/keeper_link.ts';
import { RootKey } from '../root_key/root_key.ts';
import { RootKeyManager } from '../root_key/root_key_manager.ts';
import { openStores, type Stores } from '../store/open_stores.ts';
import { createSnapshotRoutes } from './snapshot.ts';

const TD = parseTrustDomain('snapshot.test');
const SUPERUSER = parseSpiffeId('spiffe://snapshot.test/spike/pilot/role/superuser');
const OTHER = parseSpiffeId('spiffe://snapshot.test/apps/web');
const logger = createLogger({ component: 'test', sink: createMemorySink(), level: 'error' });
const dir = mkdtempSync(join(tmpdir(), 'spike-snapshot-routes-'));
const dataDir = join(dir, 'data');

function keeper(name: string): KeeperLink {
  const holder = new ShardHolder({ logger });
  return {
    name,
    putShard: async (shard: Shard) => {
      holder.store(shard);
    },
    listShards: async () => holder.list(),
    generations: async () => holder.generations(),
    prune: async (keepFrom: number) => {
      holder.prune(keepFrom);
    },
  };
}

let stores: Stores;
let manager: RootKeyManager;
let app: ReturnType<typeof createBaseApp>;
let peer: SpiffeId = SUPERUSER;

before(async () => {
  const rootKey = new RootKey();
  stores = await openStores({
    backend: { kind: 'sqlite', dataDir, synchronous: 'normal' },
    keyring: rootKey.withKeyring.bind(rootKey),
    maxVersionsDefault: 10,
  });
  manager = new RootKeyManager({
    store: stores.rootKeys,
    keepers: [keeper('k1'), keeper('k2'), keeper('k3')],
    threshold: 2,
    rootKey,
    logger,
    checkIntervalMs: 60_000,
    recoveryMaxIntervalMs: 1000,
  });
  await manager.step();
  assert.ok(rootKey.isReady);
  await stores.secrets.put(parseSecretPath('app/db'), { password: 'one' });
  const policyCache = await loadPolicyCache({ store: stores.policies, logger });
  app = createBaseApp(
    injectedPeer(() => peer),
    logger,
    {
      largeBodies: new Map([[PATHS.operatorSnapshot, 64 * 1024 * 1024]]),
    },
  );
  app.route(
    '/',
    createSnapshotRoutes({
      trustDomain: TD,
      snapshots: stores.snapshots,
      manager,
      rootKey,
      policyCache,
      logger,
    }),
  );
});

after(async () => {
  manager?.stop();
  await stores?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function save(): Promise<Uint8Array> {
  peer = SUPERUSER;
  const res = await app.request(PATHS.operatorSnapshot, {}, { incoming: {} });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/octet-stream');
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(Number(res.headers.get('content-length')), bytes.byteLength);
  return bytes;
}

function restore(body: Uint8Array, query = '') {
  return send(app, `${PATHS.operatorSnapshot}${query}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body,
  });
}

async function current(): Promise<string> {
  const metadata = await stores.secrets.readMetadata(parseSecretPath('app/db'));
  return `${metadata.currentVersion}:${JSON.stringify((await stores.secrets.get(parseSecretPath('app/db'))).data)}`;
}

const scratchFiles = () => readdirSync(dataDir).filter((name) => name.includes('.snapshot-'));

function snapshotOf(body: Uint8Array): Uint8Array {
  const head = formatSnapshotHeader({
    backend: 'sqlite',
    createdAt: new Date().toISOString(),
    bytes: body.byteLength,
    sha256: createHash('sha256').update(body).digest('hex'),
  });
  return new Uint8Array([...head, ...body]);
}

describe('snapshot routes', () => {
  test('only the superuser may save or restore', async () => {
    peer = OTHER;
    const saved = await app.request(PATHS.operatorSnapshot, {}, { incoming: {} });
    assert.equal(saved.status, 403);
    const restored = await restore(new Uint8Array(10));
    assert.equal(restored.status, 403);
    peer = SUPERUSER;
  });

  test('a save is a whole snapshot file that restores to its state', async () => {
    const file = await save();
    const before = await current();
    await stores.secrets.put(parseSecretPath('app/db'), { password: 'two' });
    const answer = await restore(file);
    assert.equal(answer.status, 200, answer.text);
    const { sameKey, state } = answer.body as { sameKey: boolean; state: string };
    assert.deepEqual({ sameKey, state }, { sameKey: true, state: 'ready' });
    assert.equal(await current(), before);
    assert.deepEqual(scratchFiles(), []);
  });

  test('any damage to an upload is ERR_SNAPSHOT_CORRUPT and changes nothing', async () => {
    const file = await save();
    await stores.secrets.put(parseSecretPath('app/db'), { password: 'after the save' });
    const before = await current();
    const damaged = fc.oneof(
      fc.integer({ min: 0, max: file.byteLength - 1 }).map((cut) => file.slice(0, cut)),
      fc
        .tuple(fc.integer({ min: 0, max: file.byteLength - 1 }), fc.integer({ min: 1, max: 255 }))
        .map(([at, bits]) => {
          const copy = file.slice();
          copy[at] = (copy[at] ?? 0) ^ bits;
          return copy;
        }),
      fc
        .uint8Array({ minLength: 1, maxLength: 64 })
        .map((extra) => new Uint8Array([...file, ...extra])),
      fc.uint8Array({ minLength: 1, maxLength: 256 }),
    );
    await fc.assert(
      fc.asyncProperty(damaged, async (body) => {
        const answer = await restore(body);
        assert.equal(answer.status, 400, answer.text);
        const code = (answer.body as { error: { code: string } }).error.code;
        // A flip inside the header may leave valid JSON that names another
        // length or hash; every outcome is one of the two snapshot errors.
        assert.ok(
          code === 'ERR_SNAPSHOT_CORRUPT' || code === 'ERR_SNAPSHOT_INVALID',
          `${code}: ${answer.text}`,
        );
        assert.equal(await current(), before);
        assert.deepEqual(scratchFiles(), []);
      }),
      fcParameters('snapshot uploads', 60),
    );
  });

  test('a whole snapshot that holds no database of this broker is ERR_SNAPSHOT_INVALID', async () => {
    const before = await current();
    const answer = await restore(snapshotOf(new TextEncoder().encode('SQLite format 3\0 no')));
    assert.equal(answer.status, 400);
    assert.equal((answer.body as { error: { code: string } }).error.code, 'ERR_SNAPSHOT_INVALID');
    assert.equal(await current(), before);
    assert.deepEqual(scratchFiles(), []);
  });
});
