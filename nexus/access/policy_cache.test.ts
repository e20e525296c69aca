import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PolicyDocument } from '../../shared/api/policies.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { parseSpiffeId, parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import type { PolicyStore, StoredPolicy } from '../store/policy_store.ts';
import { MemoryPolicyStore } from '../store/testing/memory_policy_store.ts';
import { createAccessChecker } from './check_access.ts';
import { parsePolicy } from './policy.ts';
import { loadPolicyCache, PolicyCache } from './policy_cache.ts';

const WEB = parseSpiffeId('spiffe://example.org/apps/web');

function document(name: string, overrides: Partial<PolicyDocument> = {}): PolicyDocument {
  return {
    name,
    spiffeIdPattern: 'spiffe://example.org/apps/web',
    pathPattern: `apps/${name}/**`,
    permissions: ['read'],
    ...overrides,
  };
}

function names(cache: PolicyCache): string[] {
  return cache.policies().map((policy) => policy.name);
}

function logged() {
  const sink = createMemorySink();
  return { sink, logger: createLogger({ component: 'test', level: 'debug', sink }) };
}

/** A store whose list() answers only when the test says so, in any order. */
class DeferredListStore extends MemoryPolicyStore {
  readonly pending: Array<(policies: StoredPolicy[]) => void> = [];
  override list(): Promise<StoredPolicy[]> {
    return new Promise((resolve) => this.pending.push(resolve));
  }
}

describe('PolicyCache', () => {
  test('loadPolicyCache() loads every stored policy, compiled and sorted by name', async () => {
    const store = new MemoryPolicyStore();
    await store.upsert(document('b'));
    await store.upsert(document('a'));
    const cache = await loadPolicyCache({ store });
    assert.deepEqual(names(cache), ['a', 'b']);
    assert.equal(cache.policies()[0]?.covers('apps/a/x'), true);
    assert.ok(Object.isFrozen(cache.policies()));
  });

  test('a new cache is empty until loaded: it grants nothing', () => {
    const cache = new PolicyCache({ store: new MemoryPolicyStore() });
    assert.deepEqual(cache.policies(), []);
  });

  test('changes made through it are served at once, to the checker too', async () => {
    const store = new MemoryPolicyStore();
    const cache = await loadPolicyCache({ store });
    const checker = createAccessChecker({
      trustDomain: parseTrustDomain('example.org'),
      policies: () => cache.policies(),
    });
    assert.equal(checker.isAllowed(WEB, 'read', 'apps/web/x'), false);

    const stored = await cache.upsert(parsePolicy(document('web')));
    assert.equal(stored.name, 'web');
    assert.ok(stored.createdAt instanceof Date);
    assert.equal(checker.isAllowed(WEB, 'read', 'apps/web/x'), true);
    assert.deepEqual(
      (await store.list()).map((policy) => policy.name),
      ['web'],
    );

    await cache.upsert(parsePolicy(document('web', { pathPattern: 'other/**' })));
    assert.equal(checker.isAllowed(WEB, 'read', 'apps/web/x'), false);
    assert.equal(checker.isAllowed(WEB, 'read', 'other/x'), true);
    assert.deepEqual(names(cache), ['web']);

    assert.equal(await cache.delete('web'), true);
    assert.equal(checker.isAllowed(WEB, 'read', 'other/x'), false);
    assert.equal(await cache.delete('web'), false);
    assert.deepEqual(cache.policies(), []);
  });

  test('a change through it also picks up what others wrote to the store', async () => {
    const store = new MemoryPolicyStore();
    const cache = await loadPolicyCache({ store });
    await store.upsert(document('from-elsewhere'));
    assert.deepEqual(names(cache), []);
    await cache.upsert(parsePolicy(document('mine')));
    assert.deepEqual(names(cache), ['from-elsewhere', 'mine']);
  });

  test('reload() picks up changes made directly in the store', async () => {
    const store = new MemoryPolicyStore();
    const cache = await loadPolicyCache({ store });
    await store.upsert(document('x'));
    await cache.reload();
    assert.deepEqual(names(cache), ['x']);
    await store.delete('x');
    await cache.reload();
    assert.deepEqual(names(cache), []);
  });

  test('a stored policy that does not compile is left out and logged; others still work', async () => {
    const store = new MemoryPolicyStore();
    await store.upsert(document('good'));
    await store.upsert(document('bad', { pathPattern: 'a/**b' }));
    const { sink, logger } = logged();
    const cache = await loadPolicyCache({ store, logger });
    assert.deepEqual(names(cache), ['good']);
    const line = sink.lines.find((l) => l.msg === 'Ignoring a stored policy that does not compile');
    assert.equal(line?.policy, 'bad');
    assert.equal(line?.level, 'error');
  });

  test('a failing reload after a write keeps the change and logs a warning', async () => {
    const store = new MemoryPolicyStore();
    const { sink, logger } = logged();
    let isBroken = false;
    const flaky: PolicyStore = {
      ...methodsOf(store),
      list: () => (isBroken ? Promise.reject(new Error('disk on fire')) : store.list()),
    };
    const flakyCache = await loadPolicyCache({ store: flaky, logger });
    isBroken = true;
    await flakyCache.upsert(parsePolicy(document('web')));
    assert.deepEqual(names(flakyCache), ['web']);
    await flakyCache.delete('web');
    assert.deepEqual(names(flakyCache), []);
    assert.equal(sink.lines.filter((l) => l.level === 'warn').length, 2);
    await assert.rejects(flakyCache.reload(), /disk on fire/);
    assert.deepEqual(await store.list(), []);
  });

  test('loadPolicyCache() fails when the store cannot be read', async () => {
    const store = new MemoryPolicyStore();
    const broken: PolicyStore = { ...methodsOf(store), list: () => Promise.reject(new Error('x')) };
    await assert.rejects(loadPolicyCache({ store: broken }), /x/);
  });

  test('a reload that finishes after a newer change cannot bring back old policies', async () => {
    const store = new DeferredListStore();
    const cache = new PolicyCache({ store });
    const stale = cache.reload();
    const change = cache.upsert(parsePolicy(document('web')));
    // Let the upsert reach its own reload.
    while (store.pending.length < 2) await new Promise((resolve) => setTimeout(resolve, 1));
    const [answerStale, answerFresh] = store.pending;
    answerFresh?.(await MemoryPolicyStore.prototype.list.call(store));
    await change;
    assert.deepEqual(names(cache), ['web']);
    answerStale?.([]);
    await stale;
    assert.deepEqual(names(cache), ['web']);
  });
});

function methodsOf(store: PolicyStore): PolicyStore {
  return {
    list: () => store.list(),
    get: (name) => store.get(name),
    upsert: (policy) => store.upsert(policy),
    delete: (name) => store.delete(name),
  };
}
