/**
 * What the property-based hostile-input suites of the services share
 * (`nexus/routes/hostile_input.test.ts`, `keeper/routes/hostile_input.test.ts`):
 *
 * - the fast-check run parameters, replayable with `FC_SEED=<seed>` (and
 *   `FC_RUNS=<n>` for more runs), the seed printed on every run;
 * - the routes of an app read from `app.routes`, and the check that every
 *   route has a generator and every generator a route;
 * - the hostile cases every route gets (dot segments, encoded slashes,
 *   control characters, odd methods, oversized bodies, broken JSON, bodies
 *   that are not an object, deep nesting, content types that are not JSON,
 *   bytes that are not UTF-8) and generators of bad field values;
 * - the one assertion every case makes: the specific 4xx and error code in
 *   the one error shape with `Cache-Control: no-store`, nothing stored
 *   changed, exactly one audit event that agrees with the answer, and no
 *   value of the request echoed in the answer, the audit trail or the log.
 *
 * Requests carry their raw request target in `env.incoming.url`, as
 * @hono/node-server hands it over, because `new URL()` (in `app.request()`
 * and in the adapter alike) resolves dot segments before routing.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { AuditEvent } from '../../shared/log/audit_log.ts';

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

/** fast-check parameters for a suite: `FC_SEED` and `FC_RUNS` or a fresh seed, printed. */
export function fcParameters(suite: string, defaultRuns: number) {
  const seed =
    process.env.FC_SEED === undefined ? Date.now() ^ 0x5eed : Number(process.env.FC_SEED);
  const numRuns = process.env.FC_RUNS === undefined ? defaultRuns : Number(process.env.FC_RUNS);
  // biome-ignore lint/suspicious/noConsole: the seed is printed so that a failure can be replayed
  console.log(`# hostile_input (${suite}): FC_SEED=${seed} FC_RUNS=${numRuns}`);
  return { seed, numRuns, endOnFailure: true, includeErrorInReport: true } as const;
}

// ---------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------

const HOUR_MS = 3_600_000;

/** A `getPeer` for an app under test: the caller `id()` returns, with a certificate valid now. */
export function injectedPeer<Id>(id: () => Id) {
  return () => ({
    id: id(),
    notBefore: new Date(Date.now() - HOUR_MS),
    notAfter: new Date(Date.now() + HOUR_MS),
    serialNumber: '01',
  });
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

/** The terminal routes of an app as `METHOD path`, middleware left out. */
export function routesOf(app: {
  readonly routes: readonly { readonly method: string; readonly path: string }[];
}): string[] {
  const keys = new Set<string>();
  for (const route of app.routes) {
    if (route.method !== 'ALL') keys.add(`${route.method} ${route.path}`);
  }
  return [...keys].sort();
}

/** Every route has a generator in `file`, and every generator a route. */
export function assertEveryRouteCovered(
  routes: readonly string[],
  covered: readonly string[],
  file: string,
): void {
  assert.deepEqual(
    routes.filter((route) => !covered.includes(route)),
    [],
    `routes without a hostile generator in ${file}`,
  );
  assert.deepEqual(
    covered.filter((route) => !routes.includes(route)),
    [],
    'generators for routes the app does not have',
  );
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

/** The status and error code a hostile request must get. */
export interface Expected {
  readonly status: number;
  readonly code: string;
}

export const INVALID: Expected = { status: 400, code: 'ERR_INVALID_REQUEST' };
export const NOT_FOUND: Expected = { status: 404, code: 'ERR_NOT_FOUND' };
export const TOO_LARGE: Expected = { status: 413, code: 'ERR_PAYLOAD_TOO_LARGE' };

/** One malformed request and what it must get. */
export interface HostileCase {
  /** What is wrong with it (shown on failure). */
  readonly kind: string;
  readonly method: string;
  /** The raw request target, path and query. */
  readonly target: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  readonly expect: Expected;
}

/** A route's well-formed request, which the hostile cases are made from. */
export interface RouteSample {
  /** A well-formed target of this route. */
  readonly target: string;
  /** A well-formed JSON body, for routes that read one. */
  readonly body?: unknown;
  /** Cases that only this route has. */
  readonly specific?: fc.Arbitrary<HostileCase>;
  /**
   * The route takes a raw stream under a larger limit of its own (a
   * snapshot upload): no JSON-body or oversized-body cases; its own cases
   * cover its body.
   */
  readonly streams?: true;
}

export const JSON_HEADERS = { 'content-type': 'application/json' };

/** A case whose body is JSON (or `body` itself, when it is text). */
export function jsonCase(
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

/** The request of a route's well-formed sample; `key` is `METHOD path`. */
export function sampleInit(key: string, sample: RouteSample): RequestInit {
  const init: RequestInit = { method: methodOf(key) };
  if (sample.body !== undefined) {
    init.headers = JSON_HEADERS;
    init.body = JSON.stringify(sample.body);
  }
  return init;
}

function methodOf(key: string): string {
  return key.split(' ')[0] as string;
}

/** A JSON object text with one member replaced or added, written by hand so any name stays a member. */
export function withMember(body: object, name: string, valueText: string): string {
  const members = Object.entries(body)
    .filter(([key, value]) => key !== name && value !== undefined)
    .map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value)}`);
  members.push(`${JSON.stringify(name)}:${valueText}`);
  return `{${members.join(',')}}`;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Text that is not JSON, or is JSON cut short or padded with junk; `extra` adds texts of a route's own. */
export function brokenJson(extra: readonly string[] = []): fc.Arbitrary<string> {
  return fc.oneof(
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
      '{"a":1}{',
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
      ...extra,
    ),
    fc.tuple(fc.jsonValue({ maxDepth: 3 }), fc.nat()).map(([value, cut]) => {
      const text = JSON.stringify(value) ?? 'null';
      return `${text.slice(0, cut % Math.max(1, text.length))}\u0001`;
    }),
    fc.string({ maxLength: 30 }).filter((text) => !isJson(text)),
    fc.string({ unit: 'grapheme', maxLength: 40 }).filter((text) => !isJson(text)),
  );
}

/** JSON values that are not objects; `extra` adds texts of a route's own. */
export function notAnObject(extra: readonly string[] = []): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom('null', 'true', '0', '-0', '1e400', '"{}"', '[]', '[{}]', ...extra),
    fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }).map((value) => JSON.stringify(value)),
    fc.string({ maxLength: 20 }).map((value) => JSON.stringify(value)),
    fc.double().map((value) => (Number.isFinite(value) ? JSON.stringify(value) : '1e999')),
  );
}

/**
 * `body` as JSON text with a key twice in one object: its first member again
 * (`plain`), again with the name's first letter escaped (`escaped`, the same
 * key once decoded), or a key twice in a nested object (`nested`).
 */
export function withDuplicateKey(body: unknown, how: 'plain' | 'escaped' | 'nested'): string {
  const members = Object.entries(body as object);
  const [name, value] = members[0] ?? ['a', 1];
  const again =
    how === 'escaped'
      ? `"\\u${name.charCodeAt(0).toString(16).padStart(4, '0')}${JSON.stringify(name).slice(2)}`
      : JSON.stringify(name);
  // The members of `body` (or the one made up), without the braces.
  const rest =
    members.length === 0
      ? `${JSON.stringify(name)}:${JSON.stringify(value)}`
      : JSON.stringify(body).slice(1, -1);
  return how === 'nested'
    ? `{"n":{"k":1,"k":2},${rest}}`
    : `{${again}:${JSON.stringify(value)},${rest}}`;
}

/** `[[[...]]]` or `{"a":{"a":...}}`, nested `depth` deep. */
export function nested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array'
    ? `${'['.repeat(depth)}${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** A depth from 2 to `maxDepth` (kept under the body limit) and a kind of nesting. */
export function nesting(maxDepth: number) {
  return fc.tuple(
    fc.integer({ min: 2, max: maxDepth }),
    fc.constantFrom<'array' | 'object'>('array', 'object'),
  );
}

/** Content types that are not JSON (or no content type at all). */
export const notJsonType = fc.constantFrom<string | undefined>(
  undefined,
  '',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  'multipart/form-data; boundary=x',
  'application/jsonp',
  'application/jsonx',
  'application/json-seq',
  'json',
  'application/ json',
  'application/xml',
);

/** Byte sequences that are not UTF-8. */
export const badUtf8 = fc.constantFrom(
  [0xff],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe2, 0x82],
  [0x80],
);

/** `json` with `bytes` inside its first string value (or its first string), so the text around them stays JSON. */
export function withBadUtf8(json: string, bytes: readonly number[]): Uint8Array {
  const at = json.indexOf('":"');
  const cut = at === -1 ? json.indexOf('"') + 1 : at + 3;
  const encoder = new TextEncoder();
  return Uint8Array.from([
    ...encoder.encode(json.slice(0, cut)),
    ...bytes,
    ...encoder.encode(json.slice(cut)),
  ]);
}

/** JSON texts that are not an integer in `min..max`. */
export function badIntegerText(min: number, max: number): fc.Arbitrary<string> {
  return fc
    .oneof(
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
        '-2147483649',
        '9007199254740993',
        '1e21',
        '"1"',
        '"2"',
        '"01"',
        '"1e3"',
        '" 1"',
        '"\u0661"',
        'null',
        'true',
        '[1]',
        '{"v":1}',
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

/** Values of the wrong JSON type for a string field; `examples` are good strings, sent in a list. */
export function notAString(...examples: readonly string[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom<unknown>(null, true, 0, 1, -1, 33, [], {}, ...examples.map((good) => [good])),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }), { maxKeys: 2 }),
  );
}

/** Fields a body does not have: prototype names, near misses of `allowed`, and any string. */
export function unknownField(allowed: readonly string[]): fc.Arbitrary<string> {
  const nearMisses = allowed.flatMap((name) => [
    `${name.charAt(0).toUpperCase()}${name.slice(1)}`,
    name.toUpperCase(),
    ` ${name}`,
    `${name} `,
    `${name}\u0000`,
  ]);
  return fc
    .oneof(
      fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', '', ...nearMisses),
      fc.string({ maxLength: 12 }),
    )
    .filter((name) => !allowed.includes(name));
}

/** What every route of an app gets besides its own cases. */
export interface GenericOptions {
  /** The app's body limit; bodies from just over it to `limit * oversizedUpTo` must get 413. */
  readonly bodyLimit: number;
  readonly oversizedUpTo: number;
  /** Put at the start of the padding of oversized bodies (a value that must never be echoed). */
  readonly padMark?: string;
  /** The deepest nesting sent, kept under the body limit. */
  readonly maxNesting: number;
  /** Texts of broken JSON that this app's bodies are near. */
  readonly brokenJson?: readonly string[];
  /** Junk after each route's path gets 404 (no route has a path below another's). */
  readonly suffixes?: boolean;
}

/**
 * The cases every route gets: traversal, encoded slashes, control
 * characters, odd methods, oversized bodies and, for a route that reads a
 * body, malformed ones. `key` is `METHOD path`.
 */
export function genericCases(
  key: string,
  sample: RouteSample,
  options: GenericOptions,
): fc.Arbitrary<HostileCase> {
  const method = methodOf(key);
  const { target } = sample;
  const at = target.indexOf('?');
  const [path, query] = at === -1 ? [target, ''] : [target.slice(0, at), target.slice(at)];
  const slashes = [...path].flatMap((char, i) => (char === '/' && i > 0 ? [i] : []));
  const withBody =
    sample.body === undefined ? {} : { headers: JSON_HEADERS, body: JSON.stringify(sample.body) };
  const invalid = (kind: string, raw: string): HostileCase => ({
    kind,
    method,
    target: raw,
    ...withBody,
    expect: INVALID,
  });
  const cases: fc.Arbitrary<HostileCase>[] = [
    // A dot segment, plain or percent-encoded, resolved away by URL parsing.
    fc
      .tuple(fc.constantFrom('.', '..', '%2e', '%2E', '%2e%2e', '.%2e', '%2E.', '%2e%2E'), fc.nat())
      .map(([dots, n]) => {
        const cut = slashes[n % slashes.length] as number;
        const extra = dots.replace(/%2e/gi, '.').length === 2 ? `x/${dots}` : dots;
        return invalid(
          `dot segment ${dots}`,
          `${path.slice(0, cut)}/${extra}${path.slice(cut)}${query}`,
        );
      }),
    // An encoded slash or backslash, or an empty segment, in place of a slash.
    fc.tuple(fc.constantFrom('%2f', '%2F', '%5c', '%5C', '//', '///'), fc.nat()).map(([sep, n]) => {
      const cut = slashes[n % slashes.length] as number;
      return invalid(
        `separator ${sep}`,
        `${path.slice(0, cut)}${sep}${path.slice(cut + 1)}${query}`,
      );
    }),
    fc
      .constantFrom('%00', '%0a', '%0D', '%7f', '%E2%80%A8')
      .map((control) => invalid(`control character ${control}`, `${path}${control}${query}`)),
    // A method no route has.
    fc.constantFrom('PATCH', 'OPTIONS', 'PROPFIND', 'X-HOSTILE').map((other) => ({
      kind: `method ${other}`,
      method: other,
      target,
      ...withBody,
      expect: NOT_FOUND,
    })),
  ];
  if (options.suffixes === true) {
    cases.push(
      fc.constantFrom('/x', 'x', '/%C3%A9', '/..x', '/v1').map((junk) => ({
        kind: `suffix ${junk}`,
        method,
        target: `${path}${junk}${query}`,
        ...withBody,
        expect: NOT_FOUND,
      })),
    );
  }
  if (method !== 'GET' && sample.streams !== true) {
    const { bodyLimit, oversizedUpTo, padMark = '' } = options;
    cases.push(
      fc.integer({ min: bodyLimit + 1, max: bodyLimit * oversizedUpTo }).map((size) => {
        const pad = `${padMark}${'x'.repeat(size)}`;
        return jsonCase(
          `body of ${size} bytes`,
          method,
          target,
          { ...(sample.body as object | undefined), pad },
          TOO_LARGE,
        );
      }),
    );
  }
  if (method !== 'GET' && sample.body === undefined && sample.streams !== true) {
    cases.push(
      fc
        .constantFrom('{}', '{"a":1}', 'x')
        .map((text) =>
          jsonCase(`a body on a route that takes none: ${text}`, method, target, text),
        ),
    );
  }
  if (sample.body !== undefined) {
    const goodText = JSON.stringify(sample.body);
    cases.push(
      fc
        .constantFrom('plain', 'escaped', 'nested')
        .map((how) =>
          jsonCase(`a key twice (${how})`, method, target, withDuplicateKey(sample.body, how)),
        ),
      brokenJson(options.brokenJson).map((text) =>
        jsonCase(`broken JSON ${JSON.stringify(text.slice(0, 40))}`, method, target, text),
      ),
      notAnObject([`[${goodText}]`]).map((text) =>
        jsonCase(`not an object ${text.slice(0, 40)}`, method, target, text),
      ),
      nesting(options.maxNesting).map(([depth, kind]) =>
        jsonCase(`nested ${kind} ${depth}`, method, target, nested(depth, kind)),
      ),
      notJsonType.map((type) => ({
        kind: `content type ${JSON.stringify(type)}`,
        method,
        target,
        headers: type === undefined ? {} : { 'content-type': type },
        body: goodText,
        expect: INVALID,
      })),
      badUtf8.map((bytes) => ({
        kind: `not UTF-8 ${bytes.map((b) => b.toString(16)).join(' ')}`,
        method,
        target,
        headers: JSON_HEADERS,
        body: withBadUtf8(goodText, bytes),
        expect: INVALID,
      })),
    );
  }
  return fc.oneof(...cases);
}

/** A route's generic cases and, twice as often, its own. */
export function hostileCases(
  key: string,
  sample: RouteSample,
  options: GenericOptions,
): fc.Arbitrary<HostileCase> {
  const generic = genericCases(key, sample, options);
  return sample.specific === undefined
    ? generic
    : fc.oneof(generic, sample.specific, sample.specific);
}

// ---------------------------------------------------------------------------
// The assertion
// ---------------------------------------------------------------------------

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body parsed as JSON, or undefined when it is not. */
  readonly body: unknown;
}

/** Sends one request to a Hono app with `target` as the raw request target. */
export async function send(
  app: { request(input: string, init: RequestInit, env: object): Response | Promise<Response> },
  target: string,
  init: RequestInit,
): Promise<Answer> {
  // As a real client frames a body: by its length.
  const headers = new Headers(init.headers);
  if (
    (typeof init.body === 'string' || init.body instanceof Uint8Array) &&
    !headers.has('content-length')
  ) {
    const length =
      typeof init.body === 'string' ? new TextEncoder().encode(init.body).length : init.body.length;
    headers.set('content-length', String(length));
  }
  const res = await app.request(target, { ...init, headers }, { incoming: { url: target } });
  const text = await res.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, body };
}

/**
 * Asserts that an answer has `expected`'s status and error code; `text` is
 * its body, `context` is shown on failure.
 */
export function assertError(
  status: number | undefined,
  text: string,
  expected: Expected,
  context: string,
): void {
  assert.equal(status, expected.status, `${context}: ${text.slice(0, 300)}`);
  let code: unknown;
  try {
    code = (JSON.parse(text) as { error?: { code?: unknown } } | null)?.error?.code;
  } catch {
    code = undefined;
  }
  assert.equal(code, expected.code, `${context}: ${text.slice(0, 300)}`);
}

/** An app under test, as the assertion sees it. */
export interface HostileTarget {
  send(target: string, init: RequestInit): Promise<Answer>;
  /** Everything stored that a request could change, read past the routes. */
  snapshot(): string | Promise<string>;
  readonly audit: { readonly events: readonly AuditEvent[] };
  readonly logSink: { readonly lines: readonly unknown[] };
}

/**
 * Sends `hostile` and asserts what every hostile request must get: its
 * status and error code in the one error shape with `Cache-Control:
 * no-store`, no change to what is stored, exactly one audit event of `peer`
 * that agrees with the answer, and none of `never` in the answer, the audit
 * trail or the log.
 */
export async function assertRefused(
  app: HostileTarget,
  hostile: HostileCase,
  expected: { readonly peer: string; readonly never: readonly string[] },
): Promise<void> {
  const where = `${hostile.method} ${hostile.target.slice(0, 200)} (${hostile.kind})`;
  const before = await app.snapshot();
  const eventsBefore = app.audit.events.length;
  const logsBefore = app.logSink.lines.length;
  const init: RequestInit = { method: hostile.method, headers: hostile.headers ?? {} };
  if (hostile.body !== undefined) init.body = hostile.body;
  const answer = await app.send(hostile.target, init);

  assertError(answer.status, answer.text, hostile.expect, where);
  const error = (answer.body as { error: { message?: unknown } }).error;
  assert.equal(typeof error.message, 'string', where);
  assert.deepEqual(Object.keys(answer.body as object), ['error'], where);
  assert.equal(answer.headers.get('cache-control'), 'no-store', where);

  const events = app.audit.events.slice(eventsBefore);
  assert.equal(events.length, 1, `${where}: ${events.length} audit events`);
  const event = events[0] as AuditEvent;
  assert.equal(event.status, answer.status, where);
  assert.equal(event.errorCode, hostile.expect.code, where);
  assert.equal(event.outcome, 'error', where);
  assert.equal(event.peer, expected.peer, where);

  assert.equal(await app.snapshot(), before, `${where}: what is stored changed`);
  const said =
    answer.text + JSON.stringify(event) + JSON.stringify(app.logSink.lines.slice(logsBefore));
  for (const text of expected.never) {
    assert.ok(!said.includes(text), `${where}: a value of the request was echoed or logged`);
  }
}
