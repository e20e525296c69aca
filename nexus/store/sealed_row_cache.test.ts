/**
 * The cache of sealed rows on its own: its bounds (entries, bytes, least
 * recently used out first), what it answers for current and explicit
 * versions, eviction, the ticket that keeps a read from inserting a row a
 * concurrent write already replaced, and the serving gate.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSecretPath, type SecretPath } from '../../shared/api/secret_path.ts';
import type { MetadataRow, SealedVersionRow } from './_secret_rules.ts';
import { type SealedRead, SealedRowCache } from './sealed_row_cache.ts';

const p = (text: string): SecretPath => parseSecretPath(text);

function metadataOf(current: number, oldest = 1, updatedAtMs = current): MetadataRow {
  return {
    createdAtMs: 1,
    updatedAtMs,
    currentVersion: current,
    oldestVersion: oldest,
    maxVersions: null,
    customMetadata: null,
    metadataKeyTerm: 1,
  };
}

function rowOf(version: number, size = 16): SealedVersionRow {
  return {
    version,
    createdAtMs: version,
    deletedAtMs: null,
    destroyed: false,
    ciphertext: new Uint8Array(size).fill(version),
    keyTerm: 1,
  };
}

function readOf(current: number, version = current, size = 16): SealedRead {
  return { metadata: metadataOf(current), row: rowOf(version, size) };
}

function filled(cache: SealedRowCache, path: SecretPath, read: SealedRead): void {
  cache.fill(cache.ticket(), path, read);
}

const roomy = { maxEntries: 100, maxBytes: 1 << 20 };

describe('SealedRowCache', () => {
  test('serves the current version and explicit versions of what it holds', () => {
    const cache = new SealedRowCache(roomy);
    const path = p('app/x');
    assert.equal(cache.lookup(path, undefined), undefined);
    filled(cache, path, readOf(3));
    assert.equal(cache.lookup(path, undefined)?.row?.version, 3);
    assert.equal(cache.lookup(path, 3)?.row?.version, 3);
    // Version 2 is kept (oldest 1..current 3) but not held: the cache cannot say.
    assert.equal(cache.lookup(path, 2), undefined);
    filled(cache, path, readOf(3, 2));
    assert.equal(cache.lookup(path, 2)?.row?.version, 2);
    // Beyond current (or below oldest) there is no row, known from the metadata alone.
    const beyond = cache.lookup(path, 9);
    assert.ok(beyond !== undefined);
    assert.equal(beyond.row, undefined);
    assert.equal(beyond.metadata.currentVersion, 3);
  });

  test('holds at most maxEntries paths, the least recently used out first', () => {
    const cache = new SealedRowCache({ maxEntries: 2, maxBytes: 1 << 20 });
    const [a, b, c] = [p('a'), p('b'), p('c')];
    filled(cache, a, readOf(1));
    filled(cache, b, readOf(1));
    assert.ok(cache.lookup(a, undefined) !== undefined); // a is now the most recent
    filled(cache, c, readOf(1));
    assert.equal(cache.size, 2);
    assert.equal(cache.lookup(b, undefined), undefined);
    assert.ok(cache.lookup(a, undefined) !== undefined);
    assert.ok(cache.lookup(c, undefined) !== undefined);
  });

  test('holds at most maxBytes, and keeps no entry larger than that', () => {
    const maxBytes = 4096;
    const cache = new SealedRowCache({ maxEntries: 1000, maxBytes });
    for (let i = 0; i < 50; i++) {
      filled(cache, p(`many/${i}`), readOf(1, 1, 500));
      assert.ok(cache.bytes <= maxBytes, `${cache.bytes} > ${maxBytes}`);
    }
    assert.ok(cache.size > 0 && cache.size < 50);
    assert.ok(cache.lookup(p('many/49'), undefined) !== undefined);
    assert.equal(cache.lookup(p('many/0'), undefined), undefined);
    filled(cache, p('huge'), readOf(1, 1, maxBytes));
    assert.equal(cache.lookup(p('huge'), undefined), undefined);
    assert.ok(cache.bytes <= maxBytes);
  });

  test('0 entries or 0 bytes disables it: nothing is held, read() always queries', async () => {
    for (const limits of [
      { maxEntries: 0, maxBytes: 1 << 20 },
      { maxEntries: 10, maxBytes: 0 },
    ]) {
      const cache = new SealedRowCache(limits);
      assert.equal(cache.isEnabled, false);
      let queries = 0;
      for (let i = 0; i < 3; i++) {
        await cache.read(p('x'), undefined, async () => {
          queries += 1;
          return readOf(1);
        });
      }
      assert.equal(queries, 3);
      assert.equal(cache.size, 0);
    }
  });

  test('refuses limits that are not whole numbers >= 0', () => {
    assert.throws(() => new SealedRowCache({ maxEntries: -1, maxBytes: 1 }), RangeError);
    assert.throws(() => new SealedRowCache({ maxEntries: 1, maxBytes: 1.5 }), RangeError);
  });

  test('changed() evicts that path only; clear() evicts all; byte count follows', () => {
    const cache = new SealedRowCache(roomy);
    filled(cache, p('a'), readOf(1));
    filled(cache, p('b'), readOf(1));
    const both = cache.bytes;
    cache.changed(p('a'));
    assert.equal(cache.lookup(p('a'), undefined), undefined);
    assert.ok(cache.lookup(p('b'), undefined) !== undefined);
    assert.equal(cache.bytes, both / 2);
    cache.clear();
    assert.equal(cache.size, 0);
    assert.equal(cache.bytes, 0);
  });

  test('a fill whose ticket predates a change is dropped (the read may have seen the old row)', () => {
    const cache = new SealedRowCache(roomy);
    const path = p('race');
    const ticket = cache.ticket();
    cache.changed(path); // a write committed while the read was querying
    cache.fill(ticket, path, readOf(1));
    assert.equal(cache.lookup(path, undefined), undefined);
    const afterClear = cache.ticket();
    cache.clear();
    cache.fill(afterClear, path, readOf(1));
    assert.equal(cache.size, 0);
  });

  test('read(): a write that commits while the query runs keeps its old row out', async () => {
    const cache = new SealedRowCache(roomy);
    const path = p('race/read');
    // Missed once before, so the racing read's row would be kept but for the write.
    await cache.read(path, undefined, async () => readOf(1));
    let release: (read: SealedRead) => void = () => {};
    const pending = cache.read(
      path,
      undefined,
      () =>
        new Promise<SealedRead>((resolve) => {
          release = resolve;
        }),
    );
    cache.changed(path); // the write is acknowledged before the read's row arrives
    release(readOf(1));
    assert.equal((await pending)?.row?.version, 1); // the read itself may return what it saw
    let queried = false;
    const next = await cache.read(path, undefined, async () => {
      queried = true;
      return readOf(2);
    });
    assert.ok(queried, 'the old row was cached after the write evicted its path');
    assert.equal(next?.row?.version, 2);
  });

  test('read(): a path is kept from its second miss; a sweep of paths read once keeps none', async () => {
    const cache = new SealedRowCache({ maxEntries: 100, maxBytes: 1 << 20 });
    const hot = p('admit/hot');
    let queries = 0;
    const query = async () => {
      queries += 1;
      return readOf(1);
    };
    await cache.read(hot, undefined, query);
    assert.equal(cache.size, 0, 'a path read once is not kept');
    await cache.read(hot, undefined, query);
    assert.equal(cache.size, 1, 'a path read twice is kept');
    await cache.read(hot, undefined, query);
    assert.equal(queries, 2, 'the third read is served from the cache');
    // A sweep over more paths than the cache holds, each read once.
    for (let i = 0; i < 1000; i++) await cache.read(p(`admit/sweep/${i}`), undefined, query);
    assert.equal(cache.size, 1, 'paths read once displaced the hot one');
    assert.ok(cache.lookup(hot, undefined) !== undefined);
  });

  test('two reads of one epoch that saw different states keep only the later one', () => {
    const cache = new SealedRowCache(roomy);
    const path = p('two/states');
    filled(cache, path, readOf(1));
    filled(cache, path, readOf(2));
    assert.equal(cache.lookup(path, undefined)?.row?.version, 2);
    // The row of version 1 went with the old metadata, which it was read with.
    assert.equal(cache.lookup(path, 1), undefined);
  });

  test('while not serving, lookups miss and fills are dropped', () => {
    let isServing = true;
    const cache = new SealedRowCache(roomy, { isServing: () => isServing });
    filled(cache, p('a'), readOf(1));
    isServing = false;
    assert.equal(cache.lookup(p('a'), undefined), undefined);
    filled(cache, p('b'), readOf(1));
    isServing = true;
    assert.ok(cache.lookup(p('a'), undefined) !== undefined);
    assert.equal(cache.lookup(p('b'), undefined), undefined);
  });

  test('holds its own copy of the sealed bytes', () => {
    const cache = new SealedRowCache(roomy);
    const read = readOf(1);
    filled(cache, p('own'), read);
    read.row?.ciphertext?.fill(0xee);
    assert.deepEqual(
      cache.lookup(p('own'), undefined)?.row?.ciphertext,
      new Uint8Array(16).fill(1),
    );
  });
});
