/**
 * Hostile input on every route of Nexus, property-based (fast-check), through
 * the whole app (`createApp`) with in-memory stores and an injected peer that
 * is allowed to call the route. Each generated request is malformed in one
 * known way (broken JSON, wrong types, oversized bodies, deep nesting,
 * unicode and control characters, path traversal, bad versions and numbers,
 * invalid SPIFFE ID and path patterns), and must get:
 *
 * - the 4xx and the specific error code that malformation calls for, in the
 *   one error shape, with `Cache-Control: no-store`;
 * - no change to anything stored (secrets with every version's data,
 *   policies, the root key manager, which must not even be called);
 * - exactly one audit event, which agrees with the answer;
 * - no secret value of the request in the answer, the audit trail or the log.
 *
 * The routes are read from `app.routes`, so a route added later fails the
 * coverage test until it has a generator here.
 *
 * Requests carry their raw request target in `env.incoming.url`, as
 * @hono/node-server hands it over, because `new URL()` (in `app.request()`
 * and in the adapter alike) resolves dot segments before routing.
 *
 * Replay a failure with `FC_SEED=<seed>` (and `FC_RUNS=<n>` for more runs).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { PATHS } from '../../shared/api/paths.ts';
import type { PolicyDocument } from '../../shared/api/policies.ts';
import { parseSecretPath, parseSecretPrefix } from '../../shared/api/secret_path.ts';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import { type AuditEvent, createMemoryAuditSink } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import {
  pilotRecoverId,
  pilotRestoreId,
  pilotSuperuserId,
} from '../../shared/spiffe/identities.ts';
import { parseTrustDomain, type SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import { createAccessChecker } from '../access/check_access.ts';
import { loadPolicyCache } from '../access/policy_cache.ts';
import { createApp } from '../app.ts';
import { RootKey } from '../root_key/root_key.ts';
import type { RootKeyManager } from '../root_key/root_key_manager.ts';
import { MemoryPolicyStore } from '../store/memory_policy_store.ts';
import { createMemorySecretStore } from '../store/memory_secret_store.ts';
import type { SqlSecretStore } from '../store/sql_secret_store.ts';

const TD = parseTrustDomain('nexus.test');
const HOUR_MS = 3_600_000;
const MAX_BODY_BYTES = 8192;

const SEED = process.env.FC_SEED === undefined ? Date.now() ^ 0x5eed : Number(process.env.FC_SEED);
const RUNS = process.env.FC_RUNS === undefined ? 40 : Number(process.env.FC_RUNS);
// biome-ignore lint/suspicious/noConsole: the seed is printed so that a failure can be replayed
console.log(`# hostile_input (nexus): FC_SEED=${SEED} FC_RUNS=${RUNS}`);

/** Every secret value a hostile request carries starts with this, so a leak is easy to find. */
const SECRET_MARK = 'H0ST1LE-S3CR3T-';

const CALLERS = {
  superuser: pilotSuperuserId(TD),
  recover: pilotRecoverId(TD),
  restore: pilotRestoreId(TD),
} as const;
type Caller = keyof typeof CALLERS;

const SEEDED_POLICY: PolicyDocument = {
  name: 'web-reads',
  spiffeIdPattern: 'spiffe://nexus.test/apps/web',
  pathPattern: 'app/web/**',
  permissions: ['read', 'list'],
};

const opened: SqlSecretStore[] = [];
after(async () => {
  await Promise.all(opened.map((store) => store.close()));
});

// ---------------------------------------------------------------------------
// The app under test
// ---------------------------------------------------------------------------

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: unknown;
}

async function nexusApp() {
  const rootKey = new RootKey();
  rootKey.unseal(randomBytes(32), randomBytes(32), 1);
  const secrets = await createMemorySecretStore({
    keyring: rootKey.withKeyring.bind(rootKey),
    maxVersionsDefault: 10,
  });
  opened.push(secrets);
  await secrets.put(parseSecretPath('app/web/db'), { password: `${SECRET_MARK}seed-1` });
  await secrets.put(parseSecretPath('app/web/db'), { password: `${SECRET_MARK}seed-2` });
  await secrets.put(parseSecretPath('app/web/old'), { password: `${SECRET_MARK}seed-3` });
  await secrets.softDelete(parseSecretPath('app/web/old'), [1]);
  await secrets.writeMetadata(parseSecretPath('app/web/db'), { customMetadata: { owner: 'web' } });
  const policies = new MemoryPolicyStore();
  await policies.upsert(SEEDED_POLICY);

  const logSink = createMemorySink();
  const logger = createLogger({ component: 'nexus', level: 'debug', sink: logSink });
  const policyCache = await loadPolicyCache({ store: policies, logger });
  const access = createAccessChecker({ trustDomain: TD, policies: () => policyCache.policies() });
  const audit = createMemoryAuditSink();
  // Hostile requests never reach the root key manager: any call but the
  // status route's read of the Keepers is recorded as a change.
  const managerCalls: string[] = [];
  const manager = new Proxy({} as RootKeyManager, {
    get(_target, property) {
      if (property === 'keeperStatus') return () => [];
      return () => {
        managerCalls.push(String(property));
        return Promise.reject(new Error(`the root key manager was called: ${String(property)}`));
      };
    },
  });
  let peer: SpiffeId = CALLERS.superuser;
  const app = createApp({
    getPeer: () => ({
      id: peer,
      notBefore: new Date(Date.now() - HOUR_MS),
      notAfter: new Date(Date.now() + HOUR_MS),
      serialNumber: '01',
    }),
    logger,
    trustDomain: TD,
    rootKey,
    manager,
    secrets,
    policies,
    policyCache,
    access,
    stats: () => ({
      spiffeId: 'spiffe://nexus.test/spike/nexus',
      svidNotAfter: new Date(Date.now() + HOUR_MS).toISOString(),
      refusedHandshakes: 0,
      deniedRequests: 0,
    }),
    maxBodyBytes: MAX_BODY_BYTES,
    auditSink: audit,
  });

  return {
    app,
    audit,
    logSink,
    /** Sends one request as `caller`, with `target` as the raw request target. */
    async send(caller: Caller, target: string, init: RequestInit): Promise<Answer> {
      peer = CALLERS[caller];
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
    /** Everything stored, read past the routes. */
    async snapshot(): Promise<string> {
      const { paths } = await secrets.list('', { limit: 1000 });
      const state: unknown[] = [];
      for (const path of paths) {
        const metadata = await secrets.readMetadata(path);
        const data: unknown[] = [];
        for (const version of metadata.versions) {
          if (version.deletedAt === null && !version.destroyed) {
            data.push((await secrets.get(path, version.version)).data);
          }
        }
        state.push({ metadata, data });
      }
      return JSON.stringify({
        secrets: state,
        policies: await policies.list(),
        cached: policyCache.policies().map((policy) => policy.name),
        rootKey: rootKey.state,
        managerCalls,
      });
    },
  };
}

type Nexus = Awaited<ReturnType<typeof nexusApp>>;

// ---------------------------------------------------------------------------
// Hostile cases
// ---------------------------------------------------------------------------

interface Expected {
  readonly status: number;
  readonly code: string;
}

const INVALID: Expected = { status: 400, code: 'ERR_INVALID_REQUEST' };
const NOT_FOUND: Expected = { status: 404, code: 'ERR_NOT_FOUND' };
const TOO_LARGE: Expected = { status: 413, code: 'ERR_PAYLOAD_TOO_LARGE' };

/** One malformed request and what it must get. */
interface HostileCase {
  /** What is wrong with it (shown on failure). */
  readonly kind: string;
  readonly method: string;
  /** The raw request target, path and query. */
  readonly target: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  readonly expect: Expected;
}

/** What a route takes, and a well-formed request to mutate. */
interface RouteSpec {
  readonly caller: Caller;
  /** A well-formed target of this route. */
  readonly target: string;
  /** A well-formed JSON body, for routes that read one. */
  readonly body?: unknown;
  /** Cases that only this route has. */
  readonly specific?: fc.Arbitrary<HostileCase>;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

function jsonCase(
  kind: string,
  method: string,
  target: string,
  body: unknown,
  expect: Expected = INVALID,
): HostileCase {
  return {
    kind,
    method,
    target,
    headers: JSON_HEADERS,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    expect,
  };
}

/** Text that is not JSON, or is JSON cut short or padded with junk. */
const brokenJson = fc.oneof(
  fc.constantFrom(
    '',
    '{',
    '}',
    '{"data":',
    '{"data":{"a":"b"}',
    "{'data':{}}",
    '{"data":{"a":"b",}}',
    '{data:{}}',
    '{"a":1}{"b":2}',
    'undefined',
    'NaN',
    '[1,]',
    '{"a":"\\x41"}',
    '{"a":"\\u12"}',
    '{"a":1e}',
    '{"a":0x10}',
    '{"a":01}',
    '{"a":+1}',
    '{"a":.5}',
    '\u0000{}',
    '{"a":"b"\u0000}',
    '{"a":"line\nbreak"}',
  ),
  fc.tuple(fc.jsonValue({ maxDepth: 3 }), fc.nat()).map(([value, cut]) => {
    const text = JSON.stringify(value) ?? 'null';
    return `${text.slice(0, cut % Math.max(1, text.length))}\u0001`;
  }),
  fc.string({ unit: 'grapheme', maxLength: 40 }).filter((text) => !isJson(text)),
);

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Content types that are not JSON (or no content type at all). */
const notJsonType = fc.constantFrom<string | undefined>(
  undefined,
  '',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/jsonp',
  'application/json-seq',
  'json',
  'application/ json',
  'application/xml',
);

/** Bytes of valid JSON syntax with one sequence that is not UTF-8 inside a string. */
const badUtf8 = fc.constantFrom(
  [0xff],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe2, 0x82],
  [0x80],
);

function withBadUtf8(json: string, bytes: readonly number[]): Uint8Array {
  // Put the bad bytes inside the first string value, so the text around them stays JSON.
  const at = json.indexOf('":"');
  const cut = at === -1 ? json.indexOf('"') + 1 : at + 3;
  const encoder = new TextEncoder();
  return Uint8Array.from([
    ...encoder.encode(json.slice(0, cut)),
    ...bytes,
    ...encoder.encode(json.slice(cut)),
  ]);
}

/** JSON values that are not objects. */
const notAnObject = fc.oneof(
  fc.constantFrom('null', 'true', '0', '-0', '1e400', '"{}"', '[]', '[{}]'),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }).map((value) => JSON.stringify(value)),
  fc.string({ maxLength: 20 }).map((value) => JSON.stringify(value)),
  fc.double().map((value) => (Number.isFinite(value) ? JSON.stringify(value) : '1e999')),
);

/** `[[[...]]]` or `{"a":{"a":...}}`, nested `depth` deep. */
function nested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array'
    ? `${'['.repeat(depth)}${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

const nesting = fc.tuple(
  fc.integer({ min: 2, max: 1000 }),
  fc.constantFrom<'array' | 'object'>('array', 'object'),
);

/** JSON number texts that are never a valid version (>= 1), nor a count. */
const badVersionNumberText = fc.oneof(
  fc.constantFrom(
    '0',
    '-0',
    '-1',
    '1.5',
    '0.999999',
    '1e400',
    '-1e400',
    '1e-400',
    '2147483648',
    '9007199254740993',
    '1e21',
    '-2147483649',
    '"1"',
    '"01"',
    '"1e3"',
    '" 1"',
    'null',
    'true',
    '[1]',
    '{"v":1}',
    '"\u0661"',
  ),
  fc.integer({ min: -(2 ** 31), max: 0 }).map(String),
  fc.integer({ min: 2 ** 31, max: Number.MAX_SAFE_INTEGER }).map(String),
  fc
    .double({ noNaN: true, noDefaultInfinity: true })
    .filter((value) => !Number.isInteger(value))
    .map((value) => JSON.stringify(value)),
  fc.integer({ min: 1, max: 9999 }).map((value) => JSON.stringify(String(value))),
);

/** The same, except for those that are 0 (the check-and-set `cas` takes 0: must not exist yet). */
const badCasText = badVersionNumberText.filter((text) => !['0', '-0', '1e-400'].includes(text));

/** Query strings for `?version=` that are not a positive integer up to 2^31 - 1. */
const badVersionQuery = fc.oneof(
  fc.constantFrom(
    '',
    '0',
    '-0',
    '-1',
    '+1',
    '01',
    '1.0',
    '1.5',
    '1e3',
    '0x10',
    'NaN',
    'Infinity',
    '2147483648',
    '99999999999',
    '1e400',
    '%20 1',
    '1%00',
    '%D9%A1',
    '1,2',
    '%F0%9F%92%A5',
    '%ff',
    '%',
  ),
  fc.integer({ min: 2 ** 31, max: Number.MAX_SAFE_INTEGER }).map(String),
  fc
    .string({ maxLength: 12 })
    .filter((text) => !/^[1-9][0-9]{0,9}$/.test(text))
    .map(encodeURIComponent),
);

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** `?versions=` lists with at least one bad entry, or too many entries. */
const badVersionsQuery = fc.oneof(
  fc
    .tuple(
      fc.array(fc.integer({ min: 1, max: 50 }).map(String), { maxLength: 4 }),
      // An entry with a comma would be two entries, possibly good ones.
      badVersionQuery.filter((bad) => !safeDecode(bad).includes(',')),
      fc.nat(),
    )
    .map(([good, bad, at]) => {
      const list = [...good];
      list.splice(at % (list.length + 1), 0, bad);
      return list.join(',');
    }),
  fc.constantFrom(',', '1,', ',1', '1,,2', ' ', '1%2C2%2C'),
  fc
    .integer({ min: 101, max: 300 })
    .map((count) => Array.from({ length: count }, (_, i) => i + 1).join(',')),
);

/** Characters a secret path or policy name may not hold, as text. */
const forbiddenChar = fc.oneof(
  fc.constantFrom(
    ' ',
    '\u0000',
    '\u0001',
    '\t',
    '\n',
    '\r',
    '\u007f',
    '%',
    '?',
    '#',
    '&',
    '=',
    '+',
    '*',
    ':',
    ';',
    '@',
    '"',
    "'",
    '<',
    '>',
    '\\',
    '|',
    '~',
    '`',
    '$',
    '(',
    ')',
    '[',
    '{',
    '\u00e9',
    '\u0130',
    '\u212a',
    '\u200b',
    '\u202e',
    '\ufeff',
    '\uff0f',
    '\u2215',
    '\u0661',
    '\ud83d\udca5',
  ),
  fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: 1 })
    .filter((char) => !/^[A-Za-z0-9._/-]$/.test(char)),
);

const segmentChars = fc
  .string({ unit: fc.constantFrom(...'abcXYZ019._-'), minLength: 1, maxLength: 6 })
  .filter((segment) => segment !== '.' && segment !== '..');

/** Secret paths (as text) that parseSecretPath refuses, or that are reserved. */
const badSecretPath = fc.oneof(
  // A forbidden character somewhere in a segment.
  fc
    .tuple(
      fc.array(segmentChars, { minLength: 1, maxLength: 4 }),
      forbiddenChar,
      fc.nat(),
      fc.nat(),
    )
    .map(([segments, char, at, pos]) => {
      const list = [...segments];
      const i = at % list.length;
      const segment = list[i] as string;
      const p = pos % (segment.length + 1);
      list[i] = `${segment.slice(0, p)}${char}${segment.slice(p)}`;
      return list.join('/');
    }),
  // An empty segment: leading, trailing or double slash.
  fc
    .tuple(
      fc.array(segmentChars, { minLength: 1, maxLength: 4 }),
      fc.constantFrom('lead', 'trail', 'double'),
    )
    .map(([segments, where]) =>
      where === 'lead'
        ? `/${segments.join('/')}`
        : where === 'trail'
          ? `${segments.join('/')}/`
          : `${segments.join('/')}//x`,
    ),
  // Too long, or too many segments.
  fc.integer({ min: 513, max: 2000 }).map((length) => 'a'.repeat(length)),
  fc
    .integer({ min: 33, max: 80 })
    .map((count) => Array.from({ length: count }, () => 'a').join('/')),
  // Reserved for the broker.
  fc.array(segmentChars, { maxLength: 3 }).map((rest) => ['sys', ...rest].join('/')),
);

/** No lone surrogate: the store refuses those (with a 400). */
function isWellFormed(text: string): boolean {
  return !/[\uD800-\uDFFF]/u.test(text);
}

/** Whether the list route takes `text` as a prefix. */
function isPrefix(text: string): boolean {
  try {
    parseSecretPrefix(text);
    return true;
  } catch {
    return false;
  }
}

/** A secret path (text) as a raw URL path: every byte that needs it percent-encoded. */
function encodePath(path: string): string {
  return path
    .split('/')
    .map((segment) => encodeURIComponent(segment))
    .join('/');
}

/** Strings that are not valid policy names. */
const badPolicyName = fc.oneof(
  fc.tuple(segmentChars, forbiddenChar, fc.nat()).map(([name, char, at]) => {
    const p = at % (name.length + 1);
    return `${name.slice(0, p)}${char}${name.slice(p)}`;
  }),
  fc.integer({ min: 65, max: 400 }).map((length) => 'n'.repeat(length)),
  fc.constantFrom('.', '..', 'a/b', '/', '%2e', '%2e%2e', 'a%2fb'),
);

/** Policy path patterns that parsePathPattern refuses. */
const badPathPattern = fc.oneof(
  fc.constantFrom(
    '',
    '/',
    '//',
    '/app',
    'app/',
    'app//db',
    '.',
    '..',
    'app/../sys',
    'app/./db',
    'db*',
    '*db',
    'a/**b',
    '*.prod',
    '***',
    '**/**',
    '^app/.*$',
    '(a|b)',
    '.+',
    'app/[a-z]',
    'app/{a,b}',
    'app?',
    'app/%2e%2e',
    'app\\db',
    'app/\u0000',
    'app/\u00e9',
    '\ud83d\udca5',
  ),
  badSecretPath.filter((path) => !path.startsWith('sys')),
  fc.integer({ min: 513, max: 1200 }).map((length) => 'p'.repeat(length)),
);

/** SPIFFE ID patterns that are invalid, or of another trust domain. */
const badSpiffeIdPattern = fc.oneof(
  fc.constantFrom(
    '',
    'nexus.test/apps/web',
    'spiffe:/nexus.test/apps',
    'spiffe:nexus.test',
    'SPIFFE://nexus.test/apps',
    'https://nexus.test/apps',
    'spiffe://',
    'spiffe:///apps',
    'spiffe://*/apps',
    'spiffe://*.test/apps',
    'spiffe://nexus.*/apps',
    'spiffe://**/apps',
    'spiffe://NEXUS.TEST/apps',
    'spiffe://nexus.test:8443/apps',
    'spiffe://user@nexus.test/apps',
    'spiffe://nexus test/apps',
    'spiffe://nexus.test/',
    'spiffe://nexus.test//apps',
    'spiffe://nexus.test/apps/',
    'spiffe://nexus.test/./apps',
    'spiffe://nexus.test/apps/..',
    'spiffe://nexus.test/apps/*web',
    'spiffe://nexus.test/apps/**/**',
    'spiffe://nexus.test/apps/.*',
    'spiffe://nexus.test/apps?x=1',
    'spiffe://nexus.test/apps#x',
    'spiffe://nexus.test/apps%2fweb',
    'spiffe://nexus.test/\u00e9',
    'spiffe://nexus.test/apps\u0000',
    'spiffe://other.test/apps/web',
    'spiffe://nexus.test.evil/apps',
    'spiffe://xn--nxus-bpa.test/apps',
    ' spiffe://nexus.test/apps',
  ),
  fc
    .tuple(fc.array(segmentChars, { minLength: 1, maxLength: 3 }), forbiddenChar)
    .filter(([, char]) => char !== '*')
    .map(([segments, char]) => `spiffe://nexus.test/${segments.join('/')}${char}`),
  fc.integer({ min: 2049, max: 3000 }).map((length) => `spiffe://nexus.test/${'s'.repeat(length)}`),
);

/** Values of the wrong JSON type for a string field. */
const notAString = fc.oneof(
  fc.constantFrom<unknown>(null, true, 0, 1, -1, [], {}, ['spiffe://nexus.test/a']),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }), { maxKeys: 2 }),
);

/** Permission lists that are not a non-empty list of known, distinct permissions. */
const badPermissions = fc.oneof(
  fc.constantFrom<unknown>(
    [],
    null,
    'read',
    ['read', 'read'],
    ['READ'],
    ['read '],
    ['admin'],
    ['*'],
    [null],
    [1],
    [['read']],
    { read: true },
    ['read', 'super', 'read'],
    ['re\u0000ad'],
  ),
  fc
    .tuple(fc.subarray(['read', 'write', 'list', 'delete', 'super']), fc.string({ maxLength: 8 }))
    .filter(([, extra]) => !['read', 'write', 'list', 'delete', 'super'].includes(extra))
    .map(([good, extra]) => [...good, extra]),
);

/** Fields that a body does not have, including prototype names. */
function unknownField(allowed: readonly string[]) {
  return fc
    .oneof(
      fc.constantFrom(
        '__proto__',
        'constructor',
        'prototype',
        'toString',
        'DATA',
        ' data',
        'data\u0000',
        '',
      ),
      fc.string({ maxLength: 12 }),
    )
    .filter((name) => !allowed.includes(name));
}

/** A JSON object text with one extra member, written by hand so `__proto__` stays a member. */
function withMember(body: Record<string, unknown>, name: string, valueText: string): string {
  const inner = JSON.stringify(body).slice(1, -1);
  return `{${inner}${inner === '' ? '' : ','}${JSON.stringify(name)}:${valueText}}`;
}

/** String maps (`data`, `customMetadata`) that the parser refuses. */
function badStringMap(maxKeys: number) {
  const value = fc.constantFrom(`${SECRET_MARK}v`, `${SECRET_MARK}\u0000\u202e\ud83d\udca5`);
  return fc.oneof(
    notAString
      .filter((v) => typeof v !== 'object' || v === null || Array.isArray(v))
      .map((v) => JSON.stringify(v)),
    fc.constantFrom('"{}"', '[]', '[["a","b"]]'),
    // A value that is not a string.
    fc
      .tuple(fc.string({ minLength: 1, maxLength: 8 }), notAString, value)
      .map(([key, bad, good]) => JSON.stringify({ ok: good, [key]: bad })),
    // A nested value, deep.
    nesting.map(([depth, kind]) => `{"k":${nested(depth, kind)}}`),
    // A key that is empty or too long.
    value.map((v) => JSON.stringify({ '': v })),
    fc
      .integer({ min: 257, max: 600 })
      .map((length) => JSON.stringify({ ['k'.repeat(length)]: 'v' })),
    // A lone surrogate, which UTF-8 cannot carry (the store refuses it).
    fc.constantFrom('{"\\ud800":"v"}', '{"k":"\\udfff"}', '{"k":"a\\ud83d"}'),
    // Too many keys (bodies stay under the limit).
    fc.constant(
      JSON.stringify(
        Object.fromEntries(Array.from({ length: maxKeys + 1 }, (_, i) => [`k${i}`, 'v'])),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------
// Generators per route
// ---------------------------------------------------------------------------

const GOOD_PATH = 'app/web/db';
const NEW_PATH = 'app/web/fresh';
const GOOD_SECRET = { data: { password: `${SECRET_MARK}good` } };
const GOOD_POLICY = {
  spiffeIdPattern: 'spiffe://nexus.test/apps/api/*',
  pathPattern: 'app/api/**',
  permissions: ['read'],
};

/** Hostile paths in a secret route's URL. */
function badPathCases(prefix: string, method: string, body?: unknown): fc.Arbitrary<HostileCase> {
  return badSecretPath.map((path) => ({
    kind: `secret path ${JSON.stringify(path.slice(0, 60))}`,
    method,
    target: `${prefix}/${encodePath(path)}`,
    ...(body === undefined ? {} : { headers: JSON_HEADERS, body: JSON.stringify(body) }),
    expect: INVALID,
  }));
}

const SECRET_DATA = `${PATHS.secretData}/:path{.+}`;
const SECRET_METADATA = `${PATHS.secretMetadata}/:path{.+}`;
const SECRET_UNDELETE = `${PATHS.secretUndelete}/:path{.+}`;
const SECRET_DESTROY = `${PATHS.secretDestroy}/:path{.+}`;
const POLICY = `${PATHS.policies}/:name`;

function specs(): Record<string, RouteSpec> {
  const data = (p: string) => `${PATHS.secretData}/${p}`;
  const metadata = (p: string) => `${PATHS.secretMetadata}/${p}`;
  const undelete = (p: string) => `${PATHS.secretUndelete}/${p}`;
  const destroy = (p: string) => `${PATHS.secretDestroy}/${p}`;
  const policy = (n: string) => `${PATHS.policies}/${n}`;
  return {
    [`GET ${PATHS.health}`]: { caller: 'superuser', target: PATHS.health },
    [`GET ${PATHS.status}`]: { caller: 'superuser', target: PATHS.status },
    [`GET ${SECRET_DATA}`]: {
      caller: 'superuser',
      target: data(GOOD_PATH),
      specific: fc.oneof(
        badPathCases(PATHS.secretData, 'GET'),
        badVersionQuery.map((q) => ({
          kind: `version query ${JSON.stringify(q)}`,
          method: 'GET',
          target: `${data(GOOD_PATH)}?version=${q}`,
          expect: INVALID,
        })),
      ),
    },
    [`PUT ${SECRET_DATA}`]: {
      caller: 'superuser',
      target: data(NEW_PATH),
      body: GOOD_SECRET,
      specific: fc.oneof(
        badPathCases(PATHS.secretData, 'PUT', GOOD_SECRET),
        badStringMap(256).map((map) =>
          jsonCase(`data ${map.slice(0, 60)}`, 'PUT', data(NEW_PATH), `{"data":${map}}`),
        ),
        badCasText.map((cas) =>
          jsonCase(`cas ${cas}`, 'PUT', data(NEW_PATH), withMember(GOOD_SECRET, 'cas', cas)),
        ),
        fc
          .constantFrom('{}', '{"cas":0}', '{"data":null}')
          .map((body) => jsonCase(`body ${body}`, 'PUT', data(NEW_PATH), body)),
        unknownField(['data', 'cas']).map((name) =>
          jsonCase(
            `unknown field ${JSON.stringify(name)}`,
            'PUT',
            data(NEW_PATH),
            withMember(GOOD_SECRET, name, '"x"'),
          ),
        ),
      ),
    },
    [`DELETE ${SECRET_DATA}`]: {
      caller: 'superuser',
      target: data(GOOD_PATH),
      specific: fc.oneof(
        badPathCases(PATHS.secretData, 'DELETE'),
        badVersionsQuery.map((q) => ({
          kind: `versions query ${JSON.stringify(q.slice(0, 60))}`,
          method: 'DELETE',
          target: `${data(GOOD_PATH)}?versions=${q}`,
          expect: INVALID,
        })),
      ),
    },
    [`POST ${SECRET_UNDELETE}`]: {
      caller: 'superuser',
      target: undelete('app/web/old'),
      body: { versions: [1] },
      specific: versionsBodyCases(undelete('app/web/old'), PATHS.secretUndelete, false),
    },
    [`POST ${SECRET_DESTROY}`]: {
      caller: 'superuser',
      target: destroy(GOOD_PATH),
      body: { versions: [1] },
      specific: versionsBodyCases(destroy(GOOD_PATH), PATHS.secretDestroy, true),
    },
    [`GET ${SECRET_METADATA}`]: {
      caller: 'superuser',
      target: metadata(GOOD_PATH),
      specific: badPathCases(PATHS.secretMetadata, 'GET'),
    },
    [`PUT ${SECRET_METADATA}`]: {
      caller: 'superuser',
      target: metadata(GOOD_PATH),
      body: { maxVersions: 5 },
      specific: fc.oneof(
        badPathCases(PATHS.secretMetadata, 'PUT', { maxVersions: 5 }),
        // `null` is valid here: it drops the path's own cap.
        badVersionNumberText
          .filter((n) => n !== 'null')
          .map((n) =>
            jsonCase(`maxVersions ${n}`, 'PUT', metadata(GOOD_PATH), `{"maxVersions":${n}}`),
          ),
        badStringMap(64).map((map) =>
          jsonCase(
            `customMetadata ${map.slice(0, 60)}`,
            'PUT',
            metadata(GOOD_PATH),
            `{"customMetadata":${map}}`,
          ),
        ),
        unknownField(['maxVersions', 'customMetadata']).map((name) =>
          jsonCase(
            `unknown field ${JSON.stringify(name)}`,
            'PUT',
            metadata(GOOD_PATH),
            withMember({}, name, '5'),
          ),
        ),
      ),
    },
    [`DELETE ${SECRET_METADATA}`]: {
      caller: 'superuser',
      target: metadata(GOOD_PATH),
      specific: badPathCases(PATHS.secretMetadata, 'DELETE'),
    },
    [`GET ${PATHS.secretList}`]: {
      caller: 'superuser',
      target: PATHS.secretList,
      specific: fc.oneof(
        fc
          .tuple(badSecretPath, fc.constantFrom('prefix', 'after'))
          // A prefix may end with "/", and list leaves out reserved paths instead of refusing them.
          .filter(
            ([path, name]) => !path.startsWith('sys') && !(name === 'prefix' && isPrefix(path)),
          )
          .map(([path, name]) => ({
            kind: `${name} ${JSON.stringify(path.slice(0, 60))}`,
            method: 'GET',
            target: `${PATHS.secretList}?${name}=${encodeURIComponent(path)}`,
            expect: INVALID,
          })),
        fc.constantFrom('app//', '/', '//', 'app/./', 'app/../').map((prefix) => ({
          kind: `prefix ${prefix}`,
          method: 'GET',
          target: `${PATHS.secretList}?prefix=${encodeURIComponent(prefix)}`,
          expect: INVALID,
        })),
        fc
          .oneof(badVersionQuery, fc.constantFrom('1001', '5000', '9999', '10000'))
          .map((limit) => ({
            kind: `limit ${JSON.stringify(limit)}`,
            method: 'GET',
            target: `${PATHS.secretList}?limit=${limit}`,
            expect: INVALID,
          })),
        fc.constant({
          kind: 'after empty',
          method: 'GET',
          target: `${PATHS.secretList}?after=`,
          expect: INVALID,
        }),
      ),
    },
    [`GET ${PATHS.policies}`]: { caller: 'superuser', target: PATHS.policies },
    [`GET ${POLICY}`]: {
      caller: 'superuser',
      target: policy(SEEDED_POLICY.name),
      specific: badNameCases('GET'),
    },
    [`PUT ${POLICY}`]: {
      caller: 'superuser',
      target: policy('api-reads'),
      body: GOOD_POLICY,
      specific: fc.oneof(
        badNameCases('PUT', GOOD_POLICY),
        badSpiffeIdPattern.map((pattern) =>
          jsonCase(
            `spiffeIdPattern ${JSON.stringify(pattern.slice(0, 60))}`,
            'PUT',
            policy('api-reads'),
            {
              ...GOOD_POLICY,
              spiffeIdPattern: pattern,
            },
          ),
        ),
        badPathPattern.map((pattern) =>
          jsonCase(
            `pathPattern ${JSON.stringify(pattern.slice(0, 60))}`,
            'PUT',
            policy('api-reads'),
            {
              ...GOOD_POLICY,
              pathPattern: pattern,
            },
          ),
        ),
        fc
          .tuple(fc.constantFrom('spiffeIdPattern', 'pathPattern', 'name'), notAString)
          .map(([field, value]) =>
            jsonCase(`${field} ${JSON.stringify(value)}`, 'PUT', policy('api-reads'), {
              ...GOOD_POLICY,
              [field]: value,
            }),
          ),
        badPermissions.map((permissions) =>
          jsonCase(`permissions ${JSON.stringify(permissions)}`, 'PUT', policy('api-reads'), {
            ...GOOD_POLICY,
            permissions,
          }),
        ),
        fc
          .oneof(badPolicyName, fc.constantFrom('web-reads', 'API-READS', 'api-reads '))
          .map((name) =>
            jsonCase(`body name ${JSON.stringify(name.slice(0, 60))}`, 'PUT', policy('api-reads'), {
              ...GOOD_POLICY,
              name,
            }),
          ),
        fc.constantFrom('spiffeIdPattern', 'pathPattern', 'permissions').map((missing) => {
          const body: Record<string, unknown> = { ...GOOD_POLICY };
          delete body[missing];
          return jsonCase(`missing ${missing}`, 'PUT', policy('api-reads'), body);
        }),
        unknownField(['name', 'spiffeIdPattern', 'pathPattern', 'permissions']).map((name) =>
          jsonCase(
            `unknown field ${JSON.stringify(name)}`,
            'PUT',
            policy('api-reads'),
            withMember(GOOD_POLICY, name, '"x"'),
          ),
        ),
      ),
    },
    [`DELETE ${POLICY}`]: {
      caller: 'superuser',
      target: policy(SEEDED_POLICY.name),
      specific: badNameCases('DELETE'),
    },
    [`POST ${PATHS.operatorRecover}`]: { caller: 'recover', target: PATHS.operatorRecover },
    [`POST ${PATHS.operatorRestore}`]: {
      caller: 'restore',
      target: PATHS.operatorRestore,
      body: { shard: 'spike-shard:v1:1:1:2:AAAA:00000000' },
      specific: fc.oneof(
        badShardText.map((shard) =>
          jsonCase(`shard ${JSON.stringify(shard.slice(0, 60))}`, 'POST', PATHS.operatorRestore, {
            shard,
          }),
        ),
        notAString.map((shard) =>
          jsonCase(`shard ${JSON.stringify(shard)}`, 'POST', PATHS.operatorRestore, { shard }),
        ),
        unknownField(['shard']).map((name) =>
          jsonCase(
            `unknown field ${JSON.stringify(name)}`,
            'POST',
            PATHS.operatorRestore,
            withMember({ shard: 'x' }, name, '1'),
          ),
        ),
        fc.constant(jsonCase('no shard', 'POST', PATHS.operatorRestore, {})),
      ),
    },
  };

  function badNameCases(method: string, body?: unknown): fc.Arbitrary<HostileCase> {
    return badPolicyName.map((name) => ({
      kind: `policy name ${JSON.stringify(name.slice(0, 60))}`,
      method,
      // '%2e' and friends stay as written: they are the attack.
      target: `${PATHS.policies}/${/%2[ef]/i.test(name) ? name : encodeURIComponent(name)}`,
      ...(body === undefined ? {} : { headers: JSON_HEADERS, body: JSON.stringify(body) }),
      expect: INVALID,
    }));
  }
}

/** A valid shard text has a checksum; these never do, or break the format first. */
const badShardText = fc.oneof(
  fc.constantFrom(
    ' ',
    '\n\t',
    'spike-shard',
    'spike-shard:v1',
    'spike-shard:v2:1:1:2:AAAA:00000000',
    'SPIKE-SHARD:v1:1:1:2:AAAA:00000000',
    'spike-shard:v1:1:1:2:AAAA:0000000g',
    'spike-shard:v1:1:1:2:AAAA:00000000',
    'spike-shard:v1:-1:1:2:AAAA:00000000',
    'spike-shard:v1:1e400:1:2:AAAA:00000000',
    'spike-shard:v1:1:1:2:AAAA:00000000:extra',
    'spike-shard:v1:1:1:2:AA\u0000AA:00000000',
    'spike-shard:v1:1:1:2:\u00e9:00000000',
  ),
  fc.string({ minLength: 1, maxLength: 100 }),
  fc.integer({ min: 513, max: 2000 }).map((length) => 's'.repeat(length)),
);

function versionsBodyCases(
  target: string,
  prefix: string,
  required: boolean,
): fc.Arbitrary<HostileCase> {
  const method = 'POST';
  return fc.oneof(
    badPathCases(prefix, method, { versions: [1] }),
    badVersionNumberText.map((n) =>
      jsonCase(`versions [${n}]`, method, target, `{"versions":[1,${n}]}`),
    ),
    fc
      .constantFrom('[]', 'null', '1', '"1"', '{"0":1}', '[[1]]')
      .map((list) => jsonCase(`versions ${list}`, method, target, `{"versions":${list}}`)),
    fc.integer({ min: 101, max: 400 }).map((count) =>
      jsonCase(`versions x${count}`, method, target, {
        versions: Array.from({ length: count }, (_, i) => i + 1),
      }),
    ),
    nesting.map(([depth, kind]) =>
      jsonCase(`versions nested ${depth}`, method, target, `{"versions":${nested(depth, kind)}}`),
    ),
    unknownField(['versions']).map((name) =>
      jsonCase(
        `unknown field ${JSON.stringify(name)}`,
        method,
        target,
        withMember({ versions: [1] }, name, '1'),
      ),
    ),
    ...(required ? [fc.constant(jsonCase('versions missing', method, target, {}))] : []),
  );
}

/** Cases every route gets: traversal, encoded slashes, odd methods, and oversized bodies. */
function genericCases(spec: RouteSpec, method: string): fc.Arbitrary<HostileCase> {
  const [path, query] = splitTarget(spec.target);
  const slashes = [...path].flatMap((char, i) => (char === '/' && i > 0 ? [i] : []));
  const withBody =
    spec.body === undefined ? {} : { headers: JSON_HEADERS, body: JSON.stringify(spec.body) };
  const cases: fc.Arbitrary<HostileCase>[] = [
    // A dot segment, plain or percent-encoded, resolved away by URL parsing.
    fc
      .tuple(fc.constantFrom('.', '..', '%2e', '%2E', '%2e%2e', '.%2e', '%2E.', '%2e%2E'), fc.nat())
      .map(([dots, at]) => {
        const cut = slashes[at % slashes.length] as number;
        const extra = dots.replace(/%2e/gi, '.').length === 2 ? `x/${dots}` : dots;
        return {
          kind: `dot segment ${dots}`,
          method,
          target: `${path.slice(0, cut)}/${extra}${path.slice(cut)}${query}`,
          ...withBody,
          expect: INVALID,
        };
      }),
    // An encoded slash or backslash, or an empty segment, in place of a slash.
    fc
      .tuple(fc.constantFrom('%2f', '%2F', '%5c', '%5C', '//', '///'), fc.nat())
      .map(([sep, at]) => {
        const cut = slashes[at % slashes.length] as number;
        return {
          kind: `separator ${sep}`,
          method,
          target: `${path.slice(0, cut)}${sep}${path.slice(cut + 1)}${query}`,
          ...withBody,
          expect: INVALID,
        };
      }),
    // A method no route has.
    fc.constantFrom('PATCH', 'OPTIONS', 'PROPFIND', 'X-HOSTILE').map((other) => ({
      kind: `method ${other}`,
      method: other,
      target: spec.target,
      ...withBody,
      expect: NOT_FOUND,
    })),
  ];
  if (method !== 'GET') {
    cases.push(
      fc.integer({ min: MAX_BODY_BYTES + 1, max: MAX_BODY_BYTES * 8 }).map((size) => ({
        kind: `body of ${size} bytes`,
        method,
        target: spec.target,
        headers: JSON_HEADERS,
        body: JSON.stringify({ data: { k: `${SECRET_MARK}${'x'.repeat(size)}` } }),
        expect: TOO_LARGE,
      })),
    );
  }
  if (spec.body !== undefined) {
    const goodText = JSON.stringify(spec.body);
    cases.push(
      brokenJson.map((text) =>
        jsonCase(`broken JSON ${JSON.stringify(text.slice(0, 40))}`, method, spec.target, text),
      ),
      notAnObject.map((text) =>
        jsonCase(`not an object ${text.slice(0, 40)}`, method, spec.target, text),
      ),
      nesting.map(([depth, kind]) =>
        jsonCase(`nested ${kind} ${depth}`, method, spec.target, nested(depth, kind)),
      ),
      notJsonType.map((type) => ({
        kind: `content type ${JSON.stringify(type)}`,
        method,
        target: spec.target,
        headers: type === undefined ? {} : { 'content-type': type },
        body: goodText,
        expect: INVALID,
      })),
      badUtf8.map((bytes) => ({
        kind: `not UTF-8 ${bytes.map((b) => b.toString(16)).join(' ')}`,
        method,
        target: spec.target,
        headers: JSON_HEADERS,
        body: withBadUtf8(goodText, bytes),
        expect: INVALID,
      })),
    );
  }
  return fc.oneof(...cases);
}

function splitTarget(target: string): [string, string] {
  const at = target.indexOf('?');
  return at === -1 ? [target, ''] : [target.slice(0, at), target.slice(at)];
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

/** The terminal routes of the app: method and path, middleware left out. */
function routesOf(app: Nexus['app']): string[] {
  const keys = new Set<string>();
  for (const route of app.routes) {
    if (route.method !== 'ALL') keys.add(`${route.method} ${route.path}`);
  }
  return [...keys].sort();
}

async function check(nexus: Nexus, spec: RouteSpec, hostile: HostileCase): Promise<void> {
  const where = `${hostile.method} ${hostile.target.slice(0, 200)} (${hostile.kind})`;
  const before = await nexus.snapshot();
  const eventsBefore = nexus.audit.events.length;
  const logsBefore = nexus.logSink.lines.length;
  const init: RequestInit = { method: hostile.method, headers: hostile.headers ?? {} };
  if (hostile.body !== undefined) init.body = hostile.body;
  const answer = await nexus.send(spec.caller, hostile.target, init);

  assert.equal(answer.status, hostile.expect.status, `${where}: ${answer.text.slice(0, 300)}`);
  const error = (answer.body as { error?: { code?: unknown; message?: unknown } } | undefined)
    ?.error;
  assert.equal(error?.code, hostile.expect.code, `${where}: ${answer.text.slice(0, 300)}`);
  assert.equal(typeof error?.message, 'string', where);
  assert.deepEqual(Object.keys(answer.body as object), ['error'], where);
  assert.equal(answer.headers.get('cache-control'), 'no-store', where);

  const events: AuditEvent[] = nexus.audit.events.slice(eventsBefore);
  assert.equal(events.length, 1, `${where}: ${events.length} audit events`);
  const event = events[0] as AuditEvent;
  assert.equal(event.status, answer.status, where);
  assert.equal(event.errorCode, hostile.expect.code, where);
  assert.equal(event.outcome, 'error', where);
  assert.equal(event.peer, CALLERS[spec.caller].toString(), where);

  assert.equal(await nexus.snapshot(), before, `${where}: the store changed`);
  const said =
    answer.text + JSON.stringify(event) + JSON.stringify(nexus.logSink.lines.slice(logsBefore));
  assert.ok(!said.includes(SECRET_MARK), `${where}: a secret value was echoed or logged`);
}

describe('Nexus under hostile input', () => {
  test('every route of the app has a hostile generator, and every generator a route', async () => {
    const nexus = await nexusApp();
    const routes = routesOf(nexus.app);
    const covered = Object.keys(specs()).sort();
    assert.deepEqual(
      routes.filter((route) => !covered.includes(route)),
      [],
      'routes without a hostile generator in nexus/routes/hostile_input.test.ts',
    );
    assert.deepEqual(
      covered.filter((route) => !routes.includes(route)),
      [],
      'generators for routes the app does not have',
    );
  });

  test('each route answers every well-formed sample it is mutated from (the generators start from valid requests)', async () => {
    const nexus = await nexusApp();
    for (const [key, spec] of Object.entries(specs())) {
      const method = key.split(' ')[0] as string;
      const init: RequestInit = { method };
      if (spec.body !== undefined) {
        init.headers = JSON_HEADERS;
        init.body = JSON.stringify(spec.body);
      }
      // The operator routes act on the root key manager, which these tests stub out.
      if (key.includes('/v1/operator/')) continue;
      const answer = await nexus.send(spec.caller, spec.target, init);
      assert.ok(answer.status < 300, `${key}: ${answer.status} ${answer.text.slice(0, 200)}`);
    }
  });

  test('odd but valid keys and values (unicode, control characters, "__proto__") round-trip exactly', async () => {
    const nexus = await nexusApp();
    const key = fc.oneof(
      fc.constantFrom(
        '__proto__',
        'constructor',
        'toString',
        'hasOwnProperty',
        '\u0000',
        ' ',
        '\u202e',
      ),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).filter(isWellFormed),
    );
    const value = fc
      .string({ unit: 'binary', maxLength: 40 })
      .filter(isWellFormed)
      .map((v) => `${SECRET_MARK}${v}`);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.dictionary(key, value, { minKeys: 1, maxKeys: 8 }), async (pairs) => {
        // fc.dictionary defines its keys, so a "__proto__" key is an own key here too.
        const path = `app/odd/k${n++}`;
        const body = JSON.stringify({ data: pairs });
        const eventsBefore = nexus.audit.events.length;
        const put = await nexus.send('superuser', `${PATHS.secretData}/${path}`, {
          method: 'PUT',
          headers: JSON_HEADERS,
          body,
        });
        assert.equal(put.status, 200, put.text.slice(0, 300));
        const read = await nexus.send('superuser', `${PATHS.secretData}/${path}`, {
          method: 'GET',
        });
        assert.equal(read.status, 200);
        const data = (read.body as { data: Record<string, string> }).data;
        assert.deepEqual(Object.keys(data).sort(), Object.keys(pairs).sort());
        for (const name of Object.keys(pairs)) {
          assert.equal(
            Object.getOwnPropertyDescriptor(data, name)?.value,
            pairs[name],
            JSON.stringify(name),
          );
        }
        assert.equal(nexus.audit.events.length, eventsBefore + 2);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true },
    );
  });

  // One property per route, so a failure names the route.
  const routeSpecs = specs();
  for (const [key, spec] of Object.entries(routeSpecs)) {
    test(`${key}: hostile requests get a specific 4xx, change nothing and are audited once`, async () => {
      const nexus = await nexusApp();
      const method = key.split(' ')[0] as string;
      const generic = genericCases(spec, method);
      const arbitrary =
        spec.specific === undefined ? generic : fc.oneof(generic, spec.specific, spec.specific);
      await fc.assert(
        fc.asyncProperty(arbitrary, (hostile) => check(nexus, spec, hostile)),
        { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true },
      );
    });
  }
});
