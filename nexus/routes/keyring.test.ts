/**
 * The data-key routes through the whole Nexus app (`createApp`): who may read
 * the keyring status and who may rotate, what each answers, and 503 while
 * sealed. The data key is a real createDataKey over a RootKeyManager on a
 * MemoryRootKeyStore with in-process Keepers, and a SQLite secret store.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import {
  keeperId,
  pilotRecoverId,
  pilotRestoreId,
  pilotSuperuserId,
} from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import { nexusApp } from '../../test/harness/nexus_app.ts';
import { createDataKey } from '../keyring/data_key.ts';
import { KeyringSweeper } from '../keyring/sweeper.ts';

const TD = parseTrustDomain('nexus.test');
const SUPERUSER = pilotSuperuserId(TD);
/** A policy grants it `super` on `**`: everything on secrets, nothing on operator routes. */
const SUPER_APP = parseSpiffeId('spiffe://nexus.test/apps/admin');
const NOBODY = parseSpiffeId('spiffe://nexus.test/apps/nobody');
const MARK = 'R0UT3-';

/**
 * A Nexus whose root key comes from in-process Keepers (rotation needs the
 * real manager), with three secrets under term 1 and the data key over them.
 */
function keyringApp() {
  return nexusApp({
    keepers: true,
    seed: [0, 1, 2].map((i) => [`app/${i}`, { value: `${MARK}${i}` }] as const),
    policies: [
      {
        name: 'admin-everything',
        spiffeIdPattern: SUPER_APP.toString(),
        pathPattern: '**',
        permissions: ['super'],
      },
    ],
    dataKey: ({ rootKey, manager, secrets, logger }) =>
      createDataKey({
        rootKey,
        rotate: (delayMs) => manager.rotateDataKey(delayMs),
        sweeper: new KeyringSweeper({
          targets: [secrets],
          activeTerm: () => rootKey.keyringTerms()?.active,
          logger,
        }),
        targets: [secrets],
        activationDelayMs: 0,
      }),
  });
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
    const nexus = await keyringApp();
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
        nexus.sent.map((request) => request.text).join('');
      assert.ok(!trail.includes(MARK), 'no secret value in an answer, event or log line');
    } finally {
      await nexus.close();
    }
  });

  test('while sealed both routes answer 503 ERR_NOT_READY to the superuser, and refused callers still get 403', async () => {
    const nexus = await keyringApp();
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
      await nexus.close();
    }
  });
});
