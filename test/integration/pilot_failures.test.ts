/**
 * `spike` when what is around it goes wrong, as real processes: no Workload
 * API (a socket path that does not exist, a socket nobody listens on, a Deno
 * without the permission to use it), output piped to a slow reader, a server
 * that is not our Nexus (another CA, another trust domain, a Keeper), and a
 * server or a Workload API that never answers. Each run is checked for how it
 * ended and what it said, never for how long it took: the deadlines below
 * only keep a hung run from hanging the suite.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serverTlsOptions } from '../../shared/spiffe/mtls.ts';
import { StaticX509Source } from '../../shared/spiffe/x509_source.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { type FakeWorkloadApi, startFakeWorkloadApi } from '../harness/fake_workload_api.ts';
import { bundleSetOf, createTestCa } from '../harness/pki.ts';
import { command, currentRuntime, ROOT, runProgram } from '../harness/spawn.ts';

const TD_NAME = 'pilot-failures.test';
/** Long enough for any run on a busy machine; a run that needs it has hung. */
const RUN_DEADLINE_MS = 20_000;

interface Result {
  readonly status: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

const show = (result: Result) =>
  `status ${result.status}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;

function spike(args: readonly string[], env: Readonly<Record<string, string>>): Promise<Result> {
  return runProgram('pilot', { args, env, timeoutMs: RUN_DEADLINE_MS });
}

function listen(server: NetServer | HttpsServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

/** A unix socket file that nobody listens on: bound by a process that has exited. */
async function deadSocket(path: string): Promise<void> {
  const code = `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`;
  const child = spawn('node', ['-e', code], { stdio: 'ignore' });
  const status = await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(status, 0, 'the helper that leaves a dead socket behind failed');
}

describe('spike without a Workload API', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'spike-no-agent-'));
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('a socket path that does not exist fails at once, naming the variable and spike-local', async () => {
    const address = `unix://${join(dir, 'missing', 'agent.sock')}`;
    const result = await spike(['secret', 'list'], { SPIFFE_ENDPOINT_SOCKET: address });
    assert.equal(result.status, 7, show(result));
    assert.match(result.stderr, /SPIFFE_ENDPOINT_SOCKET/);
    assert.ok(result.stderr.includes(address), show(result));
    assert.match(result.stderr, /does not exist/);
    assert.match(result.stderr, /npm start/);
    assert.match(result.stderr, /spike-local/);
    assert.match(result.stderr, /\[ERR_WORKLOAD_API_UNAVAILABLE\]/);
    assert.equal(result.stderr.trim().split('\n').length, 1, show(result));
  });

  test('a socket nobody listens on fails, naming the variable, the address and spike-local', async () => {
    const path = join(dir, 'dead.sock');
    await deadSocket(path);
    const result = await spike(['whoami'], { SPIFFE_ENDPOINT_SOCKET: `unix://${path}` });
    assert.equal(result.status, 7, show(result));
    assert.match(result.stderr, /SPIFFE_ENDPOINT_SOCKET/);
    assert.ok(result.stderr.includes(`unix://${path}`), show(result));
    assert.match(result.stderr, /nothing listens/);
    assert.match(result.stderr, /npm start/);
  });

  test('Deno without the permission to use the socket fails at once, naming the flag', async () => {
    const path = join(dir, 'no-permission.sock');
    await deadSocket(path);
    // The documented task, minus --allow-write: Deno needs it to connect to a unix socket.
    const deno = join(ROOT, '.tools/node_modules/.bin/deno');
    const child = spawn(
      deno,
      [
        'run',
        '--quiet',
        '--no-check',
        '--allow-read',
        '--allow-env',
        '--allow-net',
        '--allow-sys',
        'pilot/main.ts',
        'whoami',
      ],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          NO_COLOR: '1',
          SPIFFE_ENDPOINT_SOCKET: `unix://${path}`,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const result = await collect(child);
    assert.equal(result.status, 7, show(result));
    assert.match(result.stderr, /--allow-write/);
    assert.match(result.stderr, /\[ERR_WORKLOAD_API_REJECTED\]/);
  });
});

describe('spike against a broker, with things around it going wrong', () => {
  let broker: Broker;
  let scratch: string;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'spike-pilot-failures-'));
    broker = await startBroker({ trustDomain: TD_NAME });
  });

  after(async () => {
    try {
      await broker?.stop();
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  const asPilot = (extra: Readonly<Record<string, string>> = {}) => ({
    ...broker.identityEnv('pilot'),
    SPIKE_NEXUS_API_URL: broker.nexusUrl,
    ...extra,
  });

  test('more than 1 MiB of output piped to a slow reader arrives whole', async () => {
    // Just under the request body limit; the answer printed as JSON is over 1 MiB.
    const value = Array.from({ length: 1024 * 1024 - 64 }, (_, i) =>
      String.fromCharCode(97 + ((i * 7) % 26)),
    ).join('');
    const put = await broker.call('pilot', 'PUT', '/v1/secrets/data/big/blob', {
      data: { v: value },
    });
    assert.equal(put.status, 200, put.text);
    const out = join(scratch, 'piped.json');
    const [cmd, args] = command('pilot', currentRuntime());
    // The reader takes 16 KiB at a time and stops between reads, so the
    // pipe is full whenever spike finishes writing.
    const script = `"$@" | while :; do
  n=$(dd bs=16384 count=1 status=none | tee -a "$OUT" | wc -c)
  [ "$n" -eq 0 ] && break
  sleep 0.005
done
exit "\${PIPESTATUS[0]}"`;
    const child = spawn(
      'bash',
      ['-c', script, 'pipeline', cmd, ...args, 'secret', 'get', 'big/blob', '-f', 'json'],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          NO_COLOR: '1',
          OUT: out,
          ...asPilot(),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const result = await collect(child);
    assert.equal(result.status, 0, show(result));
    const printed = readFileSync(out, 'utf8');
    assert.ok(printed.length > 1024 * 1024, `only ${printed.length} bytes arrived`);
    const parsed = JSON.parse(printed);
    assert.equal(parsed.path, 'big/blob');
    assert.ok(parsed.data.v === value, 'the value arrived changed');
  });

  describe('a server that is not our Nexus is a trust problem, not an unreachable Nexus', () => {
    let servers: HttpsServer[] = [];

    after(() => {
      for (const server of servers) server.close();
      servers = [];
    });

    async function impostor(trustDomainName: string): Promise<string> {
      const ca = await createTestCa(trustDomainName);
      const svid = await ca.issueSvid(`spiffe://${trustDomainName}/spike/nexus`);
      const source = new StaticX509Source(svid.x509Svid(), bundleSetOf(ca));
      const server = createHttpsServer(serverTlsOptions(source), (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"paths":[]}');
      });
      servers.push(server);
      return `https://127.0.0.1:${await listen(server)}`;
    }

    const cases: ReadonlyArray<[string, () => Promise<string>]> = [
      ['another CA of our trust domain name', () => impostor(TD_NAME)],
      ['another trust domain', () => impostor('elsewhere.test')],
      ['a Keeper of our own CA', async () => `https://127.0.0.1:${broker.keeperPorts[0]}`],
    ];
    for (const [name, start] of cases) {
      test(name, async () => {
        const url = await start();
        const result = await spike(['secret', 'list'], asPilot({ SPIKE_NEXUS_API_URL: url }));
        assert.equal(result.status, 3, show(result));
        assert.match(result.stderr, /\[ERR_SERVER_UNTRUSTED\]/);
        assert.match(result.stderr, /not trusted/);
        assert.match(result.stderr, /SPIKE_TRUST_ROOT/);
        assert.doesNotMatch(result.stderr, /unreachable/);
        assert.equal(result.stdout, '');
      });
    }
  });

  describe('SPIKE_PILOT_TIMEOUT is the whole wait', () => {
    let silent: NetServer | undefined;
    const held: Socket[] = [];
    let fake: FakeWorkloadApi | undefined;

    after(async () => {
      for (const socket of held) socket.destroy();
      silent?.close();
      await fake?.close();
    });

    test('a server that never answers ends with the timeout, naming the variable', async () => {
      silent = createNetServer((socket) => {
        held.push(socket);
      });
      const port = await listen(silent);
      const result = await spike(
        ['secret', 'list'],
        asPilot({ SPIKE_NEXUS_API_URL: `https://127.0.0.1:${port}`, SPIKE_PILOT_TIMEOUT: '2s' }),
      );
      assert.equal(result.status, 7, show(result));
      assert.match(result.stderr, /SPIKE_PILOT_TIMEOUT/);
      assert.match(result.stderr, /\[ERR_UNAVAILABLE\]/);
    });

    test('a Workload API that never sends an SVID ends with the timeout, naming the variable', async () => {
      fake = await startFakeWorkloadApi();
      const result = await spike(['secret', 'list'], {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIFFE_ENDPOINT_SOCKET: fake.address,
        SPIKE_NEXUS_API_URL: broker.nexusUrl,
        // The SVID wait alone would outlast the run's deadline.
        SPIKE_SPIFFE_SOURCE_TIMEOUT: '60s',
        SPIKE_PILOT_TIMEOUT: '1s',
      });
      assert.equal(result.status, 7, show(result));
      assert.match(result.stderr, /SPIKE_PILOT_TIMEOUT/);
      assert.match(result.stderr, /\[ERR_WORKLOAD_API_UNAVAILABLE\]/);
    });
  });
});

/** Waits (up to the run deadline) for a child to end; its status and output. */
function collect(child: ReturnType<typeof spawn>): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`The run did not end in time\n${stdout}\n${stderr}`));
    }, RUN_DEADLINE_MS);
    // 'close', not 'exit': by then both pipes have been read to their end.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code ?? signal ?? 'unknown', stdout, stderr });
    });
  });
}
