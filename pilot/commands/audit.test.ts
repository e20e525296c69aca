import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parseAuditKey, readFileEnd } from '../../shared/log/audit_chain.ts';
import { type AuditEvent, createFdAuditSink } from '../../shared/log/audit_log.ts';
import { run } from './_testing.ts';

const dir = mkdtempSync(join(tmpdir(), 'spike-pilot-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function event(n: number): AuditEvent {
  return {
    ts: '2026-01-02T03:04:05.000Z',
    trailId: `trail-${n}`,
    component: 'keeper',
    peer: 'spiffe://unit.test/spike/nexus',
    method: 'GET',
    route: '/v1/shards',
    action: 'shard.list',
    resource: null,
    decision: { reason: 'identity_matched', policy: null },
    outcome: 'allowed',
    status: 200,
    errorCode: null,
    durationMs: 1,
  };
}

/** A closed segment of `count` events under the key in `keyFile`. */
async function writeLog(path: string, keyFile: string, count: number): Promise<void> {
  const sink = createFdAuditSink(openSync(path, 'a', 0o600), {
    component: 'keeper',
    key: parseAuditKey(readFileSync(keyFile, 'utf8')),
    fileEnd: readFileEnd(path),
    checkpointIntervalMs: 0,
  });
  for (let n = 0; n < count; n++) {
    await sink.write(event(n));
  }
  sink.close();
}

describe('spike audit', () => {
  test('new-key writes an owner-only key file once, and prints its id', async () => {
    const file = join(dir, 'new.key');
    const made = await run(['audit', 'new-key', file]);
    assert.equal(made.status, 0, made.stderr);
    assert.match(made.stdout, /^key id: [A-Za-z0-9_-]{11}\n$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(parseAuditKey(readFileSync(file, 'utf8')).length, 32);
    const again = await run(['audit', 'new-key', file]);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /exists: it is kept/);
  });

  test('verify exits 0 for an intact log and 10 naming the first line otherwise', async () => {
    const keyFile = join(dir, 'verify.key');
    assert.equal((await run(['audit', 'new-key', keyFile])).status, 0);
    const log = join(dir, 'keeper.audit.log');
    await writeLog(log, keyFile, 3);
    const intact = await run(['audit', 'verify', '--key-file', keyFile, log]);
    assert.equal(intact.status, 0, intact.stderr);
    assert.match(intact.stdout, /^intact: 5 lines read, 3 events, 1 segments/);
    assert.equal(intact.stderr, '');
    const json = await run(['audit', 'verify', '-f', 'json', '--key-file', keyFile, log]);
    assert.equal(JSON.parse(json.stdout).intact, true);

    const lines = readFileSync(log, 'utf8').split('\n');
    lines.splice(2, 1);
    const cut = join(dir, 'deleted.audit.log');
    writeFileSync(cut, lines.join('\n'));
    const broken = await run(['audit', 'verify', '--key-file', keyFile, cut]);
    assert.equal(broken.status, 10);
    assert.match(broken.stdout, /^NOT INTACT/);
    assert.match(broken.stdout, /first problem: deleted at .*deleted\.audit\.log:3/);
    assert.match(
      broken.stderr,
      /^spike: .*deleted\.audit\.log:3: deleted: a line was deleted before line 3 .*\[ERR_AUDIT_NOT_INTACT\]\n$/,
    );
  });

  test('verify without the key of a keyed log, or with a bad key file, says what to fix', async () => {
    const keyFile = join(dir, 'other.key');
    assert.equal((await run(['audit', 'new-key', keyFile])).status, 0);
    const log = join(dir, 'keyed.audit.log');
    await writeLog(log, keyFile, 1);
    const keyless = await run(['audit', 'verify', log]);
    assert.equal(keyless.status, 10);
    assert.match(keyless.stderr, /give its key file \(--key-file\)/);
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, readFileSync(keyFile), { mode: 0o644 });
    const refused = await run(['audit', 'verify', '--key-file', loose, log]);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /has mode 0644/);
    const missing = await run(['audit', 'verify', join(dir, 'no-such.log')]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /Cannot read the audit log: ENOENT/);
    const usage = await run(['audit', 'verify']);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /\[ERR_USAGE\]/);
  });
});
