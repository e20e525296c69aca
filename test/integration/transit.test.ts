/**
 * Named encryption keys against a running broker (the embedded agent, three
 * Keepers, Nexus on SQLite, real mTLS), on the runtime the test runs on:
 * every operation through the SDK, single and batch; rotation, rewrap and
 * the minimum decryption version; a ciphertext of one key or context never
 * opening under another; encrypt and decrypt granted to different
 * workloads; and `spike cipher` as a user runs it, in human and JSON output,
 * each JSON output fed to the next command. Plaintexts are registered with
 * the leak scan, which reads every log, the audit trail and the database.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AccessDeniedError,
  CiphertextInvalidError,
  createSpikeClient,
  KeyVersionTooOldError,
  type SpikeClient,
} from '../../sdk/index.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { runProgram } from '../harness/spawn.ts';

const text = (value: string) => new TextEncoder().encode(value);
const utf8 = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe('named keys against a running broker', () => {
  let broker: Broker;
  let admin: SpikeClient;
  let writer: SpikeClient;
  let reader: SpikeClient;
  let scratch: string;

  async function clientAs(name: string): Promise<SpikeClient> {
    return createSpikeClient({
      source: await broker.source(name),
      nexusUrl: broker.nexusUrl,
      timeoutMs: 10_000,
    });
  }

  async function spike(args: readonly string[]) {
    const result = await runProgram('pilot', {
      args,
      env: {
        ...broker.identityEnv('pilot'),
        SPIKE_NEXUS_API_URL: broker.nexusUrl,
        SPIKE_PILOT_TIMEOUT: '10s',
      },
      timeoutMs: 30_000,
    });
    broker.scan(`stderr of spike ${args.slice(0, 2).join(' ')}`, result.stderr);
    return result;
  }

  async function ok(args: readonly string[]): Promise<string> {
    const result = await spike(args);
    assert.equal(result.status, 0, `spike ${args.join(' ')}\n${result.stdout}\n${result.stderr}`);
    return result.stdout;
  }

  /** A file in the scratch folder holding `content`. */
  function file(name: string, content: string | Uint8Array): string {
    const path = join(scratch, name);
    writeFileSync(path, content);
    return path;
  }

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'spike-transit-'));
    broker = await startBroker({
      trustDomain: 'transit.test',
      workloads: { writer: '/apps/writer', reader: '/apps/reader' },
    });
    admin = await clientAs('pilot');
    writer = await clientAs('writer');
    reader = await clientAs('reader');
  });

  after(async () => {
    for (const client of [admin, writer, reader]) client?.close();
    await broker?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('every operation round-trips through the SDK, single and batch', async () => {
    await admin.createKey('sdk');
    const secret = text(broker.secretValue('sdk-plaintext'));
    const context = text('tenant-7');
    const sealed = await admin.encrypt('sdk', secret, { context });
    assert.match(sealed.ciphertext, /^spike:v1:/);
    assert.deepEqual(await admin.decrypt('sdk', sealed.ciphertext, { context }), secret);
    const rewrapped = await admin.rewrap('sdk', sealed.ciphertext, { context });
    assert.deepEqual(await admin.decrypt('sdk', rewrapped.ciphertext, { context }), secret);

    const plaintexts = [secret, new Uint8Array(0), Uint8Array.from([0, 255, 1, 254])];
    const batch = await admin.encryptBatch(
      'sdk',
      plaintexts.map((plaintext) => ({ plaintext })),
    );
    assert.equal(batch.length, 3);
    const opened = await admin.decryptBatch(
      'sdk',
      batch.map((item) => ({ ciphertext: item.ciphertext })),
    );
    assert.deepEqual(opened, plaintexts);
    const rewrappedBatch = await admin.rewrapBatch(
      'sdk',
      batch.map((item) => ({ ciphertext: item.ciphertext })),
    );
    assert.deepEqual(
      await admin.decryptBatch(
        'sdk',
        rewrappedBatch.map((item) => ({ ciphertext: item.ciphertext })),
      ),
      plaintexts,
    );

    const dataKey = await admin.generateDataKey('sdk', { context });
    assert.equal(dataKey.plaintext?.length, 32);
    assert.deepEqual(
      await admin.decrypt('sdk', dataKey.ciphertext, { context }),
      dataKey.plaintext,
    );
    const [wrapped, short] = await admin.generateDataKeyBatch('sdk', [
      { wrappedOnly: true },
      { bytes: 16 },
    ]);
    assert.equal(wrapped?.plaintext, undefined);
    assert.equal((await admin.decrypt('sdk', wrapped?.ciphertext ?? '')).length, 32);
    assert.equal(short?.plaintext?.length, 16);

    const mac = await admin.hmac('sdk', secret);
    assert.equal(await admin.verifyHmac('sdk', secret, mac.hmac), true);
    assert.equal(await admin.verifyHmac('sdk', text('other'), mac.hmac), false);
    const macs = await admin.hmacBatch('sdk', [text('a'), text('b')]);
    assert.deepEqual(
      await admin.verifyHmacBatch('sdk', [
        { input: text('a'), hmac: macs[0]?.hmac ?? '' },
        { input: text('a'), hmac: macs[1]?.hmac ?? '' },
      ]),
      [true, false],
    );
  });

  test('version 1 decrypts after two rotations and rewraps to the newest; a minimum refuses it', async () => {
    await admin.createKey('rotating');
    const secret = text(broker.secretValue('rotating-plaintext'));
    const v1 = await admin.encrypt('rotating', secret);
    await admin.rotateKey('rotating');
    const key = await admin.rotateKey('rotating');
    assert.equal(key.latestVersion, 3);
    assert.deepEqual(await admin.decrypt('rotating', v1.ciphertext), secret);
    const v3 = await admin.rewrap('rotating', v1.ciphertext);
    assert.equal(v3.keyVersion, 3);
    assert.match(v3.ciphertext, /^spike:v3:/);
    await admin.configureKey('rotating', { minDecryptionVersion: 3 });
    await assert.rejects(admin.decrypt('rotating', v1.ciphertext), (err: unknown) => {
      assert.ok(err instanceof KeyVersionTooOldError);
      assert.equal(err.code, 'ERR_KEY_VERSION_TOO_OLD');
      return true;
    });
    await assert.rejects(admin.rewrap('rotating', v1.ciphertext), KeyVersionTooOldError);
    assert.deepEqual(await admin.decrypt('rotating', v3.ciphertext), secret);
  });

  test('a ciphertext of key A, or with another context, never decrypts under key B', async () => {
    await admin.createKey('key-a');
    await admin.createKey('key-b');
    const secret = text(broker.secretValue('bound-plaintext'));
    const sealed = await admin.encrypt('key-a', secret, { context: text('ctx-1') });
    await assert.rejects(
      admin.decrypt('key-b', sealed.ciphertext, { context: text('ctx-1') }),
      CiphertextInvalidError,
    );
    await assert.rejects(
      admin.decrypt('key-a', sealed.ciphertext, { context: text('ctx-2') }),
      CiphertextInvalidError,
    );
    await assert.rejects(admin.decrypt('key-a', sealed.ciphertext), CiphertextInvalidError);
    await assert.rejects(
      admin.rewrap('key-b', sealed.ciphertext, { context: text('ctx-1') }),
      CiphertextInvalidError,
    );
  });

  test('policies grant encrypt and decrypt apart, by SPIFFE ID and key', async () => {
    await admin.createKey('shared');
    await admin.putPolicy({
      name: 'writer-encrypts',
      spiffeIdPattern: broker.idOf('writer'),
      pathPattern: 'sys/keys/shared',
      permissions: ['encrypt'],
    });
    await admin.putPolicy({
      name: 'reader-decrypts',
      spiffeIdPattern: broker.idOf('reader'),
      pathPattern: 'sys/keys/*',
      permissions: ['decrypt'],
    });
    const secret = text(broker.secretValue('policy-plaintext'));
    const sealed = await writer.encrypt('shared', secret);
    await assert.rejects(writer.decrypt('shared', sealed.ciphertext), AccessDeniedError);
    await assert.rejects(reader.encrypt('shared', secret), AccessDeniedError);
    await assert.rejects(writer.encrypt('sdk', secret), AccessDeniedError);
    await assert.rejects(reader.rewrap('shared', sealed.ciphertext), AccessDeniedError);
    assert.deepEqual(await reader.decrypt('shared', sealed.ciphertext), secret);
    const events = broker.auditEvents().filter((event) => event.resource === 'shared');
    assert.ok(
      events.some(
        (event) =>
          event.action === 'transit.decrypt' &&
          event.outcome === 'allowed' &&
          event.peer === broker.idOf('reader'),
      ),
    );
    assert.ok(
      events.some((event) => event.action === 'transit.decrypt' && event.outcome === 'denied'),
    );
    assert.ok(!JSON.stringify(events).includes(sealed.ciphertext));
  });

  test('spike cipher: human and JSON output, single and batch, each output feeding the next', async () => {
    await ok(['cipher', 'key', 'create', 'cli']);
    const secret = broker.secretValue('cli-plaintext');
    const plain = file('plain.txt', secret);

    // Human: a ciphertext line, and the plaintext's bytes back.
    const line = (await ok(['cipher', 'encrypt', 'cli', '--in', plain, '--context', 'c1'])).trim();
    assert.match(line, /^spike:v1:/);
    const back = await ok([
      'cipher',
      'decrypt',
      'cli',
      '--in',
      file('line.txt', line),
      '--context',
      'c1',
    ]);
    assert.equal(back, secret);

    // JSON: encrypt → decrypt → encrypt, each output the next input.
    const sealed = await ok([
      'cipher',
      'encrypt',
      'cli',
      '--in',
      plain,
      '--context',
      'c2',
      '-f',
      'json',
    ]);
    const opened = await ok([
      'cipher',
      'decrypt',
      'cli',
      '--json-in',
      '--in',
      file('s.json', sealed),
      '-f',
      'json',
    ]);
    assert.equal(utf8(Buffer.from(JSON.parse(opened).plaintext, 'base64')), secret);
    const resealed = await ok([
      'cipher',
      'encrypt',
      'cli',
      '--json-in',
      '--in',
      file('o.json', opened),
      '-f',
      'json',
    ]);
    await ok(['cipher', 'key', 'rotate', 'cli']);
    const rewrapped = await ok([
      'cipher',
      'rewrap',
      'cli',
      '--json-in',
      '--in',
      file('r.json', resealed),
      '-f',
      'json',
    ]);
    assert.equal(JSON.parse(rewrapped).keyVersion, 2);
    assert.equal(
      await ok(['cipher', 'decrypt', 'cli', '--json-in', '--in', file('w.json', rewrapped)]),
      secret,
    );

    // A batch, in JSON and in human output.
    const batch = JSON.stringify({
      batch: [secret, 'two', ''].map((value) => ({
        plaintext: Buffer.from(value).toString('base64'),
      })),
    });
    const sealedBatch = await ok([
      'cipher',
      'encrypt',
      'cli',
      '--json-in',
      '--in',
      file('b.json', batch),
      '-f',
      'json',
    ]);
    assert.equal(JSON.parse(sealedBatch).batch.length, 3);
    const openedBatch = await ok([
      'cipher',
      'decrypt',
      'cli',
      '--json-in',
      '--in',
      file('sb.json', sealedBatch),
    ]);
    assert.deepEqual(
      openedBatch
        .replace(/\n$/, '')
        .split('\n')
        .map((b64) => utf8(Buffer.from(b64, 'base64'))),
      [secret, 'two', ''],
    );

    // Data keys, and HMAC then verify.
    const dataKey = await ok(['cipher', 'datakey', 'cli', '-f', 'json']);
    const unwrapped = await ok([
      'cipher',
      'decrypt',
      'cli',
      '--json-in',
      '--in',
      file('dk.json', dataKey),
      '-f',
      'json',
    ]);
    assert.equal(JSON.parse(unwrapped).plaintext, JSON.parse(dataKey).plaintext);
    const mac = await ok(['cipher', 'hmac', 'cli', '--in', plain, '-f', 'json']);
    assert.equal(
      (await ok(['cipher', 'verify', 'cli', '--json-in', '--in', file('m.json', mac)])).trim(),
      'valid',
    );
    const forged = await spike([
      'cipher',
      'verify',
      'cli',
      '--in',
      file('other.txt', 'not it'),
      '--hmac',
      JSON.parse(mac).hmac,
    ]);
    assert.equal(forged.status, 10);
    assert.equal(forged.stdout.trim(), 'invalid');

    // The minimum decryption version, from the command line.
    await ok(['cipher', 'key', 'config', 'cli', '--min-decryption-version', '2']);
    const refused = await spike([
      'cipher',
      'decrypt',
      'cli',
      '--in',
      file('l1.txt', line),
      '--context',
      'c1',
    ]);
    assert.equal(refused.status, 10);
    assert.match(refused.stderr, /\[ERR_KEY_VERSION_TOO_OLD\]/);
    const info = JSON.parse(await ok(['cipher', 'key', 'get', 'cli', '-f', 'json']));
    assert.equal(info.minDecryptionVersion, 2);
    await ok(['cipher', 'key', 'delete', 'cli', '--yes']);
    assert.deepEqual(
      JSON.parse(await ok(['cipher', 'key', 'list', '-f', 'json'])).keys.includes('cli'),
      false,
    );
  });
});
