/**
 * Crash consistency (issue 7, suite 3), with real processes over real mTLS:
 * writers race each other with check-and-set while Nexus is killed with
 * SIGKILL at seeded random moments, some of them while it is still sealed
 * and recovering its root key. After the last restart:
 *
 * - every acknowledged write is readable at the version it was acknowledged
 *   with, holding exactly the data that was sent;
 * - every version that exists holds data some writer sent for that very
 *   version (an unacknowledged write may be there or not, never half);
 * - every version of every path answers 200, or 404 deleted/destroyed when
 *   a delete or destroy of it was sent, never 500: every ciphertext opens;
 * - the rows themselves are whole: each path's versions are exactly
 *   oldest..current, and a version has a ciphertext exactly when it is not
 *   destroyed.
 *
 * It runs on SQLite, and on PostgreSQL when SPIKE_TEST_DATABASE_URL is set.
 * The schedule (pauses, kill moments, the writers' choices) comes from one
 * seed, printed when a run fails; set SPIKE_TEST_CRASH_SEED to replay it. A
 * replay repeats the schedule, not the exact interleaving: where a kill
 * lands inside a request depends on the machine.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import process from 'node:process';
import { after, describe, test } from 'node:test';
import { createClient } from '@libsql/client';
import pg from 'pg';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, type Reply, startBroker } from '../harness/broker.ts';
import {
  createScratchDatabase,
  dropScratchDatabases,
  postgresSkip,
  TEST_DATABASE_URL_ENV,
} from '../harness/postgres.ts';
import { seededRandom } from '../harness/seeded_random.ts';

const SEED_ENV = 'SPIKE_TEST_CRASH_SEED';
const PATHS_UNDER_TEST = ['crash/a', 'crash/b', 'crash/c/deep'];
const WRITERS = 6;
/** Kills per backend; about a third land soon after a restart, before Nexus is ready. */
const KILLS = 4;
/** Acknowledged writes a ready Nexus takes before the pause that ends in its kill. */
const WRITES_PER_LIFE = 5;
/** Every version is kept, so every acknowledged one can be read back. */
const MAX_VERSIONS = 1000;

after(() => dropScratchDatabases());

interface Ledger {
  /** `path#version` → the data bodies sent for that version (JSON). */
  readonly sent: Map<string, Set<string>>;
  /** `path#version` → the data acknowledged for it (JSON). */
  readonly acked: Map<string, string>;
  /** `path#version` for which a soft delete / destroy was sent, and acknowledged. */
  readonly deleteSent: Set<string>;
  readonly deleteAcked: Set<string>;
  readonly destroySent: Set<string>;
  readonly destroyAcked: Set<string>;
  /** path → custom-metadata values sent. */
  readonly metadataSent: Map<string, Set<string>>;
  /** Answers that must never happen (500s, malformed acknowledgements). */
  readonly failures: string[];
  writes: number;
  conflicts: number;
  unknown: number;
}

function newLedger(): Ledger {
  return {
    sent: new Map(),
    acked: new Map(),
    deleteSent: new Set(),
    deleteAcked: new Set(),
    destroySent: new Set(),
    destroyAcked: new Set(),
    metadataSent: new Map(),
    failures: [],
    writes: 0,
    conflicts: 0,
    unknown: 0,
  };
}

const keyOf = (path: string, version: number) => `${path}#${version}`;

function codeOf(reply: Reply): string | undefined {
  const body = reply.body as { error?: { code?: unknown } } | undefined;
  return typeof body?.error?.code === 'string' ? body.error.code : undefined;
}

function messageOf(reply: Reply): string {
  const body = reply.body as { error?: { message?: unknown } } | undefined;
  return typeof body?.error?.message === 'string' ? body.error.message : '';
}

/** A call that turns a failed connection into `undefined` (an unknown outcome). */
async function tryCall(
  broker: Broker,
  method: string,
  path: string,
  body?: unknown,
): Promise<Reply | undefined> {
  try {
    return await broker.call('pilot', method, path, body);
  } catch {
    return undefined;
  }
}

/** Answers that mean the request never reached the store, or the store said no. */
function isExpectedRefusal(reply: Reply): boolean {
  return reply.status === 503 && codeOf(reply) === 'ERR_NOT_READY';
}

async function writer(
  broker: Broker,
  ledger: Ledger,
  options: { id: number; random: () => number; isRunning: () => boolean },
): Promise<void> {
  const { id, random, isRunning } = options;
  // One leak-scan value per writer; every value it sends starts with it.
  const base = broker.secretValue(`writer-${id}`);
  for (let seq = 0; isRunning(); seq += 1) {
    const path = PATHS_UNDER_TEST[Math.floor(random() * PATHS_UNDER_TEST.length)] as string;
    const meta = await tryCall(broker, 'GET', `/v1/secrets/metadata/${path}`);
    let current: number;
    if (meta?.status === 200) {
      current = (meta.body as { currentVersion: number }).currentVersion;
    } else if (meta?.status === 404) {
      current = 0;
    } else {
      if (meta !== undefined && !isExpectedRefusal(meta)) {
        ledger.failures.push(`GET metadata ${path} → ${meta.status} ${meta.text}`);
      }
      await delay(20 + random() * 40);
      continue;
    }
    // Now and then a stale version, so check-and-set has something to refuse.
    const cas = random() < 0.15 && current > 0 ? current - 1 : current;
    const version = cas + 1;
    const data = { value: `${base}:${path}:${version}:${seq}`, writer: String(id) };
    const json = JSON.stringify(data);
    const key = keyOf(path, version);
    let sent = ledger.sent.get(key);
    if (sent === undefined) {
      sent = new Set();
      ledger.sent.set(key, sent);
    }
    sent.add(json);
    const put = await tryCall(broker, 'PUT', `/v1/secrets/data/${path}`, { data, cas });
    ledger.writes += 1;
    if (put === undefined) {
      ledger.unknown += 1;
    } else if (put.status === 200) {
      const got = (put.body as { currentVersion?: unknown }).currentVersion;
      if (got !== version) {
        ledger.failures.push(`PUT ${path} cas ${cas} acknowledged with currentVersion ${got}`);
      } else if (ledger.acked.has(key)) {
        ledger.failures.push(`PUT ${path} version ${version} acknowledged twice`);
      } else {
        ledger.acked.set(key, json);
      }
    } else if (put.status === 409 && codeOf(put) === 'ERR_CONFLICT') {
      ledger.conflicts += 1;
    } else if (!isExpectedRefusal(put)) {
      ledger.failures.push(`PUT ${path} → ${put.status} ${put.text}`);
    }
  }
}

/** Soft-deletes, destroys and re-labels now and then, so those statements crash too. */
async function janitor(
  broker: Broker,
  ledger: Ledger,
  options: { random: () => number; isRunning: () => boolean },
): Promise<void> {
  const { random, isRunning } = options;
  const base = broker.secretValue('janitor');
  for (let seq = 0; isRunning(); seq += 1) {
    await delay(30 + random() * 60);
    const path = PATHS_UNDER_TEST[Math.floor(random() * PATHS_UNDER_TEST.length)] as string;
    const meta = await tryCall(broker, 'GET', `/v1/secrets/metadata/${path}`);
    if (meta?.status !== 200) continue;
    const current = (meta.body as { currentVersion: number }).currentVersion;
    const roll = random();
    if (roll < 0.3) {
      const note = `${base}:${seq}`;
      let sent = ledger.metadataSent.get(path);
      if (sent === undefined) {
        sent = new Set();
        ledger.metadataSent.set(path, sent);
      }
      sent.add(note);
      const put = await tryCall(broker, 'PUT', `/v1/secrets/metadata/${path}`, {
        customMetadata: { note },
      });
      if (put !== undefined && put.status !== 200 && !isExpectedRefusal(put)) {
        ledger.failures.push(`PUT metadata ${path} → ${put.status} ${put.text}`);
      }
      continue;
    }
    // An older version, never the newest: the writers read that one.
    if (current < 2) continue;
    const version = 1 + Math.floor(random() * (current - 1));
    const key = keyOf(path, version);
    const isDestroy = roll > 0.75;
    (isDestroy ? ledger.destroySent : ledger.deleteSent).add(key);
    const reply = isDestroy
      ? await tryCall(broker, 'POST', `/v1/secrets/destroy/${path}`, { versions: [version] })
      : await tryCall(broker, 'DELETE', `/v1/secrets/data/${path}?versions=${version}`);
    if (reply?.status === 200) {
      (isDestroy ? ledger.destroyAcked : ledger.deleteAcked).add(key);
    } else if (reply !== undefined && !isExpectedRefusal(reply)) {
      ledger.failures.push(
        `${isDestroy ? 'destroy' : 'delete'} ${path} v${version} → ${reply.status} ${reply.text}`,
      );
    }
  }
}

/**
 * The chaos: pauses and SIGKILLs from the seed. About a third of the kills
 * come soon after a restart without waiting until Nexus is ready, so they
 * land while it recovers its root key or re-splits it.
 */
async function killNexusRepeatedly(
  broker: Broker,
  ledger: Ledger,
  options: { random: () => number; schedule: string[] },
): Promise<void> {
  const { random, schedule } = options;
  for (let kill = 1; kill <= KILLS; kill += 1) {
    const isEarly = kill > 1 && random() < 0.35;
    if (!isEarly) {
      await broker.waitUntilReady(`Nexus recovered before kill ${kill}`, 40_000);
      // Some writes land on every ready Nexus, however slow the machine.
      const before = ledger.acked.size;
      const deadline = Date.now() + 20_000;
      while (ledger.acked.size < before + WRITES_PER_LIFE) {
        if (Date.now() > deadline) throw new Error(`No write was acknowledged before kill ${kill}`);
        await delay(20);
      }
    }
    const pauseMs = isEarly ? 50 + Math.floor(random() * 550) : 200 + Math.floor(random() * 900);
    schedule.push(`${isEarly ? 'early' : 'ready'}+${pauseMs}ms`);
    await delay(pauseMs);
    const nexus = broker.nexus();
    nexus.child.kill('SIGKILL');
    await nexus.exited(10_000);
    // The last kill ends the run: the writers stop, and the check starts
    // Nexus again on what it left.
    if (kill < KILLS) broker.startNexus();
  }
}

interface Found {
  readonly versionsRead: number;
  readonly deletedOrDestroyed: number;
}

/** Reads every version of every path through the API and checks it against the ledger. */
async function checkThroughApi(broker: Broker, ledger: Ledger): Promise<Found> {
  let versionsRead = 0;
  let deletedOrDestroyed = 0;
  const problems: string[] = [];
  const maxAcked = new Map<string, number>();
  for (const key of ledger.acked.keys()) {
    const [path, version] = key.split('#') as [string, string];
    maxAcked.set(path, Math.max(maxAcked.get(path) ?? 0, Number(version)));
  }
  for (const path of PATHS_UNDER_TEST) {
    const meta = await broker.call('pilot', 'GET', `/v1/secrets/metadata/${path}`);
    if (meta.status === 404) {
      if ((maxAcked.get(path) ?? 0) > 0) problems.push(`${path}: gone, but writes were acked`);
      continue;
    }
    if (meta.status !== 200) {
      problems.push(`GET metadata ${path} → ${meta.status} ${meta.text}`);
      continue;
    }
    const metadata = meta.body as {
      currentVersion: number;
      oldestVersion: number;
      versions: { version: number; deletedAt: string | null; destroyed: boolean }[];
      customMetadata: Record<string, string>;
    };
    const { currentVersion, oldestVersion } = metadata;
    if (oldestVersion !== 1) problems.push(`${path}: oldest version ${oldestVersion}, not 1`);
    if (currentVersion < (maxAcked.get(path) ?? 0)) {
      problems.push(`${path}: current ${currentVersion} < acknowledged ${maxAcked.get(path)}`);
    }
    const listed = metadata.versions.map((v) => v.version);
    const expected = Array.from({ length: currentVersion - oldestVersion + 1 }, (_, i) => i + 1);
    if (JSON.stringify(listed) !== JSON.stringify(expected)) {
      problems.push(`${path}: versions ${listed.join(',')} are not 1..${currentVersion}`);
    }
    const note = metadata.customMetadata.note;
    if (note !== undefined && !ledger.metadataSent.get(path)?.has(note)) {
      problems.push(`${path}: custom metadata that nobody sent`);
    }
    for (let version = 1; version <= currentVersion; version += 1) {
      const key = keyOf(path, version);
      const read = await broker.call('pilot', 'GET', `/v1/secrets/data/${path}?version=${version}`);
      versionsRead += 1;
      if (read.status === 200) {
        const body = read.body as { version: number; data: Record<string, string> };
        const json = JSON.stringify(body.data);
        if (body.version !== version) problems.push(`${key}: answered as version ${body.version}`);
        if (!ledger.sent.get(key)?.has(json)) {
          problems.push(`${key}: holds data no writer sent for this version`);
        }
        const acked = ledger.acked.get(key);
        if (acked !== undefined && acked !== json) {
          problems.push(`${key}: holds other data than the acknowledged write`);
        }
        if (ledger.deleteAcked.has(key) || ledger.destroyAcked.has(key)) {
          problems.push(`${key}: readable after an acknowledged delete or destroy`);
        }
      } else if (read.status === 404 && codeOf(read) === 'ERR_NOT_FOUND') {
        deletedOrDestroyed += 1;
        const message = messageOf(read);
        const isDestroyed = / is destroyed$/.test(message);
        const isDeleted = / is deleted$/.test(message);
        if (
          isDestroyed ? !ledger.destroySent.has(key) : !isDeleted || !ledger.deleteSent.has(key)
        ) {
          problems.push(`${key}: 404 "${message}" without a matching delete or destroy`);
        }
        if (!ledger.sent.has(key)) problems.push(`${key}: a version no writer sent`);
      } else {
        problems.push(`${key}: GET → ${read.status} ${read.text}`);
      }
    }
  }
  for (const key of ledger.acked.keys()) {
    const [path, version] = key.split('#') as [string, string];
    if (!PATHS_UNDER_TEST.includes(path) || Number(version) < 1) problems.push(`bad key ${key}`);
  }
  assert.deepEqual(problems, [], 'the store after the crashes');
  return { versionsRead, deletedOrDestroyed };
}

interface RawVersion {
  readonly path: string;
  readonly version: number;
  readonly destroyed: boolean;
  readonly hasCiphertext: boolean;
}

interface RawState {
  readonly metadata: readonly { path: string; current: number; oldest: number }[];
  readonly versions: readonly RawVersion[];
  readonly rootKey: { lastGeneration: number; committedGeneration: number | null };
}

async function readSqliteRows(file: string): Promise<RawState> {
  const client = createClient({ url: `file:${file}` });
  try {
    const meta = await client.execute(
      'SELECT path, current_version AS current, oldest_version AS oldest FROM secret_metadata ORDER BY path',
    );
    const rows = await client.execute(
      'SELECT path, version, destroyed, ciphertext IS NOT NULL AS has FROM secrets ORDER BY path, version',
    );
    const key = await client.execute(
      'SELECT last_generation AS last, committed_generation AS committed FROM root_key',
    );
    const integrity = await client.execute('PRAGMA integrity_check');
    assert.equal(integrity.rows[0]?.[0], 'ok', 'SQLite integrity_check');
    const keyRow = key.rows[0];
    assert.ok(keyRow !== undefined && key.rows.length === 1, 'one root_key row');
    return {
      metadata: meta.rows.map((r) => ({
        path: String(r.path),
        current: Number(r.current),
        oldest: Number(r.oldest),
      })),
      versions: rows.rows.map((r) => ({
        path: String(r.path),
        version: Number(r.version),
        destroyed: Number(r.destroyed) === 1,
        hasCiphertext: Number(r.has) === 1,
      })),
      rootKey: {
        lastGeneration: Number(keyRow.last),
        committedGeneration: keyRow.committed === null ? null : Number(keyRow.committed),
      },
    };
  } finally {
    client.close();
  }
}

async function readPostgresRows(url: string): Promise<RawState> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const meta = await client.query(
      'SELECT path, current_version AS current, oldest_version AS oldest FROM secret_metadata ORDER BY path',
    );
    const rows = await client.query(
      'SELECT path, version, destroyed, ciphertext IS NOT NULL AS has FROM secrets ORDER BY path, version',
    );
    const key = await client.query(
      'SELECT last_generation AS last, committed_generation AS committed FROM root_key',
    );
    const keyRow = key.rows[0] as { last: number; committed: number | null } | undefined;
    assert.ok(keyRow !== undefined && key.rows.length === 1, 'one root_key row');
    return {
      metadata: meta.rows.map((r: { path: string; current: number; oldest: number }) => ({
        path: r.path,
        current: Number(r.current),
        oldest: Number(r.oldest),
      })),
      versions: rows.rows.map(
        (r: { path: string; version: number; destroyed: boolean; has: boolean }) => ({
          path: r.path,
          version: Number(r.version),
          destroyed: r.destroyed,
          hasCiphertext: r.has,
        }),
      ),
      rootKey: {
        lastGeneration: Number(keyRow.last),
        committedGeneration: keyRow.committed === null ? null : Number(keyRow.committed),
      },
    };
  } finally {
    await client.end();
  }
}

/** The rows behind the API: no half-written version, no orphan, generations in order. */
function checkRows(state: RawState): void {
  const problems: string[] = [];
  const byPath = new Map<string, RawVersion[]>();
  for (const row of state.versions) {
    const list = byPath.get(row.path) ?? [];
    list.push(row);
    byPath.set(row.path, list);
    if (row.destroyed === row.hasCiphertext) {
      problems.push(
        `${row.path}#${row.version}: destroyed=${row.destroyed} with${row.hasCiphertext ? '' : 'out'} ciphertext`,
      );
    }
  }
  for (const { path, current, oldest } of state.metadata) {
    const versions = (byPath.get(path) ?? []).map((row) => row.version);
    byPath.delete(path);
    const expected = Array.from({ length: current - oldest + 1 }, (_, i) => oldest + i);
    if (JSON.stringify(versions) !== JSON.stringify(expected)) {
      problems.push(`${path}: rows ${versions.join(',')} for ${oldest}..${current}`);
    }
  }
  for (const path of byPath.keys()) problems.push(`${path}: version rows without metadata`);
  const { lastGeneration, committedGeneration } = state.rootKey;
  if (committedGeneration === null || committedGeneration > lastGeneration) {
    problems.push(`root key: committed ${committedGeneration}, last ${lastGeneration}`);
  }
  assert.deepEqual(problems, [], 'the database rows after the crashes');
}

async function runCrashSuite(
  t: { diagnostic(message: string): void },
  options: { trustDomain: string; databaseUrl?: string },
): Promise<void> {
  const fromEnv = process.env[SEED_ENV];
  const seed =
    fromEnv === undefined || fromEnv === '' ? Math.floor(Math.random() * 2 ** 31) : Number(fromEnv);
  assert.ok(Number.isSafeInteger(seed), `${SEED_ENV} must be an integer, got "${fromEnv}"`);
  t.diagnostic(`seed ${seed} (replay with ${SEED_ENV}=${seed})`);
  const random = seededRandom(seed);
  const broker = await startBroker({
    trustDomain: options.trustDomain,
    nexusEnv: { SPIKE_NEXUS_MAX_SECRET_VERSIONS: String(MAX_VERSIONS) },
    ...(options.databaseUrl === undefined ? {} : { databaseUrl: options.databaseUrl }),
  });
  const ledger = newLedger();
  const schedule: string[] = [];
  try {
    let isRunning = true;
    const actors = [
      ...Array.from({ length: WRITERS }, (_, id) =>
        writer(broker, ledger, {
          id,
          random: seededRandom(seed + 1 + id),
          isRunning: () => isRunning,
        }),
      ),
      janitor(broker, ledger, { random: seededRandom(seed + 100), isRunning: () => isRunning }),
    ];
    try {
      await killNexusRepeatedly(broker, ledger, { random, schedule });
    } finally {
      isRunning = false;
      await Promise.all(actors);
    }
    t.diagnostic(
      `${ledger.writes} writes: ${ledger.acked.size} acknowledged, ${ledger.conflicts} refused by cas, ${ledger.unknown} unanswered; kills ${schedule.join(' ')}`,
    );
    assert.deepEqual(ledger.failures, [], 'answers during the crashes');

    // A fresh start from what the last kill left, then every version through the API.
    broker.closeClients();
    broker.startNexus();
    await broker.waitUntilReady('Nexus recovered for the check', 40_000);
    const found = await checkThroughApi(broker, ledger);
    t.diagnostic(
      `${found.versionsRead} versions read, ${found.deletedOrDestroyed} deleted or destroyed`,
    );

    // And the rows themselves, as the last Nexus leaves them when killed.
    const final = broker.nexus();
    final.child.kill('SIGKILL');
    await final.exited(10_000);
    checkRows(
      options.databaseUrl === undefined
        ? await readSqliteRows(join(broker.dir, 'nexus-data', 'spike.db'))
        : await readPostgresRows(options.databaseUrl),
    );
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(
      `Crash consistency failed with seed ${seed} (replay with ${SEED_ENV}=${seed}; kills ${schedule.join(' ')}):\n${message}\n--- last Nexus stderr (tail) ---\n${broker.nexus().stderr().slice(-4000)}`,
      { cause: err },
    );
  } finally {
    await broker.stop();
  }
}

describe('crash consistency under SIGKILL of Nexus', () => {
  test('SQLite: acknowledged writes survive, no version is half-written, every ciphertext opens', async (t) => {
    await runCrashSuite(t, { trustDomain: 'crash-sqlite.test' });
  });

  const skip = postgresSkip();
  test(`PostgreSQL: the same${skip === false ? '' : ` (${TEST_DATABASE_URL_ENV})`}`, {
    skip,
  }, async (t) => {
    await runCrashSuite(t, {
      trustDomain: 'crash-postgres.test',
      databaseUrl: await createScratchDatabase(),
    });
  });
});
