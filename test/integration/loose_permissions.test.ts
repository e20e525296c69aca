/**
 * Nexus and a Keeper, as real processes, refuse to start on files that other
 * users could tamper with or read: a data folder others may write to (they
 * could swap the database files), and an audit file others may read (it names
 * every caller and resource) or write. The refusal is a configuration error
 * (exit status 2) that names the path, its mode and the `chmod` that fixes
 * it, and comes before the program asks for its SVID: no Workload API runs
 * here.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runProgram } from '../harness/spawn.ts';

/** Keepers that are never reached: Nexus stops before it looks for them. */
const KEEPERS = 'https://127.0.0.1:1,https://127.0.0.1:2,https://127.0.0.1:3';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'spike-loose-permissions-'));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** What every program needs to get as far as its files: no Workload API answers here. */
function baseEnv(): Record<string, string> {
  return {
    SPIKE_TRUST_ROOT: 'loose-permissions.test',
    SPIFFE_ENDPOINT_SOCKET: `unix://${join(dir, 'no-agent.sock')}`,
    SPIKE_SPIFFE_SOURCE_TIMEOUT: '1s',
  };
}

function fresh(name: string): string {
  const path = join(dir, name);
  mkdirSync(path, { mode: 0o700 });
  return path;
}

/** A file with `mode`, whatever the umask. */
function fileWithMode(path: string, mode: number): string {
  writeFileSync(path, '');
  chmodSync(path, mode);
  return path;
}

function assertRefused(
  result: { status: number | string; stderr: string },
  path: string,
  mode: string,
  fix: string,
): void {
  assert.equal(result.status, 2, result.stderr);
  assert.ok(result.stderr.includes(`"${path}" has mode ${mode}`), result.stderr);
  assert.ok(result.stderr.includes(`chmod ${fix} "${path}"`), result.stderr);
}

describe('start-up refuses loose permissions', () => {
  test('Nexus refuses a data folder that others may write to (0777), and changes nothing', async () => {
    const data = fresh('nexus-data-0777');
    chmodSync(data, 0o777);
    const result = await runProgram('nexus', {
      env: {
        ...baseEnv(),
        SPIKE_NEXUS_KEEPER_PEERS: KEEPERS,
        SPIKE_NEXUS_DATA_DIR: data,
        SPIKE_NEXUS_AUDIT_LOG: join(fresh('nexus-audit-a'), 'audit.jsonl'),
      },
    });
    assertRefused(result, data, '0777', '700');
    assert.match(result.stderr, /Data folder/);
    assert.equal(statSync(data).mode & 0o777, 0o777, 'the mode was changed');
    assert.throws(() => statSync(join(data, 'spike.db')), /ENOENT/, 'a database was created');
  });

  test('Nexus refuses an audit file that others may read (0644)', async () => {
    const audit = fileWithMode(join(fresh('nexus-audit-b'), 'audit.jsonl'), 0o644);
    const result = await runProgram('nexus', {
      env: {
        ...baseEnv(),
        SPIKE_NEXUS_KEEPER_PEERS: KEEPERS,
        SPIKE_NEXUS_DATA_DIR: fresh('nexus-data-ok'),
        SPIKE_NEXUS_AUDIT_LOG: audit,
      },
    });
    assertRefused(result, audit, '0644', '600');
    assert.match(result.stderr, /Audit log/);
  });

  test('a Keeper refuses an audit file that others may read (0640) or write (0602)', async () => {
    for (const mode of [0o640, 0o602]) {
      const audit = fileWithMode(
        join(fresh(`keeper-audit-${mode.toString(8)}`), 'audit.jsonl'),
        mode,
      );
      const result = await runProgram('keeper', {
        env: { ...baseEnv(), SPIKE_KEEPER_TLS_PORT: '0', SPIKE_KEEPER_AUDIT_LOG: audit },
      });
      assertRefused(result, audit, `0${mode.toString(8)}`, '600');
    }
  });

  test('a missing audit file is created owner-only, and the start goes on to the Workload API', async () => {
    const audit = join(fresh('keeper-audit-new'), 'audit.jsonl');
    const result = await runProgram('keeper', {
      env: { ...baseEnv(), SPIKE_KEEPER_TLS_PORT: '0', SPIKE_KEEPER_AUDIT_LOG: audit },
    });
    assert.equal(statSync(audit).mode & 0o777, 0o600);
    // It got past its files and stopped where there is no agent to ask.
    assert.notEqual(result.status, 2, result.stderr);
    assert.doesNotMatch(result.stderr, /has mode/);
  });
});
