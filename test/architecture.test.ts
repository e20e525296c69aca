/**
 * Fitness tests for the layout: import boundaries between folders, where
 * process globals and console may appear, and that every environment variable
 * a program reads is documented.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = [
  'agent',
  'bench',
  'keeper',
  'launcher',
  'nexus',
  'pilot',
  'sdk',
  'shared',
  'test',
];
const IMPORT_REGEXP =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|(?:^|\n)\s*import\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        if (name !== 'node_modules') walk(path);
      } else if (name.endsWith('.ts')) {
        out.push(relative(ROOT, path));
      }
    }
  };
  for (const dir of SOURCE_DIRS) {
    try {
      walk(join(ROOT, dir));
    } catch {
      // a program folder may not exist yet
    }
  }
  return out.sort();
}

/** Source text without comments, so prose cannot trip a code check. */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/** Where the store keeps code for tests only; the build leaves it out. */
const STORE_TESTING = 'nexus/store/testing/';
/** The concrete stores, one folder per dialect, each with the same file names. */
const STORE_DIALECTS = ['nexus/store/sqlite/', 'nexus/store/postgres/'];

function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const match of text.matchAll(IMPORT_REGEXP)) {
    const spec = match[1] ?? match[2] ?? match[3];
    if (spec !== undefined) out.push(spec);
  }
  return out;
}

/** The repository files `file` imports by relative path. */
function localImportsOf(file: string): string[] {
  return importsOf(file)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => relative(ROOT, resolve(ROOT, dirname(file), spec)));
}

/** The zone of a repository path: `shared/spiffe`, `nexus`, `test`… */
function zoneOf(path: string): string {
  const parts = path.split('/');
  return parts[0] === 'shared' ? `shared/${parts[1]}` : (parts[0] ?? '');
}

/**
 * Tests, their helpers (the store's contract suite and memory stores) and the
 * benchmark are tooling around the programs: they may import anything.
 */
const isTest = (file: string) =>
  file.endsWith('.test.ts') ||
  file.startsWith('test/') ||
  file.startsWith('bench/') ||
  file.startsWith(STORE_TESTING);

/** The mTLS servers (Nexus, Keeper) may use every shared/ folder. */
const SERVER_ZONES = [
  'shared/errors',
  'shared/spiffe',
  'shared/log',
  'shared/config',
  'shared/runtime',
  'shared/http',
  'shared/api',
  'shared/crypto',
  'shared/ops',
];

/** Which zones and packages each zone may import (tests may import anything). */
const ALLOWED: Record<string, { zones: string[]; packages: RegExp }> = {
  'shared/errors': { zones: [], packages: /^$/ },
  'shared/crypto': {
    zones: ['shared/errors'],
    packages: /^(@noble\/ciphers|@noble\/hashes\/(hkdf|hmac|sha2)\.js$|shamir-secret-sharing)/,
  },
  'shared/api': {
    zones: ['shared/errors', 'shared/crypto'],
    packages: /^@noble\/hashes\/sha2\.js$/,
  },
  // Config parses into domain types at load time, so it uses the pure SPIFFE
  // parsers and the log level type.
  'shared/config': {
    zones: ['shared/errors', 'shared/spiffe', 'shared/log'],
    packages: /^node:(net|fs)$/,
  },
  'shared/log': { zones: ['shared/errors'], packages: /^(pino|node:fs)$/ },
  'shared/runtime': { zones: ['shared/errors', 'shared/log'], packages: /^node:/ },
  'shared/spiffe': {
    zones: ['shared/errors', 'shared/log'],
    packages:
      /^(node:(tls|crypto|net|https|url|path|fs|util)|@grpc\/grpc-js|protobufjs\/light\.js|@peculiar\/asn1-(schema|x509)|@peculiar\/x509|reflect-metadata)$/,
  },
  // Probes and metrics: the app records requests through a type of it.
  'shared/ops': {
    zones: ['shared/errors', 'shared/log'],
    packages: /^(prom-client|node:(http|net))$/,
  },
  'shared/http': {
    zones: [
      'shared/errors',
      'shared/spiffe',
      'shared/log',
      'shared/api',
      'shared/config',
      'shared/ops',
    ],
    packages: /^(hono|hono\/.*|@hono\/node-server|node:(http|https|net|tls))$/,
  },
  agent: {
    zones: [
      'shared/errors',
      'shared/spiffe',
      'shared/log',
      'shared/config',
      'shared/runtime',
      'shared/api',
      'shared/ops',
    ],
    packages: /^(node:.*|@grpc\/grpc-js)$/,
  },
  keeper: {
    zones: SERVER_ZONES,
    packages: /^(node:.*|hono|hono\/.*)$/,
  },
  nexus: {
    zones: SERVER_ZONES,
    packages: /^(node:.*|hono|hono\/.*|drizzle-orm.*|@libsql\/client|libsql|pg)$/,
  },
  sdk: {
    zones: [
      'shared/errors',
      'shared/spiffe',
      'shared/log',
      'shared/config',
      'shared/runtime',
      'shared/api',
    ],
    packages: /^node:.*$/,
  },
  // The local broker launcher starts programs as processes; it imports none of
  // them, and talks to Nexus through the SDK.
  launcher: {
    zones: [
      'sdk',
      'shared/errors',
      'shared/spiffe',
      'shared/log',
      'shared/config',
      'shared/runtime',
      'shared/api',
    ],
    packages: /^node:.*$/,
  },
  pilot: {
    zones: [
      'sdk',
      'shared/errors',
      'shared/spiffe',
      'shared/log',
      'shared/config',
      'shared/runtime',
      'shared/api',
    ],
    packages: /^(node:.*|commander|yaml)$/,
  },
};

/** Packages that only one file may import, so runtime risk stays in one place. */
const SINGLE_IMPORTER: Record<string, string[]> = {
  // The Workload API's watching client (channel, then stream watch) and the
  // agent's server; message decoding and the proto need no gRPC transport.
  '@grpc/grpc-js': [
    'shared/spiffe/workload_api.ts',
    'shared/spiffe/workload_stream.ts',
    'agent/workload_api_server.ts',
  ],
  // gRPC without grpc-js: the one-shot fetch of a one-shot program (ADR 0023).
  'node:http2': ['shared/spiffe/workload_fetch_once.ts'],
  // The Workload API's messages: the descriptor is loaded in one place.
  'protobufjs/light.js': ['shared/spiffe/workload_proto.ts'],
  // Reading certificates (every program); building them is the agent's, with @peculiar/x509.
  '@peculiar/asn1-schema': ['shared/spiffe/_cert_cache.ts'],
  '@peculiar/asn1-x509': ['shared/spiffe/_cert_cache.ts'],
  '@peculiar/x509': ['shared/spiffe/_x509.ts'],
  'reflect-metadata': ['shared/spiffe/_x509.ts'],
  '@libsql/client': ['nexus/store/sqlite/db.ts'],
  libsql: ['nexus/store/sqlite/db.ts'],
  pg: ['nexus/store/postgres/db.ts'],
  // Metrics: one registry per program, built in one place.
  'prom-client': ['shared/ops/metrics.ts'],
};

/**
 * Single files allowed a package beyond their folder's rule, so that the
 * exception stays that one file and does not widen the folder's rule.
 */
const FILE_PACKAGES: Record<string, RegExp> = {
  // ChaCha20-Poly1305 under the AEAD (ADR 0016); the rest of shared/crypto
  // stays free of Node modules.
  'shared/crypto/_native_xchacha.ts': /^node:crypto$/,
  // The one-shot Workload API fetch speaks gRPC over HTTP/2 itself (ADR 0023).
  'shared/spiffe/workload_fetch_once.ts': /^node:http2$/,
  // The audit chain's HMAC-SHA256 (ADR 0027), for the programs and for Pilot's verifier.
  'shared/log/audit_chain.ts': /^node:crypto$/,
};

/**
 * Who may import a concrete store (a file under a dialect folder), besides
 * the files of that folder: the composition root and the store opener. Config
 * reads the SQLite `synchronous` setting against the driver file's list.
 */
const DIALECT_IMPORTERS: Record<string, string[]> = {
  'nexus/main.ts': STORE_DIALECTS,
  'nexus/store/open_stores.ts': STORE_DIALECTS,
  'nexus/config.ts': ['nexus/store/sqlite/db.ts'],
};

describe('architecture', () => {
  const files = sourceFiles();

  test('production code imports only what its folder may import', () => {
    const problems: string[] = [];
    for (const file of files.filter((f) => !isTest(f))) {
      const zone = zoneOf(file);
      const rule = ALLOWED[zone];
      if (rule === undefined) {
        problems.push(`${file}: folder "${zone}" has no import rule`);
        continue;
      }
      for (const spec of importsOf(file)) {
        if (spec.startsWith('.')) {
          const target = relative(ROOT, resolve(ROOT, dirname(file), spec));
          const targetZone = zoneOf(target);
          if (targetZone !== zone && !rule.zones.includes(targetZone)) {
            problems.push(`${file}: may not import ${target}`);
          }
        } else if (!rule.packages.test(spec) && !FILE_PACKAGES[file]?.test(spec)) {
          problems.push(`${file}: may not import package "${spec}"`);
        }
        if (spec.startsWith('drizzle-orm') && !file.startsWith('nexus/store/')) {
          problems.push(`${file}: only nexus/store/ may import "${spec}"`);
        }
        const only = SINGLE_IMPORTER[spec];
        if (only !== undefined && !only.includes(file)) {
          problems.push(`${file}: only ${only.join(', ')} may import "${spec}"`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  test('the store depends on nothing else in Nexus, and only the opener picks a dialect', () => {
    const problems: string[] = [];
    for (const file of files) {
      for (const target of localImportsOf(file)) {
        if (
          file.startsWith('nexus/store/') &&
          target.startsWith('nexus/') &&
          !target.startsWith('nexus/store/')
        ) {
          // Config, access and routes sit above the store, never below it.
          problems.push(`${file}: the store may not import ${target}`);
        }
        if (isTest(file)) continue;
        if (target.startsWith(STORE_TESTING)) {
          problems.push(`${file}: only tests may import ${target}`);
        }
        const dialect = STORE_DIALECTS.find((folder) => target.startsWith(folder));
        const allowed = DIALECT_IMPORTERS[file] ?? [];
        if (
          dialect !== undefined &&
          !file.startsWith(dialect) &&
          !allowed.some((prefix) => target.startsWith(prefix))
        ) {
          problems.push(`${file}: may not import ${target} (the store opener picks the dialect)`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  test('no import cycles, type-only imports included', () => {
    // Every relative import is an edge; a cycle, even through `import type`,
    // means two modules that cannot be understood apart.
    const edges = new Map(files.map((file) => [file, localImportsOf(file)]));
    assert.deepEqual(importCycles(edges), []);
  });

  test('the cycle check reports a cycle and passes a tree', () => {
    const graph = new Map([
      ['a.ts', ['b.ts', 'c.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['c.ts']],
    ]);
    assert.deepEqual(importCycles(graph), ['a.ts -> b.ts -> c.ts -> a.ts']);
    assert.deepEqual(
      importCycles(
        new Map([
          ['a.ts', ['b.ts']],
          ['b.ts', []],
        ]),
      ),
      [],
    );
  });

  test('process and Deno globals appear only in main.ts files and shared/runtime', () => {
    const offenders = files
      .filter((f) => !isTest(f) && !f.endsWith('/main.ts') && !f.startsWith('shared/runtime/'))
      .filter((f) =>
        /\bprocess\.|(?<!['"])\bDeno\.|from 'node:process'/.test(
          withoutComments(readFileSync(join(ROOT, f), 'utf8')),
        ),
      );
    assert.deepEqual(offenders, []);
  });

  test('console is used only by the log module and the CLI output module', () => {
    const offenders = files
      .filter((f) => !isTest(f) && !f.startsWith('shared/log/') && f !== 'pilot/output.ts')
      .filter((f) => /\bconsole\./.test(readFileSync(join(ROOT, f), 'utf8')));
    assert.deepEqual(offenders, []);
  });

  test('every environment variable the programs read is documented in docs/configuration.md', () => {
    const documented = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
    const missing = new Set<string>();
    for (const file of files.filter((f) => !isTest(f))) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const match of text.matchAll(/'((?:SPIKE|SPIFFE)_[A-Z0-9_]+)'/g)) {
        const name = match[1] as string;
        if (!documented.includes(`\`${name}\``)) missing.add(`${name} (${file})`);
      }
    }
    assert.deepEqual([...missing], []);
  });

  test('no private key is committed anywhere in the repository', () => {
    // Not even a PEM private-key header: secret scanners flag it, and code
    // that writes PEM builds its labels (shared/spiffe/der.ts). Tests mint
    // their keys at run time and check them by parsing, not by their text.
    const pemKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        if (['node_modules', '.tools', '.git', 'scratch', '.data'].includes(name)) continue;
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (pemKey.test(readFileSync(path, 'latin1'))) offenders.push(relative(ROOT, path));
      }
    };
    walk(ROOT);
    assert.deepEqual(offenders, []);
  });
});

/**
 * The import cycles of a graph, each once, as `a.ts -> b.ts -> a.ts`: a
 * depth-first walk that reports every edge back to a file still on the stack.
 */
function importCycles(edges: ReadonlyMap<string, readonly string[]>): string[] {
  const cycles: string[] = [];
  const done = new Set<string>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  function visit(file: string): void {
    stack.push(file);
    onStack.add(file);
    for (const target of edges.get(file) ?? []) {
      if (onStack.has(target)) {
        cycles.push([...stack.slice(stack.indexOf(target)), target].join(' -> '));
      } else if (!done.has(target) && edges.has(target)) {
        visit(target);
      }
    }
    stack.pop();
    onStack.delete(file);
    done.add(file);
  }
  for (const file of edges.keys()) {
    if (!done.has(file)) visit(file);
  }
  return cycles;
}

/**
 * Routes whose handlers are not led by an `authorize()` guard. Hono lists one
 * `RouterRoute` per handler, in registration order: `app.get(path, a, b, c)`
 * gives three consecutive entries with the same method and path, and
 * `app.use(mw)` gives an `ALL` entry whose path ends in `*`. A sub-app that
 * installs its own `onError` has its handlers wrapped by `route()`, which
 * hides the guard: only `app.ts` may call `onError`.
 */
async function unguardedRoutes(
  routes: ReadonlyArray<{ method: string; path: string; handler: unknown }>,
  exemptPaths: readonly string[],
): Promise<string[]> {
  const { isAuthorizeHandler } = await import('../shared/http/authorize.ts');
  const problems: string[] = [];
  let start = 0;
  while (start < routes.length) {
    const first = routes[start] as (typeof routes)[number];
    let end = start + 1;
    while (
      end < routes.length &&
      routes[end]?.method === first.method &&
      routes[end]?.path === first.path
    ) {
      end += 1;
    }
    const handlers = routes.slice(start, end).map((route) => route.handler);
    start = end;
    const isMiddleware = first.method === 'ALL' && first.path.endsWith('*');
    if (isMiddleware || exemptPaths.includes(first.path)) continue;
    // Guard → validate → act: the guard comes first and something follows it.
    if (handlers.length < 2 || !isAuthorizeHandler(handlers[0])) {
      problems.push(`${first.method} ${first.path}`);
    }
  }
  return problems;
}

describe('route guards', () => {
  test('every route of the Nexus app has an authorize guard', async () => {
    const { createApp } = await import('../nexus/app.ts');
    const { PATHS } = await import('../shared/api/paths.ts');
    const { createLogger, createMemorySink } = await import('../shared/log/logger.ts');
    const { parseTrustDomain } = await import('../shared/spiffe/spiffe_id.ts');
    // Routes are only registered here, never called: the stores can be stand-ins.
    const unused = {} as never;
    const app = createApp({
      getPeer: () => undefined,
      logger: createLogger({ component: 'nexus', sink: createMemorySink() }),
      trustDomain: parseTrustDomain('architecture.test'),
      rootKey: unused,
      manager: unused,
      secrets: unused,
      watches: unused,
      policies: unused,
      transitKeys: unused,
      policyCache: unused,
      access: unused,
      identity: unused,
      refusals: unused,
      deniedRequests: unused,
      maxBodyBytes: 1024,
    });
    const endpoints = new Set(app.routes.map((route) => `${route.method} ${route.path}`));
    for (const expected of [
      `GET ${PATHS.health}`,
      `GET ${PATHS.status}`,
      `POST ${PATHS.operatorRecover}`,
      `POST ${PATHS.operatorRestore}`,
      `GET ${PATHS.secretList}`,
      `GET ${PATHS.policies}`,
      `POST ${PATHS.transitEncrypt}/:name`,
    ]) {
      assert.ok(endpoints.has(expected), `${expected} is not mounted`);
    }
    assert.deepEqual(await unguardedRoutes(app.routes, []), []);
  });

  test('every route of the Keeper app has an authorize guard', async () => {
    const { createApp } = await import('../keeper/app.ts');
    const { ShardHolder } = await import('../keeper/shard_holder.ts');
    const { PATHS } = await import('../shared/api/paths.ts');
    const { createLogger, createMemorySink } = await import('../shared/log/logger.ts');
    const { parseTrustDomain } = await import('../shared/spiffe/spiffe_id.ts');
    const logger = createLogger({ component: 'keeper', sink: createMemorySink() });
    const app = createApp({
      getPeer: () => undefined,
      logger,
      trustDomain: parseTrustDomain('architecture.test'),
      holder: new ShardHolder({ logger }),
    });
    const endpoints = new Set(
      app.routes
        .filter((route) => !(route.method === 'ALL' && route.path.endsWith('*')))
        .map((route) => `${route.method} ${route.path}`),
    );
    // The walk must see the routes, or an empty list would pass.
    for (const expected of [
      `PUT ${PATHS.keeperShards}`,
      `GET ${PATHS.keeperShards}`,
      `GET ${PATHS.keeperGenerations}`,
      `POST ${PATHS.keeperPrune}`,
    ]) {
      assert.ok(endpoints.has(expected), `${expected} is not mounted`);
    }
    assert.deepEqual(await unguardedRoutes(app.routes, []), []);
  });

  test('the guard check reports routes without a leading authorize handler', async () => {
    const { Hono } = await import('hono');
    const { authorize } = await import('../shared/http/authorize.ts');
    const { matchAny } = await import('../shared/spiffe/match.ts');
    const ok = (c: { text(body: string): Response }) => c.text('ok');
    const app = new Hono();
    app.use(async (_c, next) => next());
    app.get('/guarded', authorize(matchAny(), { action: 'test.read' }), ok);
    app.get('/open', ok);
    app.put(
      '/guard-second',
      async (_c, next) => next(),
      authorize(matchAny(), { action: 'test.read' }),
      ok,
    );
    app.post('/guard-only', authorize(matchAny(), { action: 'test.read' }));
    const withOwnErrorHandler = new Hono();
    withOwnErrorHandler.get('/wrapped', authorize(matchAny(), { action: 'test.read' }), ok);
    withOwnErrorHandler.onError((_err, c) => c.text('no', 500));
    app.route('/sub', withOwnErrorHandler);
    assert.deepEqual(await unguardedRoutes(app.routes, []), [
      'GET /open',
      'PUT /guard-second',
      'POST /guard-only',
      'GET /sub/wrapped',
    ]);
  });
});
