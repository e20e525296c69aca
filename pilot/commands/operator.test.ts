import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { formatShardText } from '../../shared/api/shard_text.ts';
import { splitRootKey } from '../../shared/crypto/shamir.ts';
import { createFakeTerminal, FakeClient, run } from './_testing.ts';
import { shardLines, writeRecoveryFiles } from './operator.ts';

const dir = mkdtempSync(join(tmpdir(), 'pilot-operator-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let shards: string[] = [];
before(async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const split = await splitRootKey(key, { shares: 3, threshold: 2, generation: 4 });
  shards = split.map(formatShardText);
});

const progress = (collected: number, restored: boolean) => ({
  generation: 4,
  collected,
  threshold: 2,
  remaining: 2 - collected,
  restored,
});

describe('spike operator recover', () => {
  test('writes one 0600 file per shard in a new 0700 directory', async () => {
    const target = join(dir, 'new', 'recover');
    const result = await writeRecoveryFiles(target, { generation: 4, threshold: 2, shards });
    assert.equal(statSync(target).mode & 0o777, 0o700);
    assert.equal(result.files.length, 3);
    for (const [i, file] of result.files.entries()) {
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(readFileSync(file, 'utf8'), `${shards[i]}\n`);
      assert.match(file, /spike-recovery-g4-\d\.txt$/);
    }
  });

  test('refuses a directory other users can read', async () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o755);
    await assert.rejects(writeRecoveryFiles(open, { generation: 4, threshold: 2, shards }), {
      code: 'ERR_INVALID_REQUEST',
      message: /has mode 0755; it must be accessible by its owner only. Run: chmod 700/,
    });
  });

  test('prints where the files are and never the shards', async () => {
    const client = new FakeClient();
    client.recover = async () => ({ generation: 4, threshold: 2, shards });
    const target = join(dir, 'cli');
    const result = await run(['operator', 'recover', '--dir', target, '-f', 'json'], { client });
    assert.equal(result.status, 0, result.stderr);
    const printed = JSON.parse(result.stdout);
    assert.equal(printed.dir, target);
    assert.equal(printed.files.length, 3);
    for (const shard of shards) assert.ok(!(result.stdout + result.stderr).includes(shard));
  });
});

describe('spike operator restore', () => {
  test('shardLines() keeps non-empty, non-comment lines, trimmed', () => {
    assert.deepEqual(shardLines('  a  \n\n# note\r\nb\n'), ['a', 'b']);
  });

  test('submits stdin shards one by one and stops once restored', async () => {
    const client = new FakeClient();
    client.restoreAnswers = [progress(1, false), progress(2, true)];
    const terminal = createFakeTerminal({ stdin: `${shards.join('\n')}\n` });
    const result = await run(['operator', 'restore'], { client, terminal });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(
      client.calls.map((call) => call.args[0]),
      [shards[0], shards[1]],
    );
    assert.match(result.stderr, /1 of 2 collected, 1 remaining/);
    assert.match(result.stdout, /restored and ready/);
  });

  test('exits 6 when stdin runs out before Nexus is unsealed', async () => {
    const client = new FakeClient();
    client.restoreAnswers = [progress(1, false)];
    const terminal = createFakeTerminal({ stdin: shards[0] ?? '' });
    const result = await run(['operator', 'restore'], { client, terminal });
    assert.equal(result.status, 6);
    assert.match(result.stderr, /still sealed: 1 shards collected, 1 remaining/);
  });

  test('refuses a mistyped shard before sending it', async () => {
    const client = new FakeClient();
    const typo = `${shards[0]?.slice(0, -1)}0`;
    const terminal = createFakeTerminal({ stdin: typo === shards[0] ? 'x' : typo });
    const result = await run(['operator', 'restore'], { client, terminal });
    assert.equal(result.status, 2);
    assert.equal(client.calls.length, 0);
    assert.ok(!result.stderr.includes(typo));
  });

  test('asks for hidden shards on a terminal, showing what remains', async () => {
    const client = new FakeClient();
    client.restoreAnswers = [progress(1, false), progress(2, true)];
    const terminal = createFakeTerminal({
      interactive: true,
      answers: [shards[0] ?? '', shards[2] ?? ''],
    });
    const result = await run(['operator', 'restore', '-f', 'json'], { client, terminal });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(terminal.prompts, ['Recovery shard: ', 'Recovery shard (1 remaining): ']);
    assert.equal(JSON.parse(result.stdout).restored, true);
  });
});

describe('spike operator rotate-root-key', () => {
  test('sends the shape given and prints the new split, with a warning about old recovery shards', async () => {
    const client = new FakeClient();
    const result = await run(['operator', 'rotate-root-key', '--shares', '3', '--threshold', '3'], {
      client,
    });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(
      client.calls.map((call) => [call.method, call.args[0]]),
      [['rotateRootKey', { shares: 3, threshold: 3 }]],
    );
    assert.match(result.stdout, /generation 9, 3 of 3 shards/);
    assert.match(result.stderr, /Recovery shards exported before now rebuild the old key only/);
  });

  test('--json prints the answer; without options the current shape is kept', async () => {
    const client = new FakeClient();
    const result = await run(['operator', 'rotate-root-key', '-f', 'json'], { client });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(client.calls[0]?.args[0], {});
    assert.deepEqual(JSON.parse(result.stdout), {
      generation: 9,
      shares: 3,
      threshold: 2,
      keepers: ['keeper-1', 'keeper-2', 'keeper-3'],
      rotatedAt: '2030-01-01T00:00:00.000Z',
    });
  });

  test('refuses a bad shape before sending anything', async () => {
    for (const args of [
      ['--shares', 'x'],
      ['--threshold', '1'],
      ['--shares', '2', '--threshold', '3'],
      ['--shares', '-1'],
    ]) {
      const client = new FakeClient();
      const result = await run(['operator', 'rotate-root-key', ...args], { client });
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(client.calls.length, 0);
    }
  });
});
