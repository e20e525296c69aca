/**
 * Hostile input on every route of the Keeper, property-based (fast-check),
 * through the whole app (`createApp`) with a real ShardHolder and Nexus as
 * the injected peer (the only caller the routes admit). Each generated
 * request is malformed in one known way and must get the specific 4xx and
 * error code, in the one error shape with `Cache-Control: no-store`, leave
 * the held shards untouched (the holder's mutating methods are never even
 * called), never echo or log shard bytes, and be audited exactly once when
 * the app has an audit sink.
 *
 * The routes are read from `app.routes`: a route added later fails the
 * coverage test until it has a generator here. Requests carry their raw
 * request target in `env.incoming.url`, as @hono/node-server hands it over.
 *
 * Replay a failure with `FC_SEED=<seed>` (and `FC_RUNS=<n>` for more runs).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { shardToWire } from '../../shared/api/keeper.ts';
import { PATHS } from '../../shared/api/paths.ts';
import {
  MAX_GENERATION,
  MAX_SHARES,
  SHARD_VALUE_BYTES,
  type Shard,
} from '../../shared/crypto/shard.ts';
import { type AuditEvent, createMemoryAuditSink } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { nexusId } from '../../shared/spiffe/identities.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createApp, KEEPER_MAX_BODY_BYTES } from '../app.ts';
import { ShardHolder } from '../shard_holder.ts';

const TD = parseTrustDomain('keeper.test');
const NEXUS = nexusId(TD);
const HOUR_MS = 3_600_000;

const SEED = process.env.FC_SEED === undefined ? Date.now() ^ 0x5eed : Number(process.env.FC_SEED);
const RUNS = process.env.FC_RUNS === undefined ? 60 : Number(process.env.FC_RUNS);
// biome-ignore lint/suspicious/noConsole: the seed is printed so that a failure can be replayed
console.log(`# hostile_input (keeper): FC_SEED=${SEED} FC_RUNS=${RUNS}`);

/** A holder that records every call that could change it. */
class WatchedHolder extends ShardHolder {
  readonly changes: string[] = [];
  override store(shard: Shard) {
    this.changes.push('store');
    return super.store(shard);
  }
  override prune(keepFrom: number) {
    this.changes.push('prune');
    return super.prune(keepFrom);
  }
  override clear() {
    this.changes.push('clear');
    super.clear();
  }
}

function shardValue(seed: number): Uint8Array {
  return Uint8Array.from({ length: SHARD_VALUE_BYTES }, (_, i) => (seed * 31 + i * 7 + 3) & 255);
}

const HELD: readonly Shard[] = [
  { generation: 1, index: 2, threshold: 2, value: shardValue(1) },
  { generation: 2, index: 2, threshold: 2, value: shardValue(2) },
];

function keeperApp() {
  const logSink = createMemorySink();
  const logger = createLogger({ component: 'keeper', level: 'debug', sink: logSink });
  const holder = new WatchedHolder({ logger });
  for (const shard of HELD) holder.store({ ...shard, value: shard.value.slice() });
  holder.changes.length = 0;
  const audit = createMemoryAuditSink();
  // The audit sink is passed when the Keeper app takes one; older apps ignore it.
  const deps = {
    getPeer: () => ({
      id: NEXUS,
      notBefore: new Date(Date.now() - HOUR_MS),
      notAfter: new Date(Date.now() + HOUR_MS),
      serialNumber: '01',
    }),
    logger,
    trustDomain: TD,
    holder,
    auditSink: audit,
  };
  const app = createApp(deps);
  return {
    app,
    holder,
    audit,
    logSink,
    async send(target: string, init: RequestInit) {
      const res = await app.request(target, init, { incoming: { url: target } });
      const text = await res.text();
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      return { status: res.status, headers: res.headers, text, body };
    },
    snapshot(): string {
      return JSON.stringify({
        shards: holder.list().map((shard) => ({ ...shard, value: [...shard.value] })),
        changes: holder.changes,
      });
    },
  };
}

type Keeper = ReturnType<typeof keeperApp>;

/** Shard bytes in base64 as the wire carries them, to look for in answers and logs. */
const HELD_TEXTS = HELD.map((shard) => shardToWire(shard).shard);

interface Expected {
  readonly status: number;
  readonly code: string;
}
const INVALID: Expected = { status: 400, code: 'ERR_INVALID_REQUEST' };
const NOT_FOUND: Expected = { status: 404, code: 'ERR_NOT_FOUND' };
const TOO_LARGE: Expected = { status: 413, code: 'ERR_PAYLOAD_TOO_LARGE' };

interface HostileCase {
  readonly kind: string;
  readonly method: string;
  readonly target: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  readonly expect: Expected;
}

interface RouteSpec {
  readonly target: string;
  readonly body?: unknown;
  readonly specific?: fc.Arbitrary<HostileCase>;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

function jsonCase(kind: string, method: string, target: string, body: unknown): HostileCase {
  return {
    kind,
    method,
    target,
    headers: JSON_HEADERS,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    expect: INVALID,
  };
}

/** A JSON object text with one member replaced or added, written by hand so any name stays a member. */
function withMember(body: Record<string, unknown>, name: string, valueText: string): string {
  const rest = Object.entries(body).filter(([key]) => key !== name);
  const members = rest.map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value)}`);
  members.push(`${JSON.stringify(name)}:${valueText}`);
  return `{${members.join(',')}}`;
}

/** JSON texts that are not an integer in `min..max`. */
function badIntegerText(min: number, max: number) {
  return fc
    .oneof(
      fc.constantFrom(
        '0',
        '-0',
        '-1',
        '1.5',
        '1e400',
        '-1e400',
        '1e-400',
        '9007199254740993',
        '1e21',
        '"1"',
        '"2"',
        '" 1"',
        'null',
        'true',
        '[1]',
        '{"n":1}',
      ),
      fc.integer({ min: -(2 ** 31), max: min - 1 }).map(String),
      fc.integer({ min: max + 1, max: Number.MAX_SAFE_INTEGER }).map(String),
      fc
        .double({ noNaN: true, noDefaultInfinity: true })
        .filter((value) => !Number.isInteger(value))
        .map((value) => JSON.stringify(value)),
      fc.integer({ min, max }).map((value) => JSON.stringify(String(value))),
    )
    .filter((text) => {
      const value: unknown = JSON.parse(text);
      return !(
        typeof value === 'number' &&
        Number.isInteger(value) &&
        value >= min &&
        value <= max
      );
    });
}

/** `shard` values that are not canonical padded base64 of exactly 33 bytes. */
const badShardBytes = fc.oneof(
  notAStringText(),
  fc.constantFrom(
    '""',
    '"="',
    '"===="',
    '"AAAA"',
    // 33 bytes are 44 characters without padding; these are near misses.
    JSON.stringify('A'.repeat(43)),
    JSON.stringify(`${'A'.repeat(43)}=`),
    JSON.stringify(`${'A'.repeat(44)}==`),
    JSON.stringify(`${'A'.repeat(40)}AA==`),
    JSON.stringify(`${'-'.repeat(44)}`),
    JSON.stringify(`${'_'.repeat(44)}`),
    JSON.stringify(` ${'A'.repeat(44)}`),
    JSON.stringify(`${'A'.repeat(22)}\n${'A'.repeat(22)}`),
    JSON.stringify(`${'A'.repeat(43)}\u00e9`),
    JSON.stringify(`${'A'.repeat(43)}\u0000`),
  ),
  // The right length, with a character outside the alphabet.
  fc
    .tuple(fc.nat({ max: 43 }), fc.constantFrom('-', '_', '.', ' ', '%', '\u0000', '\u00c0', '='))
    .map(([at, char]) => JSON.stringify(`${'A'.repeat(at)}${char}${'A'.repeat(43 - at)}`)),
  // Valid base64 of the wrong number of bytes.
  fc
    .uint8Array({ maxLength: 80 })
    .filter((bytes) => bytes.length !== SHARD_VALUE_BYTES)
    .map((bytes) => JSON.stringify(shardToWire({ ...HELD[0], value: bytes } as Shard).shard)),
);

function notAStringText() {
  return fc.constantFrom('null', 'true', '0', '33', '[]', '{}', '["AAAA"]');
}

/** Fields a body does not have, including prototype names. */
function unknownField(allowed: readonly string[]) {
  return fc
    .oneof(
      fc.constantFrom('__proto__', 'constructor', 'prototype', 'Generation', 'shard ', ''),
      fc.string({ maxLength: 12 }),
    )
    .filter((name) => !allowed.includes(name));
}

const brokenJson = fc.oneof(
  fc.constantFrom(
    '',
    '{',
    '{"generation":',
    "{'keepFrom':1}",
    '{"keepFrom":1,}',
    '{keepFrom:1}',
    '{"a":1}{',
  ),
  fc.string({ maxLength: 30 }).filter((text) => {
    try {
      JSON.parse(text);
      return false;
    } catch {
      return true;
    }
  }),
);

const notAnObject = fc.constantFrom(
  'null',
  'true',
  '0',
  '-0',
  '1e400',
  '"{}"',
  '[]',
  '[{"keepFrom":1}]',
);

function nested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array'
    ? `${'['.repeat(depth)}${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}
const nesting = fc.tuple(
  fc.integer({ min: 2, max: 600 }),
  fc.constantFrom<'array' | 'object'>('array', 'object'),
);

const GOOD_SHARD = shardToWire({ generation: 3, index: 2, threshold: 2, value: shardValue(3) });

function specs(): Record<string, RouteSpec> {
  const put = (kind: string, body: string) => jsonCase(kind, 'PUT', PATHS.keeperShards, body);
  const good = GOOD_SHARD as unknown as Record<string, unknown>;
  return {
    [`GET ${PATHS.health}`]: { target: PATHS.health },
    [`GET ${PATHS.keeperShards}`]: { target: PATHS.keeperShards },
    [`GET ${PATHS.keeperGenerations}`]: { target: PATHS.keeperGenerations },
    [`PUT ${PATHS.keeperShards}`]: {
      target: PATHS.keeperShards,
      body: GOOD_SHARD,
      specific: fc.oneof(
        badIntegerText(1, MAX_GENERATION).map((n) =>
          put(`generation ${n}`, withMember(good, 'generation', n)),
        ),
        badIntegerText(1, MAX_SHARES).map((n) => put(`index ${n}`, withMember(good, 'index', n))),
        badIntegerText(2, MAX_SHARES).map((n) =>
          put(`threshold ${n}`, withMember(good, 'threshold', n)),
        ),
        badShardBytes.map((text) =>
          put(`shard ${text.slice(0, 50)}`, withMember(good, 'shard', text)),
        ),
        fc
          .constantFrom('generation', 'index', 'threshold', 'shard')
          .map((missing) =>
            put(`missing ${missing}`, JSON.stringify({ ...good, [missing]: undefined })),
          ),
        unknownField(['generation', 'index', 'threshold', 'shard']).map((name) =>
          put(`unknown field ${JSON.stringify(name)}`, withMember(good, name, '1')),
        ),
      ),
    },
    [`POST ${PATHS.keeperPrune}`]: {
      target: PATHS.keeperPrune,
      body: { keepFrom: 2 },
      specific: fc.oneof(
        badIntegerText(1, MAX_GENERATION).map((n) =>
          jsonCase(`keepFrom ${n}`, 'POST', PATHS.keeperPrune, `{"keepFrom":${n}}`),
        ),
        fc.constant(jsonCase('no keepFrom', 'POST', PATHS.keeperPrune, '{}')),
        unknownField(['keepFrom']).map((name) =>
          jsonCase(
            `unknown field ${JSON.stringify(name)}`,
            'POST',
            PATHS.keeperPrune,
            withMember({ keepFrom: 2 }, name, '1'),
          ),
        ),
      ),
    },
  };
}

/** Cases every route gets: traversal, encoded slashes, odd methods, oversized and malformed bodies. */
function genericCases(spec: RouteSpec, method: string): fc.Arbitrary<HostileCase> {
  const path = spec.target;
  const slashes = [...path].flatMap((char, i) => (char === '/' && i > 0 ? [i] : []));
  const withBody =
    spec.body === undefined ? {} : { headers: JSON_HEADERS, body: JSON.stringify(spec.body) };
  const cases: fc.Arbitrary<HostileCase>[] = [
    fc
      .tuple(fc.constantFrom('.', '..', '%2e', '%2E', '%2e%2e', '.%2e', '%2E.'), fc.nat())
      .map(([dots, at]) => {
        const cut = slashes[at % slashes.length] as number;
        const extra = dots.replace(/%2e/gi, '.').length === 2 ? `x/${dots}` : dots;
        return {
          kind: `dot segment ${dots}`,
          method,
          target: `${path.slice(0, cut)}/${extra}${path.slice(cut)}`,
          ...withBody,
          expect: INVALID,
        };
      }),
    fc.tuple(fc.constantFrom('%2f', '%2F', '%5c', '//', '///'), fc.nat()).map(([sep, at]) => {
      const cut = slashes[at % slashes.length] as number;
      return {
        kind: `separator ${sep}`,
        method,
        target: `${path.slice(0, cut)}${sep}${path.slice(cut + 1)}`,
        ...withBody,
        expect: INVALID,
      };
    }),
    fc.constantFrom('%00', '%0a', '%0D', '%7f', '%E2%80%A8').map((control) => ({
      kind: `control character ${control}`,
      method,
      target: `${path}${control}`,
      ...withBody,
      expect: INVALID,
    })),
    fc.constantFrom('PATCH', 'OPTIONS', 'PROPFIND', 'X-HOSTILE').map((other) => ({
      kind: `method ${other}`,
      method: other,
      target: path,
      ...withBody,
      expect: NOT_FOUND,
    })),
    // Junk after the route: no such route.
    fc.constantFrom('/x', 'x', '/%C3%A9', '/..x', '/v1').map((junk) => ({
      kind: `suffix ${junk}`,
      method,
      target: `${path}${junk}`,
      ...withBody,
      expect: NOT_FOUND,
    })),
  ];
  if (method !== 'GET') {
    cases.push(
      fc
        .integer({ min: KEEPER_MAX_BODY_BYTES + 1, max: KEEPER_MAX_BODY_BYTES * 16 })
        .map((size) => ({
          kind: `body of ${size} bytes`,
          method,
          target: path,
          headers: JSON_HEADERS,
          body: JSON.stringify({ ...(spec.body as object), pad: 'x'.repeat(size) }),
          expect: TOO_LARGE,
        })),
    );
  }
  if (spec.body !== undefined) {
    const goodText = JSON.stringify(spec.body);
    cases.push(
      brokenJson.map((text) => jsonCase(`broken JSON ${JSON.stringify(text)}`, method, path, text)),
      notAnObject.map((text) => jsonCase(`not an object ${text}`, method, path, text)),
      nesting.map(([depth, kind]) =>
        jsonCase(`nested ${kind} ${depth}`, method, path, nested(depth, kind)),
      ),
      fc
        .constantFrom<string | undefined>(
          undefined,
          '',
          'text/plain',
          'application/jsonx',
          'json',
          'multipart/form-data',
        )
        .map((type) => ({
          kind: `content type ${JSON.stringify(type)}`,
          method,
          target: path,
          headers: type === undefined ? {} : { 'content-type': type },
          body: goodText,
          expect: INVALID,
        })),
      fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x80]).map((bytes) => {
        const encoder = new TextEncoder();
        // Inside the first string of the body (`"shard"` or `"keepFrom"`'s name).
        const cut = goodText.indexOf('"') + 1;
        return {
          kind: `not UTF-8 ${bytes.join(' ')}`,
          method,
          target: path,
          headers: JSON_HEADERS,
          body: Uint8Array.from([
            ...encoder.encode(goodText.slice(0, cut)),
            ...bytes,
            ...encoder.encode(goodText.slice(cut)),
          ]),
          expect: INVALID,
        };
      }),
    );
  }
  return fc.oneof(...cases);
}

function routesOf(app: Keeper['app']): string[] {
  const keys = new Set<string>();
  for (const route of app.routes) {
    if (route.method !== 'ALL') keys.add(`${route.method} ${route.path}`);
  }
  return [...keys].sort();
}

/** Whether this Keeper app writes an audit trail (it does once it takes an audit sink). */
async function keeperAudits(): Promise<boolean> {
  const keeper = keeperApp();
  await keeper.send(PATHS.health, { method: 'GET' });
  return keeper.audit.events.length > 0;
}

async function check(keeper: Keeper, hostile: HostileCase, audits: boolean): Promise<void> {
  const where = `${hostile.method} ${hostile.target.slice(0, 200)} (${hostile.kind})`;
  const before = keeper.snapshot();
  const eventsBefore = keeper.audit.events.length;
  const logsBefore = keeper.logSink.lines.length;
  const init: RequestInit = { method: hostile.method, headers: hostile.headers ?? {} };
  if (hostile.body !== undefined) init.body = hostile.body;
  const answer = await keeper.send(hostile.target, init);

  assert.equal(answer.status, hostile.expect.status, `${where}: ${answer.text.slice(0, 300)}`);
  const error = (answer.body as { error?: { code?: unknown; message?: unknown } } | undefined)
    ?.error;
  assert.equal(error?.code, hostile.expect.code, `${where}: ${answer.text.slice(0, 300)}`);
  assert.equal(typeof error?.message, 'string', where);
  assert.equal(answer.headers.get('cache-control'), 'no-store', where);
  assert.equal(keeper.snapshot(), before, `${where}: the held shards changed`);

  const events: AuditEvent[] = keeper.audit.events.slice(eventsBefore);
  if (audits) {
    assert.equal(events.length, 1, `${where}: ${events.length} audit events`);
    assert.equal(events[0]?.status, answer.status, where);
    assert.equal(events[0]?.errorCode, hostile.expect.code, where);
  } else {
    assert.equal(events.length, 0, where);
  }
  const said =
    answer.text + JSON.stringify(events) + JSON.stringify(keeper.logSink.lines.slice(logsBefore));
  for (const text of [...HELD_TEXTS, GOOD_SHARD.shard]) {
    assert.ok(!said.includes(text), `${where}: shard bytes were echoed or logged`);
  }
}

describe('Keeper under hostile input', () => {
  test('every route of the app has a hostile generator, and every generator a route', () => {
    const routes = routesOf(keeperApp().app);
    const covered = Object.keys(specs()).sort();
    assert.deepEqual(
      routes.filter((route) => !covered.includes(route)),
      [],
      'routes without a hostile generator in keeper/routes/hostile_input.test.ts',
    );
    assert.deepEqual(
      covered.filter((route) => !routes.includes(route)),
      [],
      'generators for routes the app does not have',
    );
  });

  test('each route answers the well-formed sample its hostile cases are made from', async () => {
    for (const [key, spec] of Object.entries(specs())) {
      const keeper = keeperApp();
      const method = key.split(' ')[0] as string;
      const init: RequestInit = { method };
      if (spec.body !== undefined) {
        init.headers = JSON_HEADERS;
        init.body = JSON.stringify(spec.body);
      }
      const answer = await keeper.send(spec.target, init);
      assert.equal(answer.status, 200, `${key}: ${answer.text.slice(0, 200)}`);
    }
  });

  for (const [key, spec] of Object.entries(specs())) {
    test(`${key}: hostile requests get a specific 4xx and change nothing`, async () => {
      const audits = await keeperAudits();
      const keeper = keeperApp();
      const method = key.split(' ')[0] as string;
      const generic = genericCases(spec, method);
      const arbitrary =
        spec.specific === undefined ? generic : fc.oneof(generic, spec.specific, spec.specific);
      await fc.assert(
        fc.asyncProperty(arbitrary, (hostile) => check(keeper, hostile, audits)),
        { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true },
      );
    });
  }
});
