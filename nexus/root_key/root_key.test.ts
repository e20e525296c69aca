/**
 * RootKey's keyring: which term seals (the newest whose activation time has
 * come, by an injected clock), which term opens, what a sealed RootKey or
 * an unknown term answers, and that seal() wipes what it held. Keys are
 * kept past their callback here only to show that they were wiped.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import { addKeyringTerm, createKeyring, decodeKeyring, encodeKeyring } from './keyring.ts';
import { RootKey } from './root_key.ts';

const notReady = { code: 'ERR_NOT_READY' };

/** A RootKey whose clock the test moves. */
function clockedRootKey(startMs: number) {
  const clock = { nowMs: startMs };
  return { rootKey: new RootKey({ now: () => clock.nowMs }), clock };
}

const copyOf = (key: Uint8Array) => key.slice();

describe('RootKey keyring', () => {
  test('a legacy keyring has term 1, active at once', () => {
    const { rootKey } = clockedRootKey(1_000);
    const legacy = createKeyring();
    rootKey.unseal(randomBytes(32), legacy, 1);
    assert.deepEqual(rootKey.keyringTerms(), {
      active: 1,
      terms: [{ term: 1, createdAtMs: 0, activeFromMs: 0 }],
    });
    const lent = rootKey.withKeyring((key, term) => ({ key: copyOf(key), term }));
    assert.deepEqual(lent, { key: legacy, term: 1 });
  });

  test('the active term is the newest whose activeFromMs has come, by the injected clock', () => {
    const { rootKey, clock } = clockedRootKey(1_000);
    const two = addKeyringTerm(createKeyring(), 1_000, 5_000).plaintext;
    const three = addKeyringTerm(two, 2_000, 8_000).plaintext;
    rootKey.unseal(randomBytes(32), three, 1);
    const keys = decodeKeyring(three).map((t) => t.key);
    const sealingTerm = () => rootKey.withKeyring((key, term) => ({ key: copyOf(key), term }));

    assert.equal(rootKey.keyringTerms()?.active, 1);
    assert.deepEqual(sealingTerm(), { key: keys[0], term: 1 });
    clock.nowMs = 4_999;
    assert.equal(rootKey.keyringTerms()?.active, 1, 'not a millisecond early');
    clock.nowMs = 5_000;
    assert.equal(rootKey.keyringTerms()?.active, 2);
    assert.deepEqual(sealingTerm(), { key: keys[1], term: 2 });
    clock.nowMs = 8_000;
    assert.equal(rootKey.keyringTerms()?.active, 3);
    assert.deepEqual(sealingTerm(), { key: keys[2], term: 3 });
    assert.deepEqual(rootKey.keyringTerms()?.terms, [
      { term: 1, createdAtMs: 0, activeFromMs: 0 },
      { term: 2, createdAtMs: 1_000, activeFromMs: 5_000 },
      { term: 3, createdAtMs: 2_000, activeFromMs: 8_000 },
    ]);
  });

  test('a later term active before an earlier one still wins once its time has come', () => {
    // Term 3 was made with no delay while term 2 still waited: from then on
    // 3 seals, and 2 never does.
    const { rootKey, clock } = clockedRootKey(1_000);
    const two = addKeyringTerm(createKeyring(), 1_000, 10_000).plaintext;
    const three = addKeyringTerm(two, 2_000, 2_000).plaintext;
    rootKey.unseal(randomBytes(32), three, 1);
    clock.nowMs = 1_500;
    assert.equal(rootKey.keyringTerms()?.active, 1);
    clock.nowMs = 2_000;
    assert.equal(rootKey.keyringTerms()?.active, 3);
  });

  test('withKeyring(use, term) lends that term whether or not it is active', () => {
    const { rootKey } = clockedRootKey(1_000);
    const plaintext = addKeyringTerm(createKeyring(), 1_000, 50_000).plaintext;
    rootKey.unseal(randomBytes(32), plaintext, 1);
    const [one, two] = decodeKeyring(plaintext);
    assert.deepEqual(
      rootKey.withKeyring((key, term) => ({ key: copyOf(key), term }), 1),
      { key: one?.key, term: 1 },
    );
    assert.deepEqual(
      rootKey.withKeyring((key, term) => ({ key: copyOf(key), term }), 2),
      { key: two?.key, term: 2 },
      'a term not active yet still opens (another Nexus may already seal under it)',
    );
    assert.equal(rootKey.keyringTerms()?.active, 1);
  });

  test('an unknown term is NotReadyError, and use is not called', () => {
    const { rootKey } = clockedRootKey(1_000);
    rootKey.unseal(randomBytes(32), addKeyringTerm(createKeyring(), 0, 0).plaintext, 1);
    let called = false;
    for (const term of [3, 0, 99]) {
      assert.throws(
        () =>
          rootKey.withKeyring(() => {
            called = true;
          }, term),
        notReady,
      );
    }
    assert.equal(called, false);
  });

  test('replaceKeyring() adds the new term and keeps every older term readable', () => {
    const { rootKey, clock } = clockedRootKey(1_000);
    const legacy = createKeyring();
    const rootSecret = randomBytes(32);
    rootKey.unseal(rootSecret, legacy, 4);
    const next = addKeyringTerm(legacy, 1_000, 2_000).plaintext;
    rootKey.replaceKeyring(next);
    assert.equal(rootKey.keyringTerms()?.terms.length, 2);
    assert.deepEqual(
      rootKey.withKeyring((key) => copyOf(key), 1),
      legacy,
    );
    assert.equal(rootKey.keyringTerms()?.active, 1, 'not before its activation time');
    clock.nowMs = 2_000;
    assert.equal(rootKey.keyringTerms()?.active, 2);
    assert.deepEqual(rootKey.keyringPlaintext(), next);
    // The root key and generation are untouched.
    assert.deepEqual(
      rootKey.withKey((key) => copyOf(key)),
      rootSecret,
    );
    assert.equal(rootKey.generation, 4);
  });

  test('replaceKeyring() takes a copy: wiping the caller\u2019s bytes changes nothing held', () => {
    const { rootKey } = clockedRootKey(1_000);
    rootKey.unseal(randomBytes(32), createKeyring(), 1);
    const next = addKeyringTerm(rootKey.keyringPlaintext(), 0, 0).plaintext;
    const copy = next.slice();
    rootKey.replaceKeyring(next);
    next.fill(0);
    assert.deepEqual(rootKey.keyringPlaintext(), copy);
    assert.deepEqual(
      rootKey.withKeyring((key) => copyOf(key), 2),
      decodeKeyring(copy)[1]?.key,
    );
  });

  test('replaceKeyring() with malformed bytes is refused and keeps the keyring held', () => {
    const { rootKey } = clockedRootKey(1_000);
    const legacy = createKeyring();
    rootKey.unseal(randomBytes(32), legacy, 1);
    assert.throws(() => rootKey.replaceKeyring(randomBytes(40)), { code: 'ERR_DECRYPTION_FAILED' });
    assert.deepEqual(rootKey.keyringPlaintext(), legacy);
    assert.equal(rootKey.keyringTerms()?.active, 1);
  });

  test('while sealed: no terms, and withKeyring, replaceKeyring and keyringPlaintext are NotReadyError', () => {
    const { rootKey } = clockedRootKey(1_000);
    assert.equal(rootKey.keyringTerms(), undefined);
    assert.throws(() => rootKey.withKeyring(() => 0), notReady);
    assert.throws(() => rootKey.withKeyring(() => 0, 1), notReady);
    assert.throws(() => rootKey.replaceKeyring(createKeyring()), notReady);
    assert.throws(() => rootKey.keyringPlaintext(), notReady);
  });

  test('seal() wipes the root key, every term key and the keyring plaintext', () => {
    const { rootKey } = clockedRootKey(1_000);
    const plaintext = encodeKeyring([
      { term: 1, createdAtMs: 0, activeFromMs: 0, key: randomBytes(32) },
      { term: 2, createdAtMs: 0, activeFromMs: 0, key: randomBytes(32) },
    ]);
    rootKey.unseal(randomBytes(32), plaintext, 1);
    // Kept past the callback only to look at them after seal().
    const held: Uint8Array[] = [];
    rootKey.withKey((key) => held.push(key));
    rootKey.withKeyring((key) => held.push(key), 1);
    rootKey.withKeyring((key) => held.push(key), 2);
    assert.ok(held.every((key) => key.some((byte) => byte !== 0)));
    rootKey.seal();
    assert.equal(rootKey.state, 'sealed');
    for (const key of held) assert.deepEqual(key, new Uint8Array(32));
    assert.equal(rootKey.keyringTerms(), undefined);
    assert.throws(() => rootKey.withKeyring(() => 0, 1), notReady);
    assert.equal(rootKey.generation, undefined);
  });

  test('replaceKeyring() wipes the keys of the keyring it replaces', () => {
    const { rootKey } = clockedRootKey(1_000);
    rootKey.unseal(randomBytes(32), createKeyring(), 1);
    let old: Uint8Array | undefined;
    rootKey.withKeyring((key) => {
      old = key;
    }, 1);
    rootKey.replaceKeyring(addKeyringTerm(rootKey.keyringPlaintext(), 0, 0).plaintext);
    assert.deepEqual(old, new Uint8Array(32));
    // Term 1 is still there, from the new keyring's own copy.
    assert.ok(rootKey.withKeyring((key) => key.some((byte) => byte !== 0), 1));
  });
});
