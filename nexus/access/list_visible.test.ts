import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSecretPath, type SecretPath } from '../../shared/api/secret_path.ts';
import { MAX_LIST_LIMIT } from '../../shared/api/secrets.ts';
import { parseSpiffeId, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import type { ListOptions, ListPage } from '../store/secret_store.ts';
import { listVisible } from './list_visible.ts';

const PEER = parseSpiffeId('spiffe://example.org/apps/web');

/** A store's `list()` over sorted paths, paged like the real ones; records each query. */
function storeOf(all: readonly string[]) {
  const sorted = [...all].sort();
  const queries: { prefix: string; limit: number; after?: string }[] = [];
  return {
    queries,
    async list(prefix: string, options: ListOptions): Promise<ListPage> {
      queries.push({
        prefix,
        limit: options.limit,
        ...(options.after === undefined ? {} : { after: options.after }),
      });
      const under = sorted.filter(
        (path) =>
          (prefix === '' || path.startsWith(`${prefix}/`)) &&
          (options.after === undefined || path > options.after),
      );
      const page = under.slice(0, options.limit).map((path) => parseSecretPath(path));
      const isLast = under.length <= options.limit;
      return isLast ? { paths: page } : { paths: page, next: page[page.length - 1] as SecretPath };
    },
  };
}

/** Admits list on the paths `allowed` says yes to; records who asked about what. */
function accessOf(allowed: (path: string) => boolean) {
  const asked: string[] = [];
  return {
    asked,
    isAllowed(peer: SpiffeId, permission: string, path: string) {
      assert.equal(peer, PEER);
      assert.equal(permission, 'list');
      asked.push(path);
      return allowed(path);
    },
  };
}

function paths(count: number, under: string): string[] {
  return Array.from({ length: count }, (_, i) => `${under}/s${String(i).padStart(5, '0')}`);
}

describe('listVisible()', () => {
  test('everything visible: one query for one page, with the last path as the cursor', async () => {
    const store = storeOf(paths(5, 'apps'));
    const page = await listVisible(
      { store, access: accessOf(() => true) },
      { peer: PEER, prefix: 'apps', limit: 3 },
    );
    assert.deepEqual(page, {
      paths: ['apps/s00000', 'apps/s00001', 'apps/s00002'],
      next: 'apps/s00002',
    });
    assert.deepEqual(store.queries, [{ prefix: 'apps', limit: 3 }]);
  });

  test('continues after the cursor, and the last page has no next', async () => {
    const store = storeOf(paths(5, 'apps'));
    const page = await listVisible(
      { store, access: accessOf(() => true) },
      { peer: PEER, prefix: 'apps', limit: 3, after: parseSecretPath('apps/s00002') },
    );
    assert.deepEqual(page, { paths: ['apps/s00003', 'apps/s00004'] });
  });

  test('a page exactly as long as what is left has no next', async () => {
    const store = storeOf(paths(3, 'apps'));
    const page = await listVisible(
      { store, access: accessOf(() => true) },
      { peer: PEER, prefix: 'apps', limit: 3 },
    );
    assert.deepEqual(page, { paths: ['apps/s00000', 'apps/s00001', 'apps/s00002'] });
  });

  test('keeps only what the caller may list, scanning on in large chunks to fill the page', async () => {
    const all = [...paths(2500, 'a'), 'b/mine1', 'b/mine2', 'b/mine3'];
    const store = storeOf(all);
    const page = await listVisible(
      { store, access: accessOf((path) => path.startsWith('b/')) },
      { peer: PEER, prefix: '', limit: 2 },
    );
    assert.deepEqual(page, { paths: ['b/mine1', 'b/mine2'], next: 'b/mine2' });
    assert.deepEqual(
      store.queries.map((query) => query.limit),
      [2, MAX_LIST_LIMIT, MAX_LIST_LIMIT, MAX_LIST_LIMIT],
    );
  });

  test('the cursor never names a path the caller may not list', async () => {
    const store = storeOf(['a/1', 'a/2', 'a/hidden', 'a/hidden2']);
    const page = await listVisible(
      { store, access: accessOf((path) => !path.includes('hidden')) },
      { peer: PEER, prefix: 'a', limit: 2 },
    );
    // The page is full and the store has more, so the cursor is the last visible path.
    assert.deepEqual(page.paths, ['a/1', 'a/2']);
    assert.equal(page.next, 'a/2');
    const rest = await listVisible(
      { store, access: accessOf((path) => !path.includes('hidden')) },
      { peer: PEER, prefix: 'a', limit: 2, after: parseSecretPath('a/2') },
    );
    assert.deepEqual(rest, { paths: [] });
  });

  test('reserved sys/ paths are never listed, nor even checked', async () => {
    const access = accessOf(() => true);
    const page = await listVisible(
      { store: storeOf(['apps/x', 'sys/policies', 'sys/x/y']), access },
      { peer: PEER, prefix: '', limit: 10 },
    );
    assert.deepEqual(page, { paths: ['apps/x'] });
    assert.deepEqual(access.asked, ['apps/x']);
  });

  test('nothing visible: an empty last page', async () => {
    const page = await listVisible(
      { store: storeOf(paths(10, 'apps')), access: accessOf(() => false) },
      { peer: PEER, prefix: 'apps', limit: 5 },
    );
    assert.deepEqual(page, { paths: [] });
  });
});
