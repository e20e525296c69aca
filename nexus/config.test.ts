import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError } from '../shared/errors/errors.ts';
import { DEFAULT_SERVER_LIMITS } from '../shared/http/serve.ts';
import {
  DEFAULT_RATE_LIMIT_BURST,
  DEFAULT_RATE_LIMIT_PER_SECOND,
  ENV_NEXUS_BACKEND_STORE,
  ENV_NEXUS_CACHE_BYTES,
  ENV_NEXUS_CACHE_ENTRIES,
  ENV_NEXUS_DATABASE_URL,
  ENV_NEXUS_KEEPER_IDS,
  ENV_NEXUS_MAX_WATCHES,
  ENV_NEXUS_MAX_WATCHES_PER_IDENTITY,
  ENV_NEXUS_QUOTA_BYTES,
  ENV_NEXUS_QUOTA_OVERRIDES,
  ENV_NEXUS_QUOTA_PATHS,
  ENV_NEXUS_SQLITE_SYNCHRONOUS,
  loadNexusConfig,
} from './config.ts';
import { DEFAULT_WATCH_LIMITS } from './routes/secret_watch.ts';
import { DEFAULT_CACHE_LIMITS } from './store/sealed_row_cache.ts';
import { DEFAULT_QUOTA_BYTES, DEFAULT_QUOTA_PATHS } from './store/secret_quotas.ts';

const BASE = {
  SPIKE_TRUST_ROOT: 'example.org',
  SPIFFE_ENDPOINT_SOCKET: 'unix:///tmp/spike-agent.sock',
  SPIKE_NEXUS_KEEPER_PEERS: 'https://127.0.0.1:8443,https://127.0.0.1:8444,https://127.0.0.1:8445',
};

function problemsOf(env: Record<string, string>): string {
  try {
    loadNexusConfig({ ...BASE, ...env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

describe('loadNexusConfig() backend store', () => {
  test('defaults to sqlite without a database URL', () => {
    const config = loadNexusConfig(BASE);
    assert.equal(config.backendStore, 'sqlite');
    assert.equal(config.databaseUrl, undefined);
  });

  test('SQLite syncs every commit (full) unless normal is chosen; nothing else is accepted', () => {
    assert.equal(loadNexusConfig(BASE).sqliteSynchronous, 'full');
    const normal = loadNexusConfig({ ...BASE, [ENV_NEXUS_SQLITE_SYNCHRONOUS]: 'normal' });
    assert.equal(normal.sqliteSynchronous, 'normal');
    assert.match(problemsOf({ [ENV_NEXUS_SQLITE_SYNCHRONOUS]: 'off' }), /SQLITE_SYNCHRONOUS/);
  });

  test('postgres takes its URL from SPIKE_NEXUS_DATABASE_URL', () => {
    const url = 'postgres://spike:pw@db.example:5432/spike?sslmode=require';
    const config = loadNexusConfig({
      ...BASE,
      [ENV_NEXUS_BACKEND_STORE]: 'postgres',
      [ENV_NEXUS_DATABASE_URL]: url,
    });
    assert.equal(config.backendStore, 'postgres');
    assert.equal(config.databaseUrl, url);
  });

  test('postgres without a URL is refused, naming the variable', () => {
    assert.match(
      problemsOf({ [ENV_NEXUS_BACKEND_STORE]: 'postgres' }),
      /SPIKE_NEXUS_DATABASE_URL is required/,
    );
  });

  test('a malformed URL is refused without showing its password', () => {
    const message = problemsOf({
      [ENV_NEXUS_BACKEND_STORE]: 'postgres',
      [ENV_NEXUS_DATABASE_URL]: 'mysql://spike:hunter2@db.example/spike',
    });
    assert.match(message, /SPIKE_NEXUS_DATABASE_URL must be a postgres:/);
    assert.doesNotMatch(message, /hunter2/);
    assert.match(message, /spike:\*\*\*@db\.example/);
  });

  test('the URL is ignored by other backends', () => {
    const config = loadNexusConfig({ ...BASE, [ENV_NEXUS_DATABASE_URL]: 'not a url' });
    assert.equal(config.databaseUrl, undefined);
  });
});

describe('loadNexusConfig() resource limits', () => {
  test('defaults to the server defaults and a generous per-identity rate', () => {
    const config = loadNexusConfig(BASE);
    assert.deepEqual({ ...config.limits }, { ...DEFAULT_SERVER_LIMITS });
    assert.deepEqual(
      { ...config.rateLimit },
      { ratePerSecond: DEFAULT_RATE_LIMIT_PER_SECOND, burst: DEFAULT_RATE_LIMIT_BURST },
    );
    assert.ok(Object.isFrozen(config.limits));
  });

  test('reads every timeout as a duration and every cap as a count', () => {
    const config = loadNexusConfig({
      ...BASE,
      SPIKE_NEXUS_HANDSHAKE_TIMEOUT: '2s',
      SPIKE_NEXUS_HEADERS_TIMEOUT: '3s',
      SPIKE_NEXUS_REQUEST_TIMEOUT: '1m',
      SPIKE_NEXUS_KEEP_ALIVE_TIMEOUT: '500ms',
      SPIKE_NEXUS_MAX_CONNECTIONS: '100',
      SPIKE_NEXUS_MAX_CONNECTIONS_PER_ADDRESS: '0',
      SPIKE_NEXUS_MAX_CONNECTIONS_PER_IDENTITY: '10',
      SPIKE_NEXUS_RATE_LIMIT_PER_SECOND: '0',
      SPIKE_NEXUS_RATE_LIMIT_BURST: '5',
    });
    assert.deepEqual(
      { ...config.limits },
      {
        handshakeTimeoutMs: 2_000,
        headersTimeoutMs: 3_000,
        requestTimeoutMs: 60_000,
        keepAliveTimeoutMs: 500,
        maxConnections: 100,
        maxConnectionsPerAddress: 0,
        maxConnectionsPerIdentity: 10,
      },
    );
    assert.deepEqual({ ...config.rateLimit }, { ratePerSecond: 0, burst: 5 });
  });

  test('reports every bad limit at once, naming each variable', () => {
    const message = problemsOf({
      SPIKE_NEXUS_HANDSHAKE_TIMEOUT: '0',
      SPIKE_NEXUS_KEEP_ALIVE_TIMEOUT: 'soon',
      SPIKE_NEXUS_MAX_CONNECTIONS: '-1',
      SPIKE_NEXUS_RATE_LIMIT_BURST: '0',
      SPIKE_NEXUS_RATE_LIMIT_PER_SECOND: '1.5',
    });
    assert.match(message, /SPIKE_NEXUS_HANDSHAKE_TIMEOUT must be at least 100ms/);
    assert.match(message, /SPIKE_NEXUS_KEEP_ALIVE_TIMEOUT must be a duration/);
    assert.match(message, /SPIKE_NEXUS_MAX_CONNECTIONS must be at least 0/);
    assert.match(message, /SPIKE_NEXUS_RATE_LIMIT_BURST must be at least 1/);
    assert.match(message, /SPIKE_NEXUS_RATE_LIMIT_PER_SECOND must be an integer/);
  });

  test('refuses a headers timeout longer than the request timeout', () => {
    assert.match(
      problemsOf({ SPIKE_NEXUS_HEADERS_TIMEOUT: '40s', SPIKE_NEXUS_REQUEST_TIMEOUT: '30s' }),
      /SPIKE_NEXUS_HEADERS_TIMEOUT must not exceed SPIKE_NEXUS_REQUEST_TIMEOUT/,
    );
  });
});

describe('loadNexusConfig() Keeper identities', () => {
  const ids = (env: Record<string, string>) =>
    loadNexusConfig({ ...BASE, ...env }).keeperPeers.map((peer) => [
      peer.url.origin,
      peer.id.toString(),
    ]);

  test('by default the i-th Keeper (1-based) must be .../spike/keeper/<i>', () => {
    assert.deepEqual(ids({}), [
      ['https://127.0.0.1:8443', 'spiffe://example.org/spike/keeper/1'],
      ['https://127.0.0.1:8444', 'spiffe://example.org/spike/keeper/2'],
      ['https://127.0.0.1:8445', 'spiffe://example.org/spike/keeper/3'],
    ]);
  });

  test('SPIKE_NEXUS_KEEPER_IDS names them in the order of the peers', () => {
    const named = [
      'spiffe://example.org/spike/keeper/pod-b',
      'spiffe://example.org/spike/keeper',
      'spiffe://example.org/spike/keeper/pod-a/x',
    ];
    assert.deepEqual(
      ids({ [ENV_NEXUS_KEEPER_IDS]: named.join(', ') }).map(([, id]) => id),
      named,
    );
  });

  for (const [what, value, problem] of [
    [
      'too few',
      'spiffe://example.org/spike/keeper/1,spiffe://example.org/spike/keeper/2',
      /SPIKE_NEXUS_KEEPER_IDS must list exactly one SPIFFE ID per entry of SPIKE_NEXUS_KEEPER_PEERS \(3\), in the same order; it lists 2/,
    ],
    [
      'a repeated ID',
      'spiffe://example.org/spike/keeper/1,spiffe://example.org/spike/keeper/1,spiffe://example.org/spike/keeper/3',
      /duplicate entry "spiffe:\/\/example\.org\/spike\/keeper\/1"/,
    ],
    [
      'not a SPIFFE ID',
      'spiffe://example.org/spike/keeper/1,https://example.org/k,spiffe://example.org/spike/keeper/3',
      /is not a SPIFFE ID: "https:\/\/example\.org\/k"/,
    ],
    [
      'another trust domain',
      'spiffe://example.org/spike/keeper/1,spiffe://evil.org/spike/keeper/2,spiffe://example.org/spike/keeper/3',
      /must be Keeper IDs of "example\.org".*got "spiffe:\/\/evil\.org\/spike\/keeper\/2"/,
    ],
    [
      'not a Keeper ID',
      'spiffe://example.org/spike/keeper/1,spiffe://example.org/spike/nexus,spiffe://example.org/spike/keeperx/3',
      /got "spiffe:\/\/example\.org\/spike\/nexus"[\s\S]*got "spiffe:\/\/example\.org\/spike\/keeperx\/3"/,
    ],
    [
      'an empty entry',
      'spiffe://example.org/spike/keeper/1,,spiffe://example.org/spike/keeper/3',
      /must not contain empty entries/,
    ],
  ] as const) {
    test(`${what} is refused`, () => {
      assert.match(problemsOf({ [ENV_NEXUS_KEEPER_IDS]: value }), problem);
    });
  }
});

describe('loadNexusConfig() secret quotas', () => {
  test('default to 10,000 paths and 256 MiB per namespace, with no namespace of its own', () => {
    const { secretQuotas } = loadNexusConfig(BASE);
    assert.deepEqual(secretQuotas.default, { paths: 10_000, bytes: 256 * 1024 * 1024 });
    assert.equal(DEFAULT_QUOTA_PATHS, 10_000);
    assert.equal(DEFAULT_QUOTA_BYTES, 268_435_456);
    assert.equal(secretQuotas.namespaces.size, 0);
  });

  test('read counts, byte units, "unlimited" and per-namespace overrides', () => {
    const { secretQuotas } = loadNexusConfig({
      ...BASE,
      [ENV_NEXUS_QUOTA_PATHS]: '500',
      [ENV_NEXUS_QUOTA_BYTES]: '64MiB',
      [ENV_NEXUS_QUOTA_OVERRIDES]: 'ci=50000:1GiB, scratch = unlimited : unlimited,tiny=1:4096',
    });
    assert.deepEqual(secretQuotas.default, { paths: 500, bytes: 64 * 2 ** 20 });
    assert.deepEqual(Object.fromEntries(secretQuotas.namespaces), {
      ci: { paths: 50_000, bytes: 2 ** 30 },
      scratch: { paths: null, bytes: null },
      tiny: { paths: 1, bytes: 4096 },
    });
    const unlimited = loadNexusConfig({
      ...BASE,
      [ENV_NEXUS_QUOTA_PATHS]: 'unlimited',
      [ENV_NEXUS_QUOTA_BYTES]: 'unlimited',
    });
    assert.deepEqual(unlimited.secretQuotas.default, { paths: null, bytes: null });
  });

  test('refuse 0, negatives, units on a count and malformed overrides, all at once', () => {
    const problems = problemsOf({
      [ENV_NEXUS_QUOTA_PATHS]: '0',
      [ENV_NEXUS_QUOTA_BYTES]: '-5',
      [ENV_NEXUS_QUOTA_OVERRIDES]: 'a/b=1:1,ok=1MiB:1,two=1:1,two=2:2,bad=1,=1:1,x=1:1:1',
    });
    assert.match(problems, /SPIKE_NEXUS_QUOTA_PATHS must be "unlimited" or a whole number >= 1/);
    assert.match(problems, /SPIKE_NEXUS_QUOTA_BYTES must be "unlimited" or a number of bytes/);
    for (const entry of ['a/b=1:1', 'bad=1', '=1:1', 'x=1:1:1']) {
      assert.ok(problems.includes(`got "${entry}"`), `${entry}: ${problems}`);
    }
    assert.match(problems, /has the entry "ok=1MiB:1": paths must be/);
    assert.match(problems, /names the namespace "two" twice/);
    assert.match(problemsOf({ [ENV_NEXUS_QUOTA_BYTES]: '1PiB' }), /SPIKE_NEXUS_QUOTA_BYTES/);
  });
});

describe('loadNexusConfig() cache of sealed rows', () => {
  test('has default limits, takes entries and bytes (with a unit), and 0 disables', () => {
    assert.deepEqual(loadNexusConfig(BASE).cache, DEFAULT_CACHE_LIMITS);
    const set = loadNexusConfig({
      ...BASE,
      [ENV_NEXUS_CACHE_ENTRIES]: '500',
      [ENV_NEXUS_CACHE_BYTES]: '64MiB',
    });
    assert.deepEqual(set.cache, { maxEntries: 500, maxBytes: 64 * 1024 * 1024 });
    const off = loadNexusConfig({
      ...BASE,
      [ENV_NEXUS_CACHE_ENTRIES]: '0',
      [ENV_NEXUS_CACHE_BYTES]: '0',
    });
    assert.deepEqual(off.cache, { maxEntries: 0, maxBytes: 0 });
  });

  test('refuses what is not a size, naming the variable', () => {
    assert.match(problemsOf({ [ENV_NEXUS_CACHE_ENTRIES]: '-1' }), /SPIKE_NEXUS_CACHE_ENTRIES/);
    for (const bad of ['lots', '1PiB', '-5', 'unlimited', '2048TiB']) {
      assert.match(problemsOf({ [ENV_NEXUS_CACHE_BYTES]: bad }), /SPIKE_NEXUS_CACHE_BYTES/, bad);
    }
  });
});

describe('loadNexusConfig() audit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spike-nexus-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('fails closed and has no key unless told otherwise', () => {
    const config = loadNexusConfig(BASE);
    assert.equal(config.auditFailClosed, true);
    assert.equal(config.auditKey, undefined);
    assert.equal(
      loadNexusConfig({ ...BASE, SPIKE_NEXUS_AUDIT_FAIL_CLOSED: 'false' }).auditFailClosed,
      false,
    );
    assert.match(
      problemsOf({ SPIKE_NEXUS_AUDIT_FAIL_CLOSED: 'no' }),
      /SPIKE_NEXUS_AUDIT_FAIL_CLOSED must be one of true, false/,
    );
  });

  test('reads the key from an owner-only file of 64 hex digits', () => {
    const file = join(dir, 'audit.key');
    writeFileSync(file, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    assert.deepEqual(
      loadNexusConfig({ ...BASE, SPIKE_NEXUS_AUDIT_KEY_FILE: file }).auditKey,
      new Uint8Array(32).fill(0xab),
    );
  });

  test('refuses a key file others may read, one without a key, a missing or relative one, never quoting the content', () => {
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, 'cd'.repeat(32), { mode: 0o644 });
    chmodSync(loose, 0o644);
    assert.match(
      problemsOf({ SPIKE_NEXUS_AUDIT_KEY_FILE: loose }),
      /has mode 0644; it must be readable and writable by its owner only/,
    );
    const short = join(dir, 'short.key');
    writeFileSync(short, 'secretish', { mode: 0o600 });
    const problems = problemsOf({ SPIKE_NEXUS_AUDIT_KEY_FILE: short });
    assert.match(problems, /must hold 64 hex digits/);
    assert.ok(!problems.includes('secretish'));
    assert.match(
      problemsOf({ SPIKE_NEXUS_AUDIT_KEY_FILE: join(dir, 'none.key') }),
      /cannot be read: ENOENT/,
    );
    assert.match(
      problemsOf({ SPIKE_NEXUS_AUDIT_KEY_FILE: 'audit.key' }),
      /must be an absolute file path/,
    );
  });
});

describe('loadNexusConfig() long-poll reads', () => {
  test('has default limits, takes both, and 0 refuses every watch', () => {
    assert.deepEqual(loadNexusConfig(BASE).watches, DEFAULT_WATCH_LIMITS);
    const set = loadNexusConfig({
      ...BASE,
      [ENV_NEXUS_MAX_WATCHES]: '2000',
      [ENV_NEXUS_MAX_WATCHES_PER_IDENTITY]: '0',
    });
    assert.deepEqual(set.watches, { maxWatches: 2000, maxWatchesPerIdentity: 0 });
  });

  test('refuses what is not a count, naming the variable', () => {
    for (const bad of ['-1', 'many', '1.5', '1e9']) {
      assert.match(problemsOf({ [ENV_NEXUS_MAX_WATCHES]: bad }), /SPIKE_NEXUS_MAX_WATCHES/, bad);
      assert.match(
        problemsOf({ [ENV_NEXUS_MAX_WATCHES_PER_IDENTITY]: bad }),
        /SPIKE_NEXUS_MAX_WATCHES_PER_IDENTITY/,
        bad,
      );
    }
  });
});
