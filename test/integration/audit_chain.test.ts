/**
 * The tamper-evident audit trail with real processes over real mTLS (ADR
 * 0027): a Keeper chained under a key made by `spike audit new-key`, stopped,
 * killed and restarted, leaves a log that `spike audit verify` passes, and
 * that it fails, naming the line, after each kind of tampering. And Nexus
 * fails closed: while its audit trail cannot be written (its reader, at the
 * end of a FIFO, is gone) it refuses requests with 503
 * ERR_AUDIT_UNAVAILABLE, and serves again once a reader is back.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { isKeeper, isNexus } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createX509Source, type X509Source } from '../../shared/spiffe/x509_source.ts';
import { completeLines } from '../harness/lines.ts';
import { runProgram, startProgram, stopAll } from '../harness/spawn.ts';

const TD_NAME = 'auditchain.test';
const TD = parseTrustDomain(TD_NAME);
const LISTENING_REGEXP = /"address":"(https:\/\/[^"]+)"[^\n]*"msg":"Listening"/;

describe('the audit chain of real programs', () => {
  let dir: string;
  let source: X509Source;
  const logger = createLogger({ component: 'test', sink: createMemorySink() });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spike-audit-chain-'));
    const agent = startProgram('agent', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIKE_AGENT_DATA_DIR: dir,
        SPIKE_AGENT_WORKLOADS:
          'nexus=/spike/nexus,keeper-1=/spike/keeper/1,pilot=/spike/pilot/role/superuser',
      },
    });
    await agent.waitFor(/Press Ctrl-C to stop/);
    source = await createX509Source({
      address: `unix://${join(dir, 'sockets', 'nexus.sock')}`,
      logger,
      timeoutMs: 10_000,
    });
  });

  /** The `cat` processes that read Nexus's audit FIFO. */
  const collectors: ChildProcess[] = [];

  after(async () => {
    for (const collector of collectors) collector.kill('SIGKILL');
    source?.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  function verify(...args: string[]) {
    return runProgram('pilot', { args: ['audit', 'verify', ...args] });
  }

  test('spike audit verify passes a Keeper log across stops, a kill and restarts, and names the line of each tampering', async () => {
    const keyFile = join(dir, 'keeper.key');
    const made = await runProgram('pilot', { args: ['audit', 'new-key', keyFile] });
    assert.equal(made.status, 0, made.stderr);
    const auditLog = join(dir, 'keeper.audit.log');
    const env = {
      SPIKE_TRUST_ROOT: TD_NAME,
      SPIFFE_ENDPOINT_SOCKET: `unix://${join(dir, 'sockets', 'keeper-1.sock')}`,
      SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
      SPIKE_KEEPER_TLS_PORT: '0',
      SPIKE_KEEPER_AUDIT_LOG: auditLog,
      SPIKE_KEEPER_AUDIT_KEY_FILE: keyFile,
    };
    for (const end of ['stop', 'kill', 'stop'] as const) {
      const keeper = startProgram('keeper', { env });
      const url = new URL(
        ((await keeper.waitFor(LISTENING_REGEXP))[1] as string) + PATHS.keeperGenerations,
      );
      const client = new MtlsClient({ source, authorizeServer: isKeeper(TD), timeoutMs: 10_000 });
      for (let i = 0; i < 4; i++) {
        assert.equal((await client.request({ method: 'GET', url })).status, 200);
      }
      client.close();
      if (end === 'kill') {
        keeper.child.kill('SIGKILL');
        await keeper.exited();
      } else {
        await keeper.stop();
      }
    }
    const lines = completeLines(readFileSync(auditLog, 'utf8'));
    const actions = lines.map((line) => (JSON.parse(line) as { action: string }).action);
    assert.deepEqual(
      actions.filter((action) => action.startsWith('audit.')),
      ['audit.open', 'audit.close', 'audit.open', 'audit.open', 'audit.close'],
    );

    const intact = await verify('--key-file', keyFile, auditLog);
    assert.equal(intact.status, 0, intact.stderr);
    assert.match(intact.stdout, /^intact: /);
    assert.match(intact.stdout, /closed\n.*stopped\n.*closed/);

    function tampered(name: string, change: (all: string[]) => string[]): string {
      const path = join(dir, `${name}.audit.log`);
      writeFileSync(path, `${change([...lines]).join('\n')}\n`);
      return path;
    }
    // Lines 2 and 3 are requests of the first Keeper.
    const cases: [string, (all: string[]) => string[], string, number][] = [
      [
        'byte',
        (all) => all.map((line, i) => (i === 1 ? line.replace('"GET"', '"PUT"') : line)),
        'edited',
        2,
      ],
      ['deleted', (all) => all.filter((_, i) => i !== 1), 'deleted', 2],
      ['inserted', (all) => [...all.slice(0, 2), all[1] as string, ...all.slice(2)], 'inserted', 3],
      [
        'swapped',
        (all) => [all[0] as string, all[2] as string, all[1] as string, ...all.slice(3)],
        'reordered',
        2,
      ],
      ['cut', (all) => all.slice(0, -2), 'cut', lines.length - 1],
    ];
    for (const [name, change, kind, line] of cases) {
      const path = tampered(name, change);
      const result = await verify('--key-file', keyFile, path);
      assert.equal(result.status, 10, `${name}: ${result.stdout}${result.stderr}`);
      assert.match(
        result.stderr,
        new RegExp(`${name}\\.audit\\.log:${line}: ${kind}: .*\\[ERR_AUDIT_NOT_INTACT\\]`),
        name,
      );
    }
    // Whoever has only the log cannot verify it, or pass it off as unkeyed.
    const keyless = await verify(auditLog);
    assert.equal(keyless.status, 10);
    assert.match(keyless.stderr, /--key-file/);
  });

  test('Nexus fails closed: 503 ERR_AUDIT_UNAVAILABLE while its audit reader is gone, served again once one is back', {
    // A FIFO and cat: Linux and macOS.
    skip: process.platform === 'win32',
  }, async () => {
    const fifo = join(dir, 'nexus-audit.fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const collected = join(dir, 'nexus-audit.collected');
    // The collector: Nexus opens the FIFO for writing only once a reader has it open.
    const collect = (): ChildProcess =>
      spawn('sh', ['-c', `exec cat "${fifo}" >> "${collected}"`], { stdio: 'ignore' });
    let reader = collect();
    collectors.push(reader);
    const nexus = startProgram('nexus', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIFFE_ENDPOINT_SOCKET: `unix://${join(dir, 'sockets', 'nexus.sock')}`,
        SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
        SPIKE_NEXUS_TLS_PORT: '0',
        SPIKE_NEXUS_BACKEND_STORE: 'memory',
        // Sealed for good: no Keeper listens there. Health answers anyway
        // (503 "sealed": served, as against 503 ERR_AUDIT_UNAVAILABLE).
        SPIKE_NEXUS_KEEPER_PEERS: 'https://127.0.0.1:9,https://127.0.0.1:10,https://127.0.0.1:11',
        SPIKE_NEXUS_AUDIT_LOG: fifo,
      },
    });
    const url = new URL(((await nexus.waitFor(LISTENING_REGEXP))[1] as string) + PATHS.health);
    const client = new MtlsClient({ source, authorizeServer: isNexus(TD), timeoutMs: 10_000 });
    /** Whether health was served (a sealed Nexus answers it 503 "sealed"), not refused. */
    const served = async (): Promise<boolean> => {
      const res = await client.request({ method: 'GET', url });
      const body = JSON.parse(new TextDecoder().decode(res.body)) as { status?: string };
      return res.status === 503 && body.status === 'sealed';
    };
    try {
      assert.ok(await served());
      reader.kill('SIGKILL');
      await new Promise((resolve) => reader.once('exit', resolve));
      // The request that finds the reader gone ran before anyone knew: 500.
      const first = await client.request({ method: 'GET', url });
      assert.equal(first.status, 500);
      await nexus.waitFor(/Cannot write the audit trail/);
      for (let i = 0; i < 3; i++) {
        const refused = await client.request({ method: 'GET', url });
        assert.equal(refused.status, 503);
        assert.equal(
          (JSON.parse(new TextDecoder().decode(refused.body)) as { error: { code: string } }).error
            .code,
          'ERR_AUDIT_UNAVAILABLE',
        );
      }
      reader = collect();
      collectors.push(reader);
      // Once cat has the FIFO open, writes succeed again; wait for that, not for a time.
      const deadline = Date.now() + 20_000;
      while (!(await served())) {
        assert.ok(
          Date.now() < deadline,
          'Nexus did not serve again after its audit reader came back',
        );
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      client.close();
      await nexus.stop();
    }
    // The refusals were audited once the reader was back, in the one chain.
    const events = completeLines(readFileSync(collected, 'utf8')).map(
      (line) => JSON.parse(line) as { action: string; errorCode?: string },
    );
    assert.ok(events.some((event) => event.errorCode === 'ERR_AUDIT_UNAVAILABLE'));
  });
});
