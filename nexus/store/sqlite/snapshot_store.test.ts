/**
 * Snapshots of a SQLite database on real files: a copy is the state at the
 * moment it was made, and a restore brings back exactly that state (secrets,
 * versions, policies, quota counts), empties the cache of sealed rows, and
 * never moves the generation counter back. A file that is not a database of
 * this broker is refused before anything changes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parseSecretPath } from '../../../shared/api/secret_path.ts';
import { SnapshotInvalidError } from '../../../shared/errors/errors.ts';
import { openStores, type Stores } from '../open_stores.ts';
import type { KeyringAccess } from '../secret_store.ts';
import { openSqliteDatabase } from './db.ts';

const dir = mkdtempSync(join(tmpdir(), 'spike-snapshot-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let folders = 0;
const key = new Uint8Array(randomBytes(32));
const keyring: KeyringAccess = (use) => use(key, 1);
const path = (text: string) => parseSecretPath(text);

async function openBroker(): Promise<Stores> {
  const stores = await openStores({
    backend: { kind: 'sqlite', dataDir: join(dir, `data-${++folders}`), synchronous: 'normal' },
    keyring,
    maxVersionsDefault: 10,
  });
  const owner = 'test-owner';
  await stores.rootKeys.tryInitialise({
    sealedKeyring: new Uint8Array(48).fill(7),
    owner,
    deadline: new Date(Date.now() + 60_000),
  });
  await stores.rootKeys.commitGeneration(1, owner, new Uint8Array(48).fill(7));
  return stores;
}

async function state(stores: Stores) {
  const paths = (await stores.secrets.list('', { limit: 100 })).paths;
  const secrets: Record<string, unknown> = {};
  for (const p of paths) {
    const metadata = await stores.secrets.readMetadata(p);
    secrets[p] = {
      current: metadata.currentVersion,
      versions: metadata.versions.map((v) => [v.version, v.deletedAt !== null, v.destroyed]),
      data: (await stores.secrets.get(p).catch(() => undefined))?.data,
    };
  }
  const policies = (await stores.policies.list()).map((p) => [p.name, p.pathPattern]);
  return { secrets, policies };
}

describe('SqliteSnapshots', () => {
  test('save, write more, restore: the state is exactly the snapshot', async () => {
    const stores = await openBroker();
    const snapshots = stores.snapshots;
    assert.ok(snapshots !== undefined);
    try {
      await stores.secrets.put(path('app/db'), { user: 'a', pass: 'one' });
      await stores.secrets.put(path('app/db'), { user: 'a', pass: 'two' });
      await stores.secrets.put(path('app/gone'), { k: 'v' });
      await stores.secrets.softDelete(path('app/gone'));
      await stores.policies.upsert({
        name: 'web',
        spiffeIdPattern: '^spiffe://test/web$',
        pathPattern: '^app/.*$',
        permissions: ['read'],
      });
      const target = await snapshots.scratchFile();
      await snapshots.copyTo(target);
      const saved = await state(stores);

      await stores.secrets.put(path('app/db'), { user: 'a', pass: 'three' });
      await stores.secrets.put(path('app/new'), { k: 'new' });
      await stores.secrets.deletePath(path('app/gone'));
      await stores.policies.delete('web');
      await stores.policies.upsert({
        name: 'other',
        spiffeIdPattern: '^spiffe://test/other$',
        pathPattern: '^other/.*$',
        permissions: ['read'],
      });
      // Read twice so that the cache keeps the newest rows of app/db.
      await stores.secrets.get(path('app/db'));
      await stores.secrets.get(path('app/db'));
      for (let i = 0; i < 5; i++) await stores.rootKeys.allocateGeneration();

      const record = await snapshots.prepare(target);
      assert.equal(record.committedGeneration, 1);
      await snapshots.replaceWith(target);

      assert.deepEqual(await state(stores), saved);
      assert.deepEqual((await stores.secrets.get(path('app/db'))).data, { user: 'a', pass: 'two' });
      // The counter stays where it was: 6, not the snapshot's 1.
      assert.equal((await stores.rootKeys.read())?.lastGeneration, 6);
      // The quota counts came back with the rows: a new path is charged from them.
      await stores.secrets.put(path('app/after'), { k: 'v' });
    } finally {
      await stores.close();
    }
  });

  test('a copy restores into another database (a new data folder)', async () => {
    const source = await openBroker();
    const target = await openStores({
      backend: { kind: 'sqlite', dataDir: join(dir, `data-${++folders}`), synchronous: 'normal' },
      keyring,
      maxVersionsDefault: 10,
    });
    try {
      await source.secrets.put(path('app/x'), { a: 'b' });
      const file = (await source.snapshots?.scratchFile()) as string;
      await source.snapshots?.copyTo(file);
      assert.equal(await target.rootKeys.read(), undefined);
      const record = await target.snapshots?.prepare(file);
      assert.deepEqual(record?.sealedKeyring, new Uint8Array(48).fill(7));
      await target.snapshots?.replaceWith(file);
      assert.deepEqual((await target.secrets.get(path('app/x'))).data, { a: 'b' });
      assert.equal((await target.rootKeys.read())?.committedGeneration, 1);
    } finally {
      await source.close();
      await target.close();
    }
  });

  test('a file that is not a database of this broker is refused by prepare()', async () => {
    const stores = await openBroker();
    const snapshots = stores.snapshots;
    assert.ok(snapshots !== undefined);
    try {
      const garbage = join(dir, 'garbage.db');
      writeFileSync(garbage, 'not a database at all', { mode: 0o600 });
      await assert.rejects(snapshots.prepare(garbage), SnapshotInvalidError);

      const empty = await openSqliteDatabase({ path: join(dir, 'uninitialised.db') });
      await empty.close();
      await assert.rejects(snapshots.prepare(join(dir, 'uninitialised.db')), /never initialised/);

      const newer = await snapshots.scratchFile();
      await snapshots.copyTo(newer);
      const database = await openSqliteDatabase({ path: newer });
      database.alone((c) =>
        c.run('INSERT INTO __drizzle_migrations (hash, created_at) VALUES (?, ?)', ['x', 9e15]),
      );
      await database.close();
      await assert.rejects(snapshots.prepare(newer), /restore it with a newer Nexus/);
    } finally {
      await stores.close();
    }
  });

  test('scratch files are private, removed with what SQLite left, and swept at the next open', async () => {
    const stores = await openBroker();
    const snapshots = stores.snapshots;
    assert.ok(snapshots !== undefined);
    const folder = join(dir, `data-${folders}`);
    let kept: string;
    try {
      const file = await snapshots.scratchFile();
      assert.equal(statSync(file).mode & 0o777, 0o600);
      await snapshots.copyTo(file);
      await snapshots.prepare(file);
      await snapshots.removeScratch(file);
      assert.equal(existsSync(file), false);
      await assert.rejects(snapshots.removeScratch(join(folder, 'spike.db')), /not a scratch file/);
      kept = await snapshots.scratchFile();
    } finally {
      await stores.close();
    }
    const reopened = await openStores({
      backend: { kind: 'sqlite', dataDir: folder, synchronous: 'normal' },
      keyring,
      maxVersionsDefault: 10,
    });
    try {
      assert.equal(existsSync(kept), false, 'swept when the store opened');
      assert.ok(existsSync(join(folder, 'spike.db')));
    } finally {
      await reopened.close();
    }
  });
});
