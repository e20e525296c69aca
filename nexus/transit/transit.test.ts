import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { formatVersioned, parseVersioned } from '../../shared/api/transit.ts';
import { decodeBase64, encodeBase64 } from '../../shared/crypto/base64.ts';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import { hmacSha256 } from '../../shared/crypto/mac.ts';
import {
  CiphertextInvalidError,
  InvalidRequestError,
  KeyVersionTooOldError,
} from '../../shared/errors/errors.ts';
import { openMemoryDatabase, type SqliteDatabase } from '../store/sqlite/db.ts';
import { SqliteTransitKeyStore } from '../store/sqlite/transit_key_store.ts';
import { dataKey, decrypt, encrypt, hmac, rewrap, transitAad, verify } from './transit.ts';

const NONE = new Uint8Array(0);
const text = (value: string) => new TextEncoder().encode(value);

let database: SqliteDatabase;
let store: SqliteTransitKeyStore;
let keys = 0;

before(async () => {
  database = await openMemoryDatabase();
  const keyring = randomBytes(32);
  store = new SqliteTransitKeyStore({ database, keyring: (use) => use(keyring, 1) });
});
after(() => database.close());

/** A new key of its own for each test. */
async function newKey(): Promise<string> {
  keys += 1;
  const name = `key-${keys}`;
  await store.create(name);
  return name;
}

async function roundTrip(name: string, ciphertext: string, context = NONE): Promise<Uint8Array> {
  const [result] = await decrypt(store, name, [{ ciphertext, context }]);
  assert.ok(result !== undefined);
  return decodeBase64(result.plaintext);
}

describe('encrypt() and decrypt()', () => {
  test('round-trip single items and batches, empty and binary plaintext included', async () => {
    const name = await newKey();
    const plaintexts = [NONE, text('hello'), randomBytes(1024), randomBytes(64 * 1024)];
    const sealed = await encrypt(
      store,
      name,
      plaintexts.map((plaintext) => ({ plaintext, context: NONE })),
    );
    assert.equal(sealed.length, plaintexts.length);
    for (const result of sealed) {
      assert.match(result.ciphertext, /^spike:v1:[A-Za-z0-9+/=]+$/);
      assert.equal(result.keyVersion, 1);
    }
    const opened = await decrypt(
      store,
      name,
      sealed.map((result) => ({ ciphertext: result.ciphertext, context: NONE })),
    );
    assert.deepEqual(
      opened.map((result) => decodeBase64(result.plaintext)),
      plaintexts,
    );
  });

  test('the same plaintext encrypts differently every time (a random nonce per item)', async () => {
    const name = await newKey();
    const [a, b] = await encrypt(store, name, [
      { plaintext: text('same'), context: NONE },
      { plaintext: text('same'), context: NONE },
    ]);
    assert.notEqual(a?.ciphertext, b?.ciphertext);
  });

  test('a ciphertext of key A never decrypts under key B, even of the same version', async () => {
    const a = await newKey();
    const b = await newKey();
    const [sealed] = await encrypt(store, a, [{ plaintext: text('for a'), context: NONE }]);
    assert.ok(sealed !== undefined);
    await assert.rejects(roundTrip(b, sealed.ciphertext), CiphertextInvalidError);
    await assert.rejects(
      rewrap(store, b, [{ ciphertext: sealed.ciphertext, context: NONE }]),
      CiphertextInvalidError,
    );
    // A key deleted and made again under the same name is another key too.
    await store.delete(a);
    await store.create(a);
    await assert.rejects(roundTrip(a, sealed.ciphertext), CiphertextInvalidError);
  });

  test('a ciphertext made with a context opens with that context only', async () => {
    const name = await newKey();
    const context = text('tenant-1');
    const [sealed] = await encrypt(store, name, [{ plaintext: text('bound'), context }]);
    assert.ok(sealed !== undefined);
    assert.deepEqual(await roundTrip(name, sealed.ciphertext, context), text('bound'));
    for (const other of [NONE, text('tenant-2'), text('tenant-1\0'), text('tenant-')]) {
      await assert.rejects(roundTrip(name, sealed.ciphertext, other), CiphertextInvalidError);
    }
    // No context and an empty context are the same.
    const [plain] = await encrypt(store, name, [{ plaintext: text('x'), context: NONE }]);
    assert.deepEqual(await roundTrip(name, plain?.ciphertext ?? '', new Uint8Array(0)), text('x'));
  });

  test('any changed bit, a renumbered version or a version the key lacks fails to open', async () => {
    const name = await newKey();
    await store.rotate(name);
    const [sealed] = await encrypt(store, name, [{ plaintext: text('intact'), context: NONE }]);
    assert.ok(sealed !== undefined);
    const { version, bytes } = parseVersioned(sealed.ciphertext, 'ciphertext');
    for (const bit of [0, 8, 8 * 25, bytes.length * 8 - 1]) {
      const flipped = bytes.slice();
      flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
      await assert.rejects(
        roundTrip(name, formatVersioned(version, flipped)),
        CiphertextInvalidError,
        `bit ${bit}`,
      );
    }
    await assert.rejects(roundTrip(name, formatVersioned(1, bytes)), CiphertextInvalidError);
    await assert.rejects(roundTrip(name, formatVersioned(9, bytes)), CiphertextInvalidError);
    await assert.rejects(
      roundTrip(name, formatVersioned(version, bytes.subarray(0, 20))),
      CiphertextInvalidError,
    );
  });

  test('the associated data names the key, the version and the context, apart', () => {
    // "ab" + version 1 and "a" + "b…" cannot collide: NUL separates what cannot hold one.
    assert.notDeepEqual(transitAad('ab', 1, NONE), transitAad('a', 1, text('b')));
    assert.notDeepEqual(transitAad('k', 1, text('1')), transitAad('k', 11, NONE));
  });

  test('a failing item of a batch fails the batch, named by its position', async () => {
    const name = await newKey();
    const [good] = await encrypt(store, name, [{ plaintext: text('ok'), context: NONE }]);
    const other = await newKey();
    const [foreign] = await encrypt(store, other, [{ plaintext: text('no'), context: NONE }]);
    await assert.rejects(
      decrypt(store, name, [
        { ciphertext: good?.ciphertext ?? '', context: NONE },
        { ciphertext: foreign?.ciphertext ?? '', context: NONE },
      ]),
      (err: unknown) =>
        err instanceof CiphertextInvalidError && /^Item 2 of the batch: /.test(err.message),
    );
    await assert.rejects(
      decrypt(store, name, [{ ciphertext: 'spike:v1:not base64!', context: NONE }]),
      InvalidRequestError,
    );
  });
});

describe('rotation, rewrap and the minimum decryption version', () => {
  test('version 1 ciphertext decrypts after two rotations and rewraps to the newest', async () => {
    const name = await newKey();
    const [v1] = await encrypt(store, name, [{ plaintext: text('old secret'), context: NONE }]);
    assert.ok(v1 !== undefined);
    await store.rotate(name);
    await store.rotate(name);
    assert.deepEqual(await roundTrip(name, v1.ciphertext), text('old secret'));
    const [fresh] = await encrypt(store, name, [{ plaintext: text('new'), context: NONE }]);
    assert.equal(fresh?.keyVersion, 3);
    assert.match(fresh?.ciphertext ?? '', /^spike:v3:/);
    const [rewrapped] = await rewrap(store, name, [{ ciphertext: v1.ciphertext, context: NONE }]);
    assert.ok(rewrapped !== undefined);
    assert.equal(rewrapped.keyVersion, 3);
    assert.match(rewrapped.ciphertext, /^spike:v3:/);
    assert.deepEqual(await roundTrip(name, rewrapped.ciphertext), text('old secret'));
  });

  test('a minimum decryption version refuses older ciphertext with its own code', async () => {
    const name = await newKey();
    const context = text('ctx');
    const [v1] = await encrypt(store, name, [{ plaintext: text('v1 data'), context }]);
    assert.ok(v1 !== undefined);
    await store.rotate(name);
    const [rewrapped] = await rewrap(store, name, [{ ciphertext: v1.ciphertext, context }]);
    const [mac] = await hmac(store, name, [{ input: text('signed at v2') }]);
    await store.rotate(name);
    await store.configure(name, { minDecryptionVersion: 2 });
    await assert.rejects(roundTrip(name, v1.ciphertext, context), KeyVersionTooOldError);
    await assert.rejects(
      rewrap(store, name, [{ ciphertext: v1.ciphertext, context }]),
      (err: unknown) =>
        err instanceof KeyVersionTooOldError &&
        err.code === 'ERR_KEY_VERSION_TOO_OLD' &&
        /version 1 .* minimum decryption version 2/.test(err.message),
    );
    // What was rewrapped before still opens, and so does an HMAC of version 2.
    assert.deepEqual(await roundTrip(name, rewrapped?.ciphertext ?? '', context), text('v1 data'));
    assert.deepEqual(
      await verify(store, name, [{ input: text('signed at v2'), hmac: mac?.hmac ?? '' }]),
      [{ valid: true }],
    );
    await store.configure(name, { minDecryptionVersion: 3 });
    await assert.rejects(
      verify(store, name, [{ input: text('signed at v2'), hmac: mac?.hmac ?? '' }]),
      KeyVersionTooOldError,
    );
    // Lowering it again gives version 1 back: its material was kept.
    await store.configure(name, { minDecryptionVersion: 1 });
    assert.deepEqual(await roundTrip(name, v1.ciphertext, context), text('v1 data'));
  });
});

describe('dataKey()', () => {
  test('gives a fresh key in plaintext and wrapped, and the wrapped one decrypts to it', async () => {
    const name = await newKey();
    const context = text('volume-7');
    const [both, wrappedOnly, short] = await dataKey(store, name, [
      { context, bytes: 32, wrappedOnly: false },
      { context, bytes: 32, wrappedOnly: true },
      { context: NONE, bytes: 16, wrappedOnly: false },
    ]);
    assert.ok(both?.plaintext !== undefined);
    assert.equal(decodeBase64(both.plaintext).length, 32);
    assert.deepEqual(await roundTrip(name, both.ciphertext, context), decodeBase64(both.plaintext));
    assert.equal(wrappedOnly?.plaintext, undefined);
    assert.equal((await roundTrip(name, wrappedOnly?.ciphertext ?? '', context)).length, 32);
    assert.equal(decodeBase64(short?.plaintext ?? '').length, 16);
    assert.notEqual(
      both.plaintext,
      encodeBase64(await roundTrip(name, wrappedOnly?.ciphertext ?? '', context)),
    );
  });
});

describe('hmac() and verify()', () => {
  test('an HMAC verifies for its input and key only, and survives rotation', async () => {
    const name = await newKey();
    const other = await newKey();
    const [mac, second] = await hmac(store, name, [{ input: text('message') }, { input: NONE }]);
    assert.ok(mac !== undefined && second !== undefined);
    assert.match(mac.hmac, /^spike:v1:/);
    assert.equal(parseVersioned(mac.hmac, 'hmac').bytes.length, 32);
    await store.rotate(name);
    const results = await verify(store, name, [
      { input: text('message'), hmac: mac.hmac },
      { input: text('messagE'), hmac: mac.hmac },
      { input: NONE, hmac: second.hmac },
      { input: text('message'), hmac: formatVersioned(2, parseVersioned(mac.hmac, 'h').bytes) },
      { input: text('message'), hmac: formatVersioned(7, parseVersioned(mac.hmac, 'h').bytes) },
      { input: text('message'), hmac: formatVersioned(1, new Uint8Array(31)) },
    ]);
    assert.deepEqual(
      results.map((result) => result.valid),
      [true, false, true, false, false, false],
    );
    assert.deepEqual(await verify(store, other, [{ input: text('message'), hmac: mac.hmac }]), [
      { valid: false },
    ]);
    const [newer] = await hmac(store, name, [{ input: text('message') }]);
    assert.equal(newer?.keyVersion, 2);
  });

  test('the HMAC key is derived, not the material itself', async () => {
    const name = await newKey();
    const input = text('message');
    const [mac] = await hmac(store, name, [{ input }]);
    const raw = await store.useKey(name, [], (key) => hmacSha256(key.material(1) ?? NONE, input));
    assert.notDeepEqual(parseVersioned(mac?.hmac ?? '', 'hmac').bytes, raw);
  });
});
