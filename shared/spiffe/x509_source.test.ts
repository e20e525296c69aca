import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { after, afterEach, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import {
  type FakeWorkloadApi,
  rawBundleMap,
  rawSvid,
  startFakeWorkloadApi,
  waitUntil,
} from '../../test/harness/fake_workload_api.ts';
import { createTestCa, type TestCa, type TestSvid } from '../../test/harness/pki.ts';
import {
  SvidInvalidError,
  WorkloadApiRejectedError,
  WorkloadApiUnavailableError,
} from '../errors/errors.ts';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { X509BundleSet } from './bundle.ts';
import {
  createX509Source,
  fetchX509Source,
  StaticX509Source,
  type X509Source,
} from './x509_source.ts';

const UNIT_MS = 20;

let ca: TestCa;
let partnerCa: TestCa;
let otherCa: TestCa;
let svidA: TestSvid;
let svidB: TestSvid;
let svidExternal: TestSvid;

before(async () => {
  ca = await createTestCa('example.org');
  partnerCa = await createTestCa('partner.test');
  otherCa = await createTestCa('other.test');
  svidA = await ca.issueSvid('spiffe://example.org/spike/nexus');
  svidB = await ca.issueSvid('spiffe://example.org/spike/nexus');
  svidExternal = await ca.issueSvid('spiffe://example.org/spike/nexus-external');
});

const fakes: FakeWorkloadApi[] = [];
const sources: X509Source[] = [];

async function startFake(options: { transport?: 'unix' | 'tcp' } = {}): Promise<FakeWorkloadApi> {
  const fake = await startFakeWorkloadApi(options);
  fakes.push(fake);
  return fake;
}

async function connect(
  fake: FakeWorkloadApi | string,
  options: { hint?: string; timeoutMs?: number; failFast?: boolean } = {},
) {
  const sink = createMemorySink();
  const source = await createX509Source({
    address: typeof fake === 'string' ? fake : fake.address,
    logger: createLogger({ component: 'test', level: 'debug', sink }),
    backoffUnitMs: UNIT_MS,
    timeoutMs: options.timeoutMs ?? 5000,
    ...(options.hint === undefined ? {} : { hint: options.hint }),
    ...(options.failFast === undefined ? {} : { failFast: options.failFast }),
  });
  sources.push(source);
  return { source, sink };
}

afterEach(async () => {
  for (const source of sources.splice(0)) {
    source.close();
  }
  for (const fake of fakes.splice(0)) {
    await fake.close();
  }
});

function leafHex(svid: { chain: readonly Uint8Array[] }): string {
  return Buffer.from(svid.chain[0] ?? []).toString('hex');
}

function linesWith(sink: ReturnType<typeof createMemorySink>, msg: RegExp) {
  return sink.lines.filter((line) => msg.test(String(line.msg)));
}

describe('createX509Source()', () => {
  test('resolves with the first SVID and the bundles of the response', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({
      svids: [rawSvid(svidA, ca)],
      federated_bundles: rawBundleMap(partnerCa),
    });
    const { source, sink } = await connect(fake);
    const svid = source.getX509Svid();
    assert.equal(svid.id.toString(), 'spiffe://example.org/spike/nexus');
    assert.equal(leafHex(svid), leafHex(svidA));
    assert.ok(source.getX509Bundles().get(ca.trustDomain)?.equals(ca.bundle()));
    assert.ok(source.getX509Bundles().get(partnerCa.trustDomain)?.equals(partnerCa.bundle()));
    const [received] = linesWith(sink, /Received X509-SVID/);
    assert.equal(received?.spiffeId, 'spiffe://example.org/spike/nexus');
    assert.equal(received?.notAfter, svidA.notAfter.toISOString());
    // Never key bytes in the log, in any encoding.
    const log = JSON.stringify(sink.lines);
    assert.ok(!log.includes(Buffer.from(svidA.privateKeyPkcs8).toString('base64').slice(10, 50)));
    assert.ok(!log.includes('PRIVATE KEY'));
  });

  test('connects over a tcp:// address and receives an SVID', async () => {
    const fake = await startFake({ transport: 'tcp' });
    assert.match(fake.address, /^tcp:\/\/127\.0\.0\.1:[1-9][0-9]*$/);
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const { source } = await connect(fake.address);
    assert.equal(leafHex(source.getX509Svid()), leafHex(svidA));
    assert.ok(source.getX509Bundles().get(ca.trustDomain)?.equals(ca.bundle()));
    assert.deepEqual(fake.callsOf('FetchX509SVID')[0]?.header, ['true']);
  });

  test('picks the SVID with the wanted hint', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({
      svids: [rawSvid(svidA, ca, 'internal'), rawSvid(svidExternal, ca, 'external')],
    });
    const { source } = await connect(fake, { hint: 'external' });
    assert.equal(source.getX509Svid().id.toString(), 'spiffe://example.org/spike/nexus-external');
    assert.equal(source.getX509Svid().hint, 'external');
  });

  test('rejects with WorkloadApiUnavailableError when no server is there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spike-wl-none-'));
    try {
      const started = Date.now();
      await assert.rejects(
        connect(`unix://${join(dir, 'missing.sock')}`, { timeoutMs: 300 }),
        (err: unknown) => {
          assert.ok(err instanceof WorkloadApiUnavailableError);
          assert.match(err.message, /within 300 ms/);
          assert.ok(err.message.includes(`at unix://${join(dir, 'missing.sock')} `), err.message);
          return true;
        },
      );
      assert.ok(Date.now() - started >= 290);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('rejects with WorkloadApiUnavailableError when the server sends nothing', async () => {
    const fake = await startFake();
    await assert.rejects(connect(fake, { timeoutMs: 300 }), WorkloadApiUnavailableError);
    await waitUntil(() => fake.openStreams('FetchX509SVID') === 0, 5000, 'the stream to close');
  });

  test('rejects at once with WorkloadApiRejectedError after InvalidArgument', async () => {
    const fake = await startFake();
    fake.sendError(grpc.status.INVALID_ARGUMENT, { persist: true, rpc: 'FetchX509SVID' });
    const started = Date.now();
    await assert.rejects(connect(fake, { timeoutMs: 10_000 }), WorkloadApiRejectedError);
    assert.ok(Date.now() - started < 5000, 'it did not wait for the timeout');
    assert.equal(fake.callsOf('FetchX509SVID').length, 1);
  });

  test('with failFast, a missing socket or one nothing listens on fails at once, saying which', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spike-wl-fail-fast-'));
    try {
      const fake = await startFake({ transport: 'tcp' });
      const refusing = fake.address;
      await fake.stop();
      for (const [address, reason] of [
        [`unix://${join(dir, 'missing.sock')}`, 'the socket does not exist'],
        [refusing, 'nothing listens on it'],
      ] as const) {
        // A timeout the test runner would give up on first: only failFast ends the wait.
        await assert.rejects(connect(address, { timeoutMs: 10 * 60_000, failFast: true }), {
          name: 'WorkloadApiUnavailableError',
          message: `Cannot connect to the Workload API at ${address}: ${reason}`,
        });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('with failFast, a Workload API that is there but sends nothing is still waited for', async () => {
    const fake = await startFake();
    await assert.rejects(connect(fake, { timeoutMs: 300, failFast: true }), /within 300 ms/);
  });

  test('rejects at once when the runtime refuses the socket, failFast or not', async () => {
    const fake = await startFake();
    fake.sendError(grpc.status.UNAVAILABLE, {
      persist: true,
      rpc: 'FetchX509SVID',
      details:
        'No connection established. Last error: NotCapable: Requires write access to "/x.sock", run again with the --allow-write flag. Resolution note: ',
    });
    await assert.rejects(connect(fake, { timeoutMs: 10 * 60_000 }), (err: unknown) => {
      assert.ok(err instanceof WorkloadApiRejectedError, String(err));
      assert.match(err.message, /--allow-write flag/);
      return true;
    });
    assert.equal(fake.callsOf('FetchX509SVID').length, 1);
  });

  test('refuses a malformed address before connecting', async () => {
    await assert.rejects(connect('tcp://localhost:1'), { code: 'ERR_CONFIG_INVALID' });
  });
});

describe('X509Source updates', () => {
  test('a pushed rotation fires onUpdate and serves the new SVID', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const { source, sink } = await connect(fake);
    const seen: string[] = [];
    source.onUpdate(() => seen.push(leafHex(source.getX509Svid())));
    fake.setX509SvidResponse({ svids: [rawSvid(svidB, ca)] });
    await waitUntil(() => seen.length === 1, 5000, 'the rotation');
    assert.deepEqual(seen, [leafHex(svidB)]);
    assert.equal(leafHex(source.getX509Svid()), leafHex(svidB));
    assert.equal(linesWith(sink, /Rotated X509-SVID/).length, 1);
  });

  test('an identical message does not fire onUpdate', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const { source } = await connect(fake);
    let calls = 0;
    source.onUpdate(() => {
      calls += 1;
    });
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    fake.setX509SvidResponse({ svids: [rawSvid(svidB, ca)] }); // barrier
    await waitUntil(() => calls >= 1);
    assert.equal(calls, 1);
  });

  test('unsubscribing stops notifications', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const { source } = await connect(fake);
    let removed = 0;
    let kept = 0;
    const unsubscribe = source.onUpdate(() => {
      removed += 1;
    });
    source.onUpdate(() => {
      kept += 1;
    });
    unsubscribe();
    fake.setX509SvidResponse({ svids: [rawSvid(svidB, ca)] });
    await waitUntil(() => kept === 1);
    assert.equal(removed, 0);
  });

  test('malformed updates are never served (barrier update)', async () => {
    const fake = await startFake();
    const good = rawSvid(svidA, ca);
    fake.setX509SvidResponse({ svids: [good] });
    const { source, sink } = await connect(fake);
    const served: string[] = [];
    source.onUpdate(() => served.push(leafHex(source.getX509Svid())));
    fake.setX509SvidResponse({ svids: [] });
    fake.setX509SvidResponse({ svids: [{ ...good, x509_svid_key: new Uint8Array(0) }] });
    fake.setX509SvidResponse({ svids: [{ ...good, x509_svid: svidB.chainDer }] }); // key mismatch
    fake.setX509SvidResponse({ svids: [{ ...good, bundle: new Uint8Array([0x30, 0x01]) }] });
    fake.setX509SvidResponse({ svids: [rawSvid(svidB, ca)] });
    await waitUntil(() => served.length >= 1, 5000, 'the barrier update');
    assert.deepEqual(served, [leafHex(svidB)]);
    assert.equal(linesWith(sink, /malformed/).length, 4);
  });

  test('PermissionDenied redacts the SVID until it is granted again', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const { source, sink } = await connect(fake);
    let notified = 0;
    source.onUpdate(() => {
      notified += 1;
    });
    // Positive control.
    assert.equal(leafHex(source.getX509Svid()), leafHex(svidA));
    fake.sendError(grpc.status.PERMISSION_DENIED, { persist: true, rpc: 'FetchX509SVID' });
    await waitUntil(() => notified === 1, 5000, 'the redaction');
    assert.throws(() => source.getX509Svid(), WorkloadApiUnavailableError);
    assert.equal(source.getX509Bundles().size, 0, 'the bundles that came with it are gone too');
    assert.equal(linesWith(sink, /redacted/).length >= 1, true);
    await fake.waitForCalls('FetchX509SVID', 3);
    assert.throws(() => source.getX509Svid(), WorkloadApiUnavailableError);
    fake.clearError();
    fake.setX509SvidResponse({ svids: [rawSvid(svidB, ca)] });
    await waitUntil(() => notified === 2, 5000, 'the new grant');
    assert.equal(leafHex(source.getX509Svid()), leafHex(svidB));
    assert.ok(source.getX509Bundles().get(ca.trustDomain)?.equals(ca.bundle()));
  });

  test('reconnects after the server restarts', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const { source } = await connect(fake);
    await fake.stop();
    fake.setX509SvidResponse({ svids: [rawSvid(svidB, ca)] });
    await fake.start();
    await waitUntil(() => leafHex(source.getX509Svid()) === leafHex(svidB), 10_000, 'svid B');
  });

  test('serves exactly the bundles of the latest SVID message, never FetchX509Bundles', async () => {
    const fake = await startFake();
    // A FetchX509Bundles stream would offer other.test; the source must not ask for it.
    fake.setX509Bundles({ bundles: rawBundleMap(ca, otherCa) });
    fake.setX509SvidResponse({
      svids: [rawSvid(svidA, ca)],
      federated_bundles: rawBundleMap(partnerCa),
    });
    const { source, sink } = await connect(fake);
    const names = () =>
      source
        .getX509Bundles()
        .all()
        .map((b) => b.trustDomain.name)
        .sort();
    assert.deepEqual(names(), ['example.org', 'partner.test']);
    let updates = 0;
    source.onUpdate(() => {
      updates += 1;
    });
    // Full state: a message without partner.test stops trusting it, same SVID or not.
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    await waitUntil(() => source.getX509Bundles().size === 1, 5000, 'partner dropped');
    assert.deepEqual(names(), ['example.org']);
    assert.equal(updates, 1);
    assert.equal(leafHex(source.getX509Svid()), leafHex(svidA));
    // A federated bundle added later is served at once.
    fake.setX509SvidResponse({
      svids: [rawSvid(svidA, ca)],
      federated_bundles: rawBundleMap(otherCa),
    });
    await waitUntil(() => source.getX509Bundles().size === 2, 5000, 'other.test added');
    assert.deepEqual(names(), ['example.org', 'other.test']);
    assert.ok(source.getX509Bundles().get(otherCa.trustDomain)?.equals(otherCa.bundle()));
    assert.equal(updates, 2);
    assert.equal(linesWith(sink, /Updated X\.509 trust bundles/).length, 3);
    assert.equal(fake.callsOf('FetchX509Bundles').length, 0);
  });
});

describe('X509Source expiry', () => {
  test('warns before expiry and refuses to serve an expired SVID', async () => {
    const now = Date.now();
    const shortCa = await createTestCa('example.org');
    const short = await shortCa.issueSvid('spiffe://example.org/spike/nexus', {
      notBefore: new Date(now - 8000),
      notAfter: new Date(now + 2000),
    });
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(short, shortCa)] });
    const { source, sink } = await connect(fake);
    assert.equal(leafHex(source.getX509Svid()), leafHex(short));
    // Lifetime 10 s → warn 1 s before expiry, then expire.
    await waitUntil(() => linesWith(sink, /expires soon/).length === 1, 5000, 'the warning');
    assert.equal(leafHex(source.getX509Svid()), leafHex(short), 'still valid when warned');
    await waitUntil(() => Date.now() >= short.notAfter.getTime(), 5000);
    assert.throws(() => source.getX509Svid(), /expired/);
    await waitUntil(() => linesWith(sink, /expired without a replacement/).length === 1);
  });

  test('discards an update whose SVID has already expired', async () => {
    const expired = await ca.issueSvid('spiffe://example.org/spike/nexus', { validity: 'expired' });
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const { source, sink } = await connect(fake);
    const served: string[] = [];
    source.onUpdate(() => served.push(leafHex(source.getX509Svid())));
    fake.setX509SvidResponse({ svids: [rawSvid(expired, ca)] });
    fake.setX509SvidResponse({ svids: [rawSvid(svidB, ca)] }); // barrier
    await waitUntil(() => served.length === 1);
    assert.deepEqual(served, [leafHex(svidB)]);
    assert.equal(linesWith(sink, /already expired/).length, 1);
  });
});

describe('X509Source.close()', () => {
  test('cancels the streams and makes getX509Svid throw', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const { source } = await connect(fake);
    await fake.waitForStreams('FetchX509SVID', 1);
    source.close();
    source.close();
    await waitUntil(() => fake.openStreams('FetchX509SVID') === 0, 5000, 'the stream to close');
    assert.throws(() => source.getX509Svid(), /closed/);
  });

  // A child process shows what handles are left: it must exit by itself
  // after close(), and must stay alive while a source is open.
  const here = fileURLToPath(new URL('.', import.meta.url));
  const isDeno = 'Deno' in globalThis;

  async function runChild(
    mode: 'close' | 'close-unreachable' | 'keep-open' | 'fetch',
    address: string,
  ) {
    const dir = await mkdtemp(join(tmpdir(), 'spike-src-child-'));
    const script = join(dir, 'child.mts');
    await writeFile(
      script,
      [
        `import { createX509Source, fetchX509Source, X509Source } from ${JSON.stringify(join(here, 'x509_source.ts'))};`,
        `import { createLogger } from ${JSON.stringify(join(here, '../log/logger.ts'))};`,
        `const logger = createLogger({ component: 'child', sink: { write: () => true } });`,
        `const mode = ${JSON.stringify(mode)};`,
        `if (mode === 'fetch') {`,
        `  const source = await fetchX509Source({ address: ${JSON.stringify(address)}, timeoutMs: 20000 });`,
        `  process.stdout.write(source.getX509Svid().id.toString() + '\\n');`,
        `} else if (mode === 'close-unreachable') {`,
        `  const source = new X509Source({ address: ${JSON.stringify(address)}, logger, backoffUnitMs: 50 });`,
        `  setTimeout(() => { source.close(); process.stdout.write('closed\\n'); }, 300);`,
        `} else {`,
        `  const source = await createX509Source({ address: ${JSON.stringify(address)}, logger, timeoutMs: 20000 });`,
        `  process.stdout.write('ready\\n');`,
        `  if (mode === 'close') { source.close(); process.stdout.write('closed\\n'); }`,
        `}`,
      ].join('\n'),
    );
    const repo = join(here, '..', '..');
    const args = isDeno
      ? ['run', '--no-check', '-A', '--config', join(repo, 'deno.json'), script]
      : ['--import', 'tsx', script];
    const child = spawn(process.execPath, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += String(chunk);
    });
    child.stderr.on('data', (chunk) => {
      stderr += String(chunk);
    });
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    );
    return {
      child,
      exited,
      output: () => ({ stdout, stderr }),
      cleanup: async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  }

  function exitsWithin(
    exited: Promise<number | null>,
    ms: number,
  ): Promise<number | null | 'timeout'> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    });
    return Promise.race([exited, timeout]).finally(() => clearTimeout(timer));
  }

  test('leaves no handle behind: a closed source lets its process exit', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const run = await runChild('close', fake.address);
    try {
      const code = await exitsWithin(run.exited, 30_000);
      assert.equal(code, 0, JSON.stringify(run.output()));
      assert.match(run.output().stdout, /ready\nclosed/);
    } finally {
      await run.cleanup();
    }
  });

  test('leaves no handle behind while backing off from a missing server', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spike-wl-none-'));
    const run = await runChild('close-unreachable', `unix://${join(dir, 'missing.sock')}`);
    try {
      const code = await exitsWithin(run.exited, 30_000);
      assert.equal(code, 0, JSON.stringify(run.output()));
      assert.match(run.output().stdout, /closed/);
    } finally {
      await run.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a one-shot fetch leaves no handle behind: its process exits once it has the SVID', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const run = await runChild('fetch', fake.address);
    try {
      const code = await exitsWithin(run.exited, 30_000);
      assert.equal(code, 0, JSON.stringify(run.output()));
      assert.equal(run.output().stdout, `${svidA.spiffeId}\n`);
      await waitUntil(() => fake.openStreams('FetchX509SVID') === 0, 5000, 'the stream to close');
    } finally {
      await run.cleanup();
    }
  });

  test('an open source keeps its process alive', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(svidA, ca)] });
    const run = await runChild('keep-open', fake.address);
    try {
      await waitUntil(() => run.output().stdout.includes('ready'), 30_000, 'the child source');
      const code = await exitsWithin(run.exited, 1500);
      assert.equal(code, 'timeout', JSON.stringify(run.output()));
    } finally {
      await run.cleanup();
    }
  });
});

describe('fetchX509Source()', () => {
  test('holds the first SVID and the bundles of one response, and closes the stream at once', async () => {
    const fake = await startFake();
    fake.setX509SvidResponse({
      svids: [rawSvid(svidA, ca, 'internal'), rawSvid(svidExternal, ca, 'external')],
      federated_bundles: rawBundleMap(partnerCa),
    });
    const source = await fetchX509Source({ address: fake.address, timeoutMs: 5000 });
    assert.equal(leafHex(source.getX509Svid()), leafHex(svidA));
    assert.deepEqual(
      source
        .getX509Bundles()
        .all()
        .map((bundle) => bundle.trustDomain.name)
        .sort(),
      ['example.org', 'partner.test'],
    );
    assert.deepEqual(
      fake.callsOf('FetchX509SVID').map((call) => call.accepted),
      [true],
    );
    await waitUntil(() => fake.openStreams('FetchX509SVID') === 0, 5000, 'the stream to close');
    // Nothing to watch: no listener is ever called, and close() only ends its use.
    source.onUpdate(() => assert.fail('a fetched source never changes'))();
    source.close();
    source.close();
    assert.throws(() => source.getX509Svid(), /closed/);
  });

  test('refuses an SVID that has already expired, at once', async () => {
    const expired = await ca.issueSvid('spiffe://example.org/spike/nexus', { validity: 'expired' });
    const fake = await startFake();
    fake.setX509SvidResponse({ svids: [rawSvid(expired, ca)] });
    await assert.rejects(
      fetchX509Source({ address: fake.address, timeoutMs: 60_000 }),
      (err: unknown) => {
        assert.ok(err instanceof SvidInvalidError, String(err));
        assert.match(
          err.message,
          /sent the X509-SVID "spiffe:\/\/example\.org\/spike\/nexus", which expired at /,
        );
        return true;
      },
    );
  });

  test('fails at the first error instead of retrying: PermissionDenied says there is no identity', async () => {
    const fake = await startFake();
    fake.sendError(grpc.status.PERMISSION_DENIED, { details: 'no identity issued', persist: true });
    await assert.rejects(
      fetchX509Source({ address: fake.address, timeoutMs: 60_000 }),
      (err: unknown) => {
        assert.ok(err instanceof WorkloadApiUnavailableError, String(err));
        assert.equal(
          err.message,
          'The Workload API has no identity for this workload (PERMISSION_DENIED: "no identity issued")',
        );
        return true;
      },
    );
    assert.equal(fake.callsOf('FetchX509SVID').length, 1);
  });
});

describe('StaticX509Source', () => {
  test('serves fixed values and notifies on set()', () => {
    const first = svidA.x509Svid();
    const second = svidB.x509Svid();
    const source = new StaticX509Source(first, new X509BundleSet([ca.bundle()]));
    assert.equal(source.getX509Svid(), first);
    let notified = 0;
    const unsubscribe = source.onUpdate(() => {
      notified += 1;
    });
    source.set(second, new X509BundleSet([ca.bundle(), partnerCa.bundle()]));
    assert.equal(source.getX509Svid(), second);
    assert.equal(source.getX509Bundles().size, 2);
    assert.equal(notified, 1);
    unsubscribe();
    source.set(first, new X509BundleSet([]));
    assert.equal(notified, 1);
  });
});

after(() => {
  assert.equal(sources.length + fakes.length, 0);
});
