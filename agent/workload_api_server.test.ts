import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { ConfigError } from '../shared/errors/errors.ts';
import { createLogger, createMemorySink } from '../shared/log/logger.ts';
import { delay } from '../shared/runtime/delay.ts';
import { parseSpiffeId, parseTrustDomain } from '../shared/spiffe/spiffe_id.ts';
import { RawWorkloadClient } from '../test/harness/raw_workload_client.ts';
import { type IssuedSvid, type LocalCa, loadOrCreateCa } from './ca.ts';
import { socketPathFor } from './registrations.ts';
import {
  type BundleSource,
  ensureSocketDir,
  type SvidSource,
  startWorkloadApiServer,
  type WorkloadApiServer,
} from './workload_api_server.ts';

const TD = parseTrustDomain('example.org');
const ID = parseSpiffeId('spiffe://example.org/app/web');
const WAIT_MS = 5_000;

/** A hand-driven SVID source and bundle, so tests decide when things change. */
class Pushable<T> {
  value: T;
  readonly listeners = new Set<(value: T) => void>();

  constructor(value: T) {
    this.value = value;
  }

  current(): T {
    return this.value;
  }

  subscribe(listener: (value: T) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  push(value: T): void {
    this.value = value;
    for (const listener of this.listeners) {
      listener(value);
    }
  }
}

function bytes(value: unknown): Uint8Array {
  assert.ok(value instanceof Uint8Array, 'expected bytes');
  return new Uint8Array(value);
}

function firstSvid(message: Record<string, unknown>): Record<string, unknown> {
  const svids = message.svids as Record<string, unknown>[];
  assert.equal(svids.length, 1);
  return svids[0] ?? {};
}

/**
 * Leaves a socket file at `path` that nobody listens on, as a crashed agent
 * would: bind elsewhere, move the socket file, then stop listening.
 */
async function leaveStaleSocket(bindPath: string, path: string): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(bindPath, resolve);
  });
  await rename(bindPath, path);
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      assert.fail(`condition not met within ${timeoutMs}ms`);
    }
    await delay(20);
  }
}

describe('Workload API server', () => {
  let root: string;
  let socketDir: string;
  let ca: LocalCa;
  let svids: Pushable<IssuedSvid>;
  let bundle: Pushable<Uint8Array> & BundleSource;
  let server: WorkloadApiServer;
  const clients: RawWorkloadClient[] = [];
  const sink = createMemorySink();
  const logger = createLogger({ component: 'agent', level: 'debug', sink });

  function client(): RawWorkloadClient {
    const c = new RawWorkloadClient(server.address);
    clients.push(c);
    return c;
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'spike-wapi-'));
    socketDir = join(root, 'sockets');
    ca = await loadOrCreateCa({ trustDomain: TD, dataDir: root, caTtlMs: 86_400_000, logger });
    svids = new Pushable(await ca.issueSvid(ID, 60_000));
    bundle = Object.assign(new Pushable(ca.certificateDer()), { trustDomain: TD });
    await ensureSocketDir(socketDir);
    server = await startWorkloadApiServer({
      registration: { name: 'web', spiffeId: ID, socketPath: socketPathFor(socketDir, 'web') },
      svids: svids satisfies SvidSource,
      bundle,
      logger,
    });
  });

  after(async () => {
    for (const c of clients) {
      c.close();
    }
    await server.close();
    await rm(root, { recursive: true, force: true });
  });

  test('binds an owner-only socket in an owner-only directory', async () => {
    assert.equal(server.address, `unix://${join(socketDir, 'web.sock')}`);
    const socket = await lstat(server.socketPath);
    assert.ok(socket.isSocket());
    assert.equal(socket.mode & 0o777, 0o600);
    assert.equal((await lstat(socketDir)).mode & 0o777, 0o700);
  });

  test('FetchX509SVID answers at once with the SVID, its key and the bundle', async () => {
    const stream = client().stream('FetchX509SVID');
    const svid = firstSvid(await stream.next(WAIT_MS));
    assert.equal(svid.spiffe_id, ID.toString());
    assert.deepEqual(bytes(svid.x509_svid), svids.value.certificateDer);
    assert.deepEqual(bytes(svid.x509_svid_key), svids.value.privateKeyPkcs8());
    assert.deepEqual(bytes(svid.bundle), ca.certificateDer());
    const leaf = new X509Certificate(bytes(svid.x509_svid));
    assert.equal(leaf.subjectAltName, `URI:${ID.toString()}`);
    stream.cancel();
  });

  test('FetchX509SVID pushes a full message on every rotation and bundle change', async () => {
    const stream = client().stream('FetchX509SVID');
    await stream.next(WAIT_MS);
    const rotated = await ca.issueSvid(ID, 60_000);
    svids.push(rotated);
    const afterRotation = firstSvid(await stream.next(WAIT_MS));
    assert.deepEqual(bytes(afterRotation.x509_svid), rotated.certificateDer);
    assert.deepEqual(bytes(afterRotation.bundle), ca.certificateDer());

    const other = new Uint8Array([...ca.certificateDer(), ...ca.certificateDer()]);
    bundle.push(other);
    const afterBundle = firstSvid(await stream.next(WAIT_MS));
    assert.deepEqual(bytes(afterBundle.x509_svid), rotated.certificateDer);
    assert.deepEqual(bytes(afterBundle.bundle), other);
    bundle.push(ca.certificateDer());
    await stream.next(WAIT_MS);
    stream.cancel();
  });

  test('FetchX509Bundles sends the trust-domain bundle and pushes changes', async () => {
    const stream = client().stream('FetchX509Bundles');
    const first = await stream.next(WAIT_MS);
    const bundles = first.bundles as Record<string, unknown>;
    assert.deepEqual(Object.keys(bundles), ['spiffe://example.org']);
    assert.deepEqual(bytes(bundles['spiffe://example.org']), ca.certificateDer());
    const changed = new Uint8Array([...ca.certificateDer(), ...ca.certificateDer()]);
    bundle.push(changed);
    const second = await stream.next(WAIT_MS);
    assert.deepEqual(
      bytes((second.bundles as Record<string, unknown>)['spiffe://example.org']),
      changed,
    );
    bundle.push(ca.certificateDer());
    stream.cancel();
  });

  test('refuses a call without the security header, or with a wrong or doubled one', async () => {
    for (const header of [[], ['false'], ['TRUE'], ['true', 'true']]) {
      for (const rpc of ['FetchX509SVID', 'FetchX509Bundles']) {
        const stream = client().stream(rpc, { header });
        const result = await stream.status(WAIT_MS);
        assert.equal(result.code, status.INVALID_ARGUMENT, `${rpc} with ${JSON.stringify(header)}`);
        assert.equal(result.details, 'security header missing from request');
      }
      const unary = await client().unary('FetchJWTSVID', { audience: ['x'] }, { header });
      assert.equal(unary.code, status.INVALID_ARGUMENT);
    }
  });

  test('answers JWT and WIT RPCs with Unimplemented', async () => {
    const c = client();
    assert.equal(
      (await c.unary('FetchJWTSVID', { audience: ['nexus'] })).code,
      status.UNIMPLEMENTED,
    );
    assert.equal(
      (await c.unary('ValidateJWTSVID', { audience: 'nexus', svid: 'x.y.z' })).code,
      status.UNIMPLEMENTED,
    );
    for (const rpc of ['FetchJWTBundles', 'FetchWITSVID', 'FetchWITBundles']) {
      const result = await c.stream(rpc).status(WAIT_MS);
      assert.equal(result.code, status.UNIMPLEMENTED, rpc);
      assert.match(result.details, /X509-SVIDs only/);
    }
  });

  test('drops the listeners of a stream the client cancels', async () => {
    await until(() => server.openStreams() === 0, WAIT_MS);
    const baseline = svids.listeners.size;
    const stream = client().stream('FetchX509SVID');
    await stream.next(WAIT_MS);
    assert.equal(server.openStreams(), 1);
    assert.equal(svids.listeners.size, baseline + 1);
    stream.cancel();
    await until(() => server.openStreams() === 0 && svids.listeners.size === baseline, WAIT_MS);
  });
});

describe('Workload API server start and stop', () => {
  let root: string;
  let ca: LocalCa;
  const logger = createLogger({ component: 'agent', level: 'error', sink: createMemorySink() });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'spike-wapi2-'));
    ca = await loadOrCreateCa({ trustDomain: TD, dataDir: root, caTtlMs: 86_400_000, logger });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function start(socketPath: string): Promise<WorkloadApiServer> {
    const svid = await ca.issueSvid(ID, 60_000);
    return startWorkloadApiServer({
      registration: { name: 'web', spiffeId: ID, socketPath },
      svids: { current: () => svid, subscribe: () => () => {} },
      bundle: { trustDomain: TD, current: () => ca.certificateDer(), subscribe: () => () => {} },
      logger,
    });
  }

  test('replaces a stale socket file, and close() ends streams and removes the socket', async () => {
    const dir = join(root, 'stale');
    await ensureSocketDir(dir);
    const path = join(dir, 'web.sock');
    await leaveStaleSocket(join(dir, 'bind.sock'), path);
    assert.ok((await lstat(path)).isSocket());

    const server = await start(path);
    const raw = new RawWorkloadClient(server.address);
    try {
      const stream = raw.stream('FetchX509SVID');
      await stream.next(WAIT_MS);
      assert.equal(server.openStreams(), 1);
      await server.close();
      const end = await stream.status(WAIT_MS);
      assert.ok(end.code === status.OK || end.code === status.UNAVAILABLE, `code ${end.code}`);
      assert.equal(server.openStreams(), 0);
    } finally {
      raw.close();
    }
    assert.equal(await lstat(path).catch(() => undefined), undefined);
  });

  test('refuses to replace a socket that another agent serves, and leaves that one serving', async () => {
    const dir = join(root, 'live');
    await ensureSocketDir(dir);
    const path = join(dir, 'web.sock');
    const first = await start(path);
    try {
      await assert.rejects(start(path), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.problems[0] ?? '', /is served by another running agent/);
        return true;
      });
      assert.ok((await lstat(path)).isSocket());
      const raw = new RawWorkloadClient(first.address);
      try {
        const answer = await raw.stream('FetchX509SVID').next(WAIT_MS);
        assert.equal(firstSvid(answer).spiffe_id, ID.toString());
      } finally {
        raw.close();
      }
    } finally {
      await first.close();
    }
  });

  test('refuses to replace a file that is not a socket', async () => {
    const dir = join(root, 'notsock');
    await ensureSocketDir(dir);
    const path = join(dir, 'web.sock');
    await writeFile(path, 'data');
    await assert.rejects(start(path), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.problems[0] ?? '', /is not a socket/);
      return true;
    });
  });

  test('ensureSocketDir() creates 0700 and refuses a directory others can enter', async () => {
    const created = join(root, 'new', 'sockets');
    await ensureSocketDir(created);
    assert.equal((await lstat(created)).mode & 0o777, 0o700);
    const shared = join(root, 'shared');
    await mkdir(shared);
    await chmod(shared, 0o755);
    await assert.rejects(ensureSocketDir(shared), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.problems[0] ?? '', /has mode 0755; it must be accessible by its owner only/);
      return true;
    });
  });
});
