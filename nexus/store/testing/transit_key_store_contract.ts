/**
 * The TransitKeyStore contract as a reusable node:test suite, run on SQLite
 * (file and memory) and PostgreSQL: create, read, list, rotate, configure,
 * delete and use a key, the material lent and wiped, the rows as stored
 * (sealed, bound to their place, with the keyring term that sealed them),
 * and a sealed Nexus.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AEAD_OVERHEAD_BYTES } from '../../../shared/crypto/aead.ts';
import { randomBytes } from '../../../shared/crypto/bytes.ts';
import {
  ConflictError,
  DecryptionFailedError,
  InvalidRequestError,
  NotFoundError,
  NotReadyError,
} from '../../../shared/errors/errors.ts';
import { KEY_MATERIAL_BYTES } from '../_transit_rows.ts';
import type { KeyringAccess } from '../secret_store.ts';
import type { TransitKeyStore } from '../transit_key_store.ts';

/** The term the fixture's keyring lends: not 1, so that a store writing 1 regardless is caught. */
const FIXTURE_TERM = 3;

export interface TransitContractOptions {
  readonly keyring: KeyringAccess;
  readonly now: () => number;
}

/** A version row as stored. */
export interface StoredKeyVersion {
  readonly version: number;
  readonly keyringTerm: number;
  readonly sealedMaterial: Uint8Array;
}

export interface TransitKeyStoreFixture {
  readonly store: TransitKeyStore;
  /** Another store on the same data (another connection where the backend has them). */
  connect(): Promise<TransitKeyStore>;
  /** The version rows of `name` as stored, ascending. */
  storedVersions(name: string): Promise<StoredKeyVersion[]>;
  /** Writes `sealed` into the row of `version` of `name`, as someone with database access could. */
  overwriteMaterial(name: string, version: number, sealed: Uint8Array): Promise<void>;
  dispose(): Promise<void>;
}

export type MakeTransitKeyStore = (
  options: TransitContractOptions,
) => Promise<TransitKeyStoreFixture>;

/** The material of each version asked for, copied out of the loan. */
async function materialOf(
  store: TransitKeyStore,
  name: string,
  versions: readonly number[],
): Promise<Map<number, Uint8Array | undefined>> {
  return store.useKey(name, versions, (key) => {
    const copies = new Map<number, Uint8Array | undefined>();
    for (const version of [key.latestVersion, ...versions]) {
      const material = key.material(version);
      copies.set(version, material === undefined ? undefined : material.slice());
    }
    return copies;
  });
}

export function runTransitKeyStoreContract(backend: string, make: MakeTransitKeyStore): void {
  describe(`TransitKeyStore contract: ${backend}`, () => {
    let clock = 1_800_000_000_000;
    const base = (): TransitContractOptions => {
      const key = randomBytes(32);
      return { keyring: (use) => use(key, FIXTURE_TERM), now: () => clock };
    };

    async function withStore(
      body: (fixture: TransitKeyStoreFixture) => Promise<void>,
      options: TransitContractOptions = base(),
    ): Promise<void> {
      const fixture = await make(options);
      try {
        await body(fixture);
      } finally {
        await fixture.dispose();
      }
    }

    test('create makes version 1; a second create of the name is a conflict', () =>
      withStore(async ({ store }) => {
        clock += 1000;
        const created = await store.create('orders');
        assert.equal(created.name, 'orders');
        assert.equal(created.latestVersion, 1);
        assert.equal(created.minDecryptionVersion, 1);
        assert.deepEqual(created.versions, [{ version: 1, createdAt: new Date(clock) }]);
        assert.deepEqual(created.createdAt, new Date(clock));
        await assert.rejects(store.create('orders'), ConflictError);
        assert.deepEqual(await store.get('orders'), created);
      }));

    test('a key that does not exist is not found by every method', () =>
      withStore(async ({ store }) => {
        await assert.rejects(store.get('nope'), NotFoundError);
        await assert.rejects(store.rotate('nope'), NotFoundError);
        await assert.rejects(store.configure('nope', { minDecryptionVersion: 1 }), NotFoundError);
        await assert.rejects(store.delete('nope'), NotFoundError);
        await assert.rejects(
          store.useKey('nope', [], () => 1),
          NotFoundError,
        );
      }));

    test('names are checked as the wire checks them', () =>
      withStore(async ({ store }) => {
        for (const name of ['', '.', '..', 'a/b', 'a b', 'x'.repeat(65)]) {
          await assert.rejects(store.create(name), InvalidRequestError, name);
          await assert.rejects(store.get(name), InvalidRequestError, name);
        }
      }));

    test('rotation adds versions of new material; older versions keep theirs', () =>
      withStore(async ({ store }) => {
        await store.create('k');
        const first = await materialOf(store, 'k', []);
        clock += 1000;
        const rotated = await store.rotate('k');
        assert.equal(rotated.latestVersion, 2);
        assert.deepEqual(rotated.updatedAt, new Date(clock));
        const third = await store.rotate('k');
        assert.deepEqual(
          third.versions.map((v) => v.version),
          [1, 2, 3],
        );
        const all = await materialOf(store, 'k', [1, 2, 3]);
        assert.deepEqual(all.get(1), first.get(1));
        const distinct = new Set(
          [1, 2, 3].map((v) => Buffer.from(all.get(v) ?? []).toString('hex')),
        );
        assert.equal(distinct.size, 3);
        for (const version of [1, 2, 3]) {
          assert.equal(all.get(version)?.length, KEY_MATERIAL_BYTES);
        }
      }));

    test('useKey lends the latest and the versions asked for, and wipes them after', () =>
      withStore(async ({ store }) => {
        await store.create('k');
        await store.rotate('k');
        await store.rotate('k');
        let kept: Uint8Array[] = [];
        const seen = await store.useKey('k', [1, 1, 7], (key) => {
          assert.equal(key.name, 'k');
          assert.equal(key.latestVersion, 3);
          assert.equal(key.minDecryptionVersion, 1);
          kept = [key.material(3), key.material(1)].filter((m) => m !== undefined);
          return [1, 2, 3, 7].map((version) => key.material(version) !== undefined);
        });
        // The latest and version 1 were asked for; 2 was not, and 7 does not exist.
        assert.deepEqual(seen, [true, false, true, false]);
        assert.equal(kept.length, 2);
        for (const material of kept) {
          assert.ok(
            material.every((byte) => byte === 0),
            'wiped after use',
          );
        }
      }));

    test('useKey wipes the material when its callback throws, and refuses an async callback', () =>
      withStore(async ({ store }) => {
        await store.create('k');
        let kept: Uint8Array | undefined;
        await assert.rejects(
          store.useKey('k', [], (key) => {
            kept = key.material(1);
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.ok(kept?.every((byte) => byte === 0));
        await assert.rejects(
          store.useKey('k', [], async () => 1),
          TypeError,
        );
      }));

    test('the minimum decryption version names a version the key has, and may go back down', () =>
      withStore(async ({ store }) => {
        await store.create('k');
        await store.rotate('k');
        await store.rotate('k');
        const raised = await store.configure('k', { minDecryptionVersion: 3 });
        assert.equal(raised.minDecryptionVersion, 3);
        for (const bad of [0, 4, 1.5, -1]) {
          await assert.rejects(
            store.configure('k', { minDecryptionVersion: bad }),
            InvalidRequestError,
            String(bad),
          );
        }
        assert.equal((await store.get('k')).minDecryptionVersion, 3);
        // Older versions are kept: lowering the minimum again makes them usable.
        assert.equal(
          (await store.configure('k', { minDecryptionVersion: 1 })).minDecryptionVersion,
          1,
        );
        const all = await materialOf(store, 'k', [1]);
        assert.equal(all.get(1)?.length, KEY_MATERIAL_BYTES);
        assert.equal(await store.useKey('k', [1], (key) => key.minDecryptionVersion), 1);
      }));

    test('delete removes the key and its versions; a new key of the name has new material', () =>
      withStore(async (fixture) => {
        const { store } = fixture;
        await store.create('k');
        await store.rotate('k');
        const old = await materialOf(store, 'k', [1]);
        await store.delete('k');
        await assert.rejects(store.get('k'), NotFoundError);
        assert.deepEqual(await fixture.storedVersions('k'), []);
        await assert.rejects(store.delete('k'), NotFoundError);
        const again = await store.create('k');
        assert.equal(again.latestVersion, 1);
        const fresh = await materialOf(store, 'k', [1]);
        assert.notDeepEqual(fresh.get(1), old.get(1));
      }));

    test('list gives every name in byte order', () =>
      withStore(async ({ store }) => {
        assert.deepEqual(await store.list(), []);
        for (const name of ['b', 'B', 'a-1', 'a.1', 'a_1', 'Z']) await store.create(name);
        assert.deepEqual(await store.list(), ['B', 'Z', 'a-1', 'a.1', 'a_1', 'b']);
      }));

    test('material is stored sealed, with the keyring term that sealed it', () =>
      withStore(async (fixture) => {
        await fixture.store.create('k');
        await fixture.store.rotate('k');
        const lent = await materialOf(fixture.store, 'k', [1, 2]);
        const rows = await fixture.storedVersions('k');
        assert.deepEqual(
          rows.map((row) => [row.version, row.keyringTerm]),
          [
            [1, FIXTURE_TERM],
            [2, FIXTURE_TERM],
          ],
        );
        for (const row of rows) {
          assert.equal(row.sealedMaterial.length, KEY_MATERIAL_BYTES + AEAD_OVERHEAD_BYTES);
          const plain = Buffer.from(lent.get(row.version) ?? []);
          assert.equal(Buffer.from(row.sealedMaterial).indexOf(plain), -1);
        }
      }));

    test('material moved to another version or key fails to open (DecryptionFailedError)', () =>
      withStore(async (fixture) => {
        const { store } = fixture;
        await store.create('a');
        await store.rotate('a');
        await store.create('b');
        const [one, two] = await fixture.storedVersions('a');
        assert.ok(one !== undefined && two !== undefined);
        await fixture.overwriteMaterial('a', 2, one.sealedMaterial);
        await assert.rejects(
          store.useKey('a', [], () => 1),
          DecryptionFailedError,
        );
        await fixture.overwriteMaterial('b', 1, one.sealedMaterial);
        await assert.rejects(
          store.useKey('b', [], () => 1),
          DecryptionFailedError,
        );
        // Putting the row back restores the key.
        await fixture.overwriteMaterial('a', 2, two.sealedMaterial);
        assert.equal((await materialOf(store, 'a', [1])).get(1)?.length, KEY_MATERIAL_BYTES);
      }));

    test('material sealed under another keyring fails to open', async () => {
      const fixture = await make(base());
      try {
        await fixture.store.create('k');
        const [row] = await fixture.storedVersions('k');
        assert.ok(row !== undefined);
        const other = await make(base());
        try {
          await other.store.create('k');
          await other.overwriteMaterial('k', 1, row.sealedMaterial);
          await assert.rejects(
            other.store.useKey('k', [], () => 1),
            DecryptionFailedError,
          );
        } finally {
          await other.dispose();
        }
      } finally {
        await fixture.dispose();
      }
    });

    test('concurrent rotations through two connections never claim the same version', () =>
      withStore(async (fixture) => {
        await fixture.store.create('k');
        const second = await fixture.connect();
        await Promise.all(
          Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? fixture.store : second).rotate('k')),
        );
        const info = await fixture.store.get('k');
        assert.equal(info.latestVersion, 7);
        assert.deepEqual(
          (await fixture.storedVersions('k')).map((row) => row.version),
          [1, 2, 3, 4, 5, 6, 7],
        );
        const all = await materialOf(second, 'k', [1, 2, 3, 4, 5, 6]);
        assert.equal(
          new Set([...all.values()].map((m) => Buffer.from(m ?? []).toString('hex'))).size,
          7,
        );
      }));

    test('while sealed, every method refuses with NotReadyError before touching anything', async () => {
      let sealed = false;
      const key = randomBytes(32);
      const keyring: KeyringAccess = (use) => {
        if (sealed) throw new NotReadyError();
        return use(key, 1);
      };
      await withStore(
        async (fixture) => {
          const { store } = fixture;
          await store.create('k');
          sealed = true;
          await assert.rejects(store.create('j'), NotReadyError);
          await assert.rejects(store.get('k'), NotReadyError);
          await assert.rejects(store.list(), NotReadyError);
          await assert.rejects(store.rotate('k'), NotReadyError);
          await assert.rejects(store.configure('k', { minDecryptionVersion: 1 }), NotReadyError);
          await assert.rejects(store.delete('k'), NotReadyError);
          await assert.rejects(
            store.useKey('k', [], () => 1),
            NotReadyError,
          );
          assert.deepEqual(
            (await fixture.storedVersions('k')).map((row) => row.version),
            [1],
          );
          assert.deepEqual(await fixture.storedVersions('j'), []);
        },
        { keyring, now: () => clock },
      );
    });
  });
}
