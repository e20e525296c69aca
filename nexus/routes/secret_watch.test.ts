/**
 * Long-poll reads (`GET /v1/secrets/data/{path}?newerThan=N&wait=…`) through
 * the whole Nexus app (`createApp`) on the in-memory SQLite store, whose
 * writes tell the watches' `SecretChanges`. Nothing here depends on timing:
 * a test that needs a watch to be waiting waits (with a deadline) until
 * `SecretWatches.size` says so; a timeout is a wait of 1 ms with nothing
 * written meanwhile.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import { MAX_WATCH_PATHS } from '../../shared/api/secrets.ts';
import type { RateLimitOptions } from '../../shared/http/rate_limit.ts';
import { createTokenBuckets } from '../../shared/http/rate_limit.ts';
import { pilotRecoverId, pilotSuperuserId } from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import { type NexusApp, nexusApp, validSvid } from '../../test/harness/nexus_app.ts';
import type { SecretStore } from '../store/secret_store.ts';
import type { WatchLimits } from './secret_watch.ts';

const TD = parseTrustDomain('nexus.test');
const SUPERUSER = pilotSuperuserId(TD);
/** May read `app/web/**` only. */
const WEB = parseSpiffeId('spiffe://nexus.test/apps/web');
const WEB_2 = parseSpiffeId('spiffe://nexus.test/apps/web-2');

/** Every secret value written here starts with this, so a leak is easy to find. */
const SECRET_MARK = 'W4TCH-S3CR3T-';
const PATH = 'app/web/db';
const URL_OF = (query: string, path = PATH) => `${PATHS.secretData}/${path}?${query}`;

const apps: NexusApp[] = [];
after(async () => {
  await Promise.all(apps.map((app) => app.close()));
});

interface Options {
  readonly limits?: WatchLimits;
  readonly rateLimit?: RateLimitOptions;
}

/** The store, its calls counted by method name in `calls`. */
function countingStore(store: SecretStore, calls: Map<string, number>): SecretStore {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(String(property), (calls.get(String(property)) ?? 0) + 1);
        return Reflect.apply(value, target, args);
      };
    },
  });
}

async function nexus(options: Options = {}) {
  const calls = new Map<string, number>();
  const fixture = await nexusApp({
    seed: [
      [PATH, { password: `${SECRET_MARK}v1` }],
      [PATH, { password: `${SECRET_MARK}v2` }],
    ],
    policies: [
      {
        name: 'web-reads',
        spiffeIdPattern: 'spiffe://nexus.test/apps/*',
        pathPattern: 'app/web/**',
        permissions: ['read'],
      },
    ],
    wrapSecrets: (store) => countingStore(store, calls),
    ...(options.limits === undefined ? {} : { watchLimits: options.limits }),
    // Concurrent requests name their peer each in a header, not through `actAs`.
    getPeer: (c) => {
      const id = c.req.header('x-test-peer');
      return validSvid(id === undefined ? SUPERUSER : parseSpiffeId(id));
    },
    rateLimit: createTokenBuckets(options.rateLimit),
  });
  apps.push(fixture);
  const { app, rootKey, watches, changes, audit, logSink } = fixture;

  async function send(
    url: string,
    init: { method?: string; body?: unknown; as?: SpiffeId; signal?: AbortSignal } = {},
  ) {
    const headers: Record<string, string> = {};
    if (init.as !== undefined) headers['x-test-peer'] = init.as.toString();
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    const res = await app.request(
      new Request(`https://nexus.test${url}`, {
        method: init.method ?? 'GET',
        headers,
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
        ...(init.signal === undefined ? {} : { signal: init.signal }),
      }),
    );
    const text = await res.text();
    return { status: res.status, text, body: text === '' ? undefined : JSON.parse(text) };
  }

  return {
    app,
    rootKey,
    watches,
    changes,
    audit,
    calls,
    send,
    /** Resolves once `count` watches wait; fails after a deadline. */
    async waiting(count: number): Promise<void> {
      const deadline = Date.now() + 10_000;
      while (watches.size !== count) {
        assert.ok(Date.now() < deadline, `${count} watches never waited (${watches.size} do)`);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    },
    /**
     * Sends a watch that `request` makes with the signal given, and goes
     * away once it waits: the watch must be freed, and no waiter left.
     */
    async goneMidWait(request: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
      const controller = new AbortController();
      const pending = request(controller.signal);
      await this.waiting(1);
      controller.abort();
      await pending.catch(() => undefined);
      await this.waiting(0);
      assert.equal(changes.size, 0, 'a waiter stayed registered');
    },
    put(value: string, path = PATH) {
      return send(`${PATHS.secretData}/${path}`, {
        method: 'PUT',
        body: { data: { password: `${SECRET_MARK}${value}` } },
      });
    },
    /** Audit events of watches, as `status` (and their count). */
    watchEvents() {
      return audit.events.filter((event) => event.action === 'secret.watch');
    },
    /** No audit event or log line held a secret value (only 200 answers may). */
    assertNoSecretLeaked() {
      assert.ok(!JSON.stringify(audit.events).includes(SECRET_MARK), 'an audit event holds one');
      assert.ok(!JSON.stringify(logSink.lines).includes(SECRET_MARK), 'a log line holds one');
    },
  };
}

describe('long-poll reads', () => {
  test('a watch of an older version answers the current one at once, exactly as a read', async () => {
    const n = await nexus();
    const read = await n.send(`${PATHS.secretData}/${PATH}`);
    const watched = await n.send(URL_OF('newerThan=1&wait=60s'));
    assert.equal(watched.status, 200);
    assert.deepEqual(watched.body, read.body);
    assert.equal(watched.body.version, 2);
    const events = n.watchEvents();
    assert.equal(events.length, 1);
    assert.equal(events[0]?.status, 200);
    assert.equal(events[0]?.resource, PATH);
    assert.equal(n.watches.size, 0);
    n.assertNoSecretLeaked();
  });

  test('a watch of the current version waits; a write wakes it with the new version', async () => {
    const n = await nexus();
    const pending = n.send(URL_OF('newerThan=2&wait=60s'));
    await n.waiting(1);
    assert.equal(n.watchEvents().length, 0, 'audited before it answered');
    assert.equal((await n.put('v3')).status, 200);
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.equal(answer.body.version, 3);
    assert.deepEqual(answer.body.data, { password: `${SECRET_MARK}v3` });
    assert.equal(n.watches.size, 0);
    assert.deepEqual(
      n.watchEvents().map((event) => event.status),
      [200],
    );
    n.assertNoSecretLeaked();
  });

  test('a watch of nothing (0) waits for the path to be written', async () => {
    const n = await nexus();
    const pending = n.send(URL_OF('newerThan=0', 'app/web/new'));
    await n.waiting(1);
    await n.put('new', 'app/web/new');
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.equal(answer.body.version, 1);
  });

  test('deleting or destroying the watched version, or the path, answers 404 as a read would', async () => {
    const n = await nexus();
    const changes: ReadonlyArray<readonly [string, (version: number) => Promise<unknown>]> = [
      ['soft delete', () => n.send(`${PATHS.secretData}/${PATH}`, { method: 'DELETE' })],
      [
        'destroy',
        (version) =>
          n.send(`${PATHS.secretDestroy}/${PATH}`, {
            method: 'POST',
            body: { versions: [version] },
          }),
      ],
      ['path delete', () => n.send(`${PATHS.secretMetadata}/${PATH}`, { method: 'DELETE' })],
    ];
    for (const [label, change] of changes) {
      const { body } = await n.put(`before-${label}`);
      const pending = n.send(URL_OF(`newerThan=${body.currentVersion}`));
      await n.waiting(1);
      await change(body.currentVersion);
      const answer = await pending;
      assert.equal(answer.status, 404, label);
      assert.equal(answer.body.error.code, 'ERR_NOT_FOUND', label);
      if (label === 'soft delete') {
        // The caller has nothing now: an undelete is news again.
        const again = n.send(URL_OF('newerThan=0'));
        await n.waiting(1);
        await n.send(`${PATHS.secretUndelete}/${PATH}`, { method: 'POST', body: {} });
        const undeleted = await again;
        assert.equal(undeleted.status, 200);
        assert.equal(undeleted.body.version, body.currentVersion);
      }
    }
  });

  test('a change that leaves the current version as it was keeps the watch waiting', async () => {
    const n = await nexus();
    const pending = n.send(URL_OF('newerThan=2'));
    await n.waiting(1);
    const checks = n.calls.get('currentVersion') ?? 0;
    // An older version deleted, custom metadata written, and a gap of the feed.
    await n.send(`${PATHS.secretData}/${PATH}?versions=1`, { method: 'DELETE' });
    await n.send(`${PATHS.secretMetadata}/${PATH}`, {
      method: 'PUT',
      body: { customMetadata: { owner: 'web' } },
    });
    n.changes.gap();
    const deadline = Date.now() + 10_000;
    while ((n.calls.get('currentVersion') ?? 0) < checks + 3 || n.watches.size !== 1) {
      assert.ok(Date.now() < deadline, 'the watch never checked again');
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await n.put('v3');
    assert.equal((await pending).body.version, 3);
  });

  test('once the wait is over the answer is 304 with no body, and nothing was decrypted', async () => {
    const n = await nexus();
    const answer = await n.send(URL_OF('newerThan=2&wait=1ms'));
    assert.equal(answer.status, 304);
    assert.equal(answer.text, '');
    assert.equal(n.calls.get('get'), undefined, 'a secret was opened');
    assert.ok((n.calls.get('currentVersion') ?? 0) >= 1);
    assert.deepEqual(
      n.watchEvents().map((event) => [event.status, event.outcome]),
      [[304, 'allowed']],
    );
    assert.equal(n.watches.size, 0);
  });

  test('a client that goes away frees its watch at once', async () => {
    const n = await nexus();
    await n.goneMidWait((signal) => n.send(URL_OF('newerThan=2&wait=60s'), { signal }));
  });

  test('closing (Nexus stops) answers every waiting watch 304 at once, and later ones too', async () => {
    const n = await nexus();
    const pending = [n.send(URL_OF('newerThan=2')), n.send(URL_OF('newerThan=0', 'app/web/x'))];
    await n.waiting(2);
    n.watches.close();
    assert.deepEqual(
      (await Promise.all(pending)).map((answer) => answer.status),
      [304, 304],
    );
    assert.equal((await n.send(URL_OF('newerThan=2&wait=60s'))).status, 304);
    assert.equal(n.changes.size, 0);
  });

  test('a sealed Nexus answers 503 at once, as a read would', async () => {
    const n = await nexus();
    n.rootKey.seal();
    const answer = await n.send(URL_OF('newerThan=2&wait=60s'));
    assert.equal(answer.status, 503);
    assert.equal(answer.body.error.code, 'ERR_NOT_READY');
    assert.equal(n.watches.size, 0);
  });

  test('a caller who may not read the path is refused before anything is read or held', async () => {
    const n = await nexus();
    const answer = await n.send(URL_OF('newerThan=0&wait=60s', 'app/other/db'), { as: WEB });
    assert.equal(answer.status, 403);
    assert.equal(n.calls.size, 0, 'the store was touched');
    assert.equal(n.watches.size, 0);
    // The query is not even parsed for a refused caller.
    const bad = await n.send(URL_OF('newerThan=x', 'app/other/db'), { as: WEB });
    assert.equal(bad.status, 403);
  });

  test('bad long-poll queries are 400s, before anything is read', async () => {
    const n = await nexus();
    for (const query of [
      'wait=1s',
      'newerThan=',
      'newerThan=-1',
      'newerThan=01',
      'newerThan=2147483648',
      'newerThan=1&wait=0s',
      'newerThan=1&wait=61s',
      'newerThan=1&wait=1m',
      'newerThan=1&wait=30',
      'newerThan=1&version=1',
    ]) {
      const answer = await n.send(URL_OF(query));
      assert.equal(answer.status, 400, query);
      assert.equal(answer.body.error.code, 'ERR_INVALID_REQUEST', query);
    }
    assert.equal(n.calls.size, 0, 'the store was touched');
    assert.equal(n.watches.size, 0);
  });

  test('beyond the watches allowed per SPIFFE ID or in all, 429 ERR_TOO_MANY_WATCHES', async () => {
    const n = await nexus({ limits: { maxWatches: 2, maxWatchesPerIdentity: 1 } });
    const first = n.send(URL_OF('newerThan=2'), { as: WEB });
    await n.waiting(1);
    const refused = await n.send(URL_OF('newerThan=2'), { as: WEB });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, 'ERR_TOO_MANY_WATCHES');
    const second = n.send(URL_OF('newerThan=2'), { as: WEB_2 });
    await n.waiting(2);
    const overall = await n.send(URL_OF('newerThan=2'));
    assert.equal(overall.status, 429);
    assert.equal(overall.body.error.code, 'ERR_TOO_MANY_WATCHES');
    // A plain read is not a watch: never refused for them.
    assert.equal((await n.send(`${PATHS.secretData}/${PATH}`, { as: WEB })).status, 200);
    await n.put('v3');
    assert.deepEqual(
      (await Promise.all([first, second])).map((answer) => answer.body.version),
      [3, 3],
    );
    // The slots are free again.
    const again = n.send(URL_OF('newerThan=3'), { as: WEB });
    await n.waiting(1);
    n.watches.close();
    assert.equal((await again).status, 304);
    assert.deepEqual(
      n
        .watchEvents()
        .filter((event) => event.status === 429)
        .map((event) => event.outcome),
      ['denied', 'denied'],
    );
  });

  test('each watch takes one token of the rate limit', async () => {
    const n = await nexus({ rateLimit: { ratePerSecond: 1, burst: 2, now: () => 0 } });
    assert.equal((await n.send(URL_OF('newerThan=1'))).status, 200);
    assert.equal((await n.send(URL_OF('newerThan=2&wait=1ms'))).status, 304);
    const limited = await n.send(URL_OF('newerThan=2&wait=1ms'));
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, 'ERR_RATE_LIMITED');
  });
});

/** A long-poll over several paths (`POST /v1/secrets/watch`, ADR 0033). */
describe('long-polls over several paths', () => {
  const OTHER = 'app/web/api';
  const watchMany = (
    n: Awaited<ReturnType<typeof nexus>>,
    body: unknown,
    init: { as?: SpiffeId; signal?: AbortSignal } = {},
  ) => n.send(PATHS.secretWatch, { method: 'POST', body, ...init });

  test("answers at once with every path whose version is not the caller's, and decrypts nothing", async () => {
    const n = await nexus();
    const answer = await watchMany(n, {
      versions: { [PATH]: 1, [OTHER]: 0, 'app/web/none': 0 },
      wait: '60s',
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { versions: { [PATH]: 2 } });
    assert.equal(n.calls.get('get'), undefined, 'a secret was opened');
    const events = n.watchEvents();
    assert.equal(events.length, 1);
    assert.equal(events[0]?.status, 200);
    assert.equal(events[0]?.resource, `${PATH},${OTHER},app/web/none`);
    assert.equal(events[0]?.decision?.reason, 'superuser');
    assert.equal(n.watches.size, 0);
    n.assertNoSecretLeaked();
  });

  test('waits while every path is as the caller has it; a write of one wakes it with that one', async () => {
    const n = await nexus();
    const pending = watchMany(n, { versions: { [PATH]: 2, [OTHER]: 0 } }, { as: WEB });
    await n.waiting(1);
    assert.equal(n.changes.size, 2, 'one waiter per path');
    await n.put('api', OTHER);
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { versions: { [OTHER]: 1 } });
    assert.equal(n.changes.size, 0, 'a waiter stayed registered');
    const [event] = n.watchEvents();
    assert.equal(event?.decision?.reason, 'policy');
    assert.equal(event?.decision?.policy, 'web-reads');
    n.assertNoSecretLeaked();
  });

  test('a watched version deleted answers 0 for its path', async () => {
    const n = await nexus();
    const pending = watchMany(n, { versions: { [PATH]: 2 } });
    await n.waiting(1);
    await n.send(`${PATHS.secretData}/${PATH}`, { method: 'DELETE' });
    assert.deepEqual((await pending).body, { versions: { [PATH]: 0 } });
  });

  test('once the wait is over the answer is 304 with no body; a closing Nexus answers 304 too', async () => {
    const n = await nexus();
    const over = await watchMany(n, { versions: { [PATH]: 2 }, wait: '1ms' });
    assert.equal(over.status, 304);
    assert.equal(over.text, '');
    const pending = watchMany(n, { versions: { [PATH]: 2 } });
    await n.waiting(1);
    n.watches.close();
    assert.equal((await pending).status, 304);
    assert.equal(n.changes.size, 0);
  });

  test("a client that goes away frees its watch and every path's waiter at once", async () => {
    const n = await nexus();
    await n.goneMidWait((signal) =>
      watchMany(n, { versions: { [PATH]: 2, [OTHER]: 0 } }, { signal }),
    );
  });

  test('one path the caller may not read refuses the whole watch before anything is read or held', async () => {
    const n = await nexus();
    const answer = await watchMany(n, { versions: { [PATH]: 2, 'app/other/db': 0 } }, { as: WEB });
    assert.equal(answer.status, 403);
    assert.equal(answer.body.error.code, 'ERR_ACCESS_DENIED');
    assert.ok(!answer.text.includes('app/other'), 'the answer names the refused path');
    assert.equal(n.calls.size, 0, 'the store was touched');
    assert.equal(n.watches.size, 0);
    const [event] = n.watchEvents();
    assert.equal(event?.outcome, 'denied');
    assert.equal(event?.resource, 'app/other/db');
    // A reserved path is a 400 wherever it sits, even after a path refused.
    const reserved = await watchMany(
      n,
      { versions: { 'app/other/db': 0, 'sys/policies': 0 } },
      { as: WEB },
    );
    assert.equal(reserved.status, 400);
    // A break-glass role is refused by the guard, before its body is read.
    const recover = await watchMany(n, { versions: 'not even parsed' }, { as: pilotRecoverId(TD) });
    assert.equal(recover.status, 403);
    assert.equal(n.watchEvents().at(-1)?.decision?.reason, 'operator_role');
  });

  test('a sealed Nexus answers 503 at once', async () => {
    const n = await nexus();
    n.rootKey.seal();
    const answer = await watchMany(n, { versions: { [PATH]: 2 } });
    assert.equal(answer.status, 503);
    assert.equal(answer.body.error.code, 'ERR_NOT_READY');
    assert.equal(n.watches.size, 0);
  });

  test('bad bodies are 400s, before anything is read or held', async () => {
    const n = await nexus();
    const tooMany = Object.fromEntries(
      Array.from({ length: MAX_WATCH_PATHS + 1 }, (_, i) => [`app/web/p${i}`, 0]),
    );
    for (const body of [
      {},
      [],
      { versions: {} },
      { versions: [] },
      { versions: tooMany },
      { versions: { [PATH]: -1 } },
      { versions: { [PATH]: 1.5 } },
      { versions: { [PATH]: '1' } },
      { versions: { [PATH]: 2 ** 31 } },
      { versions: { '/app': 0 } },
      { versions: { 'app//x': 0 } },
      { versions: { 'sys/policies': 0 } },
      { versions: { [PATH]: 1 }, wait: 30 },
      { versions: { [PATH]: 1 }, wait: '61s' },
      { versions: { [PATH]: 1 }, wait: '0ms' },
      { versions: { [PATH]: 1 }, extra: true },
    ]) {
      const answer = await watchMany(n, body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.equal(answer.body.error.code, 'ERR_INVALID_REQUEST', JSON.stringify(body));
    }
    assert.equal(n.calls.size, 0, 'the store was touched');
    assert.equal(n.watches.size, 0);
  });

  test('a watch of many paths is one watch against the limits and one token of the rate limit', async () => {
    const n = await nexus({
      limits: { maxWatches: 3, maxWatchesPerIdentity: 2 },
      rateLimit: { ratePerSecond: 1, burst: 3, now: () => 0 },
    });
    // Three paths, one slot of two: a second watch is still admitted.
    const first = watchMany(
      n,
      { versions: { [PATH]: 2, [OTHER]: 0, 'app/web/x': 0 } },
      { as: WEB },
    );
    await n.waiting(1);
    const second = watchMany(n, { versions: { [PATH]: 2 } }, { as: WEB });
    await n.waiting(2);
    const refused = await watchMany(n, { versions: { [PATH]: 2 } }, { as: WEB });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, 'ERR_TOO_MANY_WATCHES');
    // Three requests, three tokens: the fourth is over the rate.
    const limited = await watchMany(n, { versions: { [PATH]: 2 } }, { as: WEB });
    assert.equal(limited.body.error.code, 'ERR_RATE_LIMITED');
    n.watches.close();
    assert.deepEqual(
      (await Promise.all([first, second])).map((answer) => answer.status),
      [304, 304],
    );
  });

  test('after a change it looks at the changed path only; after a gap, at every path', async () => {
    const n = await nexus();
    const paths = Object.fromEntries(
      Array.from({ length: 10 }, (_, i) => [`app/web/many-${i}`, 0]),
    );
    const pending = watchMany(n, { versions: { ...paths, [PATH]: 2 } });
    await n.waiting(1);
    const firstLooks = n.calls.get('currentVersion') ?? 0;
    assert.equal(firstLooks, 11, 'the first look is at every path');
    n.changes.gap();
    await n.waiting(1);
    const deadline = Date.now() + 10_000;
    while ((n.calls.get('currentVersion') ?? 0) < firstLooks + 11) {
      assert.ok(Date.now() < deadline, 'a gap did not look at every path');
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const beforeWrite = n.calls.get('currentVersion') ?? 0;
    await n.put('v3');
    assert.deepEqual((await pending).body, { versions: { [PATH]: 3 } });
    assert.equal((n.calls.get('currentVersion') ?? 0) - beforeWrite, 1, 'one look per change');
  });
});

/**
 * `wait()` as the read shortcut calls it, with the node response as its
 * client: a `close` listener is added while the watch waits and removed
 * however it ends (`on`, not `once`, so nothing else would remove it).
 */
describe('SecretWatches.wait() and its response', () => {
  /** What `wait()` needs of a node response. */
  class FakeResponse extends EventEmitter {
    destroyed = false;
  }
  const path = parseSecretPath(PATH);
  const caller = WEB.toString();

  test('a response already gone answers at once: no slot, no listener, nothing read', async () => {
    const n = await nexus();
    const response = new FakeResponse();
    response.destroyed = true;
    const calls = n.calls.get('currentVersion') ?? 0;
    assert.equal(
      await n.watches.wait(path, { newerThan: 2, waitMs: 60_000 }, caller, response),
      undefined,
    );
    assert.equal(response.listenerCount('close'), 0);
    assert.equal(n.watches.size, 0);
    assert.equal(n.calls.get('currentVersion') ?? 0, calls);
  });

  test('the response closing mid-wait ends the watch and takes its listener away', async () => {
    const n = await nexus();
    const response = new FakeResponse();
    const pending = n.watches.wait(path, { newerThan: 2, waitMs: 60_000 }, caller, response);
    await n.waiting(1);
    assert.equal(response.listenerCount('close'), 1);
    response.emit('close');
    assert.equal(await pending, undefined);
    assert.equal(response.listenerCount('close'), 0);
    assert.equal(n.watches.size, 0);
    assert.equal(n.changes.size, 0);
  });

  test('an answer and a timeout take the listener away too', async () => {
    const n = await nexus();
    const answered = new FakeResponse();
    const pending = n.watches.wait(path, { newerThan: 2, waitMs: 60_000 }, caller, answered);
    await n.waiting(1);
    await n.put('v3');
    assert.equal((await pending)?.version, 3);
    assert.equal(answered.listenerCount('close'), 0);
    const timedOut = new FakeResponse();
    assert.equal(
      await n.watches.wait(path, { newerThan: 3, waitMs: 1 }, caller, timedOut),
      undefined,
    );
    assert.equal(timedOut.listenerCount('close'), 0);
    assert.equal(n.watches.size, 0);
  });
});
