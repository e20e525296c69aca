/**
 * The liveness, status and break-glass operator routes through the whole
 * Nexus app (`createApp`): every route × every kind of caller, in both root
 * key states. The root key comes from a real RootKeyManager over a
 * MemoryRootKeyStore and in-process Keepers (real ShardHolders), so recover
 * splits the real key and restore really unseals. The peer is injected per
 * request. Every test ends by checking that no answer, audit event or log
 * line carried shard text, except the answer of an allowed recover.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ShardHolder } from '../../keeper/shard_holder.ts';
import type {
  RecoverResponse,
  RestoreResponse,
  RotateRootKeyResponse,
  StatusResponse,
} from '../../shared/api/operator.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { formatShardText, parseShardText } from '../../shared/api/shard_text.ts';
import { constantTimeEqual } from '../../shared/crypto/bytes.ts';
import { combineShards } from '../../shared/crypto/shamir.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import type { AuditEvent } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink, type Logger } from '../../shared/log/logger.ts';
import {
  keeperId,
  pilotRecoverId,
  pilotRestoreId,
  pilotSuperuserId,
} from '../../shared/spiffe/identities.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import { type Answer, type NexusApp, nexusApp } from '../../test/harness/nexus_app.ts';
import type { KeeperLink } from '../root_key/keeper_link.ts';
import { RootKey } from '../root_key/root_key.ts';
import { RootKeyManager } from '../root_key/root_key_manager.ts';
import type { SecretStore } from '../store/secret_store.ts';
import { MemoryRootKeyStore } from '../store/testing/memory_root_key_store.ts';

const TD = parseTrustDomain('nexus.test');
const MAX_BODY_BYTES = 8192;
const SHARES = 5;
const THRESHOLD = 3;

const NEXUS_ID = 'spiffe://nexus.test/spike/nexus';
const SVID_NOT_AFTER = '2030-01-02T03:04:05.000Z';
const REFUSED_HANDSHAKES = 7;

const SUPERUSER = pilotSuperuserId(TD);
const RECOVER = pilotRecoverId(TD);
const RESTORE = pilotRestoreId(TD);
/** A policy grants it `super` on `**`: everything on secrets, nothing on operator routes. */
const SUPER_APP = parseSpiffeId('spiffe://nexus.test/apps/admin');
/** No policy names it. */
const NOBODY = parseSpiffeId('spiffe://nexus.test/apps/nobody');

const SHARD_TEXT_REGEXP =
  /^spike-shard:v1:[1-9][0-9]*:[1-9][0-9]*:3:[A-Za-z0-9_-]{44}:[0-9a-f]{8}$/;

/** A Keeper in this process: a real ShardHolder behind the link Nexus uses. */
class FakeKeeper implements KeeperLink {
  readonly name: string;
  readonly #logger: Logger;
  #holder: ShardHolder;

  constructor(name: string, logger: Logger) {
    this.name = name;
    this.#logger = logger;
    this.#holder = new ShardHolder({ logger });
  }

  /** A Keeper restart: its memory, and every shard in it, is gone. */
  restart(): void {
    this.#holder.clear();
    this.#holder = new ShardHolder({ logger: this.#logger });
  }

  async putShard(shard: Shard): Promise<void> {
    this.#holder.store(shard);
  }

  async listShards(): Promise<Shard[]> {
    return this.#holder.list();
  }

  async generations(): Promise<number[]> {
    return this.#holder.generations();
  }

  async prune(keepFrom: number): Promise<void> {
    this.#holder.prune(keepFrom);
  }
}

const apps: NexusApp[] = [];
after(async () => {
  await Promise.all(apps.map((app) => app.close()));
});

/** A secret store that fails the test if a route so much as looks at it. */
function untouchableSecretStore(): { store: SecretStore; touched: string[] } {
  const touched: string[] = [];
  const store = new Proxy(
    {},
    {
      get(_object, property) {
        touched.push(String(property));
        throw new Error(`the secret store was touched: ${String(property)}`);
      },
    },
  ) as SecretStore;
  return { store, touched };
}

function startNexusProcess(
  store: MemoryRootKeyStore,
  keepers: readonly FakeKeeper[],
  logger: Logger,
) {
  const rootKey = new RootKey();
  const manager = new RootKeyManager({
    store,
    keepers,
    threshold: THRESHOLD,
    rootKey,
    logger,
    checkIntervalMs: 60_000,
    recoveryMaxIntervalMs: 60_000,
  });
  return { rootKey, manager };
}

/**
 * A recovery split of a root key that is not this Nexus's: another store and
 * other Keepers. `skipGenerations` moves its generation number away from ours.
 */
async function foreignSplit(skipGenerations: number): Promise<string[]> {
  const logger = createLogger({ component: 'other', level: 'error', sink: createMemorySink() });
  const store = new MemoryRootKeyStore();
  const keepers = Array.from({ length: SHARES }, (_, i) => new FakeKeeper(`other-${i}`, logger));
  const other = startNexusProcess(store, keepers, logger);
  await other.manager.step();
  assert.ok(other.rootKey.isReady);
  for (let i = 0; i < skipGenerations; i++) await store.allocateGeneration();
  const shards = await other.manager.recoveryShards();
  other.manager.stop();
  other.rootKey.seal();
  return shards.map(formatShardText);
}

type KeyState = 'ready' | 'sealed';

/**
 * A Nexus whose store was initialised by an earlier process: ready (it holds
 * the key and the Keepers hold their shards) or sealed (restarted after every
 * Keeper lost its memory). Either way an operator kept the recovery split
 * made while it was ready (`kept`, generation 2; the Keepers' first split is
 * generation 1).
 */
async function operatorApp(state: KeyState) {
  const logSink = createMemorySink();
  const logger = createLogger({ component: 'nexus', level: 'debug', sink: logSink });
  const keeperLogger = createLogger({ component: 'keeper', level: 'debug', sink: logSink });
  const store = new MemoryRootKeyStore();
  const keepers = Array.from(
    { length: SHARES },
    (_, i) => new FakeKeeper(`keeper-${i + 1}`, keeperLogger),
  );
  const first = startNexusProcess(store, keepers, logger);
  await first.manager.step();
  assert.ok(first.rootKey.isReady, 'the first Nexus initialises the store');
  const originalKey = first.rootKey.withKey((key) => key.slice());
  const originalKeyring = first.rootKey.withKeyring((keyring) => keyring.slice());
  const kept = (await first.manager.recoveryShards()).map(formatShardText);
  let current = first;
  if (state === 'sealed') {
    first.manager.stop();
    first.rootKey.seal();
    for (const keeper of keepers) keeper.restart();
    current = startNexusProcess(store, keepers, logger);
  }
  // Ready: one Keeper check. Sealed: one recovery attempt that finds no shard.
  await current.manager.step();
  assert.equal(current.rootKey.state, state);
  const { rootKey, manager } = current;

  const secrets = untouchableSecretStore();
  const nexus = await nexusApp({
    log: { logger, logSink },
    rootKey: { rootKey, manager },
    policies: [
      {
        name: 'admin-everything',
        spiffeIdPattern: SUPER_APP.toString(),
        pathPattern: '**',
        permissions: ['super'],
      },
    ],
    // The operator routes must never look at secrets.
    wrapSecrets: () => secrets.store,
    identity: {
      getX509Svid: () => ({ id: parseSpiffeId(NEXUS_ID), notAfter: new Date(SVID_NOT_AFTER) }),
    },
    refusals: { refusedCount: REFUSED_HANDSHAKES },
    maxBodyBytes: MAX_BODY_BYTES,
  });
  apps.push(nexus);
  const { app, audit, sent } = nexus;
  /** Every shard text seen in this test, and the value field of each. */
  const shardSecrets = new Set<string>();
  function remember(texts: readonly string[]): void {
    for (const text of texts) {
      shardSecrets.add(text);
      const value = text.split(':')[5];
      if (value !== undefined) shardSecrets.add(value);
    }
  }
  remember(kept);

  return {
    app,
    rootKey,
    store,
    keepers,
    audit,
    logSink,
    /** The recovery split an operator kept; shards of the current key. */
    kept,
    /** Calls the routes made on the manager, by method name. */
    calls: nexus.managerCalls,
    /** Properties of the secret store a route touched (none, ever). */
    secretStoreTouched: secrets.touched,
    /** The next requests come from `id` (undefined: no verified peer). */
    actAs: nexus.actAs,
    async send(url: string, init: RequestInit = {}): Promise<Answer> {
      const answer = await nexus.request(url, init);
      if (url === PATHS.operatorRecover && answer.status === 200) {
        remember((answer.body as RecoverResponse).shards);
      }
      return answer;
    },
    /** Shards of another root key, remembered as shard text that must not leak. */
    async foreignShards(skipGenerations: number): Promise<string[]> {
      const texts = await foreignSplit(skipGenerations);
      remember(texts);
      return texts;
    },
    /** Audit events so far, and a fresh start for the next request. */
    takeAudit: nexus.takeAudit,
    /** Everything a request could change, past the routes (no key bytes). */
    async snapshot(): Promise<string> {
      const record = await store.read();
      return JSON.stringify({
        state: rootKey.state,
        generation: rootKey.generation,
        lastGeneration: record?.lastGeneration,
        committedGeneration: record?.committedGeneration,
        keepers: await Promise.all(keepers.map((keeper) => keeper.generations())),
      });
    },
    /** Whether Nexus holds exactly the key and keyring the store was initialised with. */
    holdsOriginalKey(): boolean {
      return (
        rootKey.isReady &&
        rootKey.withKey((key) => constantTimeEqual(key, originalKey)) &&
        rootKey.withKeyring((keyring) => constantTimeEqual(keyring, originalKeyring))
      );
    },
    /** Whether `shards` recombine into the key the store was initialised with. */
    async combineToOriginalKey(shards: readonly Shard[]): Promise<boolean> {
      return constantTimeEqual(await combineShards(shards), originalKey);
    },
    /** Nothing but an allowed recover answered shard text; no audit event or log line held any. */
    assertNoShardLeaked() {
      const audited = JSON.stringify(audit.events);
      const logged = JSON.stringify(logSink.lines);
      for (const secret of shardSecrets) {
        for (const request of sent) {
          const isAllowedRecover = request.url === PATHS.operatorRecover && request.status === 200;
          if (!isAllowedRecover) {
            assert.ok(
              !request.text.includes(secret),
              `${request.method} ${request.url} (${request.status}) answered shard text`,
            );
          }
        }
        assert.ok(!audited.includes(secret), 'an audit event holds shard text');
        assert.ok(!logged.includes(secret), 'a log line holds shard text');
      }
    },
  };
}

type Nexus = Awaited<ReturnType<typeof operatorApp>>;

/** A test on a fresh Nexus in `state` that ends by checking that no shard text leaked. */
function nexusTest(
  name: string,
  state: KeyState,
  body: (nexus: Nexus) => Promise<void>,
  options: { readonly todo?: string } = {},
) {
  test(name, options, async () => {
    const nexus = await operatorApp(state);
    await body(nexus);
    assert.deepEqual(nexus.secretStoreTouched, [], 'the secret store was touched');
    nexus.assertNoShardLeaked();
  });
}

function json(method: string, body: unknown): RequestInit {
  return {
    method,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  };
}

function restoreRequest(shard: string): RequestInit {
  return json('POST', { shard });
}

function errorOf(answer: Answer): { code: string; message: string } {
  return (answer.body as { error: { code: string; message: string } }).error;
}

function assertError(answer: Answer, status: number, code: string): void {
  assert.equal(answer.status, status, answer.text);
  assert.equal(errorOf(answer).code, code);
}

/** Exactly one audit event since the last look, and it is that one. */
function assertOneAuditEvent(
  n: Nexus,
  expected: {
    readonly outcome: AuditEvent['outcome'];
    readonly status: number;
    readonly errorCode: string | null;
    readonly peer: SpiffeId | undefined;
    readonly method: string;
  },
): AuditEvent {
  const events = n.takeAudit();
  assert.equal(events.length, 1, JSON.stringify(events));
  const [event] = events as [AuditEvent];
  assert.equal(event.outcome, expected.outcome);
  assert.equal(event.status, expected.status);
  assert.equal(event.errorCode, expected.errorCode);
  assert.equal(event.peer, expected.peer === undefined ? null : expected.peer.toString());
  assert.equal(event.method, expected.method);
  assert.equal(event.component, 'nexus');
  assert.equal(event.resource, null);
  return event;
}

type RouteName = 'health' | 'status' | 'recover' | 'restore';

interface RouteCase {
  readonly name: RouteName;
  readonly title: string;
  readonly method: string;
  readonly url: string;
  readonly request: (n: Nexus) => RequestInit;
}

const ROUTES: readonly RouteCase[] = [
  {
    name: 'health',
    title: `GET ${PATHS.health}`,
    method: 'GET',
    url: PATHS.health,
    request: () => ({ method: 'GET' }),
  },
  {
    name: 'status',
    title: `GET ${PATHS.status}`,
    method: 'GET',
    url: PATHS.status,
    request: () => ({ method: 'GET' }),
  },
  {
    name: 'recover',
    title: `POST ${PATHS.operatorRecover}`,
    method: 'POST',
    url: PATHS.operatorRecover,
    request: () => ({ method: 'POST' }),
  },
  {
    name: 'restore',
    title: `POST ${PATHS.operatorRestore}`,
    method: 'POST',
    url: PATHS.operatorRestore,
    // A genuine shard of the current key: only the caller decides the answer.
    request: (n) => restoreRequest(n.kept[0] as string),
  },
];

interface Caller {
  readonly who: string;
  readonly id: SpiffeId;
  readonly allowed: readonly RouteName[];
  /** Routes where the app does not (yet) behave as expected here: why. */
  readonly todo?: Partial<Record<RouteName, string>>;
}

const CALLERS: readonly Caller[] = [
  { who: 'the superuser', id: SUPERUSER, allowed: ['health', 'status'] },
  {
    who: 'an ID under the superuser role',
    id: parseSpiffeId('spiffe://nexus.test/spike/pilot/role/superuser/alice'),
    allowed: ['health', 'status'],
  },
  { who: 'an app with `super` on `**`', id: SUPER_APP, allowed: ['health'] },
  { who: 'an app without a policy', id: NOBODY, allowed: ['health'] },
  { who: 'the recover role', id: RECOVER, allowed: ['health', 'status', 'recover'] },
  { who: 'the restore role', id: RESTORE, allowed: ['health', 'status', 'restore'] },
  {
    who: 'a superuser look-alike of a foreign trust domain',
    id: parseSpiffeId('spiffe://other.org/spike/pilot/role/superuser'),
    allowed: [],
  },
  { who: 'a Keeper', id: keeperId(TD, 'keeper-1'), allowed: ['health'] },
];

/** What an allowed caller gets from `route` in `state`, all checked. */
async function assertAllowed(n: Nexus, route: RouteCase, state: KeyState, peer: SpiffeId) {
  const before = await n.snapshot();
  const answer = await n.send(route.url, route.request(n));
  assert.equal(answer.headers.get('cache-control'), 'no-store');
  const audited = { peer, method: route.method };
  switch (route.name) {
    case 'health': {
      // Sealed is 503, as Vault's health answers: a sealed Nexus serves no secret.
      const status = state === 'ready' ? 200 : 503;
      assert.equal(answer.status, status, answer.text);
      assert.deepEqual(answer.body, {
        status: state === 'ready' ? 'ok' : 'sealed',
        component: 'nexus',
      });
      assert.deepEqual(n.calls, []);
      assert.equal(await n.snapshot(), before);
      assertOneAuditEvent(n, {
        ...audited,
        outcome: state === 'ready' ? 'allowed' : 'error',
        status,
        errorCode: null,
      });
      return;
    }
    case 'status': {
      const body = answer.body as StatusResponse;
      assert.equal(answer.status, state === 'ready' ? 200 : 503, answer.text);
      assert.equal(body.state, state);
      assert.equal(body.spiffeId, NEXUS_ID);
      assert.equal(body.svidNotAfter, SVID_NOT_AFTER);
      assert.equal(body.refusedHandshakes, REFUSED_HANDSHAKES);
      assert.equal(body.deniedRequests, 0);
      assert.deepEqual(
        body.keepers,
        n.keepers.map((keeper) => ({
          name: keeper.name,
          reachable: true,
          generations: state === 'ready' ? [1] : [],
        })),
      );
      assert.deepEqual(
        n.calls,
        state === 'ready' ? ['keeperStatus', 'rootKeyStatus'] : ['keeperStatus'],
      );
      assert.equal(await n.snapshot(), before);
      // The audit trail classes every status of 400 and above as an error, this 503 too.
      assertOneAuditEvent(n, {
        ...audited,
        outcome: state === 'ready' ? 'allowed' : 'error',
        status: state === 'ready' ? 200 : 503,
        errorCode: null,
      });
      return;
    }
    case 'recover': {
      if (state === 'sealed') {
        assertError(answer, 503, 'ERR_NOT_READY');
        assert.equal(await n.snapshot(), before, 'a sealed Nexus allocated a generation');
        assertOneAuditEvent(n, {
          ...audited,
          outcome: 'error',
          status: 503,
          errorCode: 'ERR_NOT_READY',
        });
        return;
      }
      assert.equal(answer.status, 200, answer.text);
      const body = answer.body as RecoverResponse;
      assert.equal(body.threshold, THRESHOLD);
      assert.equal(body.generation, 3, 'a new generation after the Keepers’ 1 and the kept 2');
      assert.equal(body.shards.length, SHARES);
      for (const text of body.shards) assert.match(text, SHARD_TEXT_REGEXP);
      const shards = body.shards.map(parseShardText);
      assert.deepEqual(
        shards.map((shard) => [shard.generation, shard.index, shard.threshold]),
        [1, 2, 3, 4, 5].map((index) => [3, index, THRESHOLD]),
      );
      assert.ok(await n.combineToOriginalKey(shards.slice(0, THRESHOLD)));
      assert.ok(await n.combineToOriginalKey(shards.slice(SHARES - THRESHOLD)));
      assert.ok(n.holdsOriginalKey());
      assert.equal(
        await n.snapshot(),
        before.replace('"lastGeneration":2', '"lastGeneration":3'),
        'only a generation number is used: the Keepers are not sent the split',
      );
      assertOneAuditEvent(n, { ...audited, outcome: 'allowed', status: 200, errorCode: null });
      return;
    }
    case 'restore': {
      if (state === 'ready') {
        assertError(answer, 409, 'ERR_ALREADY_UNSEALED');
        assert.ok(n.holdsOriginalKey());
        assert.equal(await n.snapshot(), before);
        assertOneAuditEvent(n, {
          ...audited,
          outcome: 'error',
          status: 409,
          errorCode: 'ERR_ALREADY_UNSEALED',
        });
        return;
      }
      assert.equal(answer.status, 200, answer.text);
      const expected: RestoreResponse = {
        generation: 2,
        collected: 1,
        threshold: THRESHOLD,
        remaining: THRESHOLD - 1,
        restored: false,
      };
      assert.deepEqual(answer.body, expected);
      assert.equal(await n.snapshot(), before);
      assertOneAuditEvent(n, { ...audited, outcome: 'allowed', status: 200, errorCode: null });
      return;
    }
  }
}

/**
 * Whether the restore buffer is empty: a second shard, sent by the restore
 * role, must be the first one collected. Sealed Nexus only.
 */
async function assertNoShardCollected(n: Nexus): Promise<void> {
  n.actAs(RESTORE);
  const answer = await n.send(PATHS.operatorRestore, restoreRequest(n.kept[1] as string));
  assert.equal(answer.status, 200, answer.text);
  assert.equal((answer.body as RestoreResponse).collected, 1, 'an earlier shard was collected');
  n.takeAudit();
}

for (const state of ['ready', 'sealed'] as const) {
  describe(`operator and status routes × every kind of caller, Nexus ${state}`, () => {
    for (const caller of CALLERS) {
      for (const route of ROUTES) {
        const { id } = caller;
        const todo = caller.todo?.[route.name];
        if (caller.allowed.includes(route.name)) {
          nexusTest(`${route.title} by ${caller.who}: allowed`, state, async (n) => {
            n.actAs(id);
            await assertAllowed(n, route, state, id);
          });
          continue;
        }
        nexusTest(
          `${route.title} by ${caller.who}: 403, nothing changed, one denied audit event`,
          state,
          async (n) => {
            n.actAs(id);
            const before = await n.snapshot();
            const answer = await n.send(route.url, route.request(n));
            assertError(answer, 403, 'ERR_ACCESS_DENIED');
            assert.equal(errorOf(answer).message, 'Access denied');
            assert.deepEqual(n.calls, [], 'the root key manager was called');
            assert.equal(await n.snapshot(), before);
            assert.equal(n.rootKey.state, state);
            if (state === 'ready') assert.ok(n.holdsOriginalKey());
            const event = assertOneAuditEvent(n, {
              outcome: 'denied',
              status: 403,
              errorCode: 'ERR_ACCESS_DENIED',
              peer: id,
              method: route.method,
            });
            assert.equal(event.route, route.url);
            if (state === 'sealed') await assertNoShardCollected(n);
          },
          todo === undefined ? {} : { todo },
        );
      }
    }

    nexusTest(
      'every route answers 401 without a verified peer: nothing changed, one denied audit event each',
      state,
      async (n) => {
        n.actAs(undefined);
        const before = await n.snapshot();
        for (const route of ROUTES) {
          const answer = await n.send(route.url, route.request(n));
          assertError(answer, 401, 'ERR_UNAUTHENTICATED');
          assert.deepEqual(n.calls, [], `${route.title}: the root key manager was called`);
          assertOneAuditEvent(n, {
            outcome: 'denied',
            status: 401,
            errorCode: 'ERR_UNAUTHENTICATED',
            peer: undefined,
            method: route.method,
          });
        }
        assert.equal(await n.snapshot(), before);
        assert.equal(n.rootKey.state, state);
        if (state === 'sealed') await assertNoShardCollected(n);
      },
    );
  });
}

describe('GET /v1/status', () => {
  nexusTest('reports denials and Keeper outages as of the request', 'ready', async (n) => {
    n.actAs(NOBODY);
    assertError(await n.send(PATHS.status), 403, 'ERR_ACCESS_DENIED');
    assertError(await n.send(PATHS.operatorRecover, { method: 'POST' }), 403, 'ERR_ACCESS_DENIED');
    n.actAs(undefined);
    assertError(await n.send(PATHS.health), 401, 'ERR_UNAUTHENTICATED');
    n.actAs(SUPERUSER);
    const answer = await n.send(PATHS.status);
    assert.equal(answer.status, 200);
    assert.equal((answer.body as StatusResponse).deniedRequests, 3);
    assert.equal((answer.body as StatusResponse).refusedHandshakes, REFUSED_HANDSHAKES);
  });

  nexusTest(
    'turns 200 once an operator restores the key, and never shows a shard',
    'sealed',
    async (n) => {
      n.actAs(RECOVER);
      const sealed = await n.send(PATHS.status);
      assert.equal(sealed.status, 503);
      assert.equal((sealed.body as StatusResponse).state, 'sealed');
      n.actAs(RESTORE);
      for (const text of n.kept.slice(0, THRESHOLD)) {
        assert.equal((await n.send(PATHS.operatorRestore, restoreRequest(text))).status, 200);
      }
      const ready = await n.send(PATHS.status);
      assert.equal(ready.status, 200);
      const body = ready.body as StatusResponse;
      assert.equal(body.state, 'ready');
      // The status route reports the last Keeper check; none ran since the restore.
      assert.deepEqual(
        body.keepers.map((keeper) => keeper.reachable),
        n.keepers.map(() => true),
      );
    },
  );
});

describe('POST /v1/operator/recover', () => {
  nexusTest(
    'every call is a new split of the same key, under a new generation',
    'ready',
    async (n) => {
      n.actAs(RECOVER);
      const first = (await n.send(PATHS.operatorRecover, { method: 'POST' }))
        .body as RecoverResponse;
      const second = (await n.send(PATHS.operatorRecover, { method: 'POST' }))
        .body as RecoverResponse;
      assert.equal(first.generation, 3);
      assert.equal(second.generation, 4);
      assert.deepEqual(new Set([...first.shards, ...second.shards]).size, 2 * SHARES);
      assert.ok(
        await n.combineToOriginalKey(second.shards.slice(1, 1 + THRESHOLD).map(parseShardText)),
      );
      const events = n.takeAudit();
      assert.deepEqual(
        events.map((event) => event.outcome),
        ['allowed', 'allowed'],
      );
    },
  );

  nexusTest('a recovered split restores a sealed Nexus', 'ready', async (n) => {
    n.actAs(RECOVER);
    const split = (await n.send(PATHS.operatorRecover, { method: 'POST' })).body as RecoverResponse;
    // The same Nexus process, sealed (as after a stop): restore takes the split back.
    n.rootKey.seal();
    n.actAs(RESTORE);
    const answers = [];
    for (const text of [split.shards[4], split.shards[0], split.shards[2]]) {
      answers.push((await n.send(PATHS.operatorRestore, restoreRequest(text as string))).body);
    }
    assert.equal((answers[2] as RestoreResponse).restored, true);
    assert.ok(n.holdsOriginalKey());
  });
});

describe('POST /v1/operator/restore on a sealed Nexus', () => {
  nexusTest(
    'counts a repeated shard once and unseals at the threshold with the original key',
    'sealed',
    async (n) => {
      n.actAs(RESTORE);
      const [one, two, , four] = n.kept as [string, string, string, string, string];
      const steps: ReadonlyArray<readonly [string, RestoreResponse]> = [
        [one, { generation: 2, collected: 1, threshold: 3, remaining: 2, restored: false }],
        [one, { generation: 2, collected: 1, threshold: 3, remaining: 2, restored: false }],
        [
          `  ${one}\n`,
          { generation: 2, collected: 1, threshold: 3, remaining: 2, restored: false },
        ],
        [four, { generation: 2, collected: 2, threshold: 3, remaining: 1, restored: false }],
      ];
      for (const [text, expected] of steps) {
        const answer = await n.send(PATHS.operatorRestore, restoreRequest(text));
        assert.equal(answer.status, 200, answer.text);
        assert.deepEqual(answer.body, expected);
        assert.equal(n.rootKey.state, 'sealed');
        assertOneAuditEvent(n, {
          outcome: 'allowed',
          status: 200,
          errorCode: null,
          peer: RESTORE,
          method: 'POST',
        });
      }
      const before = JSON.parse(await n.snapshot()) as { lastGeneration: number };
      const last = await n.send(PATHS.operatorRestore, restoreRequest(two));
      assert.equal(last.status, 200, last.text);
      const expected: RestoreResponse = {
        generation: 2,
        collected: THRESHOLD,
        threshold: THRESHOLD,
        remaining: 0,
        restored: true,
      };
      assert.deepEqual(last.body, expected);
      assertOneAuditEvent(n, {
        outcome: 'allowed',
        status: 200,
        errorCode: null,
        peer: RESTORE,
        method: 'POST',
      });
      assert.equal(n.rootKey.state, 'ready');
      assert.ok(n.holdsOriginalKey());
      // Once ready, Nexus re-supplies the Keepers with a new, committed split.
      const after = JSON.parse(await n.snapshot()) as {
        lastGeneration: number;
        committedGeneration: number;
        generation: number;
        keepers: number[][];
      };
      const resplit = before.lastGeneration + 1;
      assert.equal(after.lastGeneration, resplit);
      assert.equal(after.committedGeneration, resplit);
      assert.equal(after.generation, resplit);
      assert.deepEqual(
        after.keepers,
        n.keepers.map(() => [resplit]),
      );

      const again = await n.send(PATHS.operatorRestore, restoreRequest(one));
      assertError(again, 409, 'ERR_ALREADY_UNSEALED');
      assertOneAuditEvent(n, {
        outcome: 'error',
        status: 409,
        errorCode: 'ERR_ALREADY_UNSEALED',
        peer: RESTORE,
        method: 'POST',
      });
    },
  );

  nexusTest('a malformed shard or body is 400 and collects nothing', 'sealed', async (n) => {
    n.actAs(RESTORE);
    const genuine = n.kept[0] as string;
    const fields = genuine.split(':');
    const value = fields[5] as string;
    const flipped = `${value[0] === 'A' ? 'B' : 'A'}${value.slice(1)}`;
    const mistyped = [...fields.slice(0, 5), flipped, fields[6]].join(':');
    const badBodies: ReadonlyArray<readonly [string, RequestInit]> = [
      ['a mistyped value (checksum mismatch)', restoreRequest(mistyped)],
      ['a truncated shard', restoreRequest(genuine.slice(0, -10))],
      ['a shard of an unknown version', restoreRequest(genuine.replace(':v1:', ':v2:'))],
      ['words, not a shard', restoreRequest('please unseal')],
      ['an empty shard', restoreRequest('')],
      ['a shard too long to be one', restoreRequest(`${genuine}${'x'.repeat(600)}`)],
      ['a number for the shard', json('POST', { shard: 42 })],
      ['no shard field', json('POST', {})],
      ['an unknown field beside the shard', json('POST', { shard: genuine, note: 'x' })],
      ['a body that is not JSON', json('POST', `{"shard":"${genuine}"`)],
      [
        'a body sent as text/plain',
        {
          method: 'POST',
          headers: { 'content-type': 'text/plain' },
          body: JSON.stringify({ shard: genuine }),
        },
      ],
    ];
    for (const [what, init] of badBodies) {
      const before = await n.snapshot();
      const answer = await n.send(PATHS.operatorRestore, init);
      assertError(answer, 400, 'ERR_INVALID_REQUEST');
      assert.ok(!answer.text.includes(value), `${what}: the answer repeats the shard`);
      assert.ok(!answer.text.includes(flipped), `${what}: the answer repeats the shard`);
      assert.equal(await n.snapshot(), before, what);
      assertOneAuditEvent(n, {
        outcome: 'error',
        status: 400,
        errorCode: 'ERR_INVALID_REQUEST',
        peer: RESTORE,
        method: 'POST',
      });
    }
    // The mistyped shard's index (1) is still free: the genuine one is the first collected.
    const first = await n.send(PATHS.operatorRestore, restoreRequest(genuine));
    assert.equal((first.body as RestoreResponse).collected, 1);
  });

  nexusTest(
    'shards of a different key are refused with 400 at the threshold and discarded',
    'sealed',
    async (n) => {
      n.actAs(RESTORE);
      // Generation 3 (ours is 2), so the two splits never share a buffer.
      const other = await n.foreignShards(1);
      assert.equal(parseShardText(other[0] as string).generation, 3);
      for (const [i, text] of other.slice(0, THRESHOLD - 1).entries()) {
        const answer = await n.send(PATHS.operatorRestore, restoreRequest(text));
        assert.equal((answer.body as RestoreResponse).collected, i + 1);
      }
      n.takeAudit();
      const before = await n.snapshot();
      const refused = await n.send(
        PATHS.operatorRestore,
        restoreRequest(other[THRESHOLD - 1] as string),
      );
      assertError(refused, 400, 'ERR_INVALID_REQUEST');
      assert.match(errorOf(refused).message, /discarded/);
      assert.equal(n.rootKey.state, 'sealed');
      assert.equal(await n.snapshot(), before);
      assertOneAuditEvent(n, {
        outcome: 'error',
        status: 400,
        errorCode: 'ERR_INVALID_REQUEST',
        peer: RESTORE,
        method: 'POST',
      });
      // Discarded: the same shards count from one again.
      const again = await n.send(PATHS.operatorRestore, restoreRequest(other[0] as string));
      assert.equal((again.body as RestoreResponse).collected, 1);
      // Our own split, in its own generation, still unseals.
      for (const text of n.kept.slice(2, 2 + THRESHOLD)) {
        await n.send(PATHS.operatorRestore, restoreRequest(text));
      }
      assert.ok(n.holdsOriginalKey());
    },
  );

  nexusTest(
    'a foreign shard mixed into our generation spoils it; it is discarded and ours unseal after',
    'sealed',
    async (n) => {
      n.actAs(RESTORE);
      // Generation 2, like ours: the foreign shards land in the same buffer.
      const other = await n.foreignShards(0);
      assert.equal(parseShardText(other[0] as string).generation, 2);
      const mixed = [n.kept[0], other[1], other[2]] as string[];
      const answers = [];
      for (const text of mixed) {
        answers.push(await n.send(PATHS.operatorRestore, restoreRequest(text)));
      }
      assert.deepEqual(
        answers.map((answer) => answer.status),
        [200, 200, 400],
      );
      assertError(answers[2] as Answer, 400, 'ERR_INVALID_REQUEST');
      assert.equal(n.rootKey.state, 'sealed');
      const progress: RestoreResponse[] = [];
      for (const text of n.kept.slice(0, THRESHOLD)) {
        progress.push(
          (await n.send(PATHS.operatorRestore, restoreRequest(text))).body as RestoreResponse,
        );
      }
      assert.deepEqual(
        progress.map((step) => [step.collected, step.restored]),
        [
          [1, false],
          [2, false],
          [THRESHOLD, true],
        ],
      );
      assert.ok(n.holdsOriginalKey());
    },
  );

  nexusTest('a refused caller with a malformed shard gets 403, not 400', 'sealed', async (n) => {
    for (const id of [SUPERUSER, RECOVER]) {
      n.actAs(id);
      assertError(
        await n.send(PATHS.operatorRestore, restoreRequest('not a shard')),
        403,
        'ERR_ACCESS_DENIED',
      );
      assertError(
        await n.send(PATHS.operatorRestore, json('POST', '{nope')),
        403,
        'ERR_ACCESS_DENIED',
      );
    }
    assert.deepEqual(n.calls, []);
    const events = n.takeAudit();
    assert.equal(events.length, 4);
    assert.ok(events.every((event) => event.outcome === 'denied'));
  });
});

describe('POST /v1/operator/root-key/rotate', () => {
  nexusTest(
    'a superuser rotates the root key; status then shows the shape and that older recovery shards are stale',
    'ready',
    async (n) => {
      n.actAs(RECOVER);
      const before = (await n.send(PATHS.operatorRecover, { method: 'POST' }))
        .body as RecoverResponse;
      n.takeAudit();
      n.actAs(SUPERUSER);
      const answer = await n.send(PATHS.operatorRootKeyRotate, json('POST', { threshold: 2 }));
      assert.equal(answer.status, 200, answer.text);
      const rotated = answer.body as RotateRootKeyResponse;
      assert.equal(rotated.shares, SHARES);
      assert.equal(rotated.threshold, 2);
      assert.equal(rotated.keepers.length, SHARES);
      assert.ok(rotated.generation > before.generation);
      assertOneAuditEvent(n, {
        outcome: 'allowed',
        status: 200,
        errorCode: null,
        peer: SUPERUSER,
        method: 'POST',
      });
      assert.equal(n.holdsOriginalKey(), false, 'a new root key');
      const record = await n.store.read();
      assert.equal(record?.committedGeneration, rotated.generation);
      // The old recovery split rebuilds the old key only.
      assert.ok(
        await n.combineToOriginalKey(before.shards.slice(0, THRESHOLD).map(parseShardText)),
      );

      const status = (await n.send(PATHS.status)).body as StatusResponse;
      assert.deepEqual(status.rootKey, {
        generation: rotated.generation,
        shares: SHARES,
        threshold: 2,
        lastRotation: { generation: rotated.generation, at: rotated.rotatedAt },
        lastRecoveryExport: {
          generation: before.generation,
          at: status.rootKey?.lastRecoveryExport?.at,
          stale: true,
        },
      });
      n.actAs(RECOVER);
      const fresh = (await n.send(PATHS.operatorRecover, { method: 'POST' }))
        .body as RecoverResponse;
      assert.equal(fresh.threshold, 2);
      n.actAs(SUPERUSER);
      const after = (await n.send(PATHS.status)).body as StatusResponse;
      assert.equal(after.rootKey?.lastRecoveryExport?.stale, false);
    },
  );

  nexusTest('only a superuser may rotate; bad bodies change nothing', 'ready', async (n) => {
    const before = await n.snapshot();
    for (const who of [RECOVER, RESTORE, SUPER_APP]) {
      n.actAs(who);
      assertError(
        await n.send(PATHS.operatorRootKeyRotate, json('POST', {})),
        403,
        'ERR_ACCESS_DENIED',
      );
    }
    n.actAs(SUPERUSER);
    for (const body of [
      { shares: 'three' },
      { threshold: 1 },
      { shares: 2, threshold: 3 },
      { shares: 3.5 },
      { other: 1 },
      [],
      'null',
    ]) {
      assertError(
        await n.send(PATHS.operatorRootKeyRotate, json('POST', body)),
        400,
        'ERR_INVALID_REQUEST',
      );
    }
    // More shares than Keepers: refused by the manager.
    assertError(
      await n.send(PATHS.operatorRootKeyRotate, json('POST', { shares: SHARES + 1 })),
      400,
      'ERR_INVALID_REQUEST',
    );
    assert.equal(await n.snapshot(), before);
    assert.ok(n.holdsOriginalKey());
    // Only the body that passed the edge reached the manager.
    assert.deepEqual(
      n.calls.filter((call) => call === 'rotateRootKey'),
      ['rotateRootKey'],
    );
  });
});
