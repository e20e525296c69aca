import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeWireBytes } from '../../shared/api/transit.ts';
import { createFakeTerminal, FakeClient, run } from './_testing.ts';

/** A client with the key `orders`. */
function withKey(): FakeClient {
  const client = new FakeClient();
  client.keys.set('orders', { latest: 1, min: 1 });
  return client;
}

/** `spike <args>` with `stdin`, against `client`. */
function spike(client: FakeClient, args: readonly string[], stdin: string | Uint8Array = '') {
  return run(args, { client, terminal: createFakeTerminal({ stdin }) });
}

/** Bytes that are not UTF-8, so a text round trip would change them. */
const BINARY = Uint8Array.from([0, 255, 254, 10, 13, 0xc3, 0x28, 128]);

describe('spike cipher key', () => {
  test('create, get, list, rotate, config and delete, in human and JSON output', async () => {
    const client = new FakeClient();
    const created = await spike(client, ['cipher', 'key', 'create', 'orders']);
    assert.equal(created.status, 0, created.stderr);
    assert.match(created.stdout, /^Created key "orders"\nName: +orders\nLatest version: +1\n/);
    const json = await spike(client, ['cipher', 'key', 'rotate', 'orders', '-f', 'json']);
    assert.equal(JSON.parse(json.stdout).latestVersion, 2);
    const config = await spike(client, [
      'cipher',
      'key',
      'config',
      'orders',
      '--min-decryption-version',
      '2',
      '-f',
      'json',
    ]);
    assert.equal(JSON.parse(config.stdout).minDecryptionVersion, 2);
    assert.match((await spike(client, ['cipher', 'key', 'get', 'orders'])).stdout, /Version 2: /);
    assert.equal((await spike(client, ['cipher', 'key', 'list'])).stdout, 'orders\n');
    assert.deepEqual(
      JSON.parse((await spike(client, ['cipher', 'key', 'list', '-f', 'json'])).stdout),
      {
        keys: ['orders'],
      },
    );
    const refused = await spike(client, ['cipher', 'key', 'delete', 'orders']);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /refused without --yes/);
    assert.equal(client.keys.has('orders'), true);
    const deleted = await spike(client, ['cipher', 'key', 'delete', 'orders', '--yes']);
    assert.equal(deleted.stdout, 'Deleted key "orders"\n');
    assert.equal(client.keys.has('orders'), false);
  });

  test('bad names and numbers are refused before anything is sent', async () => {
    const client = new FakeClient();
    const bad = await spike(client, ['cipher', 'key', 'create', 'a/b']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /\[ERR_INVALID_REQUEST\]/);
    const zero = await spike(client, [
      'cipher',
      'key',
      'config',
      'k',
      '--min-decryption-version',
      '0',
    ]);
    assert.equal(zero.status, 2);
    assert.match(zero.stderr, /\[ERR_USAGE\]/);
    assert.deepEqual(client.calls, []);
  });
});

describe('spike cipher encrypt and decrypt', () => {
  test('raw bytes round-trip exactly: a ciphertext line, then the bytes as they were', async () => {
    const client = withKey();
    const sealed = await spike(client, ['cipher', 'encrypt', 'orders'], BINARY);
    assert.equal(sealed.status, 0, sealed.stderr);
    assert.match(sealed.stdout, /^spike:v1:[A-Za-z0-9+/=]+\n$/);
    const opened = await spike(client, ['cipher', 'decrypt', 'orders'], sealed.stdout);
    assert.equal(opened.status, 0, opened.stderr);
    assert.equal(opened.stdout, '');
    assert.deepEqual(new Uint8Array(opened.stdoutBytes), BINARY);
  });

  test('--context binds the ciphertext; another context does not open it (exit 10)', async () => {
    const client = withKey();
    const sealed = await spike(
      client,
      ['cipher', 'encrypt', 'orders', '--context', 'tenant-1'],
      'x',
    );
    const wrong = await spike(
      client,
      ['cipher', 'decrypt', 'orders', '--context', 'tenant-2'],
      sealed.stdout,
    );
    assert.equal(wrong.status, 10);
    assert.match(wrong.stderr, /\[ERR_CIPHERTEXT_INVALID\]/);
    const right = await spike(
      client,
      ['cipher', 'decrypt', 'orders', '--context', 'tenant-1'],
      sealed.stdout,
    );
    assert.equal(right.stdoutBytes.toString(), 'x');
  });

  test('JSON output feeds the next command: encrypt → decrypt → encrypt → rewrap → decrypt', async () => {
    const client = withKey();
    const sealed = await spike(
      client,
      ['cipher', 'encrypt', 'orders', '--context', 'c1', '-f', 'json'],
      BINARY,
    );
    const first = JSON.parse(sealed.stdout);
    assert.deepEqual(Object.keys(first).sort(), ['ciphertext', 'context', 'keyVersion']);
    assert.equal(first.context, encodeWireBytes(new TextEncoder().encode('c1')));
    const opened = await spike(
      client,
      ['cipher', 'decrypt', 'orders', '--json-in', '-f', 'json'],
      sealed.stdout,
    );
    assert.deepEqual(JSON.parse(opened.stdout), {
      plaintext: encodeWireBytes(BINARY),
      context: first.context,
    });
    const again = await spike(
      client,
      ['cipher', 'encrypt', 'orders', '--json-in', '-f', 'json'],
      opened.stdout,
    );
    client.keys.set('orders', { latest: 2, min: 1 });
    const rewrapped = await spike(
      client,
      ['cipher', 'rewrap', 'orders', '--json-in', '-f', 'json'],
      again.stdout,
    );
    assert.equal(JSON.parse(rewrapped.stdout).keyVersion, 2);
    const last = await spike(
      client,
      ['cipher', 'decrypt', 'orders', '--json-in'],
      rewrapped.stdout,
    );
    assert.equal(last.status, 0, last.stderr);
    assert.deepEqual(new Uint8Array(last.stdoutBytes), BINARY);
  });

  test('a batch goes as one call and comes back as { batch }, or one line per item', async () => {
    const client = withKey();
    const items = ['one', 'two', ''].map((text) => ({
      plaintext: encodeWireBytes(new TextEncoder().encode(text)),
    }));
    const input = JSON.stringify({ batch: [...items, { ...items[0], context: 'Yw==' }] });
    const human = await spike(client, ['cipher', 'encrypt', 'orders', '--json-in'], input);
    assert.equal(human.stdout.split('\n').filter((line) => line.startsWith('spike:v1:')).length, 4);
    const sealed = await spike(
      client,
      ['cipher', 'encrypt', 'orders', '--json-in', '-f', 'json'],
      input,
    );
    const batch = JSON.parse(sealed.stdout).batch;
    assert.equal(batch.length, 4);
    assert.equal(batch[3].context, 'Yw==');
    const opened = await spike(
      client,
      ['cipher', 'decrypt', 'orders', '--json-in', '-f', 'json'],
      sealed.stdout,
    );
    assert.deepEqual(
      JSON.parse(opened.stdout).batch.map((item: { plaintext: string }) => item.plaintext),
      [...items.map((item) => item.plaintext), items[0]?.plaintext],
    );
    const lines = await spike(client, ['cipher', 'decrypt', 'orders', '--json-in'], sealed.stdout);
    assert.equal(
      lines.stdout,
      `${items.map((i) => i.plaintext).join('\n')}\n${items[0]?.plaintext}\n`,
    );
    assert.deepEqual(
      client.calls.map((call) => call.method),
      ['encryptBatch', 'encryptBatch', 'decryptBatch', 'decryptBatch'],
    );
  });

  test('JSON input that does not fit is refused with its place, before anything is sent', async () => {
    const client = withKey();
    for (const [args, stdin, code] of [
      [['encrypt', 'orders', '--json-in'], 'not json', 'ERR_INVALID_REQUEST'],
      [['encrypt', 'orders', '--json-in'], '{"plaintext":"AA=","x":1}', 'ERR_INVALID_REQUEST'],
      [
        ['decrypt', 'orders', '--json-in'],
        '{"batch":[{"ciphertext":"a"},{"nope":1}]}',
        'ERR_INVALID_REQUEST',
      ],
      [['decrypt', 'orders', '--json-in', '--context', 'c'], '{}', 'ERR_USAGE'],
      [['verify', 'orders'], 'x', 'ERR_USAGE'],
    ] as const) {
      const result = await spike(client, ['cipher', ...args], stdin);
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`\\[${code}\\]`));
    }
    assert.deepEqual(client.calls, []);
  });
});

describe('spike cipher datakey, hmac and verify', () => {
  test('a data key decrypts to its plaintext; --wrapped-only gives none', async () => {
    const client = withKey();
    const made = await spike(client, [
      'cipher',
      'datakey',
      'orders',
      '--bytes',
      '16',
      '-f',
      'json',
    ]);
    const key = JSON.parse(made.stdout);
    assert.equal(Buffer.from(key.plaintext, 'base64').length, 16);
    const opened = await spike(
      client,
      ['cipher', 'decrypt', 'orders', '--json-in', '-f', 'json'],
      made.stdout,
    );
    assert.equal(JSON.parse(opened.stdout).plaintext, key.plaintext);
    const wrapped = await spike(client, ['cipher', 'datakey', 'orders', '--wrapped-only']);
    assert.match(wrapped.stdout, /^ciphertext: spike:v1:\S+\nkeyVersion: 1\n$/);
  });

  test('hmac → verify: valid exits 0, invalid exits 10, in human and JSON output', async () => {
    const client = withKey();
    const mac = await spike(client, ['cipher', 'hmac', 'orders', '-f', 'json'], 'message');
    const signed = JSON.parse(mac.stdout);
    assert.equal(signed.input, encodeWireBytes(new TextEncoder().encode('message')));
    const valid = await spike(client, ['cipher', 'verify', 'orders', '--json-in'], mac.stdout);
    assert.equal(valid.status, 0);
    assert.equal(valid.stdout, 'valid\n');
    const line = await spike(client, ['cipher', 'hmac', 'orders'], 'message');
    const raw = await spike(
      client,
      ['cipher', 'verify', 'orders', '--hmac', line.stdout.trim(), '-f', 'json'],
      'messagE',
    );
    assert.equal(raw.status, 10);
    assert.deepEqual(JSON.parse(raw.stdout), { valid: false });
    assert.equal(raw.stderr, '');
  });
});
