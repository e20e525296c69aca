/**
 * The SecretStore contract as a reusable node:test suite: every backend
 * (SQLite file, memory, PostgreSQL later) runs `runSecretStoreContract` with
 * a factory, and must pass all of it. Only behaviour seen through the
 * interface is checked here, plus the rows a backend physically keeps
 * (`storedVersions`), so pruning is proven by the table, not by the metadata.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSecretPath, type SecretPath } from '../../../shared/api/secret_path.ts';
import {
  MAX_CUSTOM_METADATA_KEY_LENGTH,
  MAX_CUSTOM_METADATA_KEYS,
  MAX_CUSTOM_METADATA_VALUE_LENGTH,
  MAX_DATA_KEYS,
  MAX_KEPT_VERSIONS,
  MAX_KEY_LENGTH,
  MAX_LIST_LIMIT,
  MAX_SECRET_DATA_BYTES,
  MAX_VERSIONS_PER_REQUEST,
} from '../../../shared/api/secrets.ts';
import { AEAD_OVERHEAD_BYTES } from '../../../shared/crypto/aead.ts';
import { randomBytes } from '../../../shared/crypto/bytes.ts';
import {
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  NotReadyError,
  QuotaExceededError,
} from '../../../shared/errors/errors.ts';
import { SecretChanges } from '../secret_changes.ts';
import { serializeMap } from '../secret_cipher.ts';
import {
  DEFAULT_SECRET_QUOTAS,
  namespaceOf,
  type QuotaUsage,
  ROW_CHARGE_BYTES,
  type SecretQuota,
  type SecretQuotas,
} from '../secret_quotas.ts';
import type { KeyringAccess, SecretData, SecretMetadata, SecretStore } from '../secret_store.ts';

export interface ContractStoreOptions {
  readonly keyring: KeyringAccess;
  readonly maxVersionsDefault: number;
  readonly quotas: SecretQuotas;
  readonly now: () => number;
  /** Where the store tells of the paths it changed (every store of the fixture shares it). */
  readonly changes: SecretChanges;
}

export interface SecretStoreFixture {
  readonly store: SecretStore;
  /** Another store on the same data (another connection where the backend has them). */
  connect(): Promise<SecretStore>;
  /** The version numbers of the rows physically stored for `path`, ascending. */
  storedVersions(path: SecretPath): Promise<number[]>;
  /**
   * A namespace's counter row (zeros when it has none) and the same figures
   * recounted from the rows themselves (`recountUsage`).
   */
  quotaUsage(
    namespace: string,
  ): Promise<{ readonly counted: QuotaUsage; readonly recounted: QuotaUsage }>;
  /** Closes every store and connection the fixture opened. */
  dispose(): Promise<void>;
}

export type MakeSecretStore = (options: ContractStoreOptions) => Promise<SecretStoreFixture>;

/**
 * What `namespace` holds, counted in JS from every row of `secret_metadata`
 * and `secrets` (as a fixture reads them), by the rule of `secret_quotas.ts`:
 * each row is charged ROW_CHARGE_BYTES, its path and its sealed bytes.
 */
export function recountUsage(
  namespace: string,
  metadataRows: readonly { readonly path: string; readonly customMetadata: Uint8Array | null }[],
  versionRows: readonly { readonly path: string; readonly ciphertext: Uint8Array | null }[],
): QuotaUsage {
  const inside = (path: string) => namespaceOf(path as SecretPath) === namespace;
  let paths = 0;
  let bytes = 0;
  for (const row of metadataRows.filter((row) => inside(row.path))) {
    paths += 1;
    bytes += ROW_CHARGE_BYTES + row.path.length + (row.customMetadata?.length ?? 0);
  }
  for (const row of versionRows.filter((row) => inside(row.path))) {
    bytes += ROW_CHARGE_BYTES + row.path.length + (row.ciphertext?.length ?? 0);
  }
  return { paths, bytes };
}

/**
 * Writes a history that touches every kind of charge (new paths, versions the
 * cap prunes, custom metadata, destroyed versions, a deleted path, a path that
 * is its own namespace) into a store whose default cap is 2; returns the
 * namespaces it wrote to. For the tests of the migration that counts what an
 * existing database holds.
 */
export async function writeQuotaHistory(store: SecretStore): Promise<readonly string[]> {
  const a = parseSecretPath('history/a');
  const b = parseSecretPath('history/b/c');
  const gone = parseSecretPath('history/gone');
  const alone = parseSecretPath('alone');
  for (let i = 1; i <= 4; i++) await store.put(a, { i: String(i).repeat(i * 10) });
  await store.writeMetadata(a, { customMetadata: { owner: 'team-a' } });
  await store.put(b, { b: 'b' });
  await store.put(b, { b: 'bb' });
  await store.destroy(b, [1]);
  await store.softDelete(b);
  await store.put(gone, { g: 'g' });
  await store.deletePath(gone);
  await store.put(alone, { x: 'y' });
  return ['history', 'alone'];
}

/** The sealed size of a data map: its serialised JSON and the AEAD's nonce, tag and header. */
function sealedSize(data: SecretData): number {
  return serializeMap(data).length + AEAD_OVERHEAD_BYTES;
}

/** What one more version of `path` holding `data` is charged. */
function versionCharge(path: SecretPath, data: SecretData): number {
  return ROW_CHARGE_BYTES + path.length + sealedSize(data);
}

/** What a new path with one version holding `data` is charged (its metadata row too). */
function newPathCharge(path: SecretPath, data: SecretData): number {
  return ROW_CHARGE_BYTES + path.length + versionCharge(path, data);
}

function quotasOf(
  paths: number | null,
  bytes: number | null,
  namespaces: Readonly<Record<string, SecretQuota>> = {},
): SecretQuotas {
  return { default: { paths, bytes }, namespaces: new Map(Object.entries(namespaces)) };
}

const T0 = Date.UTC(2026, 0, 1);
const DEFAULT_CAP = 5;

/** One test's world: a store, its clock and its seal switch. */
interface World {
  readonly fixture: SecretStoreFixture;
  readonly store: SecretStore;
  /** Moves the clock forward and returns the new time. */
  tick(ms?: number): number;
  readonly nowMs: () => number;
  /** The changes the store tells of. */
  readonly changes: SecretChanges;
  seal(): void;
  unseal(): void;
}

const p = (text: string): SecretPath => parseSecretPath(text);

function isError(type: new (...args: never[]) => Error, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  };
}

export function runSecretStoreContract(name: string, makeStore: MakeSecretStore): void {
  async function withWorld(
    body: (world: World) => Promise<void>,
    maxVersionsDefault = DEFAULT_CAP,
    quotas = DEFAULT_SECRET_QUOTAS,
  ): Promise<void> {
    const key = randomBytes(32);
    let isSealed = false;
    let nowMs = T0;
    const keyring: KeyringAccess = (use) => {
      if (isSealed) throw new NotReadyError();
      return use(key, 1);
    };
    const changes = new SecretChanges();
    const fixture = await makeStore({
      keyring,
      maxVersionsDefault,
      quotas,
      now: () => nowMs,
      changes,
    });
    try {
      await body({
        fixture,
        store: fixture.store,
        changes,
        tick(ms = 1000) {
          nowMs += ms;
          return nowMs;
        },
        nowMs: () => nowMs,
        seal() {
          isSealed = true;
        },
        unseal() {
          isSealed = false;
        },
      });
    } finally {
      await fixture.dispose();
    }
  }

  /** Writes `count` versions of `path`, each `{ n: "<version>" }`, one second apart. */
  async function fill(world: World, path: SecretPath, count: number): Promise<SecretMetadata> {
    let metadata: SecretMetadata | undefined;
    for (let i = 0; i < count; i++) {
      world.tick();
      const next = (metadata?.currentVersion ?? 0) + 1;
      metadata = await world.store.put(path, { n: String(next) });
    }
    assert.ok(metadata !== undefined);
    return metadata;
  }

  /** The namespace's counter equals a recount of the rows (and `expected`, if given). */
  async function assertUsage(world: World, namespace: string, expected?: QuotaUsage) {
    const { counted, recounted } = await world.fixture.quotaUsage(namespace);
    assert.deepEqual(counted, recounted, `the counter of "${namespace}" drifted from its rows`);
    if (expected !== undefined) assert.deepEqual(counted, expected);
  }

  describe(`SecretStore contract: ${name}`, () => {
    describe('put and get', () => {
      test('the first put creates version 1 and the metadata', () =>
        withWorld(async (world) => {
          const path = p('app/db/creds');
          const metadata = await world.store.put(path, { user: 'u', password: 'pw' });
          assert.deepEqual(metadata, {
            path,
            createdAt: new Date(T0),
            updatedAt: new Date(T0),
            currentVersion: 1,
            oldestVersion: 1,
            maxVersions: DEFAULT_CAP,
            maxVersionsOverride: null,
            versions: [{ version: 1, createdAt: new Date(T0), deletedAt: null, destroyed: false }],
            customMetadata: {},
          });
          const read = await world.store.get(path);
          assert.deepEqual(
            { path: read.path, version: read.version, data: read.data, createdAt: read.createdAt },
            { path, version: 1, data: { user: 'u', password: 'pw' }, createdAt: new Date(T0) },
          );
          // What a read answers: the data as sealed, keys in code-unit order.
          assert.equal(read.dataJson, '{"password":"pw","user":"u"}');
        }));

      test('each put adds a version; get reads the current one or a given one', () =>
        withWorld(async (world) => {
          const path = p('app/x');
          await world.store.put(path, { v: 'one' });
          const t1 = world.tick();
          const metadata = await world.store.put(path, { v: 'two' });
          assert.equal(metadata.currentVersion, 2);
          assert.deepEqual(metadata.createdAt, new Date(T0));
          assert.deepEqual(metadata.updatedAt, new Date(t1));
          assert.deepEqual((await world.store.get(path)).data, { v: 'two' });
          assert.deepEqual((await world.store.get(path, 0)).data, { v: 'two' });
          const first = await world.store.get(path, 1);
          assert.equal(first.version, 1);
          assert.deepEqual(first.data, { v: 'one' });
          assert.deepEqual(first.createdAt, new Date(T0));
        }));

      test('an empty map, many keys and any Unicode round-trip exactly', () =>
        withWorld(async (world) => {
          await world.store.put(p('a/empty'), {});
          assert.deepEqual({ ...(await world.store.get(p('a/empty'))).data }, {});
          const data: Record<string, string> = { 'ünï 🔑': 'välüe 🗝️\n\t"quoted"\\\u0000' };
          for (let i = 0; i < 50; i++) data[`k${i}`] = `v${i}`;
          Object.defineProperty(data, '__proto__', { value: 'plain key', enumerable: true });
          await world.store.put(p('a/full'), data);
          const read = await world.store.get(p('a/full'));
          assert.deepEqual({ ...read.data }, { ...data });
        }));

      test('what put and get return is frozen and detached from the caller', () =>
        withWorld(async (world) => {
          const path = p('a/b');
          const data: Record<string, string> = { k: 'v' };
          const metadata = await world.store.put(path, data);
          data.k = 'changed';
          const read = await world.store.get(path);
          assert.deepEqual(read.data, { k: 'v' });
          assert.ok(Object.isFrozen(read));
          assert.ok(Object.isFrozen(read.data));
          assert.ok(Object.isFrozen(metadata));
          assert.ok(Object.isFrozen(metadata.versions));
        }));

      test('a missing path or version is not found', () =>
        withWorld(async (world) => {
          await assert.rejects(world.store.get(p('no/such')), isError(NotFoundError, /No secret/));
          await world.store.put(p('a/b'), { k: 'v' });
          await assert.rejects(
            world.store.get(p('a/b'), 2),
            isError(NotFoundError, /Version 2 .* does not exist/),
          );
          await assert.rejects(world.store.get(p('a')), isError(NotFoundError));
        }));

      test('a bad version number is an invalid request', () =>
        withWorld(async (world) => {
          await world.store.put(p('a/b'), { k: 'v' });
          for (const version of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
            await assert.rejects(world.store.get(p('a/b'), version), isError(InvalidRequestError));
          }
        }));
    });

    describe('check-and-set', () => {
      test('cas 0 creates only a new path', () =>
        withWorld(async (world) => {
          const path = p('cas/new');
          assert.equal((await world.store.put(path, { a: '1' }, { cas: 0 })).currentVersion, 1);
          await assert.rejects(
            world.store.put(path, { a: '2' }, { cas: 0 }),
            isError(ConflictError, /does not exist/),
          );
          assert.deepEqual((await world.store.get(path)).data, { a: '1' });
        }));

      test('a mismatch writes nothing; a match writes', () =>
        withWorld(async (world) => {
          const path = p('cas/x');
          await fill(world, path, 2);
          const before = await world.store.readMetadata(path);
          world.tick();
          for (const cas of [1, 3, 7]) {
            await assert.rejects(
              world.store.put(path, { a: 'x' }, { cas }),
              isError(ConflictError, /current version is 2/),
            );
          }
          assert.deepEqual(await world.store.readMetadata(path), before);
          assert.deepEqual(await world.fixture.storedVersions(path), [1, 2]);
          assert.equal((await world.store.put(path, { a: 'y' }, { cas: 2 })).currentVersion, 3);
        }));

      test('a non-zero cas on a missing path conflicts', () =>
        withWorld(async (world) => {
          await assert.rejects(
            world.store.put(p('cas/none'), { a: '1' }, { cas: 1 }),
            isError(ConflictError),
          );
          await assert.rejects(world.store.readMetadata(p('cas/none')), isError(NotFoundError));
        }));

      test('a soft-deleted current version still needs cas equal to it', () =>
        withWorld(async (world) => {
          const path = p('cas/deleted');
          await fill(world, path, 2);
          await world.store.softDelete(path);
          await assert.rejects(world.store.put(path, { a: '1' }, { cas: 0 }), ConflictError);
          await assert.rejects(world.store.put(path, { a: '1' }, { cas: 1 }), ConflictError);
          assert.equal((await world.store.put(path, { a: '1' }, { cas: 2 })).currentVersion, 3);
        }));

      test('of many writers with the same cas exactly one wins', () =>
        withWorld(async (world) => {
          const path = p('cas/race');
          await fill(world, path, 1);
          const other = await world.fixture.connect();
          const writers = Array.from({ length: 12 }, (_, i) =>
            (i % 2 === 0 ? world.store : other).put(path, { writer: String(i) }, { cas: 1 }),
          );
          const results = await Promise.allSettled(writers);
          const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
          assert.equal(winners.length, 1);
          for (const result of results) {
            if (result.status === 'rejected') assert.ok(result.reason instanceof ConflictError);
          }
          const current = await world.store.get(path);
          assert.equal(current.version, 2);
          assert.deepEqual(current.data, { writer: String(winners[0]) });
          assert.deepEqual(await world.fixture.storedVersions(path), [1, 2]);
        }));

      test('of many writers creating a path with cas 0 exactly one wins', () =>
        withWorld(async (world) => {
          const path = p('cas/create-race');
          const other = await world.fixture.connect();
          const results = await Promise.allSettled(
            Array.from({ length: 10 }, (_, i) =>
              (i % 2 === 0 ? world.store : other).put(path, { writer: String(i) }, { cas: 0 }),
            ),
          );
          assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
          assert.equal((await world.store.readMetadata(path)).currentVersion, 1);
        }));

      test('concurrent writers without cas never lose an update', () =>
        withWorld(async (world) => {
          const path = p('race/free');
          const other = await world.fixture.connect();
          const count = 24;
          const results = await Promise.all(
            Array.from({ length: count }, (_, i) =>
              (i % 2 === 0 ? world.store : other).put(path, { writer: String(i) }),
            ),
          );
          const versions = results.map((m) => m.versions.at(-1)?.version);
          assert.equal(new Set(versions).size, count);
          const metadata = await world.store.readMetadata(path);
          assert.equal(metadata.currentVersion, count);
          const writers = new Set<string>();
          for (let version = 1; version <= count; version++) {
            writers.add((await world.store.get(path, version)).data.writer as string);
          }
          assert.equal(writers.size, count);
        }, 100));
    });

    describe('version cap', () => {
      test('the oldest versions are removed from storage beyond the default cap', () =>
        withWorld(async (world) => {
          const path = p('cap/default');
          const metadata = await fill(world, path, DEFAULT_CAP + 3);
          assert.equal(metadata.currentVersion, 8);
          assert.equal(metadata.oldestVersion, 4);
          assert.deepEqual(
            metadata.versions.map((v) => v.version),
            [4, 5, 6, 7, 8],
          );
          assert.deepEqual(await world.fixture.storedVersions(path), [4, 5, 6, 7, 8]);
          await assert.rejects(
            world.store.get(path, 3),
            isError(NotFoundError, /removed: only the newest 5/),
          );
          assert.deepEqual((await world.store.get(path, 4)).data, { n: '4' });
        }));

      test('deleted and destroyed versions count and are pruned too', () =>
        withWorld(async (world) => {
          const path = p('cap/deleted');
          await fill(world, path, 3);
          await world.store.softDelete(path, [1]);
          await world.store.destroy(path, [2]);
          await fill(world, path, 3);
          assert.deepEqual(await world.fixture.storedVersions(path), [2, 3, 4, 5, 6]);
          await world.store.put(path, { n: '7' });
          assert.deepEqual(await world.fixture.storedVersions(path), [3, 4, 5, 6, 7]);
        }));

      test('a per-path cap overrides the default, and lowering it prunes at once', () =>
        withWorld(async (world) => {
          const path = p('cap/override');
          await fill(world, path, 4);
          let metadata = await world.store.writeMetadata(path, { maxVersions: 8 });
          assert.equal(metadata.maxVersions, 8);
          assert.equal(metadata.maxVersionsOverride, 8);
          metadata = await fill(world, path, 5);
          assert.equal(metadata.currentVersion, 9);
          assert.deepEqual(await world.fixture.storedVersions(path), [2, 3, 4, 5, 6, 7, 8, 9]);
          metadata = await world.store.writeMetadata(path, { maxVersions: 2 });
          assert.equal(metadata.oldestVersion, 8);
          assert.equal(metadata.currentVersion, 9);
          assert.deepEqual(
            metadata.versions.map((v) => v.version),
            [8, 9],
          );
          assert.deepEqual(await world.fixture.storedVersions(path), [8, 9]);
          // Removing the override restores the default (5): nothing to prune.
          metadata = await world.store.writeMetadata(path, { maxVersions: null });
          assert.equal(metadata.maxVersions, DEFAULT_CAP);
          assert.equal(metadata.maxVersionsOverride, null);
          await fill(world, path, 4);
          assert.deepEqual(await world.fixture.storedVersions(path), [9, 10, 11, 12, 13]);
        }));

      test('a cap of 1 keeps only the current version', () =>
        withWorld(async (world) => {
          const path = p('cap/one');
          await world.store.put(path, { n: '1' });
          await world.store.writeMetadata(path, { maxVersions: 1 });
          await fill(world, path, 3);
          assert.deepEqual(await world.fixture.storedVersions(path), [4]);
          assert.equal((await world.store.readMetadata(path)).oldestVersion, 4);
        }));

      test('a cap outside 1..MAX_KEPT_VERSIONS is an invalid request', () =>
        withWorld(async (world) => {
          const path = p('cap/bad');
          await world.store.put(path, { n: '1' });
          const top = await world.store.writeMetadata(path, { maxVersions: MAX_KEPT_VERSIONS });
          assert.equal(top.maxVersions, MAX_KEPT_VERSIONS);
          for (const maxVersions of [0, -1, MAX_KEPT_VERSIONS + 1, 2.5]) {
            await assert.rejects(
              world.store.writeMetadata(path, { maxVersions }),
              isError(InvalidRequestError),
            );
          }
        }));
    });

    describe('soft delete, undelete, destroy', () => {
      test('soft delete defaults to the current version; older ones stay readable', () =>
        withWorld(async (world) => {
          const path = p('del/default');
          await fill(world, path, 3);
          const at = world.tick();
          const metadata = await world.store.softDelete(path);
          assert.equal(metadata.currentVersion, 3);
          assert.deepEqual(metadata.versions[2]?.deletedAt, new Date(at));
          assert.equal(metadata.versions[1]?.deletedAt, null);
          assert.deepEqual(metadata.updatedAt, new Date(at));
          await assert.rejects(world.store.get(path), isError(NotFoundError, /is deleted/));
          await assert.rejects(world.store.get(path, 3), isError(NotFoundError, /is deleted/));
          assert.deepEqual((await world.store.get(path, 2)).data, { n: '2' });
          assert.deepEqual(await world.fixture.storedVersions(path), [1, 2, 3]);
        }));

      test('undelete defaults to the current version and makes it readable again', () =>
        withWorld(async (world) => {
          const path = p('del/undelete-default');
          await fill(world, path, 2);
          await world.store.softDelete(path);
          const metadata = await world.store.undelete(path);
          assert.equal(metadata.versions[1]?.deletedAt, null);
          assert.deepEqual((await world.store.get(path)).data, { n: '2' });
          // An empty list means the default too.
          await world.store.softDelete(path, []);
          await assert.rejects(world.store.get(path), NotFoundError);
          await world.store.undelete(path, []);
          assert.deepEqual((await world.store.get(path)).data, { n: '2' });
        }));

      test('given versions are deleted and undeleted; 0 means current', () =>
        withWorld(async (world) => {
          const path = p('del/given');
          await fill(world, path, 4);
          const t1 = world.tick();
          let metadata = await world.store.softDelete(path, [1, 3, 0, 3]);
          assert.deepEqual(
            metadata.versions.map((v) => v.deletedAt?.getTime() ?? null),
            [t1, null, t1, t1],
          );
          // Deleting again keeps the first deletion time.
          world.tick();
          metadata = await world.store.softDelete(path, [1, 2]);
          assert.deepEqual(
            metadata.versions.map((v) => v.deletedAt?.getTime() ?? null),
            [t1, metadata.updatedAt.getTime(), t1, t1],
          );
          metadata = await world.store.undelete(path, [1, 4]);
          assert.deepEqual(
            metadata.versions.map((v) => v.deletedAt === null),
            [true, false, false, true],
          );
          assert.deepEqual((await world.store.get(path)).data, { n: '4' });
          assert.deepEqual((await world.store.get(path, 1)).data, { n: '1' });
        }));

      test('undeleting a version that is not deleted changes nothing', () =>
        withWorld(async (world) => {
          const path = p('del/noop');
          await fill(world, path, 2);
          const before = await world.store.readMetadata(path);
          world.tick();
          assert.deepEqual(await world.store.undelete(path), before);
          assert.deepEqual(await world.store.undelete(path, [1, 2]), before);
        }));

      test('destroy removes the data for good; the version number stays', () =>
        withWorld(async (world) => {
          const path = p('del/destroy');
          await fill(world, path, 3);
          await world.store.softDelete(path, [2]);
          const metadata = await world.store.destroy(path, [2, 3]);
          assert.deepEqual(
            metadata.versions.map((v) => v.destroyed),
            [false, true, true],
          );
          assert.equal(metadata.currentVersion, 3);
          await assert.rejects(world.store.get(path), isError(NotFoundError, /is destroyed/));
          await assert.rejects(world.store.get(path, 2), isError(NotFoundError, /is destroyed/));
          assert.deepEqual((await world.store.get(path, 1)).data, { n: '1' });
          // The version numbers stay in the history and the table.
          assert.deepEqual(await world.fixture.storedVersions(path), [1, 2, 3]);
          // A new version can follow a destroyed current one.
          assert.equal((await world.store.put(path, { n: '4' }, { cas: 3 })).currentVersion, 4);
        }));

      test('undelete of a destroyed version is a conflict, and nothing changes', () =>
        withWorld(async (world) => {
          const path = p('del/undelete-destroyed');
          await fill(world, path, 3);
          await world.store.softDelete(path, [1, 2]);
          await world.store.destroy(path, [2, 3]);
          const before = await world.store.readMetadata(path);
          world.tick();
          // Named, with a deleted version beside it that alone could come back.
          await assert.rejects(
            world.store.undelete(path, [1, 2]),
            isError(ConflictError, /Version 2 of "del\/undelete-destroyed" is destroyed/),
          );
          // The default: the current version, destroyed without a soft delete first.
          await assert.rejects(world.store.undelete(path), isError(ConflictError, /Version 3/));
          await assert.rejects(world.store.undelete(path, [0]), ConflictError);
          assert.deepEqual(await world.store.readMetadata(path), before);
          await assert.rejects(world.store.get(path, 1), isError(NotFoundError, /is deleted/));
        }));

      test('destroy must name its versions', () =>
        withWorld(async (world) => {
          const path = p('del/destroy-none');
          await fill(world, path, 1);
          await assert.rejects(world.store.destroy(path, []), isError(InvalidRequestError));
          assert.deepEqual((await world.store.get(path)).data, { n: '1' });
        }));

      test('a version that is not kept is not found, and nothing changes', () =>
        withWorld(async (world) => {
          const path = p('del/missing');
          await fill(world, path, DEFAULT_CAP + 1);
          const before = await world.store.readMetadata(path);
          world.tick();
          for (const change of [
            (v: number[]) => world.store.softDelete(path, v),
            (v: number[]) => world.store.undelete(path, v),
            (v: number[]) => world.store.destroy(path, v),
          ]) {
            await assert.rejects(change([2, 99]), isError(NotFoundError, /99 .* does not exist/));
            await assert.rejects(change([2, 1]), isError(NotFoundError, /1 .* was removed/));
          }
          assert.deepEqual(await world.store.readMetadata(path), before);
          await assert.rejects(world.store.softDelete(p('del/none')), isError(NotFoundError));
        }));

      test('bad version lists are invalid requests', () =>
        withWorld(async (world) => {
          const path = p('del/bad');
          await fill(world, path, 1);
          const tooMany = Array(MAX_VERSIONS_PER_REQUEST + 1).fill(1);
          const bad: unknown[] = [[-1], [1.5], ['1'], [null], 'x', tooMany];
          for (const versions of bad) {
            await assert.rejects(
              world.store.softDelete(path, versions as number[]),
              isError(InvalidRequestError),
            );
          }
          // The wire's bound, not a tighter one: as many as a request may name.
          const most = await world.store.softDelete(path, Array(MAX_VERSIONS_PER_REQUEST).fill(1));
          assert.notEqual(most.versions[0]?.deletedAt, null);
        }));
    });

    describe('deletePath', () => {
      test('removes every version and the metadata; a new put starts over', () =>
        withWorld(async (world) => {
          const path = p('gone/x');
          await fill(world, path, 3);
          await world.store.writeMetadata(path, { maxVersions: 9, customMetadata: { a: 'b' } });
          await world.store.deletePath(path);
          assert.deepEqual(await world.fixture.storedVersions(path), []);
          await assert.rejects(world.store.get(path), isError(NotFoundError, /No secret/));
          await assert.rejects(world.store.get(path, 2), isError(NotFoundError, /No secret/));
          await assert.rejects(world.store.readMetadata(path), NotFoundError);
          assert.deepEqual((await world.store.list('', { limit: 10 })).paths, []);
          const metadata = await world.store.put(path, { fresh: 'yes' }, { cas: 0 });
          assert.equal(metadata.currentVersion, 1);
          assert.equal(metadata.maxVersionsOverride, null);
          assert.deepEqual(metadata.customMetadata, {});
        }));

      test('onlyDeleted removes a path only while every version is deleted or destroyed', () =>
        withWorld(async (world) => {
          const path = p('purge/x');
          await fill(world, path, 3);
          await world.store.softDelete(path, [3]);
          await world.store.destroy(path, [1]);
          const before = await world.store.readMetadata(path);
          // Version 2 is live: refused, and nothing changes.
          await assert.rejects(
            world.store.deletePath(path, { onlyDeleted: true }),
            isError(ConflictError, /neither deleted nor destroyed/),
          );
          assert.deepEqual(await world.store.readMetadata(path), before);
          assert.deepEqual((await world.store.get(path, 2)).data, { n: '2' });
          await world.store.softDelete(path, [2]);
          await world.store.deletePath(path, { onlyDeleted: true });
          await assert.rejects(world.store.readMetadata(path), NotFoundError);
          assert.deepEqual(await world.fixture.storedVersions(path), []);
          await assert.rejects(
            world.store.deletePath(path, { onlyDeleted: true }),
            isError(NotFoundError),
          );
        }));

      test('a missing path is not found; other paths are untouched', () =>
        withWorld(async (world) => {
          await world.store.put(p('keep/a'), { a: '1' });
          await assert.rejects(world.store.deletePath(p('keep')), isError(NotFoundError));
          await assert.rejects(world.store.deletePath(p('keep/b')), isError(NotFoundError));
          assert.deepEqual((await world.store.get(p('keep/a'))).data, { a: '1' });
        }));
    });

    describe('list', () => {
      test('a prefix selects by whole segments', () =>
        withWorld(async (world) => {
          const all = ['app', 'app/x', 'app/y/z', 'app-b/c', 'app.d', 'apple', 'appz', 'b'];
          for (const path of all) await world.store.put(p(path), { k: 'v' });
          const list = async (prefix: string) =>
            (await world.store.list(prefix, { limit: 100 })).paths;
          assert.deepEqual(await list('app/'), ['app/x', 'app/y/z']);
          assert.deepEqual(await list('app'), ['app', 'app/x', 'app/y/z']);
          assert.deepEqual(await list('app/y'), ['app/y/z']);
          assert.deepEqual(await list('app/y/z'), ['app/y/z']);
          assert.deepEqual(await list('ap'), []);
          assert.deepEqual(await list('nothing/'), []);
          assert.deepEqual(await list(''), [...all].sort(byteOrder));
        }));

      test('paths come in byte order', () =>
        withWorld(async (world) => {
          const all = ['a/b', 'a-b', 'a.b', 'A', 'Z', '_', 'a/B', 'a0', 'ab', '9'];
          for (const path of all) await world.store.put(p(path), { k: 'v' });
          const { paths } = await world.store.list('', { limit: 100 });
          assert.deepEqual(paths, [...all].sort(byteOrder));
          assert.deepEqual(paths.slice(0, 3), ['9', 'A', 'Z']);
        }));

      test('pages cover every path once, in order, and are stable', () =>
        withWorld(async (world) => {
          const all: string[] = [];
          for (let i = 0; i < 120; i++) all.push(`bulk/${String(i).padStart(3, '0')}/s${i % 7}`);
          for (const path of all) await world.store.put(p(path), { k: 'v' });
          await world.store.put(p('other/x'), { k: 'v' });
          const seen: string[] = [];
          let after: SecretPath | undefined;
          let pages = 0;
          for (;;) {
            const page = await world.store.list('bulk/', {
              limit: 13,
              ...(after === undefined ? {} : { after }),
            });
            pages++;
            seen.push(...page.paths);
            if (page.next === undefined) break;
            assert.equal(page.paths.length, 13);
            assert.equal(page.next, page.paths.at(-1));
            after = page.next;
            if (pages === 3) {
              // A path added before the cursor does not shift later pages.
              await world.store.put(p('bulk/000/aaa'), { k: 'v' });
            }
          }
          assert.equal(pages, Math.ceil(120 / 13));
          assert.deepEqual(seen, [...all].sort(byteOrder));
        }));

      test('an exactly full last page has no next', () =>
        withWorld(async (world) => {
          for (const path of ['a/1', 'a/2', 'a/3', 'a/4']) await world.store.put(p(path), {});
          const first = await world.store.list('a/', { limit: 2 });
          assert.deepEqual(first, { paths: ['a/1', 'a/2'], next: 'a/2' });
          const second = await world.store.list('a/', { limit: 2, after: p('a/2') });
          assert.deepEqual(second, { paths: ['a/3', 'a/4'] });
          const third = await world.store.list('a/', { limit: 2, after: p('a/4') });
          assert.deepEqual(third, { paths: [] });
          const exact = await world.store.list('a/', { limit: 4 });
          assert.deepEqual(exact, { paths: ['a/1', 'a/2', 'a/3', 'a/4'] });
        }));

      test('paths whose versions are all deleted or destroyed are still listed', () =>
        withWorld(async (world) => {
          await fill(world, p('l/deleted'), 2);
          await world.store.softDelete(p('l/deleted'), [1, 2]);
          await fill(world, p('l/destroyed'), 1);
          await world.store.destroy(p('l/destroyed'), [1]);
          assert.deepEqual((await world.store.list('l/', { limit: 10 })).paths, [
            'l/deleted',
            'l/destroyed',
          ]);
        }));

      test('listExisting answers which of the paths exist, in byte order, each once', () =>
        withWorld(async (world) => {
          for (const path of ['e/a', 'e/b/c', 'e-x', 'e/z']) await world.store.put(p(path), {});
          await fill(world, p('e/deleted'), 1);
          await world.store.softDelete(p('e/deleted'), [1]);
          const asked = ['e/z', 'e/missing', 'e-x', 'e/a', 'e/z', 'e/deleted', 'e', 'e/b'];
          assert.deepEqual(await world.store.listExisting(asked.map(p)), [
            'e-x',
            'e/a',
            'e/deleted',
            'e/z',
          ]);
          assert.deepEqual(await world.store.listExisting([]), []);
          const many = Array.from({ length: MAX_LIST_LIMIT }, (_, i) => p(`e/n${i}`));
          assert.deepEqual(await world.store.listExisting([...many.slice(1), p('e/b/c')]), [
            'e/b/c',
          ]);
        }));

      test('listExisting refuses too many or malformed paths, and waits for the unseal', () =>
        withWorld(async (world) => {
          await world.store.put(p('e/a'), {});
          const tooMany = Array.from({ length: MAX_LIST_LIMIT + 1 }, () => p('e/a'));
          await assert.rejects(world.store.listExisting(tooMany), isError(InvalidRequestError));
          for (const bad of ['', '/a', 'a//b', '../x', 'sys/../a']) {
            await assert.rejects(
              world.store.listExisting([bad as SecretPath]),
              isError(InvalidRequestError),
            );
          }
          world.seal();
          await assert.rejects(world.store.listExisting([p('e/a')]), isError(NotReadyError));
          world.unseal();
          assert.deepEqual(await world.store.listExisting([p('e/a')]), ['e/a']);
        }));

      test('a bad limit or prefix is an invalid request', () =>
        withWorld(async (world) => {
          for (const limit of [0, -1, MAX_LIST_LIMIT + 1, 1.5, Number.NaN]) {
            await assert.rejects(world.store.list('', { limit }), isError(InvalidRequestError));
          }
          for (const prefix of ['/a', 'a//b', '../x', 'a b/', 'a/../']) {
            await assert.rejects(
              world.store.list(prefix, { limit: 10 }),
              isError(InvalidRequestError),
            );
          }
        }));
    });

    describe('metadata', () => {
      test('custom metadata is written, replaced and cleared without a new version', () =>
        withWorld(async (world) => {
          const path = p('meta/x');
          await fill(world, path, 2);
          const at = world.tick();
          let metadata = await world.store.writeMetadata(path, {
            customMetadata: { owner: 'team-a', 'ünï 🔑': 'välüe' },
          });
          assert.deepEqual(metadata.customMetadata, { owner: 'team-a', 'ünï 🔑': 'välüe' });
          assert.deepEqual(metadata.updatedAt, new Date(at));
          assert.equal(metadata.currentVersion, 2);
          assert.deepEqual(await world.store.readMetadata(path), metadata);
          // Writing only the cap keeps the custom metadata.
          metadata = await world.store.writeMetadata(path, { maxVersions: 7 });
          assert.deepEqual(metadata.customMetadata, { owner: 'team-a', 'ünï 🔑': 'välüe' });
          metadata = await world.store.writeMetadata(path, { customMetadata: { b: '' } });
          assert.deepEqual(metadata.customMetadata, { b: '' });
          metadata = await world.store.writeMetadata(path, { customMetadata: {} });
          assert.deepEqual(metadata.customMetadata, {});
          assert.equal(metadata.maxVersions, 7);
          // Puts keep it too.
          await world.store.writeMetadata(path, { customMetadata: { c: 'd' } });
          metadata = await world.store.put(path, { n: '3' });
          assert.deepEqual(metadata.customMetadata, { c: 'd' });
          assert.deepEqual(await world.fixture.storedVersions(path), [1, 2, 3]);
        }));

      test('an empty update changes nothing', () =>
        withWorld(async (world) => {
          const path = p('meta/empty');
          await fill(world, path, 1);
          const before = await world.store.readMetadata(path);
          world.tick();
          assert.deepEqual(await world.store.writeMetadata(path, {}), before);
        }));

      test('metadata of a missing path is not found', () =>
        withWorld(async (world) => {
          await assert.rejects(world.store.readMetadata(p('meta/none')), NotFoundError);
          await assert.rejects(
            world.store.writeMetadata(p('meta/none'), { customMetadata: { a: 'b' } }),
            NotFoundError,
          );
          assert.deepEqual((await world.store.list('', { limit: 10 })).paths, []);
        }));

      test('custom metadata limits: 64 entries, keys 1..128, values up to 512 characters', () =>
        withWorld(async (world) => {
          const path = p('meta/limits');
          await fill(world, path, 1);
          const largest: Record<string, string> = {};
          for (let i = 0; i < MAX_CUSTOM_METADATA_KEYS; i++) {
            const key = `${i}`.padEnd(MAX_CUSTOM_METADATA_KEY_LENGTH, 'k');
            largest[key] = 'v'.repeat(MAX_CUSTOM_METADATA_VALUE_LENGTH);
          }
          // Characters, not UTF-16 units: 128 astral characters fit.
          delete largest[Object.keys(largest)[0] as string];
          largest['🔑'.repeat(MAX_CUSTOM_METADATA_KEY_LENGTH)] = '🗝'.repeat(512);
          const ok = await world.store.writeMetadata(path, { customMetadata: largest });
          assert.deepEqual({ ...ok.customMetadata }, largest);
          const tooMany = { ...largest, extra: 'x' };
          const tooLongKey = { ['k'.repeat(MAX_CUSTOM_METADATA_KEY_LENGTH + 1)]: 'v' };
          const tooLongValue = { k: 'v'.repeat(MAX_CUSTOM_METADATA_VALUE_LENGTH + 1) };
          const bad: unknown[] = [
            tooMany,
            tooLongKey,
            tooLongValue,
            { '': 'v' },
            { k: 1 },
            { k: '\uD800' },
            ['a'],
            null,
          ];
          for (const customMetadata of bad) {
            await assert.rejects(
              world.store.writeMetadata(path, {
                customMetadata: customMetadata as Record<string, string>,
              }),
              isError(InvalidRequestError),
            );
          }
          assert.deepEqual({ ...(await world.store.readMetadata(path)).customMetadata }, largest);
        }));
    });

    describe('data limits', () => {
      test('256 keys of up to 256 characters and 1 MiB in all are accepted', () =>
        withWorld(async (world) => {
          const data: Record<string, string> = {};
          for (let i = 0; i < MAX_DATA_KEYS; i++) {
            data[`${i}`.padEnd(MAX_KEY_LENGTH, 'k')] = 'v';
          }
          await world.store.put(p('lim/keys'), data);
          assert.equal(Object.keys((await world.store.get(p('lim/keys'))).data).length, 256);
          // {"k":"vvv…"} is exactly the limit.
          const big = { k: 'v'.repeat(MAX_SECRET_DATA_BYTES - 8) };
          await world.store.put(p('lim/big'), big);
          assert.equal((await world.store.get(p('lim/big'))).data.k?.length, big.k.length);
        }));

      test('beyond a limit is an invalid request and writes nothing', () =>
        withWorld(async (world) => {
          const path = p('lim/bad');
          const tooMany: Record<string, string> = {};
          for (let i = 0; i <= MAX_DATA_KEYS; i++) tooMany[`k${i}`] = 'v';
          const bad: unknown[] = [
            tooMany,
            { ['k'.repeat(MAX_KEY_LENGTH + 1)]: 'v' },
            { '': 'v' },
            { k: 'v'.repeat(MAX_SECRET_DATA_BYTES - 7) },
            // Escapes count as serialised: 6 bytes per control character.
            { k: '\u0001'.repeat(MAX_SECRET_DATA_BYTES / 6) },
            { k: 1 },
            { k: null },
            { k: '\uDC00 lone' },
            ['v'],
            'v',
            null,
          ];
          for (const data of bad) {
            await assert.rejects(
              world.store.put(path, data as Record<string, string>),
              isError(InvalidRequestError),
            );
          }
          await assert.rejects(world.store.readMetadata(path), NotFoundError);
        }));
    });

    describe('quotas', () => {
      test('a namespace holds at most its path quota; one path more is refused and writes nothing', () =>
        withWorld(
          async (world) => {
            for (const name of ['tenant/a', 'tenant/b', 'tenant/c/d']) {
              await world.store.put(p(name), { v: '1' });
            }
            for (const name of ['tenant/e', 'tenant']) {
              await assert.rejects(
                world.store.put(p(name), { v: '1' }),
                isError(QuotaExceededError, /"tenant" is full: it may hold at most 3 secret paths/),
              );
              await assert.rejects(world.store.readMetadata(p(name)), NotFoundError);
            }
            await assertUsage(world, 'tenant', {
              paths: 3,
              bytes:
                newPathCharge(p('tenant/a'), { v: '1' }) +
                newPathCharge(p('tenant/b'), { v: '1' }) +
                newPathCharge(p('tenant/c/d'), { v: '1' }),
            });
            // A new version is no new path; another namespace has its own count.
            assert.equal((await world.store.put(p('tenant/a'), { v: '2' })).currentVersion, 2);
            await world.store.put(p('tenants/x'), { v: '1' });
            await world.store.put(p('other'), { v: '1' });
            await assertUsage(world, 'tenant');
            await assertUsage(world, 'tenants', {
              paths: 1,
              bytes: newPathCharge(p('tenants/x'), { v: '1' }),
            });
          },
          DEFAULT_CAP,
          quotasOf(3, null),
        ));

      test('bytes: a write up to the quota is accepted, one byte more is refused and writes nothing', () => {
        const path = p('bytes/x');
        const first = { k: 'v'.repeat(100) };
        const fits = { k: 'v'.repeat(50) };
        const limit = newPathCharge(path, first) + versionCharge(path, fits);
        return withWorld(
          async (world) => {
            await world.store.put(path, first);
            await assert.rejects(
              world.store.put(path, { k: 'v'.repeat(51) }),
              isError(
                QuotaExceededError,
                new RegExp(`"bytes" is full: it may hold at most ${limit} bytes`),
              ),
            );
            assert.equal((await world.store.readMetadata(path)).currentVersion, 1);
            assert.deepEqual(await world.fixture.storedVersions(path), [1]);
            await world.store.put(path, fits);
            await assertUsage(world, 'bytes', { paths: 1, bytes: limit });
            // Custom metadata is stored too, so it is charged too.
            await assert.rejects(
              world.store.writeMetadata(path, { customMetadata: { a: 'b' } }),
              QuotaExceededError,
            );
            await assert.rejects(world.store.put(p('bytes/y'), {}), QuotaExceededError);
            const metadata = await world.store.readMetadata(path);
            assert.deepEqual(metadata.customMetadata, {});
            assert.equal(metadata.currentVersion, 2);
            await assertUsage(world, 'bytes', { paths: 1, bytes: limit });
          },
          DEFAULT_CAP,
          quotasOf(null, limit),
        );
      });

      test('destroy and deletePath free what they remove; soft delete and undelete change nothing', () => {
        const full = p('free/full');
        const data = { k: 'x'.repeat(150) };
        const limit = newPathCharge(full, data) + versionCharge(full, data);
        return withWorld(
          async (world) => {
            await world.store.put(full, data);
            await world.store.put(full, data);
            await assertUsage(world, 'free', { paths: 1, bytes: limit });
            const next = p('free/b');
            await assert.rejects(world.store.put(next, data), QuotaExceededError);
            // A soft-deleted version is still stored, and undelete brings it back.
            await world.store.softDelete(full, [1, 2]);
            await assertUsage(world, 'free', { paths: 1, bytes: limit });
            await assert.rejects(world.store.put(next, data), QuotaExceededError);
            await world.store.undelete(full, [1]);
            await assertUsage(world, 'free', { paths: 1, bytes: limit });
            // Destroy frees the sealed data; the rows and their paths stay.
            await world.store.destroy(full, [1, 2]);
            await assertUsage(world, 'free', { paths: 1, bytes: limit - 2 * sealedSize(data) });
            await world.store.put(next, data);
            await assert.rejects(world.store.put(p('free/c'), {}), QuotaExceededError);
            // Deleting the path frees everything it was charged.
            await world.store.deletePath(full);
            await assertUsage(world, 'free', { paths: 1, bytes: newPathCharge(next, data) });
            await world.store.put(p('free/c'), {});
            await assertUsage(world, 'free');
          },
          DEFAULT_CAP,
          quotasOf(null, limit),
        );
      });

      test('the version cap frees what it prunes: a full namespace keeps rotating a secret', () => {
        const path = p('rotate/key');
        const data = (n: number) => ({ k: String(n).padStart(8, '0') });
        const limit = newPathCharge(path, data(1)) + versionCharge(path, data(2));
        return withWorld(
          async (world) => {
            await world.store.put(path, data(1));
            await world.store.put(path, data(2));
            await assertUsage(world, 'rotate', { paths: 1, bytes: limit });
            for (let n = 3; n <= 6; n++) {
              assert.equal((await world.store.put(path, data(n))).currentVersion, n);
            }
            assert.deepEqual(await world.fixture.storedVersions(path), [5, 6]);
            await assert.rejects(world.store.put(path, { k: '123456789' }), QuotaExceededError);
            // Raising the cap adds nothing by itself; the next put is then charged in full.
            await world.store.writeMetadata(path, { maxVersions: 3 });
            await assertUsage(world, 'rotate', { paths: 1, bytes: limit });
            await assert.rejects(world.store.put(path, data(7)), QuotaExceededError);
            // Lowering it prunes at once, and frees what it prunes.
            await world.store.writeMetadata(path, { maxVersions: 1 });
            await assertUsage(world, 'rotate', {
              paths: 1,
              bytes: limit - versionCharge(path, data(5)),
            });
            await world.store.writeMetadata(path, { customMetadata: { o: 'k' } });
            await assertUsage(world, 'rotate');
          },
          2,
          quotasOf(null, limit),
        );
      });

      test('a namespace with its own quota uses it; null means no limit', () =>
        withWorld(
          async (world) => {
            await world.store.put(p('small/a'), { v: '1' });
            await assert.rejects(world.store.put(p('small/b'), { v: '1' }), QuotaExceededError);
            for (const name of ['big/a', 'big/b', 'big/c']) await world.store.put(p(name), {});
            await assert.rejects(world.store.put(p('big/d'), {}), /at most 3 secret paths/);
            for (let i = 0; i < 12; i++)
              await world.store.put(p(`free/${i}`), { v: 'x'.repeat(100) });
            await assertUsage(world, 'free');
          },
          DEFAULT_CAP,
          quotasOf(1, 1000, {
            big: { paths: 3, bytes: null },
            free: { paths: null, bytes: null },
          }),
        ));

      test('writers racing on two connections never take a namespace past its path quota', () =>
        withWorld(
          async (world) => {
            const other = await world.fixture.connect();
            const results = await Promise.allSettled(
              Array.from({ length: 16 }, (_, i) =>
                (i % 2 === 0 ? world.store : other).put(p(`race/${i}`), { i: String(i) }),
              ),
            );
            assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5);
            for (const result of results) {
              if (result.status === 'rejected') {
                assert.ok(result.reason instanceof QuotaExceededError, String(result.reason));
              }
            }
            assert.equal((await world.store.list('race/', { limit: 100 })).paths.length, 5);
            await assertUsage(world, 'race');
            assert.equal((await world.fixture.quotaUsage('race')).counted.paths, 5);
          },
          DEFAULT_CAP,
          quotasOf(5, null),
        ));

      test('writers racing on two connections never take a namespace past its byte quota', () => {
        const pathOf = (i: number) => p(`race/${String(i).padStart(2, '0')}`);
        const data = { k: 'y'.repeat(64) };
        const limit = 4 * newPathCharge(pathOf(0), data) + versionCharge(pathOf(0), data);
        return withWorld(
          async (world) => {
            const other = await world.fixture.connect();
            await world.store.put(pathOf(99), data);
            const results = await Promise.allSettled(
              Array.from({ length: 12 }, (_, i) =>
                (i % 2 === 0 ? world.store : other).put(i < 6 ? pathOf(i) : pathOf(99), data),
              ),
            );
            for (const result of results) {
              if (result.status === 'rejected') {
                assert.ok(result.reason instanceof QuotaExceededError, String(result.reason));
              }
            }
            assert.ok(results.some((result) => result.status === 'rejected'));
            const { counted } = await world.fixture.quotaUsage('race');
            assert.ok(counted.bytes <= limit, `${counted.bytes} > ${limit}`);
            await assertUsage(world, 'race');
          },
          DEFAULT_CAP,
          quotasOf(null, limit),
        );
      });

      test('the counter equals a recount of the rows after every kind of write', () =>
        withWorld(async (world) => {
          const a = p('count/a');
          const b = p('count/b/c');
          const top = p('count');
          const steps: (() => Promise<unknown>)[] = [
            () => world.store.put(a, { one: '1' }),
            () => world.store.put(a, { two: '22' }),
            () => world.store.writeMetadata(a, { customMetadata: { owner: 'team' } }),
            () => world.store.put(b, { b: 'b' }),
            () => world.store.put(top, { t: 't' }),
            () => world.store.softDelete(a),
            () => world.store.undelete(a),
            () => world.store.destroy(a, [1]),
            () => world.store.put(a, { three: '333' }),
            () => world.store.put(a, { four: '4444' }),
            () => world.store.writeMetadata(a, { maxVersions: 1, customMetadata: { o: 'x' } }),
            () => world.store.writeMetadata(a, { maxVersions: null, customMetadata: {} }),
            () => world.store.put(b, { b: 'bb' }, { cas: 1 }),
            () => world.store.put(b, { b: 'stale' }, { cas: 1 }).catch(() => undefined),
            () => world.store.deletePath(b),
            () => world.store.deletePath(top),
          ];
          for (const step of steps) {
            await step();
            await assertUsage(world, 'count');
          }
          const { counted } = await world.fixture.quotaUsage('count');
          assert.equal(counted.paths, 1);
        }, 3));
    });

    describe('changes and the current version', () => {
      test('currentVersion is the version a read of the current one answers, 0 for none', () =>
        withWorld(async (world) => {
          const path = p('watch/a');
          const current = () => world.store.currentVersion(path);
          assert.equal(await current(), 0);
          await world.store.put(path, { v: '1' });
          await world.store.put(path, { v: '2' });
          assert.equal(await current(), 2);
          await world.store.softDelete(path, [1]);
          assert.equal(await current(), 2, 'an older version deleted');
          await world.store.softDelete(path);
          assert.equal(await current(), 0, 'the current version deleted');
          await world.store.undelete(path);
          assert.equal(await current(), 2);
          await world.store.destroy(path, [2]);
          assert.equal(await current(), 0, 'the current version destroyed');
          await world.store.put(path, { v: '3' });
          assert.equal(await current(), 3);
          await world.store.deletePath(path);
          assert.equal(await current(), 0, 'the path deleted');
          await world.store.put(path, { v: 'again' });
          assert.equal(await current(), 1, 'written again from version 1');
          world.seal();
          await assert.rejects(current(), isError(NotReadyError));
          world.unseal();
          await assert.rejects(world.store.currentVersion('../x' as SecretPath));
        }));

      test('every write tells of its path once it has committed, and of no other path', () =>
        withWorld(async (world) => {
          const path = p('watch/b');
          const other = p('watch/other');
          let otherWoken = 0;
          const cancelOther = world.changes.next(other, () => {
            otherWoken += 1;
          });
          const writes: ReadonlyArray<readonly [string, () => Promise<unknown>]> = [
            ['put of a new path', () => world.store.put(path, { v: '1' })],
            ['put', () => world.store.put(path, { v: '2' }, { cas: 1 })],
            ['soft delete', () => world.store.softDelete(path)],
            ['undelete', () => world.store.undelete(path)],
            ['destroy', () => world.store.destroy(path, [1])],
            ['metadata write', () => world.store.writeMetadata(path, { maxVersions: 3 })],
            ['custom metadata', () => world.store.writeMetadata(path, { customMetadata: {} })],
            ['path delete', () => world.store.deletePath(path)],
          ];
          for (const [label, write] of writes) {
            let isTold = false as boolean;
            const cancel = world.changes.next(path, () => {
              isTold = true;
            });
            await write();
            cancel();
            assert.ok(isTold, `the ${label} told nobody`);
          }
          assert.equal(otherWoken, 0, 'a waiter of another path was woken');
          cancelOther();
          assert.equal(world.changes.size, 0);
        }));
    });

    describe('reads after writes', () => {
      // Every read below first warms whatever a store keeps between reads
      // (the cache of sealed rows), then a write must show at once.
      async function readsOf(store: SecretStore, path: SecretPath, versions: readonly number[]) {
        const outcome = async (version?: number) => {
          try {
            const read = await store.get(path, version);
            return `${read.version}:${read.data.n}`;
          } catch (err) {
            assert.ok(err instanceof NotFoundError, String(err));
            return /removed/.test(err.message)
              ? 'removed'
              : /destroyed/.test(err.message)
                ? 'destroyed'
                : /deleted/.test(err.message)
                  ? 'deleted'
                  : 'missing';
          }
        };
        const all = [await outcome()];
        for (const version of versions) all.push(await outcome(version));
        return all;
      }

      test('each kind of write shows in the next read of the current and of explicit versions', () =>
        withWorld(async (world) => {
          const path = p('rw/x');
          const { store } = world;
          await fill(world, path, 3);
          const look = () => readsOf(store, path, [1, 2, 3, 4]);
          assert.deepEqual(await look(), ['3:3', '1:1', '2:2', '3:3', 'missing']);
          assert.deepEqual(await look(), ['3:3', '1:1', '2:2', '3:3', 'missing']);
          await store.put(path, { n: '4' });
          assert.deepEqual(await look(), ['4:4', '1:1', '2:2', '3:3', '4:4']);
          await store.softDelete(path);
          assert.deepEqual(await look(), ['deleted', '1:1', '2:2', '3:3', 'deleted']);
          await store.undelete(path);
          assert.deepEqual(await look(), ['4:4', '1:1', '2:2', '3:3', '4:4']);
          await store.destroy(path, [2]);
          assert.deepEqual(await look(), ['4:4', '1:1', 'destroyed', '3:3', '4:4']);
          // Lowering the cap prunes versions 1 and 2 at once.
          await store.writeMetadata(path, { maxVersions: 2 });
          assert.deepEqual(await look(), ['4:4', 'removed', 'removed', '3:3', '4:4']);
          // A put beyond the cap prunes version 3.
          await store.put(path, { n: '5' });
          assert.deepEqual(await readsOf(store, path, [3, 4, 5]), ['5:5', 'removed', '4:4', '5:5']);
          await store.deletePath(path);
          assert.deepEqual(await readsOf(store, path, [4, 5]), ['missing', 'missing', 'missing']);
          await store.put(path, { n: '1' });
          assert.deepEqual(await readsOf(store, path, [1, 5]), ['1:1', '1:1', 'missing']);
        }, DEFAULT_CAP));

      test('a write through another connection shows in the next read', () =>
        withWorld(async (world) => {
          const path = p('rw/other');
          await fill(world, path, 1);
          const other = await world.fixture.connect();
          assert.equal((await world.store.get(path)).version, 1);
          await other.put(path, { n: '2' });
          assert.equal((await world.store.get(path)).version, 2);
          await other.deletePath(path);
          await assert.rejects(world.store.get(path), isError(NotFoundError));
        }));
    });

    describe('sealed', () => {
      test('every method fails with NotReadyError and nothing is written', () =>
        withWorld(async (world) => {
          const path = p('sealed/x');
          await fill(world, path, 2);
          await world.store.writeMetadata(path, { customMetadata: { a: 'b' } });
          const before = await world.store.readMetadata(path);
          world.tick();
          world.seal();
          const calls: (() => Promise<unknown>)[] = [
            () => world.store.put(path, { n: 'x' }),
            () => world.store.put(p('sealed/new'), { n: 'x' }, { cas: 0 }),
            () => world.store.get(path),
            () => world.store.get(path, 1),
            () => world.store.list('', { limit: 10 }),
            () => world.store.softDelete(path),
            () => world.store.undelete(path, [1]),
            () => world.store.destroy(path, [1]),
            () => world.store.deletePath(path),
            () => world.store.readMetadata(path),
            () => world.store.writeMetadata(path, { maxVersions: 1, customMetadata: {} }),
          ];
          for (const call of calls) {
            await assert.rejects(call(), isError(NotReadyError));
          }
          world.unseal();
          assert.deepEqual(await world.store.readMetadata(path), before);
          assert.deepEqual(await world.fixture.storedVersions(path), [1, 2]);
          assert.deepEqual((await world.store.list('', { limit: 10 })).paths, [path]);
        }));
    });
  });
}

/** Byte order of ASCII strings (what the store promises for paths). */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
