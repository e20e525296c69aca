import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSecretPath, type SecretPath } from '../../shared/api/secret_path.ts';
import { seal } from '../../shared/crypto/aead.ts';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import { DecryptionFailedError } from '../../shared/errors/errors.ts';
import {
  customMetadataAad,
  openCustomMetadata,
  openSecretData,
  sealCustomMetadata,
  sealSecretData,
  secretDataAad,
  serializeMap,
} from './secret_cipher.ts';

const KEY = randomBytes(32);
const PATH = parseSecretPath('app/db/creds');
const OTHER_PATH = parseSecretPath('app/db/other');
const DATA = { user: 'admin', password: 'hunter2', 'ünïcödé 🔑': 'välüe 🗝️' };

function isDecryptionFailure(err: unknown): boolean {
  return err instanceof DecryptionFailedError && err.message === 'Decryption failed';
}

describe('secret_cipher', () => {
  test('data round-trips and comes back frozen', () => {
    const sealed = sealSecretData(KEY, PATH, 3, DATA);
    const opened = openSecretData(KEY, PATH, 3, sealed);
    assert.deepEqual({ ...opened }, DATA);
    assert.ok(Object.isFrozen(opened));
  });

  test('custom metadata round-trips', () => {
    const metadata = { owner: 'team-a', '': 'empty key is the caller’s business' };
    const sealed = sealCustomMetadata(KEY, PATH, metadata);
    assert.deepEqual({ ...openCustomMetadata(KEY, PATH, sealed) }, metadata);
  });

  test('an empty map round-trips', () => {
    assert.deepEqual({ ...openSecretData(KEY, PATH, 1, sealSecretData(KEY, PATH, 1, {})) }, {});
  });

  test('a key named __proto__ stays an ordinary key', () => {
    const data = JSON.parse('{"__proto__":"x","a":"b"}') as Record<string, string>;
    const opened = openSecretData(KEY, PATH, 1, sealSecretData(KEY, PATH, 1, data));
    assert.deepEqual(Object.keys(opened).sort(), ['__proto__', 'a']);
    assert.equal(Object.getPrototypeOf(opened), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(opened, '__proto__')?.value, 'x');
  });

  test('serialisation sorts keys, so equal maps give equal bytes', () => {
    const a = new TextDecoder().decode(serializeMap({ b: '2', a: '1', c: '"3"' }));
    const b = new TextDecoder().decode(serializeMap({ c: '"3"', a: '1', b: '2' }));
    assert.equal(a, '{"a":"1","b":"2","c":"\\"3\\""}');
    assert.equal(a, b);
  });

  test('each seal uses a fresh nonce', () => {
    const one = sealSecretData(KEY, PATH, 1, DATA);
    const two = sealSecretData(KEY, PATH, 1, DATA);
    assert.notDeepEqual(one, two);
  });

  test('a ciphertext moved to another path fails to open', () => {
    const sealed = sealSecretData(KEY, PATH, 1, DATA);
    assert.throws(() => openSecretData(KEY, OTHER_PATH, 1, sealed), isDecryptionFailure);
    const metadata = sealCustomMetadata(KEY, PATH, { a: 'b' });
    assert.throws(() => openCustomMetadata(KEY, OTHER_PATH, metadata), isDecryptionFailure);
  });

  test('a ciphertext moved to another version fails to open', () => {
    const sealed = sealSecretData(KEY, PATH, 1, DATA);
    assert.throws(() => openSecretData(KEY, PATH, 2, sealed), isDecryptionFailure);
    assert.throws(() => openSecretData(KEY, PATH, 11, sealed), isDecryptionFailure);
  });

  test('data and metadata ciphertexts cannot stand in for each other', () => {
    const data = sealSecretData(KEY, PATH, 1, DATA);
    const metadata = sealCustomMetadata(KEY, PATH, DATA);
    assert.throws(() => openCustomMetadata(KEY, PATH, data), isDecryptionFailure);
    assert.throws(() => openSecretData(KEY, PATH, 1, metadata), isDecryptionFailure);
  });

  test('associated data cannot be confused across paths and versions', () => {
    // "a" version 12 against "a\01" version 2 is impossible (no NUL in
    // paths); check the neighbours that are possible stay distinct.
    const seen = new Set<string>();
    const paths = ['a', 'a1', 'a/1', 'a/12'].map((p) => parseSecretPath(p));
    for (const path of paths) {
      seen.add(new TextDecoder().decode(customMetadataAad(path)));
      for (const version of [1, 2, 12, 21]) {
        seen.add(new TextDecoder().decode(secretDataAad(path, version)));
      }
    }
    assert.equal(seen.size, paths.length * 5);
  });

  test('every flipped bit fails to open', () => {
    const sealed = sealSecretData(KEY, PATH, 1, { k: 'v' });
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      const tampered = sealed.slice();
      tampered[bit >> 3] = (tampered[bit >> 3] as number) ^ (1 << (bit & 7));
      assert.throws(() => openSecretData(KEY, PATH, 1, tampered), isDecryptionFailure);
    }
  });

  test('a wrong key or a truncated ciphertext fails to open', () => {
    const sealed = sealSecretData(KEY, PATH, 1, DATA);
    assert.throws(() => openSecretData(randomBytes(32), PATH, 1, sealed), isDecryptionFailure);
    assert.throws(() => openSecretData(KEY, PATH, 1, sealed.subarray(0, 20)), isDecryptionFailure);
  });

  test('authentic bytes that are not a string map are refused', () => {
    const aad = secretDataAad(PATH, 1);
    const bad = ['[1]', '{"a":1}', 'null', '"x"', '{"a":', '\u00ff'];
    for (const text of bad) {
      const sealed = seal(KEY, new TextEncoder().encode(text), aad);
      assert.throws(() => openSecretData(KEY, PATH, 1, sealed), isDecryptionFailure, text);
    }
    const notUtf8 = seal(KEY, new Uint8Array([0x7b, 0xff, 0x7d]), aad);
    assert.throws(() => openSecretData(KEY, PATH, 1, notUtf8), isDecryptionFailure);
  });

  test('a version must be a positive integer', () => {
    for (const version of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => secretDataAad(PATH, version), RangeError);
    }
  });

  test('non-string values are refused when sealing', () => {
    const data = { a: 1 } as unknown as Record<string, string>;
    assert.throws(() => sealSecretData(KEY, PATH as SecretPath, 1, data), TypeError);
  });
});
