import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FakeClient, run } from './_testing.ts';

const dir = mkdtempSync(join(tmpdir(), 'pilot-deliver-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function clientWith(secrets: Record<string, Record<string, string>>): FakeClient {
  const client = new FakeClient();
  for (const [path, data] of Object.entries(secrets)) client.secrets.set(path, [data]);
  return client;
}

describe('spike run', () => {
  test('starts the command with the secrets over the inherited environment and exits with its status', async () => {
    const out = join(dir, 'run.out');
    const client = clientWith({ 'app/db': { password: 'pw', user: 'web' } });
    const result = await run(
      [
        'run',
        '--secret',
        'app/db',
        '--env',
        'DB_PW=app/db#password',
        '--',
        'sh',
        '-c',
        'printf %s "$PASSWORD,$USER,$DB_PW,$KEPT" > "$OUT"; exit 3',
      ],
      { client, env: { OUT: out, KEPT: 'inherited', USER: 'overridden' } },
    );
    assert.equal(result.status, 3, result.stderr);
    assert.equal(readFileSync(out, 'utf8'), 'pw,web,pw,inherited');
    assert.equal(result.stdout + result.stderr, '');
  });

  test('options after the command belong to the command', async () => {
    const out = join(dir, 'args.out');
    const client = clientWith({ 'app/db': { k: 'v' } });
    const result = await run(
      ['run', '--secret', 'app/db', 'sh', '-c', 'printf %s "$1" > "$OUT"', 'sh', '--secret'],
      { client, env: { OUT: out } },
    );
    assert.equal(result.status, 0, result.stderr);
    assert.equal(readFileSync(out, 'utf8'), '--secret');
  });

  test('a denied or missing path, a missing key and a collision start nothing', async () => {
    const marker = join(dir, 'started');
    const client = clientWith({ 'app/db': { password: 'pw', 'db-user': 'a', db_user: 'b' } });
    client.denied.add('getSecret app/other');
    const cases: [string[], number, RegExp][] = [
      [['--secret', 'app/other'], 3, /ERR_ACCESS_DENIED/],
      [['--secret', 'app/none'], 4, /ERR_NOT_FOUND/],
      [['--env', 'X=app/db#nope'], 4, /has no key "nope".*ERR_NOT_FOUND/],
      [['--secret', 'app/db'], 2, /both set DB_USER.*ERR_INVALID_REQUEST/],
      [['--env', 'SPIKE_NEXUS_API_URL=app/db#password'], 2, /SPIKE's own settings/],
      [['--env', 'X=app/db'], 2, /NAME=PATH#KEY/],
      [[], 2, /at least one --secret/],
    ];
    for (const [options, status, message] of cases) {
      const result = await run(['run', ...options, '--', 'sh', '-c', 'touch "$MARKER"'], {
        client,
        env: { MARKER: marker },
      });
      assert.equal(result.status, status, `${options.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.ok(!result.stderr.includes('pw'), result.stderr);
      assert.equal(existsSync(marker), false);
    }
  });

  test('a command that cannot be started exits 127, as a shell does', async () => {
    const client = clientWith({ 'app/db': { k: 'v' } });
    const result = await run(['run', '--secret', 'app/db', '--', join(dir, 'nothing-here')], {
      client,
    });
    assert.equal(result.status, 127);
    assert.match(result.stderr, /cannot start ".*nothing-here": command not found/);
  });

  test('no command, or a bad --grace, is a usage error', async () => {
    const noCommand = await run(['run', '--secret', 'app/db']);
    assert.equal(noCommand.status, 2);
    assert.match(noCommand.stderr, /missing required argument 'command'.*ERR_USAGE/);
    const grace = await run(['run', '--grace', 'soon', '--secret', 'app/db', '--', 'true']);
    assert.equal(grace.status, 2);
    assert.match(grace.stderr, /--grace.*ERR_USAGE/);
    assert.deepEqual(noCommand.client.calls, []);
  });
});

describe('spike agent --once', () => {
  test('renders every template with its mode, and only rewrites what changed', async () => {
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      [
        'templates:',
        '  - destination: once.env',
        '    contents: "{{ env app/db }}"',
        '  - destination: once.json',
        '    mode: "0640"',
        '    contents: "{{ json app/db }}"',
      ].join('\n'),
    );
    const client = clientWith({ 'app/db': { password: 'pw' } });
    const first = await run(['agent', '--once', '--config', config], { client });
    assert.equal(first.status, 0, first.stderr);
    assert.equal(readFileSync(join(dir, 'once.env'), 'utf8'), "PASSWORD='pw'\n");
    assert.equal(statSync(join(dir, 'once.env')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(dir, 'once.json'), 'utf8'), '{"password":"pw"}');
    assert.equal(statSync(join(dir, 'once.json')).mode & 0o777, 0o640);
    assert.ok(!first.stderr.includes('pw'), first.stderr);
    const inode = statSync(join(dir, 'once.env')).ino;
    const second = await run(['agent', '--once', '--config', config], { client });
    assert.equal(second.status, 0, second.stderr);
    assert.equal(statSync(join(dir, 'once.env')).ino, inode);
  });

  test('a bad configuration exits 2 and a denied path writes no file', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'templates:\n  - destination: x\n');
    const invalid = await run(['agent', '--once', '--config', bad]);
    assert.equal(invalid.status, 2);
    assert.match(invalid.stderr, /give exactly one of "contents".*ERR_CONFIG_INVALID/s);
    assert.deepEqual(invalid.client.calls, []);

    const denied = join(dir, 'denied.yaml');
    writeFileSync(
      denied,
      [
        'templates:',
        '  - destination: fine.txt',
        '    contents: "{{ app/db#password }}"',
        '  - destination: refused.txt',
        '    contents: "{{ app/other#password }}"',
      ].join('\n'),
    );
    const client = clientWith({ 'app/db': { password: 'pw' }, 'app/other': { password: 'x' } });
    client.denied.add('getSecret app/other');
    const result = await run(['agent', '--once', '--config', denied], { client });
    assert.equal(result.status, 3);
    assert.equal(existsSync(join(dir, 'fine.txt')), false);
    assert.equal(existsSync(join(dir, 'refused.txt')), false);
  });
});
