/**
 * The named-key routes through the whole Nexus app (`createApp`): the guard
 * decides on `sys/keys/{name}` before anything is looked up, encrypt and
 * decrypt are granted apart, a list holds only the keys the caller may
 * list, single items and batches round-trip over HTTP, the codes of a
 * refused ciphertext, a sealed Nexus, and the audit trail and log, which
 * name the action and the key but never plaintext, ciphertext or HMACs.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import type { PolicyDocument } from '../../shared/api/policies.ts';
import { decodeBase64, encodeBase64 } from '../../shared/crypto/base64.ts';
import { pilotRecoverId, pilotSuperuserId } from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { type NexusApp, nexusApp } from '../../test/harness/nexus_app.ts';

const TD = parseTrustDomain('nexus.test');
const SUPERUSER = pilotSuperuserId(TD);
/** May encrypt under `orders` only. */
const WRITER = parseSpiffeId('spiffe://nexus.test/apps/writer');
/** May decrypt under `orders`, and list and read it. */
const READER = parseSpiffeId('spiffe://nexus.test/apps/reader');
const NOBODY = parseSpiffeId('spiffe://nexus.test/apps/nobody');

const POLICIES: readonly PolicyDocument[] = [
  {
    name: 'writer-encrypts',
    spiffeIdPattern: WRITER.toString(),
    pathPattern: 'sys/keys/orders',
    permissions: ['encrypt'],
  },
  {
    name: 'reader-decrypts',
    spiffeIdPattern: READER.toString(),
    pathPattern: 'sys/keys/orders',
    permissions: ['decrypt', 'list', 'read'],
  },
];

/** Every plaintext sent here starts with this, so a leak is easy to find. */
const MARK = 'PL41NT3XT-';

const apps: NexusApp[] = [];
after(async () => {
  await Promise.all(apps.map((app) => app.close()));
});

/** A Nexus with the keys `orders` and `payroll`, and a body limit no batch here reaches. */
async function transitApp() {
  const nexus = await nexusApp({ policies: POLICIES, maxBodyBytes: 1024 * 1024 });
  apps.push(nexus);
  await nexus.transitKeys.create('orders');
  await nexus.transitKeys.create('payroll');
  const { audit, logSink } = nexus;
  return {
    ...nexus,
    /** Calls the routes made on the named-key store, by method name. */
    calls: nexus.transitCalls,
    /** No audit event or log line held a plaintext, a ciphertext or an HMAC. */
    assertNothingLeaked(values: readonly string[]) {
      const trail = JSON.stringify(audit.events) + JSON.stringify(logSink.lines);
      for (const value of [MARK, encodeBase64(new TextEncoder().encode(MARK)), ...values]) {
        assert.ok(!trail.includes(value), `the audit trail or the log holds ${value.slice(0, 20)}`);
      }
      assert.ok(!trail.includes('spike:v'), 'the audit trail or the log holds a ciphertext');
    },
  };
}

const b64 = (text: string) => encodeBase64(new TextEncoder().encode(text));
const encryptOf = (name: string) => `${PATHS.transitEncrypt}/${name}`;
const decryptOf = (name: string) => `${PATHS.transitDecrypt}/${name}`;

describe('named key routes', () => {
  test('a refused caller gets 403 whether the key exists or not, before any lookup', async () => {
    const nexus = await transitApp();
    nexus.calls.length = 0;
    for (const name of ['orders', 'no-such-key']) {
      for (const [method, url, body] of [
        ['GET', `${PATHS.transitKeys}/${name}`, undefined],
        ['POST', `${PATHS.transitKeys}/${name}/rotate`, undefined],
        ['DELETE', `${PATHS.transitKeys}/${name}`, undefined],
        ['POST', encryptOf(name), { plaintext: b64(MARK) }],
        ['POST', `${PATHS.transitHmac}/${name}`, { input: b64(MARK) }],
      ] as const) {
        const answer = await nexus.send(NOBODY, method, url, body);
        assert.equal(answer.status, 403, `${method} ${url}`);
        assert.equal(answer.body.error.code, 'ERR_ACCESS_DENIED');
      }
    }
    // The recover role has its operator routes only.
    assert.equal(
      (await nexus.send(pilotRecoverId(TD), 'GET', `${PATHS.transitKeys}/orders`)).status,
      403,
    );
    assert.deepEqual(nexus.calls, []);
    const event = nexus.audit.events.at(-1);
    assert.equal(event?.action, 'key.read');
    assert.equal(event?.resource, 'orders');
    assert.deepEqual(event?.decision, { reason: 'operator_role', policy: null });
  });

  test('encrypt and decrypt are granted apart: the writer cannot read back, the reader cannot write', async () => {
    const nexus = await transitApp();
    const sealed = await nexus.send(WRITER, 'POST', encryptOf('orders'), {
      plaintext: b64(`${MARK}order 1`),
    });
    assert.equal(sealed.status, 200);
    assert.match(sealed.body.ciphertext, /^spike:v1:/);
    assert.equal(sealed.body.keyVersion, 1);
    const { ciphertext } = sealed.body;
    assert.equal(
      (await nexus.send(WRITER, 'POST', decryptOf('orders'), { ciphertext })).status,
      403,
    );
    assert.equal(
      (await nexus.send(READER, 'POST', encryptOf('orders'), { plaintext: b64('x') })).status,
      403,
    );
    // A grant on one key is nothing on another.
    assert.equal(
      (await nexus.send(WRITER, 'POST', encryptOf('payroll'), { plaintext: b64('x') })).status,
      403,
    );
    const opened = await nexus.send(READER, 'POST', decryptOf('orders'), { ciphertext });
    assert.equal(opened.status, 200);
    assert.equal(new TextDecoder().decode(decodeBase64(opened.body.plaintext)), `${MARK}order 1`);
    const event = nexus.audit.events.at(-1);
    assert.equal(event?.action, 'transit.decrypt');
    assert.equal(event?.resource, 'orders');
    assert.deepEqual(event?.decision, { reason: 'policy', policy: 'reader-decrypts' });
    nexus.assertNothingLeaked([ciphertext]);
  });

  test('the list holds the keys the caller may list; key metadata never holds material', async () => {
    const nexus = await transitApp();
    assert.deepEqual((await nexus.send(SUPERUSER, 'GET', PATHS.transitKeys)).body, {
      keys: ['orders', 'payroll'],
    });
    assert.deepEqual((await nexus.send(READER, 'GET', PATHS.transitKeys)).body, {
      keys: ['orders'],
    });
    assert.deepEqual((await nexus.send(NOBODY, 'GET', PATHS.transitKeys)).body, { keys: [] });
    const info = await nexus.send(READER, 'GET', `${PATHS.transitKeys}/orders`);
    assert.equal(info.status, 200);
    assert.deepEqual(Object.keys(info.body).sort(), [
      'createdAt',
      'latestVersion',
      'minDecryptionVersion',
      'name',
      'updatedAt',
      'versions',
    ]);
  });

  test('create, rotate, configure and delete over HTTP, with their codes', async () => {
    const nexus = await transitApp();
    const key = `${PATHS.transitKeys}/fresh`;
    assert.equal((await nexus.send(SUPERUSER, 'POST', key)).body.latestVersion, 1);
    const again = await nexus.send(SUPERUSER, 'POST', key);
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'ERR_CONFLICT');
    const v1 = (await nexus.send(SUPERUSER, 'POST', encryptOf('fresh'), { plaintext: b64(MARK) }))
      .body.ciphertext;
    assert.equal((await nexus.send(SUPERUSER, 'POST', `${key}/rotate`)).body.latestVersion, 2);
    const raised = await nexus.send(SUPERUSER, 'POST', `${key}/config`, {
      minDecryptionVersion: 2,
    });
    assert.equal(raised.body.minDecryptionVersion, 2);
    const refused = await nexus.send(SUPERUSER, 'POST', decryptOf('fresh'), { ciphertext: v1 });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'ERR_KEY_VERSION_TOO_OLD');
    const beyond = await nexus.send(SUPERUSER, 'POST', `${key}/config`, {
      minDecryptionVersion: 3,
    });
    assert.equal(beyond.status, 400);
    assert.equal(beyond.body.error.code, 'ERR_INVALID_REQUEST');
    assert.equal((await nexus.send(SUPERUSER, 'DELETE', key)).status, 204);
    const gone = await nexus.send(SUPERUSER, 'GET', key);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, 'ERR_NOT_FOUND');
    const foreign = await nexus.send(SUPERUSER, 'POST', decryptOf('orders'), { ciphertext: v1 });
    assert.equal(foreign.status, 400);
    assert.equal(foreign.body.error.code, 'ERR_CIPHERTEXT_INVALID');
    nexus.assertNothingLeaked([v1]);
  });

  test('batches answer { batch } in item order, for every data route', async () => {
    const nexus = await transitApp();
    const items = ['a', 'bb', ''].map((text) => ({ plaintext: b64(`${MARK}${text}`) }));
    const sealed = await nexus.send(SUPERUSER, 'POST', encryptOf('orders'), { batch: items });
    assert.equal(sealed.body.batch.length, 3);
    const ciphertexts = sealed.body.batch.map((result: { ciphertext: string }) => ({
      ciphertext: result.ciphertext,
    }));
    const opened = await nexus.send(SUPERUSER, 'POST', decryptOf('orders'), { batch: ciphertexts });
    assert.deepEqual(
      opened.body.batch.map((result: { plaintext: string }) => result.plaintext),
      items.map((item) => item.plaintext),
    );
    const rewrapped = await nexus.send(SUPERUSER, 'POST', `${PATHS.transitRewrap}/orders`, {
      batch: ciphertexts,
    });
    assert.equal(rewrapped.body.batch.length, 3);
    const keys = await nexus.send(SUPERUSER, 'POST', `${PATHS.transitDataKey}/orders`, {
      batch: [{}, { wrappedOnly: true, bytes: 16 }],
    });
    assert.equal(decodeBase64(keys.body.batch[0].plaintext).length, 32);
    assert.equal(keys.body.batch[1].plaintext, undefined);
    const macs = await nexus.send(SUPERUSER, 'POST', `${PATHS.transitHmac}/orders`, {
      batch: [{ input: b64('m1') }, { input: b64('m2') }],
    });
    const verified = await nexus.send(SUPERUSER, 'POST', `${PATHS.transitVerify}/orders`, {
      batch: [
        { input: b64('m1'), hmac: macs.body.batch[0].hmac },
        { input: b64('m1'), hmac: macs.body.batch[1].hmac },
      ],
    });
    assert.deepEqual(verified.body, { batch: [{ valid: true }, { valid: false }] });
    const bad = await nexus.send(SUPERUSER, 'POST', decryptOf('orders'), {
      batch: [...ciphertexts, { ciphertext: 'spike:v1:AAAA', context: b64('x') }],
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /^Item 4 of the batch: /);
  });

  test('while sealed, the routes answer 503 ERR_NOT_READY', async () => {
    const nexus = await transitApp();
    nexus.rootKey.seal();
    for (const [method, url, body] of [
      ['GET', PATHS.transitKeys, undefined],
      ['GET', `${PATHS.transitKeys}/orders`, undefined],
      ['POST', encryptOf('orders'), { plaintext: b64('x') }],
    ] as const) {
      const answer = await nexus.send(SUPERUSER, method, url, body);
      assert.equal(answer.status, 503, `${method} ${url}`);
      assert.equal(answer.body.error.code, 'ERR_NOT_READY');
    }
  });
});
