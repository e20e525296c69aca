import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSecretPath, type SecretPath } from '../../shared/api/secret_path.ts';
import { MAX_LIST_LIMIT } from '../../shared/api/secrets.ts';
import { pilotSuperuserId } from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import type { ListOptions, ListPage } from '../store/secret_store.ts';
import { createAccessChecker } from './check_access.ts';
import { listVisible } from './list_visible.ts';
import { EVERYWHERE } from './pattern.ts';
import { type Policy, parsePolicy } from './policy.ts';

const PEER = parseSpiffeId('spiffe://example.org/apps/web');

/**
 * A store's list queries over sorted paths, paged like the real ones, with
 * the prefix grammar of the real ones (`a/` under a, `a` also a itself).
 * Records each query and counts the rows the store examines: what it
 * returns, plus the one row it reads ahead to know there is a next page, or
 * each path asked for by `listExisting`.
 */
function storeOf(all: readonly string[]) {
  const sorted = [...all].sort();
  const queries: { prefix: string; limit: number; after?: string }[] = [];
  const asked: string[][] = [];
  let rows = 0;
  return {
    queries,
    /** The paths of each `listExisting` call. */
    asked,
    rows: () => rows,
    calls: () => queries.length + asked.length,
    async list(prefix: string, options: ListOptions): Promise<ListPage> {
      queries.push({
        prefix,
        limit: options.limit,
        ...(options.after === undefined ? {} : { after: options.after }),
      });
      const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
      const under = sorted.filter(
        (path) =>
          (prefix === '' ||
            path.startsWith(`${base}/`) ||
            (path === base && !prefix.endsWith('/'))) &&
          (options.after === undefined || path > options.after),
      );
      const page = under.slice(0, options.limit).map((path) => parseSecretPath(path));
      const isLast = under.length <= options.limit;
      rows += isLast ? page.length : page.length + 1;
      return isLast ? { paths: page } : { paths: page, next: page[page.length - 1] as SecretPath };
    },
    async listExisting(paths: readonly SecretPath[]): Promise<readonly SecretPath[]> {
      asked.push([...paths]);
      rows += paths.length;
      const wanted = new Set<string>(paths);
      return sorted.filter((path) => wanted.has(path)).map((path) => parseSecretPath(path));
    },
  };
}

/** Admits list on the paths `allowed` says yes to; records who asked about what. */
function accessOf(allowed: (path: string) => boolean) {
  const asked: string[] = [];
  return {
    asked,
    listReach: () => [EVERYWHERE],
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
    // `apps` itself is looked up, its subtree read for one page.
    assert.deepEqual(store.asked, [['apps']]);
    assert.deepEqual(store.queries, [{ prefix: 'apps/', limit: 3 }]);
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

describe('listVisible(): the cost follows what the caller may see', () => {
  const TD = parseTrustDomain('example.org');
  const SUPERUSER = pilotSuperuserId(TD);
  const STORE_SIZE = 20_000;
  /** 20,000 paths under `big/`, and a few elsewhere. */
  const ALL = [...paths(STORE_SIZE, 'big'), 'big', 'bigger/x', 'big-x/y', 'other/a', 'other/b'];

  function policy(name: string, pathPattern: string, permissions = ['list']): Policy {
    return parsePolicy({ name, spiffeIdPattern: PEER.toString(), pathPattern, permissions });
  }

  /** The real access checker over `policies`. */
  function checker(...policies: Policy[]) {
    return createAccessChecker({ trustDomain: TD, policies: () => policies });
  }

  /** Every page of a listing, following `next`. */
  async function listAll(
    sources: Parameters<typeof listVisible>[0],
    peer: SpiffeId,
    prefix: string,
    limit: number,
  ): Promise<string[][]> {
    const pages: string[][] = [];
    let after: SecretPath | undefined;
    for (;;) {
      const page = await listVisible(sources, { peer, prefix, limit, after });
      pages.push([...page.paths]);
      if (page.next === undefined) return pages;
      assert.equal(page.next, page.paths.at(-1));
      after = page.next;
    }
  }

  test('a caller without a granting policy gets an empty page without a store call', async () => {
    const store = storeOf(ALL);
    const grantsOthers = [
      policy('reads-only', 'big/**', ['read', 'write', 'delete']),
      parsePolicy({
        name: 'someone-else',
        spiffeIdPattern: 'spiffe://example.org/apps/other',
        pathPattern: '**',
        permissions: ['super'],
      }),
    ];
    for (const access of [checker(), checker(...grantsOthers)]) {
      for (const prefix of ['', 'big', 'big/']) {
        const page = await listVisible({ store, access }, { peer: PEER, prefix, limit: 1000 });
        assert.deepEqual(page, { paths: [] });
      }
    }
    assert.equal(store.calls(), 0);
  });

  test('a grant outside the requested prefix costs no store call either', async () => {
    const store = storeOf(ALL);
    const access = checker(policy('other', 'other/*'), policy('policies', 'sys/**'));
    const page = await listVisible({ store, access }, { peer: PEER, prefix: 'big/', limit: 10 });
    assert.deepEqual(page, { paths: [] });
    assert.equal(store.calls(), 0);
  });

  test('3 exact paths granted under a 20,000-path prefix examine 3 rows', async () => {
    const store = storeOf(ALL);
    const access = checker(
      policy('one', 'big/s00007'),
      policy('two', 'big/s12345'),
      policy('three', 'big/s19999'),
      policy('gone', 'big/s99999'),
    );
    const mine = ['big/s00007', 'big/s12345', 'big/s19999'];
    for (const prefix of ['', 'big', 'big/']) {
      const page = await listVisible({ store, access }, { peer: PEER, prefix, limit: 1000 });
      assert.deepEqual(page, { paths: mine });
    }
    assert.equal(store.calls(), 3);
    assert.ok(store.rows() <= 3 * 4, `examined ${store.rows()} rows`);
    // Paging through them one at a time keeps to the granted paths as well.
    const paged = storeOf(ALL);
    const pages = await listAll({ store: paged, access }, PEER, '', 1);
    assert.deepEqual(pages.flat(), mine);
    assert.ok(paged.rows() <= 4 * 4, `examined ${paged.rows()} rows`);
  });

  test('a subtree grant examines that subtree only, in path order with the exact grants', async () => {
    const store = storeOf([...ALL, 'team/a', 'team/b/c', 'team/b/d', 'team-x', 'teamz/q']);
    const access = checker(
      policy('team', 'team/**'),
      policy('deep', 'team/b/*'),
      policy('one', 'big/s00042'),
      policy('sibling', 'team-x'),
      policy('others', 'other/*/x'),
    );
    const pages = await listAll({ store, access }, PEER, '', 2);
    assert.deepEqual(pages, [['big/s00042', 'team-x'], ['team/a', 'team/b/c'], ['team/b/d']]);
    assert.ok(store.rows() <= 20, `examined ${store.rows()} rows`);
    // `other/*/x` reaches other/ (two rows there), never big/.
    assert.ok(store.queries.every((query) => !query.prefix.startsWith('big')));
  });

  test('the superuser still lists everything, page by page, one query a page', async () => {
    const store = storeOf(ALL);
    const access = checker();
    const pages = await listAll({ store, access }, SUPERUSER, '', 1000);
    assert.deepEqual(pages.flat(), [...ALL].sort());
    assert.equal(pages.length, Math.ceil(ALL.length / 1000));
    assert.equal(store.calls(), pages.length);
    const under = storeOf(ALL);
    const big = await listAll({ store: under, access }, SUPERUSER, 'big', 5000);
    assert.deepEqual(
      big.flat(),
      ALL.filter((path) => path === 'big' || path.startsWith('big/')).sort(),
    );
    // `big` itself is looked up, and its subtree read one query a page; the
    // siblings between them in byte order (`big-x`) are never read.
    assert.deepEqual(under.asked, [['big']]);
    assert.deepEqual(
      under.queries.map((query) => query.prefix),
      ['big/', 'big/', 'big/', 'big/', 'big/'],
    );
    assert.ok(under.rows() <= 1 + 20_000 + 2 * big.length, `examined ${under.rows()} rows`);
  });
});
