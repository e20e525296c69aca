/**
 * Hostile input on every route of Nexus, property-based (fast-check), through
 * the whole app (`createApp`) with in-memory stores and an injected peer that
 * is allowed to call the route. Each generated request is malformed in one
 * known way (broken JSON, wrong types, oversized bodies, deep nesting,
 * unicode and control characters, path traversal, bad versions and numbers,
 * invalid SPIFFE ID and path patterns), and must get what `assertRefused`
 * in test/harness/hostile.ts asserts: the 4xx and the specific error code
 * that malformation calls for, no change to anything stored (secrets with
 * every version's data, policies, named keys, the root key manager, which
 * must not even be called), exactly one audit event, and no secret value of the request in
 * the answer, the audit trail or the log.
 *
 * The routes are read from `app.routes`, so a route added later fails the
 * coverage test until it has a generator here. The cases every route gets
 * (traversal, encoded slashes, odd methods, malformed and oversized bodies)
 * are the harness's; the ones here are Nexus's own.
 *
 * Replay a failure with `FC_SEED=<seed>` (and `FC_RUNS=<n>` for more runs).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { PATHS } from '../../shared/api/paths.ts';
import type { PolicyDocument } from '../../shared/api/policies.ts';
import { parseSecretPath, parseSecretPrefix } from '../../shared/api/secret_path.ts';
import { MAX_WATCH_PATHS } from '../../shared/api/secrets.ts';
import {
  pilotRecoverId,
  pilotRestoreId,
  pilotSuperuserId,
} from '../../shared/spiffe/identities.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import {
  assertEveryRouteCovered,
  assertRefused,
  badIntegerText,
  fcParameters,
  type GenericOptions,
  type HostileCase,
  hostileCases,
  INVALID,
  JSON_HEADERS,
  jsonCase,
  nested,
  nesting,
  notAString,
  type RouteSample,
  routesOf,
  sampleInit,
  send,
  unknownField,
  withMember,
} from '../../test/harness/hostile.ts';
import { type NexusApp, nexusApp } from '../../test/harness/nexus_app.ts';
import { encrypt, hmac } from '../transit/transit.ts';

const TD = parseTrustDomain('nexus.test');
const MAX_BODY_BYTES = 8192;
const FC = fcParameters('nexus', 40);

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

const apps: NexusApp[] = [];
after(async () => {
  await Promise.all(apps.map((app) => app.close()));
});

/** The key every transit sample uses; `DOOMED_KEY` is the one the delete sample deletes. */
const GOOD_KEY = 'orders';
const DOOMED_KEY = 'doomed';
/**
 * A ciphertext and an HMAC of GOOD_KEY, made by the newest app (each app has
 * its own keyring), for the well-formed samples; hostile cases never get as
 * far as opening them.
 */
const seeded = { ciphertext: 'spike:v1:AAAA', hmac: 'spike:v1:AAAA' };

// ---------------------------------------------------------------------------
// The app under test
// ---------------------------------------------------------------------------

async function hostileApp() {
  const nexus = await nexusApp({
    policies: [SEEDED_POLICY],
    seed: [
      ['app/web/db', { password: `${SECRET_MARK}seed-1` }],
      ['app/web/db', { password: `${SECRET_MARK}seed-2` }],
      ['app/web/old', { password: `${SECRET_MARK}seed-3` }],
    ],
    maxBodyBytes: MAX_BODY_BYTES,
  });
  apps.push(nexus);
  // Hostile requests never reach the root key manager: the fixture's
  // stand-in records any call but the status route's reads as a change.
  const { secrets, transitKeys, policies, policyCache, rootKey, managerCalls } = nexus;
  await secrets.softDelete(parseSecretPath('app/web/old'), [1]);
  await secrets.writeMetadata(parseSecretPath('app/web/db'), { customMetadata: { owner: 'web' } });
  await transitKeys.create(GOOD_KEY);
  await transitKeys.rotate(GOOD_KEY);
  await transitKeys.create(DOOMED_KEY);
  const context = new Uint8Array(0);
  const [sealed] = await encrypt(transitKeys, GOOD_KEY, [
    { plaintext: new TextEncoder().encode(`${SECRET_MARK}plain`), context },
  ]);
  const [mac] = await hmac(transitKeys, GOOD_KEY, [{ input: new Uint8Array([1, 2, 3]) }]);
  seeded.ciphertext = sealed?.ciphertext ?? '';
  seeded.hmac = mac?.hmac ?? '';

  return {
    app: nexus.app,
    audit: nexus.audit,
    logSink: nexus.logSink,
    /** Sends one request as `caller`, with `target` as the raw request target. */
    send(caller: Caller, target: string, init: RequestInit) {
      nexus.actAs(CALLERS[caller]);
      return send(nexus.app, target, init);
    },
    /** Everything stored, read past the routes. */
    async snapshot(): Promise<string> {
      const keys = [];
      for (const name of await transitKeys.list()) keys.push(await transitKeys.get(name));
      return JSON.stringify({
        secrets: await nexus.storedSecrets(),
        keys,
        policies: await policies.list(),
        cached: policyCache.policies().map((policy) => policy.name),
        rootKey: rootKey.state,
        managerCalls,
      });
    },
  };
}

// ---------------------------------------------------------------------------
// Hostile cases
// ---------------------------------------------------------------------------

/** A route's well-formed request, and who may call it. */
interface RouteSpec extends RouteSample {
  readonly caller: Caller;
}

const GENERIC: GenericOptions = {
  bodyLimit: MAX_BODY_BYTES,
  oversizedUpTo: 8,
  padMark: SECRET_MARK,
  maxNesting: 1000,
};

/** Nesting under the body limit inside a field. */
const fieldNesting = nesting(1000);

/** Values of the wrong JSON type for a string field. */
const wrongType = notAString('spiffe://nexus.test/a');

/** JSON texts that are never a valid version (>= 1), nor a count. */
const badVersionNumberText = badIntegerText(1, 2 ** 31 - 1);

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

/** `?newerThan=` values that are not an integer from 0 to 2^31 - 1. */
const badNewerThanQuery = fc.oneof(
  badVersionQuery.filter((bad) => bad !== '0'),
  fc.constantFrom('00', '-0', '0.0', '2147483648'),
);

/** `?wait=` values that are not 1ms to 60s, in whole seconds or milliseconds with the unit. */
const badWaitQuery = fc.oneof(
  fc.constantFrom(
    '',
    '0',
    '30',
    '0s',
    '0ms',
    '61s',
    '60001ms',
    '1m',
    '1h',
    '1.5s',
    '-1s',
    '+1s',
    '01s',
    '1S',
    '1 s',
    '1%20s',
    's',
    'ms',
    '1e3ms',
    'Infinity',
    '1s1s',
    '%F0%9F%92%A5',
    '9999999s',
  ),
  fc
    .string({ maxLength: 12 })
    .filter((text) => !/^[1-9][0-9]{0,5}(?:ms|s)$/.test(text))
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

/** String maps (`data`, `customMetadata`) that the parser refuses. */
function badStringMap(maxKeys: number) {
  const value = fc.constantFrom(`${SECRET_MARK}v`, `${SECRET_MARK}\u0000\u202e\ud83d\udca5`);
  return fc.oneof(
    wrongType
      .filter((v) => typeof v !== 'object' || v === null || Array.isArray(v))
      .map((v) => JSON.stringify(v)),
    fc.constantFrom('"{}"', '[]', '[["a","b"]]'),
    // A value that is not a string.
    fc
      .tuple(fc.string({ minLength: 1, maxLength: 8 }), wrongType, value)
      .map(([key, bad, good]) => JSON.stringify({ ok: good, [key]: bad })),
    // A value that is not a string under a key that must never be echoed:
    // the names of secret data can be secret too.
    wrongType.map((bad) => JSON.stringify({ ok: 'v', [`${SECRET_MARK}key`]: bad ?? null })),
    // A nested value, deep.
    fieldNesting.map(([depth, kind]) => `{"k":${nested(depth, kind)}}`),
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
/** A path the samples before it leave in place: its version is never 0, so this answers at once. */
const GOOD_WATCH = { versions: { 'app/web/old': 0 }, wait: '1ms' };
const GOOD_POLICY = {
  spiffeIdPattern: 'spiffe://nexus.test/apps/api/*',
  pathPattern: 'app/api/**',
  permissions: ['read'],
};

/** A request whose target is wrong (its body, if any, is well formed): 400. */
function targetCase(kind: string, method: string, target: string, body?: unknown): HostileCase {
  const withBody = body === undefined ? {} : { headers: JSON_HEADERS, body: JSON.stringify(body) };
  return { kind, method, target, ...withBody, expect: INVALID };
}

/** Hostile paths in a secret route's URL. */
function badPathCases(prefix: string, method: string, body?: unknown): fc.Arbitrary<HostileCase> {
  return badSecretPath.map((path) =>
    targetCase(
      `secret path ${JSON.stringify(path.slice(0, 60))}`,
      method,
      `${prefix}/${encodePath(path)}`,
      body,
    ),
  );
}

/** Hostile names in a policy route's URL; '%2e' and friends stay as written: they are the attack. */
function badNameCases(method: string, body?: unknown): fc.Arbitrary<HostileCase> {
  return badPolicyName.map((name) =>
    targetCase(
      `policy name ${JSON.stringify(name.slice(0, 60))}`,
      method,
      `${PATHS.policies}/${/%2[ef]/i.test(name) ? name : encodeURIComponent(name)}`,
      body,
    ),
  );
}

/** Hostile key names in a transit route's URL, before `suffix` (`/rotate`…). */
function badKeyNameCases(
  prefix: string,
  method: string,
  suffix = '',
  body?: unknown,
): fc.Arbitrary<HostileCase> {
  return badPolicyName
    .filter((name) => !(suffix !== '' && /^(\.|\.\.|%2e|%2e%2e)$/i.test(name)))
    .map((name) =>
      targetCase(
        `key name ${JSON.stringify(name.slice(0, 60))}`,
        method,
        `${prefix}/${/%2[ef]/i.test(name) ? name : encodeURIComponent(name)}${suffix}`,
        body,
      ),
    );
}

/** Texts that are not padded standard base64, or that decode to more than `maxBytes`. */
function badBase64(maxBytes: number): fc.Arbitrary<unknown> {
  const tooLong = 'A'.repeat((Math.ceil(maxBytes / 3) + 1) * 4);
  return fc.oneof(
    fc.constantFrom<unknown>(
      'A',
      'AA',
      'AAA',
      'AA=A',
      'A===',
      ' AAAA',
      'AAAA\n',
      '-_-_',
      'YQ',
      '\ud83d\ude00',
      // Only when it fits the body limit, which would answer 413 first.
      ...(tooLong.length < MAX_BODY_BYTES / 2 ? [tooLong] : []),
    ),
    notAString('AAAA').filter((value) => value !== undefined),
  );
}

/** Ciphertext or HMAC texts that are not `spike:v<version>:<base64>`. */
const badVersioned = fc.oneof(
  fc.constantFrom<unknown>(
    '',
    'spike',
    'spike:v1',
    'spike:v1:',
    'spike:v0:AAAA',
    'spike:v01:AAAA',
    'spike:v-1:AAAA',
    'spike:v2147483648:AAAA',
    'spike:vx:AAAA',
    'vault:v1:AAAA',
    'SPIKE:v1:AAAA',
    'spike:V1:AAAA',
    'spike:v1:AAA',
    'spike:v1:AAAA ',
    'spike:v1:AA=A',
    ' spike:v1:AAAA',
    'spike:v1:AAAA:AAAA',
  ),
  notAString('spike:v1:AAAA').filter((value) => value !== undefined),
);

/** The cases of a transit data route whose items have `fields` (each good in `good`). */
function transitItemCases(
  target: string,
  good: Readonly<Record<string, unknown>>,
  bad: Readonly<Record<string, fc.Arbitrary<unknown>>>,
): fc.Arbitrary<HostileCase> {
  const post = (kind: string, body: unknown) => jsonCase(kind, 'POST', target, body);
  const fields = Object.keys(good);
  return fc.oneof(
    ...Object.entries(bad).map(([field, values]) =>
      fc.tuple(values, fc.boolean()).map(([value, inBatch]) => {
        const item = { ...good, [field]: value };
        return post(
          `${inBatch ? 'batch item ' : ''}${field} ${JSON.stringify(value)?.slice(0, 40)}`,
          inBatch ? { batch: [good, item] } : item,
        );
      }),
    ),
    unknownField([...fields, 'batch']).map((name) =>
      post(`unknown field ${JSON.stringify(name)}`, withMember(good, name, '"x"')),
    ),
    fc
      .constantFrom<unknown>(
        { batch: [] },
        { batch: null },
        { batch: good },
        { batch: [good], extra: 1 },
        { batch: [[good]] },
        { batch: [null] },
      )
      .map((body) => post(`batch ${JSON.stringify(body).slice(0, 60)}`, body)),
    fc.constant(
      post('batch of too many items', { batch: Array.from({ length: 1001 }, () => ({})) }),
    ),
    fieldNesting.map(([depth, kind]) =>
      post(`batch nested ${depth}`, `{"batch":${nested(depth, kind)}}`),
    ),
  );
}

const SECRET_DATA = `${PATHS.secretData}/:path{.+}`;
const SECRET_METADATA = `${PATHS.secretMetadata}/:path{.+}`;
const SECRET_UNDELETE = `${PATHS.secretUndelete}/:path{.+}`;
const SECRET_DESTROY = `${PATHS.secretDestroy}/:path{.+}`;
const POLICY = `${PATHS.policies}/:name`;
const TRANSIT_KEY = `${PATHS.transitKeys}/:name`;

function specs(): Record<string, RouteSpec> {
  const data = (p: string) => `${PATHS.secretData}/${p}`;
  const metadata = (p: string) => `${PATHS.secretMetadata}/${p}`;
  const undelete = (p: string) => `${PATHS.secretUndelete}/${p}`;
  const destroy = (p: string) => `${PATHS.secretDestroy}/${p}`;
  const policy = (n: string) => `${PATHS.policies}/${n}`;
  const get = (kind: string, target: string) => targetCase(kind, 'GET', target);
  const putPolicy = (kind: string, body: unknown) =>
    jsonCase(kind, 'PUT', policy('api-reads'), body);
  /** The good policy with `field` set to `value`. */
  const policyWith = (field: string, value: unknown, shown = JSON.stringify(value)) =>
    putPolicy(`${field} ${shown}`, { ...GOOD_POLICY, [field]: value });
  const restore = (kind: string, body: unknown) =>
    jsonCase(kind, 'POST', PATHS.operatorRestore, body);
  const rotateRoot = (kind: string, body: unknown) =>
    jsonCase(kind, 'POST', PATHS.operatorRootKeyRotate, body);
  return {
    [`GET ${PATHS.health}`]: { caller: 'superuser', target: PATHS.health },
    [`GET ${PATHS.status}`]: { caller: 'superuser', target: PATHS.status },
    [`GET ${SECRET_DATA}`]: {
      caller: 'superuser',
      target: data(GOOD_PATH),
      specific: fc.oneof(
        badPathCases(PATHS.secretData, 'GET'),
        badVersionQuery.map((q) =>
          get(`version query ${JSON.stringify(q)}`, `${data(GOOD_PATH)}?version=${q}`),
        ),
        // A long-poll read: refused before it waits, so these answer at once.
        badNewerThanQuery.map((q) =>
          get(`newerThan query ${JSON.stringify(q)}`, `${data(GOOD_PATH)}?newerThan=${q}&wait=1s`),
        ),
        badWaitQuery.map((q) =>
          get(`wait query ${JSON.stringify(q)}`, `${data(GOOD_PATH)}?newerThan=2&wait=${q}`),
        ),
        fc
          .constantFrom('?wait=1s', '?newerThan=2&version=2', '?version=1&newerThan=0&wait=1s')
          .map((q) => get(`watch queries ${q}`, `${data(GOOD_PATH)}${q}`)),
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
        // Data sent without its "data" wrapper: its keys are unknown fields, never echoed.
        fc
          .constantFrom(`${SECRET_MARK}name`, `db-${SECRET_MARK}`)
          .map((name) =>
            jsonCase('data keys as top-level fields', 'PUT', data(NEW_PATH), { [name]: 'x' }),
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
          .map(([path, name]) =>
            get(
              `${name} ${JSON.stringify(path.slice(0, 60))}`,
              `${PATHS.secretList}?${name}=${encodeURIComponent(path)}`,
            ),
          ),
        fc
          .constantFrom('app//', '/', '//', 'app/./', 'app/../')
          .map((prefix) =>
            get(`prefix ${prefix}`, `${PATHS.secretList}?prefix=${encodeURIComponent(prefix)}`),
          ),
        fc
          .oneof(badVersionQuery, fc.constantFrom('1001', '5000', '9999', '10000'))
          .map((limit) =>
            get(`limit ${JSON.stringify(limit)}`, `${PATHS.secretList}?limit=${limit}`),
          ),
        fc.constant(get('after empty', `${PATHS.secretList}?after=`)),
      ),
    },
    [`POST ${PATHS.secretWatch}`]: {
      caller: 'superuser',
      target: PATHS.secretWatch,
      body: GOOD_WATCH,
      specific: fc.oneof(
        badSecretPath.filter(isWellFormed).map((path) =>
          jsonCase(`path ${JSON.stringify(path.slice(0, 60))}`, 'POST', PATHS.secretWatch, {
            versions: { [path]: 0 },
          }),
        ),
        badCasText.map((version) =>
          jsonCase(
            `version ${version}`,
            'POST',
            PATHS.secretWatch,
            `{"versions":{"${GOOD_PATH}":${version}}}`,
          ),
        ),
        badWaitQuery.map((wait) =>
          jsonCase(`wait ${JSON.stringify(wait)}`, 'POST', PATHS.secretWatch, {
            ...GOOD_WATCH,
            wait: safeDecode(wait),
          }),
        ),
        wrongType.map((wait) =>
          jsonCase(`wait ${JSON.stringify(wait)}`, 'POST', PATHS.secretWatch, {
            ...GOOD_WATCH,
            wait,
          }),
        ),
        fc
          .constantFrom<unknown>(null, [], 'app/web/db', 1, {}, [['app/web/db', 0]])
          .map((versions) =>
            jsonCase(`versions ${JSON.stringify(versions)}`, 'POST', PATHS.secretWatch, {
              versions,
            }),
          ),
        fc.integer({ min: MAX_WATCH_PATHS + 1, max: MAX_WATCH_PATHS * 3 }).map((count) =>
          jsonCase(`${count} paths`, 'POST', PATHS.secretWatch, {
            versions: Object.fromEntries(
              Array.from({ length: count }, (_, i) => [`app/web/p${i}`, 0]),
            ),
          }),
        ),
        unknownField(['versions', 'wait']).map((name) =>
          jsonCase(
            `unknown field ${JSON.stringify(name)}`,
            'POST',
            PATHS.secretWatch,
            withMember(GOOD_WATCH, name, '"x"'),
          ),
        ),
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
          policyWith('spiffeIdPattern', pattern, JSON.stringify(pattern.slice(0, 60))),
        ),
        badPathPattern.map((pattern) =>
          policyWith('pathPattern', pattern, JSON.stringify(pattern.slice(0, 60))),
        ),
        fc
          .tuple(fc.constantFrom('spiffeIdPattern', 'pathPattern', 'name'), wrongType)
          .map(([field, value]) => policyWith(field, value)),
        badPermissions.map((permissions) => policyWith('permissions', permissions)),
        fc
          .oneof(badPolicyName, fc.constantFrom('web-reads', 'API-READS', 'api-reads '))
          .map((name) =>
            putPolicy(`body name ${JSON.stringify(name.slice(0, 60))}`, { ...GOOD_POLICY, name }),
          ),
        fc.constantFrom('spiffeIdPattern', 'pathPattern', 'permissions').map((missing) => {
          const body: Record<string, unknown> = { ...GOOD_POLICY };
          delete body[missing];
          return putPolicy(`missing ${missing}`, body);
        }),
        unknownField(['name', 'spiffeIdPattern', 'pathPattern', 'permissions']).map((name) =>
          putPolicy(`unknown field ${JSON.stringify(name)}`, withMember(GOOD_POLICY, name, '"x"')),
        ),
      ),
    },
    [`DELETE ${POLICY}`]: {
      caller: 'superuser',
      target: policy(SEEDED_POLICY.name),
      specific: badNameCases('DELETE'),
    },
    ...transitSpecs(),
    [`POST ${PATHS.operatorRecover}`]: { caller: 'recover', target: PATHS.operatorRecover },
    [`GET ${PATHS.operatorSnapshot}`]: { caller: 'superuser', target: PATHS.operatorSnapshot },
    // Damaged snapshot bodies need a database file: nexus/routes/snapshot.test.ts.
    [`PUT ${PATHS.operatorSnapshot}`]: {
      caller: 'superuser',
      target: PATHS.operatorSnapshot,
      streams: true,
      specific: fc.oneof(
        fc
          .constantFrom(undefined, 'application/json', 'text/plain', 'application/octet')
          .map((type) => ({
            kind: `content type ${String(type)}`,
            method: 'PUT',
            target: PATHS.operatorSnapshot,
            headers: type === undefined ? {} : { 'content-type': type },
            body: 'spike-ts snapshot v1\n',
            expect: INVALID,
          })),
        fc
          .constantFrom('force=1', 'force=', 'force=TRUE', 'other=x', 'force=true&x=1')
          .map((query) => ({
            kind: `query ${query}`,
            method: 'PUT',
            target: `${PATHS.operatorSnapshot}?${query}`,
            headers: { 'content-type': 'application/octet-stream' },
            body: 'spike-ts snapshot v1\n',
            expect: INVALID,
          })),
      ),
    },
    [`POST ${PATHS.operatorRootKeyRotate}`]: {
      caller: 'superuser',
      target: PATHS.operatorRootKeyRotate,
      body: { shares: 3, threshold: 2 },
      specific: fc.oneof(
        fc
          .constantFrom(0, -1, 1.5, 2 ** 53, 1000, Number.NaN)
          .map((threshold) => rotateRoot(`threshold ${threshold}`, { threshold })),
        fc
          .constantFrom(0, -3, 2.5, 1000)
          .map((shares) => rotateRoot(`shares ${shares}`, { shares })),
        fc.constant(rotateRoot('threshold above shares', { shares: 3, threshold: 4 })),
        fc
          .constantFrom<unknown>('3', true, null, [3], { n: 3 })
          .map((shares) => rotateRoot(`shares ${JSON.stringify(shares)}`, { shares })),
        unknownField(['shares', 'threshold']).map((name) =>
          rotateRoot(`unknown field ${JSON.stringify(name)}`, withMember({}, name, '1')),
        ),
      ),
    },
    [`POST ${PATHS.operatorRestore}`]: {
      caller: 'restore',
      target: PATHS.operatorRestore,
      body: { shard: 'spike-shard:v1:1:1:2:AAAA:00000000' },
      specific: fc.oneof(
        badShardText.map((shard) =>
          restore(`shard ${JSON.stringify(shard.slice(0, 60))}`, { shard }),
        ),
        wrongType.map((shard) => restore(`shard ${JSON.stringify(shard)}`, { shard })),
        unknownField(['shard']).map((name) =>
          restore(`unknown field ${JSON.stringify(name)}`, withMember({ shard: 'x' }, name, '1')),
        ),
        fc.constant(restore('no shard', {})),
      ),
    },
  };
}

/** The named key routes; the delete sample comes last, on a key of its own. */
function transitSpecs(): Record<string, RouteSpec> {
  const key = (name: string, suffix = '') => `${PATHS.transitKeys}/${name}${suffix}`;
  const on = (prefix: string) => `${prefix}/${GOOD_KEY}`;
  const plaintext = 'aGVsbG8=';
  const foreign = `spike:v1:${'A'.repeat(80)}`;
  return {
    [`GET ${PATHS.transitKeys}`]: { caller: 'superuser', target: PATHS.transitKeys },
    [`POST ${TRANSIT_KEY}`]: {
      caller: 'superuser',
      target: key('fresh'),
      specific: fc.oneof(
        badKeyNameCases(PATHS.transitKeys, 'POST'),
        fc.constant({
          kind: 'a key that exists',
          method: 'POST',
          target: key(GOOD_KEY),
          expect: { status: 409, code: 'ERR_CONFLICT' },
        }),
      ),
    },
    [`GET ${TRANSIT_KEY}`]: {
      caller: 'superuser',
      target: key(GOOD_KEY),
      specific: badKeyNameCases(PATHS.transitKeys, 'GET'),
    },
    [`POST ${TRANSIT_KEY}/rotate`]: {
      caller: 'superuser',
      target: key(GOOD_KEY, '/rotate'),
      specific: badKeyNameCases(PATHS.transitKeys, 'POST', '/rotate'),
    },
    [`POST ${TRANSIT_KEY}/config`]: {
      caller: 'superuser',
      target: key(GOOD_KEY, '/config'),
      body: { minDecryptionVersion: 1 },
      specific: fc.oneof(
        badKeyNameCases(PATHS.transitKeys, 'POST', '/config', { minDecryptionVersion: 1 }),
        fc
          .oneof(badVersionNumberText, fc.constantFrom('3', '99', '2147483647'))
          .map((n) =>
            jsonCase(
              `minDecryptionVersion ${n}`,
              'POST',
              key(GOOD_KEY, '/config'),
              `{"minDecryptionVersion":${n}}`,
            ),
          ),
        fc.constant(jsonCase('no minDecryptionVersion', 'POST', key(GOOD_KEY, '/config'), {})),
        unknownField(['minDecryptionVersion']).map((name) =>
          jsonCase(
            `unknown field ${JSON.stringify(name)}`,
            'POST',
            key(GOOD_KEY, '/config'),
            withMember({ minDecryptionVersion: 1 }, name, '1'),
          ),
        ),
      ),
    },
    [`POST ${PATHS.transitEncrypt}/:name`]: {
      caller: 'superuser',
      target: on(PATHS.transitEncrypt),
      body: { plaintext },
      specific: fc.oneof(
        badKeyNameCases(PATHS.transitEncrypt, 'POST', '', { plaintext }),
        transitItemCases(
          on(PATHS.transitEncrypt),
          { plaintext, context: 'Y3R4' },
          { plaintext: badBase64(65_536), context: badBase64(1024) },
        ),
        fc.constant(jsonCase('no plaintext', 'POST', on(PATHS.transitEncrypt), {})),
      ),
    },
    [`POST ${PATHS.transitDecrypt}/:name`]: {
      caller: 'superuser',
      target: on(PATHS.transitDecrypt),
      body: {
        get ciphertext() {
          return seeded.ciphertext;
        },
      },
      specific: fc.oneof(
        badKeyNameCases(PATHS.transitDecrypt, 'POST', '', { ciphertext: foreign }),
        transitItemCases(
          on(PATHS.transitDecrypt),
          { ciphertext: foreign, context: 'Y3R4' },
          { ciphertext: badVersioned, context: badBase64(1024) },
        ),
        fc.constant(
          jsonCase(
            'a ciphertext of no key',
            'POST',
            on(PATHS.transitDecrypt),
            { ciphertext: foreign },
            {
              status: 400,
              code: 'ERR_CIPHERTEXT_INVALID',
            },
          ),
        ),
      ),
    },
    [`POST ${PATHS.transitRewrap}/:name`]: {
      caller: 'superuser',
      target: on(PATHS.transitRewrap),
      body: {
        get ciphertext() {
          return seeded.ciphertext;
        },
      },
      specific: fc.oneof(
        badKeyNameCases(PATHS.transitRewrap, 'POST', '', { ciphertext: foreign }),
        transitItemCases(
          on(PATHS.transitRewrap),
          { ciphertext: foreign },
          { ciphertext: badVersioned, context: badBase64(1024) },
        ),
      ),
    },
    [`POST ${PATHS.transitDataKey}/:name`]: {
      caller: 'superuser',
      target: on(PATHS.transitDataKey),
      body: {},
      specific: fc.oneof(
        badKeyNameCases(PATHS.transitDataKey, 'POST', '', {}),
        badIntegerText(16, 64).map((text) =>
          jsonCase(
            `bytes ${text}`,
            'POST',
            on(PATHS.transitDataKey),
            withMember({}, 'bytes', text),
          ),
        ),
        transitItemCases(
          on(PATHS.transitDataKey),
          { bytes: 32, wrappedOnly: false },
          {
            bytes: fc.constantFrom<unknown>(0, 8, 15, 65, 1024, 1.5, -32, '32', null, true, [32]),
            wrappedOnly: fc.constantFrom<unknown>('true', 1, 0, null, 'yes', [true]),
            context: badBase64(1024),
          },
        ),
      ),
    },
    [`POST ${PATHS.transitHmac}/:name`]: {
      caller: 'superuser',
      target: on(PATHS.transitHmac),
      body: { input: plaintext },
      specific: fc.oneof(
        badKeyNameCases(PATHS.transitHmac, 'POST', '', { input: plaintext }),
        transitItemCases(on(PATHS.transitHmac), { input: plaintext }, { input: badBase64(65_536) }),
      ),
    },
    [`POST ${PATHS.transitVerify}/:name`]: {
      caller: 'superuser',
      target: on(PATHS.transitVerify),
      body: {
        input: 'AQID',
        get hmac() {
          return seeded.hmac;
        },
      },
      specific: fc.oneof(
        badKeyNameCases(PATHS.transitVerify, 'POST', '', { input: plaintext, hmac: foreign }),
        transitItemCases(
          on(PATHS.transitVerify),
          { input: plaintext, hmac: foreign },
          { input: badBase64(65_536), hmac: badVersioned },
        ),
      ),
    },
    [`DELETE ${TRANSIT_KEY}`]: {
      caller: 'superuser',
      target: key(DOOMED_KEY),
      specific: badKeyNameCases(PATHS.transitKeys, 'DELETE'),
    },
  };
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
    fieldNesting.map(([depth, kind]) =>
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

describe('Nexus under hostile input', () => {
  test('every route of the app has a hostile generator, and every generator a route', async () => {
    assertEveryRouteCovered(
      routesOf((await hostileApp()).app),
      Object.keys(specs()).sort(),
      'nexus/routes/hostile_input.test.ts',
    );
  });

  test('each route answers every well-formed sample it is mutated from (the generators start from valid requests)', async () => {
    const nexus = await hostileApp();
    for (const [key, spec] of Object.entries(specs())) {
      // The operator routes act on the root key manager, which these tests stub out.
      if (key.includes('/v1/operator/')) continue;
      const answer = await nexus.send(spec.caller, spec.target, sampleInit(key, spec));
      assert.ok(answer.status < 300, `${key}: ${answer.status} ${answer.text.slice(0, 200)}`);
    }
  });

  test('odd but valid keys and values (unicode, control characters, "__proto__") round-trip exactly', async () => {
    const nexus = await hostileApp();
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
      FC,
    );
  });

  // One property per route, so a failure names the route.
  for (const [key, spec] of Object.entries(specs())) {
    test(`${key}: hostile requests get a specific 4xx, change nothing and are audited once`, async () => {
      const nexus = await hostileApp();
      const app = {
        ...nexus,
        send: (target: string, init: RequestInit) => nexus.send(spec.caller, target, init),
      };
      const expected = { peer: CALLERS[spec.caller].toString(), never: [SECRET_MARK] };
      await fc.assert(
        fc.asyncProperty(hostileCases(key, spec, GENERIC), (hostile) =>
          assertRefused(app, hostile, expected),
        ),
        FC,
      );
    });
  }
});
