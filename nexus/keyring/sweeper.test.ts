/**
 * The keyring sweep over real stores: the SQLite secret and named-key stores
 * on a scratch file, and their PostgreSQL twins on a scratch database when
 * SPIKE_TEST_DATABASE_URL is set. The keyring is a real RootKey that starts
 * from a legacy (32-byte) keyring and rotates to term 2; each test checks
 * the rows' recorded terms and that every value still reads the same.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { and, eq, isNotNull } from 'drizzle-orm';
import { parseSecretPath, type SecretPath } from '../../shared/api/secret_path.ts';
import { decodeBase64 } from '../../shared/crypto/base64.ts';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { delay } from '../../shared/runtime/delay.ts';
import {
  dropScratchDatabases,
  openScratchDatabase,
  postgresSkip,
  TEST_DATABASE_URL_ENV,
} from '../../test/harness/postgres.ts';
import {
  addKeyringTerm,
  createKeyring,
  decodeKeyring,
  encodeKeyring,
} from '../root_key/keyring.ts';
import { RootKey } from '../root_key/root_key.ts';
import type { KeyringSweepTarget, SweepPosition, SweepStep } from '../store/keyring_sweep.ts';
import { openPostgresDatabase, type PostgresDatabase } from '../store/postgres/db.ts';
import * as pgSchema from '../store/postgres/schema.ts';
import { PgSecretStore } from '../store/postgres/secret_store.ts';
import { PgTransitKeyStore } from '../store/postgres/transit_key_store.ts';
import type { KeyringAccess, SecretStore } from '../store/secret_store.ts';
import { openSqliteDatabase, type SqliteDatabase } from '../store/sqlite/db.ts';
import * as sqliteSchema from '../store/sqlite/schema.ts';
import { SqliteSecretStore } from '../store/sqlite/secret_store.ts';
import { SqliteTransitKeyStore } from '../store/sqlite/transit_key_store.ts';
import type { TransitKeyStore } from '../store/transit_key_store.ts';
import { decrypt, encrypt } from '../transit/transit.ts';
import { KeyringSweeper } from './sweeper.ts';

/** Every secret value written here starts with this, so a leak into the log is easy to find. */
const MARK = 'SW33P-';
const NONE = new Uint8Array(0);
const KEY_NAMES = ['k0', 'k1', 'k2', 'k3'] as const;
const VERSIONS_PER_KEY = 3;

const scratchDirs: string[] = [];
after(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});
after(dropScratchDatabases);

/** A secret store and a named-key store on one database, both sweep targets. */
interface Stores {
  readonly secrets: SecretStore & KeyringSweepTarget;
  readonly transit: TransitKeyStore & KeyringSweepTarget;
}

interface Fixture extends Stores {
  /** Stores on the same database with another keyring: another Nexus. */
  connect(keyring: KeyringAccess): Promise<Stores>;
  /** The recorded term of every sealed row (versions with data, custom metadata, key versions). */
  sealedTerms(): Promise<number[]>;
  /** Flips a bit of a version's stored ciphertext. */
  corruptVersion(path: SecretPath, version: number): Promise<void>;
  dispose(): Promise<void>;
}

type OpenFixture = (keyring: KeyringAccess) => Promise<Fixture>;

function flipLastByte(bytes: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[copy.length - 1] = (copy[copy.length - 1] as number) ^ 1;
  return copy;
}

const openSqlite: OpenFixture = async (keyring) => {
  const dir = mkdtempSync(join(tmpdir(), 'spike-sweep-'));
  scratchDirs.push(dir);
  const database: SqliteDatabase = await openSqliteDatabase({ path: join(dir, 'spike.db') });
  const storesOf = (access: KeyringAccess): Stores => ({
    secrets: new SqliteSecretStore({ database, keyring: access, maxVersionsDefault: 10 }),
    transit: new SqliteTransitKeyStore({ database, keyring: access }),
  });
  const { db } = database;
  const { secrets, secretMetadata, transitKeyVersions } = sqliteSchema;
  return {
    ...storesOf(keyring),
    async connect(other) {
      return storesOf(other);
    },
    async sealedTerms() {
      const versions = await db
        .select({ term: secrets.keyTerm })
        .from(secrets)
        .where(isNotNull(secrets.ciphertext));
      const metadata = await db
        .select({ term: secretMetadata.metadataKeyTerm })
        .from(secretMetadata)
        .where(isNotNull(secretMetadata.customMetadata));
      const keys = await db
        .select({ term: transitKeyVersions.keyringTerm })
        .from(transitKeyVersions);
      return [...versions, ...metadata, ...keys].map((row) => row.term);
    },
    async corruptVersion(path, version) {
      const where = and(eq(secrets.path, path), eq(secrets.version, version));
      const [row] = await db.select({ ciphertext: secrets.ciphertext }).from(secrets).where(where);
      assert.ok(row?.ciphertext);
      await db
        .update(secrets)
        .set({ ciphertext: flipLastByte(row.ciphertext) })
        .where(where);
    },
    dispose: () => database.close(),
  };
};

const openPostgres: OpenFixture = async (keyring) => {
  const { database, url } = await openScratchDatabase();
  const opened: PostgresDatabase[] = [database];
  const storesOf = (on: PostgresDatabase, access: KeyringAccess): Stores => ({
    secrets: new PgSecretStore({ database: on, keyring: access, maxVersionsDefault: 10 }),
    transit: new PgTransitKeyStore({ db: on.db, keyring: access }),
  });
  const { db } = database;
  const { secrets, secretMetadata, transitKeyVersions } = pgSchema;
  return {
    ...storesOf(database, keyring),
    async connect(other) {
      const second = await openPostgresDatabase({ url });
      opened.push(second);
      return storesOf(second, other);
    },
    async sealedTerms() {
      const versions = await db
        .select({ term: secrets.keyTerm })
        .from(secrets)
        .where(isNotNull(secrets.ciphertext));
      const metadata = await db
        .select({ term: secretMetadata.metadataKeyTerm })
        .from(secretMetadata)
        .where(isNotNull(secretMetadata.customMetadata));
      const keys = await db
        .select({ term: transitKeyVersions.keyringTerm })
        .from(transitKeyVersions);
      return [...versions, ...metadata, ...keys].map((row) => row.term);
    },
    async corruptVersion(path, version) {
      const where = and(eq(secrets.path, path), eq(secrets.version, version));
      const [row] = await db.select({ ciphertext: secrets.ciphertext }).from(secrets).where(where);
      assert.ok(row?.ciphertext);
      await db
        .update(secrets)
        .set({ ciphertext: flipLastByte(row.ciphertext) })
        .where(where);
    },
    async dispose() {
      for (const each of opened) await each.close();
    },
  };
};

const pathOf = (i: number) => parseSecretPath(`app/${String(i).padStart(3, '0')}`);

/**
 * `count` paths: every one a version, every 10th a second one whose first is
 * then destroyed when also every 20th, every 7th custom metadata; and
 * KEY_NAMES with VERSIONS_PER_KEY versions each and a ciphertext under each
 * version. Returns the transit ciphertexts and the sealed rows made.
 */
async function seed(stores: Stores, count: number) {
  const { secrets, transit } = stores;
  await Promise.all(
    Array.from({ length: count }, (_, i) => secrets.put(pathOf(i), { value: `${MARK}${i}-1` })),
  );
  const twice = Array.from({ length: count }, (_, i) => i).filter((i) => i % 10 === 0);
  await Promise.all(twice.map((i) => secrets.put(pathOf(i), { value: `${MARK}${i}-2` })));
  const destroyed = twice.filter((i) => i % 20 === 0);
  for (const i of destroyed) await secrets.destroy(pathOf(i), [1]);
  const custom = Array.from({ length: count }, (_, i) => i).filter((i) => i % 7 === 0);
  for (const i of custom) {
    await secrets.writeMetadata(pathOf(i), { customMetadata: { owner: `${MARK}team-${i}` } });
  }
  const ciphertexts: { name: string; version: number; ciphertext: string; plaintext: string }[] =
    [];
  for (const name of KEY_NAMES) {
    await transit.create(name);
    for (let version = 1; version <= VERSIONS_PER_KEY; version++) {
      if (version > 1) await transit.rotate(name);
      const plaintext = `${MARK}${name}-${version}`;
      const [sealed] = await encrypt(transit, name, [
        { plaintext: new TextEncoder().encode(plaintext), context: NONE },
      ]);
      assert.equal(sealed?.keyVersion, version);
      ciphertexts.push({ name, version, ciphertext: sealed.ciphertext, plaintext });
    }
  }
  const sealedRows =
    count + twice.length - destroyed.length + custom.length + KEY_NAMES.length * VERSIONS_PER_KEY;
  return { ciphertexts, sealedRows };
}

/** Everything the secret store answers for paths 0..count-1: each kept version's data, and the custom metadata. */
async function readAll(secrets: SecretStore, count: number): Promise<unknown[]> {
  const out: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const metadata = await secrets.readMetadata(pathOf(i));
    const versions: unknown[] = [];
    for (const info of metadata.versions) {
      versions.push(
        info.destroyed ? 'destroyed' : (await secrets.get(pathOf(i), info.version)).data,
      );
    }
    out.push({ custom: metadata.customMetadata, versions });
  }
  return out;
}

async function decryptsAll(
  transit: TransitKeyStore,
  ciphertexts: Awaited<ReturnType<typeof seed>>['ciphertexts'],
): Promise<void> {
  for (const { name, ciphertext, plaintext } of ciphertexts) {
    const [opened] = await decrypt(transit, name, [{ ciphertext, context: NONE }]);
    assert.ok(opened !== undefined);
    assert.equal(new TextDecoder().decode(decodeBase64(opened.plaintext)), plaintext);
  }
}

/** The rows per term over both stores, as a plain object. */
async function countByTerm(stores: Stores): Promise<Record<number, number>> {
  const counts: Record<number, number> = {};
  for (const target of [stores.secrets, stores.transit]) {
    for (const [term, count] of await target.countByTerm()) {
      counts[term] = (counts[term] ?? 0) + count;
    }
  }
  return counts;
}

/** A RootKey that holds a legacy keyring, and its keyring access. */
function legacyRootKey() {
  const rootKey = new RootKey();
  rootKey.unseal(randomBytes(32), createKeyring(), 1);
  return { rootKey, keyring: rootKey.withKeyring.bind(rootKey) as KeyringAccess };
}

/** A rotation in this Nexus: term 2, active at once. */
function rotate(rootKey: RootKey): void {
  const nowMs = Date.now();
  rootKey.replaceKeyring(addKeyringTerm(rootKey.keyringPlaintext(), nowMs, nowMs).plaintext);
  assert.equal(rootKey.keyringTerms()?.active, 2);
}

/** `target` that runs `then` once, right after its `n`th step, and counts its steps. */
function afterStep(
  target: KeyringSweepTarget,
  n: number,
  then: () => Promise<void> | void,
): KeyringSweepTarget & { steps: number } {
  const wrapped = {
    sweepName: target.sweepName,
    steps: 0,
    async rewrapOlderTerms(from: SweepPosition | undefined, limit: number): Promise<SweepStep> {
      const step = await target.rewrapOlderTerms(from, limit);
      wrapped.steps++;
      if (wrapped.steps === n) await then();
      return step;
    },
    countByTerm: () => target.countByTerm(),
  };
  return wrapped;
}

/** Every sweeper a test made, stopped when it ends. */
const sweepers: KeyringSweeper[] = [];

function newSweeper(
  rootKey: RootKey,
  targets: readonly KeyringSweepTarget[],
  options: { batchSize: number; idleCheckMs?: number },
) {
  const sink = createMemorySink();
  const sweeper = new KeyringSweeper({
    targets,
    activeTerm: () => rootKey.keyringTerms()?.active,
    logger: createLogger({ component: 'test', sink, level: 'debug' }),
    pauseMs: 0,
    ...options,
  });
  sweepers.push(sweeper);
  return { sweeper, sink };
}

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(5);
  }
}

function sweeperSuite(name: string, open: OpenFixture, skip: string | false): void {
  describe(`keyring sweep (${name})`, { skip }, () => {
    test('after a rotation new rows take the new term, and a pass in small steps rewraps every older row with its data unchanged', async () => {
      const { rootKey, keyring } = legacyRootKey();
      const fixture = await open(keyring);
      try {
        const count = 200;
        const { ciphertexts, sealedRows } = await seed(fixture, count);
        assert.deepEqual(await countByTerm(fixture), { 1: sealedRows });
        const before = await readAll(fixture.secrets, count);

        rotate(rootKey);
        await fixture.secrets.put(parseSecretPath('new/one'), { value: `${MARK}new` });
        await fixture.transit.create('k-new');
        assert.deepEqual(await countByTerm(fixture), { 1: sealedRows, 2: 2 });
        // Rows under term 1 still read, before any sweep.
        assert.deepEqual(await readAll(fixture.secrets, count), before);
        await decryptsAll(fixture.transit, ciphertexts);

        const secrets = afterStep(fixture.secrets, 0, () => undefined);
        const transit = afterStep(fixture.transit, 0, () => undefined);
        const { sweeper, sink } = newSweeper(rootKey, [secrets, transit], { batchSize: 7 });
        assert.equal(await sweeper.pass(), sealedRows);
        assert.ok(
          secrets.steps + transit.steps >= Math.ceil(sealedRows / 7),
          `${secrets.steps + transit.steps} steps of at most 7 rows`,
        );
        assert.deepEqual(await countByTerm(fixture), { 2: sealedRows + 2 });
        assert.ok((await fixture.sealedTerms()).every((term) => term === 2));
        assert.deepEqual(await readAll(fixture.secrets, count), before);
        await decryptsAll(fixture.transit, ciphertexts);
        const status = sweeper.status();
        assert.equal(status.term, 2);
        assert.equal(status.rewrapped, sealedRows);
        assert.equal(status.failed, 0);
        assert.ok(status.startedAt instanceof Date);

        assert.equal(await sweeper.pass(), 0, 'a second pass finds nothing');

        // Term 1 is no longer needed: a Nexus holding term 2 only reads everything.
        const onlyTwo = decodeKeyring(rootKey.keyringPlaintext()).filter((t) => t.term === 2);
        const newer = new RootKey();
        newer.unseal(randomBytes(32), encodeKeyring(onlyTwo), 1);
        const other = await fixture.connect(newer.withKeyring.bind(newer) as KeyringAccess);
        assert.deepEqual(await readAll(other.secrets, count), before);
        await decryptsAll(other.transit, ciphertexts);
        assert.ok(!JSON.stringify(sink.lines).includes(MARK), 'no value reached the log');
      } finally {
        // A failed assertion must not leave a loop running.
        await Promise.all(sweepers.splice(0).map((sweeper) => sweeper.stop()));
        await fixture.dispose();
      }
    });

    test('rows another Nexus adds under the old term during a pass are caught by a later pass', async () => {
      const { rootKey, keyring } = legacyRootKey();
      const fixture = await open(keyring);
      try {
        const count = 40;
        const { ciphertexts, sealedRows } = await seed(fixture, count);
        // Another Nexus that has not taken the new keyring up yet.
        const stale = new RootKey();
        stale.unseal(randomBytes(32), rootKey.keyringPlaintext(), 1);
        const staleStores = await fixture.connect(stale.withKeyring.bind(stale) as KeyringAccess);
        rotate(rootKey);

        // Each write lands behind the step that just ran: this pass has gone past it.
        const secrets = afterStep(fixture.secrets, 2, async () => {
          await staleStores.secrets.put(pathOf(0), { value: `${MARK}late` });
        });
        const transit = afterStep(fixture.transit, 1, async () => {
          await staleStores.transit.rotate('k0');
        });
        const { sweeper } = newSweeper(rootKey, [secrets, transit], { batchSize: 5 });
        assert.equal(await sweeper.pass(), sealedRows);
        assert.deepEqual(await countByTerm(fixture), { 1: 2, 2: sealedRows });

        assert.equal(await sweeper.pass(), 2);
        assert.equal(await sweeper.pass(), 0);
        assert.deepEqual(await countByTerm(fixture), { 2: sealedRows + 2 });
        assert.equal((await fixture.secrets.get(pathOf(0))).data.value, `${MARK}late`);
        await decryptsAll(fixture.transit, ciphertexts);
        const [sealed] = await encrypt(fixture.transit, 'k0', [
          { plaintext: new TextEncoder().encode('x'), context: NONE },
        ]);
        assert.equal(sealed?.keyVersion, VERSIONS_PER_KEY + 1);
        await decryptsAll(fixture.transit, [
          { name: 'k0', version: 4, ciphertext: sealed.ciphertext, plaintext: 'x' },
        ]);
      } finally {
        // A failed assertion must not leave a loop running.
        await Promise.all(sweepers.splice(0).map((sweeper) => sweeper.stop()));
        await fixture.dispose();
      }
    });

    test('a row whose ciphertext fails to open is counted as failed and left; the pass still finishes', async () => {
      const { rootKey, keyring } = legacyRootKey();
      const fixture = await open(keyring);
      try {
        const count = 30;
        const { sealedRows } = await seed(fixture, count);
        await fixture.corruptVersion(pathOf(5), 1);
        rotate(rootKey);
        const { sweeper } = newSweeper(rootKey, [fixture.secrets, fixture.transit], {
          batchSize: 4,
        });
        assert.equal(await sweeper.pass(), sealedRows - 1);
        assert.equal(sweeper.status().failed, 1);
        assert.equal(sweeper.status().rewrapped, sealedRows - 1);
        assert.deepEqual(await countByTerm(fixture), { 1: 1, 2: sealedRows - 1 });
        await assert.rejects(fixture.secrets.get(pathOf(5), 1), { code: 'ERR_DECRYPTION_FAILED' });
        assert.equal((await fixture.secrets.get(pathOf(6), 1)).data.value, `${MARK}6-1`);
        assert.equal(
          await sweeper.pass(),
          0,
          'the damaged row is skipped again, nothing else left',
        );
        assert.deepEqual(await countByTerm(fixture), { 1: 1, 2: sealedRows - 1 });
      } finally {
        // A failed assertion must not leave a loop running.
        await Promise.all(sweepers.splice(0).map((sweeper) => sweeper.stop()));
        await fixture.dispose();
      }
    });

    test('a sweep stopped after one step resumes with a fresh sweeper and finishes', async () => {
      const { rootKey, keyring } = legacyRootKey();
      const fixture = await open(keyring);
      try {
        const count = 60;
        const { ciphertexts, sealedRows } = await seed(fixture, count);
        const before = await readAll(fixture.secrets, count);
        rotate(rootKey);
        let stopping: Promise<void> | undefined;
        const { sweeper: first } = newSweeper(
          rootKey,
          [
            afterStep(fixture.secrets, 1, () => {
              stopping = first.stop();
            }),
            fixture.transit,
          ],
          { batchSize: 10, idleCheckMs: 3_600_000 },
        );
        first.start();
        await waitFor('the stop', () => stopping !== undefined);
        await stopping;
        const counts = await countByTerm(fixture);
        assert.deepEqual(counts, { 1: sealedRows - 10, 2: 10 }, 'one step of 10 rows, then stop');
        assert.equal(first.status().state, 'idle');

        const { sweeper: second } = newSweeper(rootKey, [fixture.secrets, fixture.transit], {
          batchSize: 10,
        });
        assert.equal(await second.pass(), sealedRows - 10);
        assert.deepEqual(await countByTerm(fixture), { 2: sealedRows });
        assert.deepEqual(await readAll(fixture.secrets, count), before);
        await decryptsAll(fixture.transit, ciphertexts);
      } finally {
        // A failed assertion must not leave a loop running.
        await Promise.all(sweepers.splice(0).map((sweeper) => sweeper.stop()));
        await fixture.dispose();
      }
    });

    test('the loop: started, woken after a rotation, it sweeps until nothing is left and reports finishedAt', async () => {
      const { rootKey, keyring } = legacyRootKey();
      const fixture = await open(keyring);
      try {
        const count = 50;
        const { sealedRows } = await seed(fixture, count);
        const { sweeper, sink } = newSweeper(rootKey, [fixture.secrets, fixture.transit], {
          batchSize: 8,
          // Only a wake-up starts the second sweep in this test.
          idleCheckMs: 3_600_000,
        });
        sweeper.start();
        await waitFor('the first (empty) sweep', () => sweeper.status().finishedAt !== undefined);
        assert.equal(sweeper.status().term, 1);
        assert.equal(sweeper.status().rewrapped, 0);

        rotate(rootKey);
        sweeper.wake();
        await waitFor(
          'the sweep for term 2',
          () => sweeper.status().term === 2 && sweeper.status().finishedAt !== undefined,
        );
        const status = sweeper.status();
        assert.equal(status.rewrapped, sealedRows);
        assert.equal(status.failed, 0);
        assert.ok(status.startedAt !== undefined && status.finishedAt !== undefined);
        assert.ok(status.finishedAt.getTime() >= status.startedAt.getTime());
        assert.deepEqual(await countByTerm(fixture), { 2: sealedRows });
        await sweeper.stop();
        assert.equal(sweeper.status().state, 'idle');
        assert.ok(
          sink.lines.some(
            (line) =>
              line.msg === 'Keyring sweep finished' || line.message === 'Keyring sweep finished',
          ),
          'the finish is logged',
        );
        assert.ok(!JSON.stringify(sink.lines).includes(MARK));
      } finally {
        // A failed assertion must not leave a loop running.
        await Promise.all(sweepers.splice(0).map((sweeper) => sweeper.stop()));
        await fixture.dispose();
      }
    });
  });
}

sweeperSuite('SQLite file', openSqlite, false);
const pgSkip = postgresSkip();
if (pgSkip !== false) {
  test(`keyring sweep on PostgreSQL (${TEST_DATABASE_URL_ENV})`, { skip: pgSkip }, () => {});
} else {
  sweeperSuite('PostgreSQL', openPostgres, false);
}
