/**
 * The data-key routes through the whole Nexus app (`createApp`): who may read
 * the keyring status and who may rotate, what each answers, and 503 while
 * sealed. The data key is a real createDataKey over a RootKeyManager on a
 * MemoryRootKeyStore with in-process Keepers, and a SQLite secret store.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import { RequestCount } from '../../shared/http/request_count.ts';
import { createMemoryAuditSink } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import {
  keeperId,
  pilotRecoverId,
  pilotRestoreId,
  pilotSuperuserId,
} from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import { inProcessKeeper } from '../../test/harness/in_process_keeper.ts';
import { createAccessChecker } from '../access/check_access.ts';
import { loadPolicyCache } from '../access/policy_cache.ts';
import { createApp } from '../app.ts';
import { createDataKey } from '../keyring/data_key.ts';
import { KeyringSweeper } from '../keyring/sweeper.ts';
import { RootKey } from '../root_key/root_key.ts';
import { RootKeyManager } from '../root_key/root_key_manager.ts';
import { openMemoryDatabase, type SqliteDatabase } from '../store/sqlite/db.ts';
import { SqliteSecretStore } from '../store/sqlite/secret_store.ts';
import { MemoryPolicyStore } from '../store/testing/memory_policy_store.ts';
import { MemoryRootKeyStore } from '../store/testing/memory_root_key_store.ts';

const TD = parseTrustDomain('nexus.test');
const HOUR_MS = 3_600_000;
const SUPERUSER = pilotSuperuserId(TD);
/** A policy grants it `super` on `**`: everything on secrets, nothing on operator routes. */
const SUPER_APP = parseSpiffeId('spiffe://nexus.test/apps/admin');
const NOBODY = parseSpiffeId('spiffe://nexus.test/apps/nobody');
const MARK = 'R0UT3-';

const databases: SqliteDatabase[] = [];
after(async () => {
  for (const database of databases) await database.close();
});

async function nexusApp() {
  const logSink = createMemorySink();
  const logger = createLogger({ component: 'nexus', level: 'debug', sink: logSink });
  const rootKey = new RootKey();
  const manager = new RootKeyManager({
    store: new MemoryRootKeyStore(),
    keepers: ['k1', 'k2', 'k3'].map((name) => inProcessKeeper(name).link),
    threshold: 2,
    rootKey,
    logger,
    checkIntervalMs: 60_000,
    recoveryMaxIntervalMs: 1000,
  });
  await manager.step();
  assert.ok(rootKey.isReady);
  const database = await openMemoryDatabase();
  databases.push(database);
  const secrets = new SqliteSecretStore({
    database,
    keyring: rootKey.withKeyring.bind(rootKey),
    maxVersionsDefault: 10,
  });
  for (let i = 0; i < 3; i++) {
    await secrets.put(parseSecretPath(`app/${i}`), { value: `${MARK}${i}` });
  }
  const sweeper = new KeyringSweeper({
    targets: [secrets],
    activeTerm: () => rootKey.keyringTerms()?.active,
    logger,
  });
  const dataKey = createDataKey({
    rootKey,
    rotate: (delayMs) => manager.rotateDataKey(delayMs),
    sweeper,
    targets: [secrets],
    activationDelayMs: 0,
  });
  const policies = new MemoryPolicyStore();
  await policies.upsert({
    name: 'admin-everything',
    spiffeIdPattern: SUPER_APP.toString(),
    pathPattern: '**',
    permissions: ['super'],
  });
  const policyCache = await loadPolicyCache({ store: policies, logger });
  const access = createAccessChecker({ trustDomain: TD, policies: () => policyCache.policies() });
  const audit = createMemoryAuditSink();
  let peer: SpiffeId = SUPERUSER;
  const app = createApp({
    getPeer: () => ({
      id: peer,
      notBefore: new Date(Date.now() - HOUR_MS),
      notAfter: new Date(Date.now() + HOUR_MS),
      serialNumber: '01',
    }),
    logger,
    trustDomain: TD,
    rootKey,
    manager,
    dataKey,
    secrets,
    watches: {} as never,
    policies,
    transitKeys: {} as never,
    policyCache,
    access,
    identity: {
      getX509Svid: () => ({
        id: parseSpiffeId('spiffe://nexus.test/spike/nexus'),
        notAfter: new Date(Date.now() + HOUR_MS),
      }),
    },
    refusals: { refusedCount: 0 },
    deniedRequests: new RequestCount(),
    maxBodyBytes: 1024 * 1024,
    auditSink: audit,
  });
  const texts: string[] = [];
  return {
    rootKey,
    manager,
    audit,
    logSink,
    texts,
    async send(as: SpiffeId, method: 'GET' | 'POST', url: string) {
      peer = as;
      const res = await app.request(url, { method });
      const text = await res.text();
      texts.push(text);
      // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field, and the assertions check each
      const answer: any = text === '' ? undefined : JSON.parse(text);
      return { status: res.status, body: answer };
    },
    stop() {
      manager.stop();
    },
  };
}

const READERS: readonly [string, SpiffeId][] = [
  ['the superuser', SUPERUSER],
  ['the recover role', pilotRecoverId(TD)],
  ['the restore role', pilotRestoreId(TD)],
];
const OUTSIDERS: readonly [string, SpiffeId][] = [
  ['an app with `super` on `**`', SUPER_APP],
  ['an app without a policy', NOBODY],
  ['a Keeper', keeperId(TD)],
  [
    'a superuser look-alike of a foreign trust domain',
    parseSpiffeId('spiffe://other.org/spike/pilot/role/superuser'),
  ],
];

describe('keyring routes', () => {
  test('the operator roles read the status; only the superuser rotates; everyone else gets 403', async () => {
    const nexus = await nexusApp();
    try {
      for (const [who, id] of READERS) {
        const answer = await nexus.send(id, 'GET', PATHS.operatorKeyring);
        assert.equal(answer.status, 200, who);
        assert.equal(answer.body.activeTerm, 1, who);
        assert.deepEqual(answer.body.rowsByTerm, { '1': 3 }, who);
      }
      for (const [who, id] of [...READERS.slice(1), ...OUTSIDERS]) {
        const answer = await nexus.send(id, 'POST', PATHS.operatorKeyringRotate);
        assert.equal(answer.status, 403, who);
        assert.equal(answer.body.error.code, 'ERR_ACCESS_DENIED', who);
      }
      for (const [who, id] of OUTSIDERS) {
        const answer = await nexus.send(id, 'GET', PATHS.operatorKeyring);
        assert.equal(answer.status, 403, who);
      }
      // No refused rotation made a term.
      assert.deepEqual(
        nexus.rootKey.keyringTerms()?.terms.map((t) => t.term),
        [1],
      );

      const rotated = await nexus.send(SUPERUSER, 'POST', PATHS.operatorKeyringRotate);
      assert.equal(rotated.status, 200);
      assert.equal(rotated.body.term.term, 2);
      assert.equal(typeof rotated.body.term.createdAt, 'string');
      assert.equal(nexus.rootKey.keyringTerms()?.active, 2);

      const status = await nexus.send(pilotRecoverId(TD), 'GET', PATHS.operatorKeyring);
      assert.equal(status.status, 200);
      assert.equal(status.body.activeTerm, 2);
      assert.deepEqual(
        status.body.terms.map((t: { term: number }) => t.term),
        [1, 2],
      );
      assert.equal(status.body.sweep.remaining, 3);

      const rotate = nexus.audit.events.filter((event) => event.action === 'keyring.rotate');
      assert.ok(rotate.length >= 1, 'rotations are audited');
      const trail =
        JSON.stringify(nexus.audit.events) +
        JSON.stringify(nexus.logSink.lines) +
        nexus.texts.join('');
      assert.ok(!trail.includes(MARK), 'no secret value in an answer, event or log line');
    } finally {
      nexus.stop();
    }
  });

  test('while sealed both routes answer 503 ERR_NOT_READY to the superuser, and refused callers still get 403', async () => {
    const nexus = await nexusApp();
    try {
      nexus.rootKey.seal();
      for (const [method, url] of [
        ['GET', PATHS.operatorKeyring],
        ['POST', PATHS.operatorKeyringRotate],
      ] as const) {
        const answer = await nexus.send(SUPERUSER, method, url);
        assert.equal(answer.status, 503, `${method} ${url}`);
        assert.equal(answer.body.error.code, 'ERR_NOT_READY');
        assert.equal((await nexus.send(NOBODY, method, url)).status, 403);
      }
      assert.equal(
        (await nexus.send(pilotRestoreId(TD), 'GET', PATHS.operatorKeyring)).status,
        503,
      );
    } finally {
      nexus.stop();
    }
  });
});
