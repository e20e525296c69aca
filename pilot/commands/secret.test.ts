import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MAX_KEPT_VERSIONS } from '../../shared/api/secrets.ts';
import { AccessDeniedError, UnavailableError } from '../../shared/errors/errors.ts';
import { CALLER_ID, createFakeTerminal, FakeClient, run } from './_testing.ts';
import { parseKeyValues, parseMaxVersions, parseVersions } from './secret.ts';

const dir = mkdtempSync(join(tmpdir(), 'pilot-secret-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const noStdin = { terminal: createFakeTerminal() };

describe('parseKeyValues()', () => {
  test('splits at the first "=" so values may contain "="', async () => {
    assert.deepEqual(await parseKeyValues(['user=admin', 'token=a=b=c', 'empty='], noStdin), {
      user: 'admin',
      token: 'a=b=c',
      empty: '',
    });
  });

  test('reads key=@file as the file content, unchanged', async () => {
    const file = join(dir, 'password.txt');
    writeFileSync(file, 's3cret\n');
    assert.deepEqual(await parseKeyValues([`password=@${file}`], noStdin), {
      password: 's3cret\n',
    });
  });

  test('reads key=- from stdin without its final newline', async () => {
    const terminal = createFakeTerminal({ stdin: 'from-stdin\n' });
    assert.deepEqual(await parseKeyValues(['password=-', 'user=a'], { terminal }), {
      password: 'from-stdin',
      user: 'a',
    });
  });

  test('asks for key=- without echo when stdin is a terminal', async () => {
    const terminal = createFakeTerminal({ interactive: true, answers: ['typed'] });
    assert.deepEqual(await parseKeyValues(['password=-'], { terminal }), { password: 'typed' });
    assert.deepEqual(terminal.prompts, ['Value of "password": ']);
  });

  test('refuses two keys from stdin, duplicates, missing "=" and unreadable files', async () => {
    const terminal = createFakeTerminal({ stdin: 'x' });
    const cases: [string[], RegExp][] = [
      [['a=-', 'b=-'], /only one value can come from stdin/],
      [['a=1', 'a=2'], /Key "a" is given more than once/],
      [['no-equals-sign'], /Argument 1 .* key=value/],
      [['=value'], /Argument 1 .* key=value/],
      [[`a=@${join(dir, 'missing')}`], /Key "a": cannot read file .*ENOENT/],
      [['a=@'], /"@" must be followed by a file name/],
    ];
    for (const [pairs, message] of cases) {
      await assert.rejects(parseKeyValues(pairs, { terminal }), (err: Error) => {
        assert.equal((err as { code?: string }).code, 'ERR_INVALID_REQUEST');
        assert.match(err.message, message);
        return true;
      });
    }
  });

  test('never repeats a value in an error', async () => {
    await assert.rejects(parseKeyValues(['hunter2-secret'], noStdin), (err: Error) => {
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });
  });
});

describe('parseVersions()', () => {
  test('parses a comma-separated list, sorted and without duplicates', () => {
    assert.deepEqual(parseVersions('3,1,2,3'), [1, 2, 3]);
    assert.deepEqual(parseVersions(' 4 '), [4]);
  });

  test('refuses zero, negatives, non-numbers and empty entries', () => {
    for (const bad of ['0', '-1', 'a', '1,,2', '', '1.5', '99999999999']) {
      assert.throws(() => parseVersions(bad), { code: 'ERR_INVALID_REQUEST' }, bad);
    }
  });
});

describe('parseMaxVersions()', () => {
  test('accepts the caps Nexus accepts, and no other', () => {
    assert.equal(parseMaxVersions('1'), 1);
    assert.equal(parseMaxVersions(String(MAX_KEPT_VERSIONS)), MAX_KEPT_VERSIONS);
    for (const bad of ['0', '-1', '1.5', 'x', '', String(MAX_KEPT_VERSIONS + 1)]) {
      assert.throws(() => parseMaxVersions(bad), { code: 'ERR_INVALID_REQUEST' }, bad);
    }
  });
});

describe('spike secret', () => {
  test('put sends the pairs and --cas, and get prints them back', async () => {
    const client = new FakeClient();
    const put = await run(['secret', 'put', 'app/db', 'user=admin', 'pass=x', '--cas', '0'], {
      client,
    });
    assert.equal(put.status, 0, put.stderr);
    assert.deepEqual(client.calls[0], {
      method: 'putSecret',
      args: ['app/db', { user: 'admin', pass: 'x' }, { cas: 0 }],
    });
    assert.match(put.stdout, /Wrote "app\/db" version 1/);
    assert.doesNotMatch(put.stdout + put.stderr, /admin/);

    const get = await run(['secret', 'get', 'app/db', '--format', 'json'], { client });
    assert.equal(get.status, 0, get.stderr);
    assert.deepEqual(JSON.parse(get.stdout).data, { user: 'admin', pass: 'x' });

    const field = await run(['secret', 'get', 'app/db', '--field', 'pass'], { client });
    assert.equal(field.stdout, 'x\n');
    const yaml = await run(['secret', 'get', 'app/db', '--format', 'yaml', '--field', 'user'], {
      client,
    });
    assert.equal(yaml.stdout, 'admin\n');
  });

  test('get --field of a missing key is "not found" (exit 4)', async () => {
    const client = new FakeClient();
    client.secrets.set('app/db', [{ user: 'admin' }]);
    const result = await run(['secret', 'get', 'app/db', '--field', 'nope'], { client });
    assert.equal(result.status, 4);
    assert.match(result.stderr, /has no key "nope"/);
    assert.equal(result.stdout, '');
  });

  test('get --wait-newer-than prints the first version other than N, and waits for it', async () => {
    const client = new FakeClient();
    client.secrets.set('app/db', [{ pass: 'one' }]);
    const at = await run(['secret', 'get', 'app/db', '--wait-newer-than', '0', '--field', 'pass'], {
      client,
    });
    assert.equal(at.status, 0, at.stderr);
    assert.equal(at.stdout, 'one\n');
    assert.deepEqual(client.calls.at(-2), {
      method: 'getSecretNewerThan',
      args: ['app/db', 0, { waitMs: 60_000 }],
    });
    // The run's budget grows by the wait.
    assert.equal(client.connectWaitMs, 60_000);

    // Nothing newer at first: the next long-poll finds version 2.
    client.calls.length = 0;
    client.whileWaiting = () => {
      client.whileWaiting = undefined;
      client.secrets.get('app/db')?.push({ pass: 'two' });
    };
    const later = await run(
      ['secret', 'get', 'app/db', '--wait-newer-than', '1', '--wait', '5m', '-f', 'json'],
      { client },
    );
    assert.equal(later.status, 0, later.stderr);
    assert.equal(JSON.parse(later.stdout).version, 2);
    assert.deepEqual(
      client.calls.map((call) => call.method),
      ['getSecretNewerThan', 'getSecretNewerThan', 'getSecret'],
    );
    // Each long-poll waits at most the minute Nexus allows.
    assert.deepEqual(client.calls[0]?.args[2], { waitMs: 60_000 });
    assert.equal(client.connectWaitMs, 300_000);
  });

  test('get --wait-newer-than: a wait with no change exits 7; bad combinations are usage errors', async () => {
    const client = new FakeClient();
    client.secrets.set('app/db', [{ pass: 'one' }]);
    const quiet = await run(
      ['secret', 'get', 'app/db', '--wait-newer-than', '1', '--wait', '20ms'],
      {
        client,
      },
    );
    assert.equal(quiet.status, 7);
    assert.match(
      quiet.stderr,
      /No version of "app\/db" other than 1 came within 20 ms .*ERR_UNAVAILABLE/,
    );
    assert.equal(quiet.stdout, '');

    for (const args of [
      ['--wait', '5s'],
      ['--version', '1', '--wait-newer-than', '0'],
      ['--wait-newer-than', '-1'],
      ['--wait-newer-than', '1', '--wait', '2h'],
      ['--wait-newer-than', '1', '--wait', 'soon'],
    ]) {
      client.calls.length = 0;
      const bad = await run(['secret', 'get', 'app/db', ...args], { client });
      assert.equal(bad.status, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.deepEqual(client.calls, [], args.join(' '));
    }
  });

  test('get --version is passed as a number; a bad one is refused before connecting', async () => {
    const client = new FakeClient();
    client.secrets.set('app/db', [{ a: '1' }, { a: '2' }]);
    const result = await run(['secret', 'get', 'app/db', '--version', '1', '-f', 'json'], {
      client,
    });
    assert.equal(JSON.parse(result.stdout).version, 1);
    const bad = await run(['secret', 'get', 'app/db', '--version', 'x'], { client });
    assert.equal(bad.status, 2);
    assert.equal(client.calls.length, 1);
  });

  test('list follows every page and prints one path per line', async () => {
    const client = new FakeClient();
    for (const path of ['app/a', 'app/b', 'app/c', 'other/x']) client.secrets.set(path, [{}]);
    const result = await run(['secret', 'list', 'app/'], { client });
    assert.equal(result.stdout, 'app/a\napp/b\napp/c\n');
    const json = await run(['secret', 'list', '--format', 'json'], { client });
    assert.deepEqual(JSON.parse(json.stdout), { paths: ['app/a', 'app/b', 'app/c', 'other/x'] });
  });

  test('delete and undelete pass --versions as a list, or nothing for the current one', async () => {
    const client = new FakeClient();
    await run(['secret', 'delete', 'app/db', '--versions', '2,1'], { client });
    await run(['secret', 'undelete', 'app/db'], { client });
    assert.deepEqual(client.calls, [
      { method: 'deleteSecret', args: ['app/db', { versions: [1, 2] }] },
      { method: 'undeleteSecret', args: ['app/db', {}] },
    ]);
  });

  test('destroy needs --versions, and --yes when stdin is not a terminal', async () => {
    const client = new FakeClient();
    const missing = await run(['secret', 'destroy', 'app/db'], { client });
    assert.equal(missing.status, 2);
    const refused = await run(['secret', 'destroy', 'app/db', '--versions', '1'], { client });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /refused without --yes/);
    assert.equal(client.calls.length, 0);
    const done = await run(['secret', 'destroy', 'app/db', '--versions', '1', '--yes'], {
      client,
    });
    assert.equal(done.status, 0, done.stderr);
    assert.deepEqual(client.calls, [{ method: 'destroySecret', args: ['app/db', [1]] }]);
  });

  test('metadata put sends --max-versions and --custom pairs', async () => {
    const client = new FakeClient();
    const result = await run(
      [
        'secret',
        'metadata',
        'put',
        'app/db',
        '--max-versions',
        '5',
        '--custom',
        'owner=a',
        'team=b',
      ],
      { client },
    );
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(client.calls[0], {
      method: 'putMetadata',
      args: ['app/db', { maxVersions: 5, customMetadata: { owner: 'a', team: 'b' } }],
    });
    const nothing = await run(['secret', 'metadata', 'put', 'app/db'], { client });
    assert.equal(nothing.status, 2);
  });

  test('an invalid path is refused with exit 2 before connecting', async () => {
    const result = await run(['secret', 'get', '../etc/passwd']);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /ERR_INVALID_REQUEST/);
    assert.equal(result.client.calls.length, 0);
  });

  test('access denied names the caller; unreachable exits 7; the client is closed', async () => {
    const client = new FakeClient();
    client.failWith = new AccessDeniedError();
    const denied = await run(['secret', 'get', 'app/db'], { client });
    assert.equal(denied.status, 3);
    assert.match(denied.stderr, new RegExp(`Access denied for ${CALLER_ID}`));
    assert.equal(client.closed, true);
    client.failWith = new UnavailableError('Nexus is unreachable at https://127.0.0.1:1');
    const down = await run(['secret', 'list'], { client });
    assert.equal(down.status, 7);
    assert.match(down.stderr, /unreachable at https:\/\/127\.0\.0\.1:1/);
  });
});

describe('spike secret patch', () => {
  test('writes the current data with the given keys set, with check-and-set on the version read', async () => {
    const client = new FakeClient();
    client.secrets.set('app/db', [
      { user: 'a', pass: 'old' },
      { user: 'b', pass: 'old-2' },
    ]);
    const result = await run(['secret', 'patch', 'app/db', 'pass=new', 'port=5432'], { client });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(client.calls.at(-1), {
      method: 'putSecret',
      args: ['app/db', { user: 'b', pass: 'new', port: '5432' }, { cas: 2 }],
    });
    assert.match(result.stdout, /Patched "app\/db": version 3 sets pass, port \(from version 2\)/);
    assert.doesNotMatch(result.stdout + result.stderr, /new|old|5432/);
  });

  test('a write between the read and the patch is a conflict (exit 5) and is not overwritten', async () => {
    const client = new FakeClient();
    client.secrets.set('app/db', [{ user: 'a' }]);
    client.beforePut = () => {
      client.beforePut = undefined;
      client.secrets.set('app/db', [{ user: 'a' }, { user: 'concurrent' }]);
    };
    const result = await run(['secret', 'patch', 'app/db', 'pass=x'], { client });
    assert.equal(result.status, 5, result.stderr);
    assert.match(
      result.stderr,
      /changed while it was patched .*nothing was written.*\[ERR_CONFLICT\]/,
    );
    assert.deepEqual(client.secrets.get('app/db'), [{ user: 'a' }, { user: 'concurrent' }]);
  });

  test('a secret that does not exist is not created (exit 4)', async () => {
    const client = new FakeClient();
    const result = await run(['secret', 'patch', 'app/none', 'a=b'], { client });
    assert.equal(result.status, 4);
    assert.match(result.stderr, /no current version to patch.*spike secret put.*\[ERR_NOT_FOUND\]/);
    assert.equal(client.secrets.has('app/none'), false);
    const usage = await run(['secret', 'patch', 'app/db'], { client });
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /missing required argument 'pairs'/);
  });
});

describe('spike secret metadata delete', () => {
  test('removes the path after --yes; refuses off a terminal without it; asks on a terminal', async () => {
    const client = new FakeClient();
    client.secrets.set('app/db', [{ a: '1' }]);
    const refused = await run(['secret', 'metadata', 'delete', 'app/db'], { client });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /refused without --yes/);
    const no = await run(['secret', 'metadata', 'delete', 'app/db'], {
      client,
      terminal: createFakeTerminal({ interactive: true, answers: ['n'] }),
    });
    assert.equal(no.status, 1);
    assert.equal(client.calls.length, 0);
    const done = await run(['secret', 'metadata', 'delete', 'app/db', '--yes', '-f', 'json'], {
      client,
    });
    assert.equal(done.status, 0, done.stderr);
    assert.deepEqual(JSON.parse(done.stdout), { path: 'app/db', deleted: true });
    assert.deepEqual(client.calls, [{ method: 'deletePath', args: ['app/db'] }]);
    const again = await run(['secret', 'metadata', 'delete', 'app/db', '--yes'], { client });
    assert.equal(again.status, 4);
  });
});

describe('spike secret purge', () => {
  /** app/gone: all deleted; app/razed: deleted and destroyed; app/live: one live version. */
  function world(): FakeClient {
    const client = new FakeClient();
    client.secrets.set('app/gone', [{ a: '1' }, { a: '2' }]);
    client.versionStates.set(
      'app/gone',
      new Map([
        [1, 'deleted'],
        [2, 'deleted'],
      ] as const),
    );
    client.secrets.set('app/razed', [{ a: '1' }, { a: '2' }]);
    client.versionStates.set(
      'app/razed',
      new Map([
        [1, 'destroyed'],
        [2, 'deleted'],
      ] as const),
    );
    client.secrets.set('app/live', [{ a: '1' }, { a: '2' }]);
    client.versionStates.set('app/live', new Map([[2, 'deleted']] as const));
    client.secrets.set('other/gone', [{ a: '1' }]);
    client.versionStates.set('other/gone', new Map([[1, 'deleted']] as const));
    return client;
  }

  test('--dry-run lists the emptied paths under a prefix and removes nothing', async () => {
    const client = world();
    const result = await run(['secret', 'purge', 'app/', '--dry-run'], { client });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, 'Would purge: app/gone\nWould purge: app/razed\n');
    assert.match(result.stderr, /Dry run: 2 path\(s\) under "app\/" would be purged/);
    assert.ok(!client.calls.some((call) => call.method === 'deletePath'));
    const json = await run(['secret', 'purge', 'app/', '--dry-run', '-f', 'json'], { client });
    assert.deepEqual(JSON.parse(json.stdout), {
      dryRun: true,
      paths: ['app/gone', 'app/razed'],
      skipped: [],
    });
  });

  test('removes only paths whose every version is deleted or destroyed, after --yes', async () => {
    const client = world();
    const refused = await run(['secret', 'purge', 'app/'], { client });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /refused without --yes/);
    assert.equal(client.secrets.size, 4);
    const result = await run(['secret', 'purge', 'app/', '--yes'], { client });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, 'Purged: app/gone\nPurged: app/razed\n');
    assert.deepEqual([...client.secrets.keys()].sort(), ['app/live', 'other/gone']);
  });

  test('a path without a final "/" is that one path only', async () => {
    const client = world();
    client.secrets.set('app/gone2', [{ a: '1' }]);
    client.versionStates.set('app/gone2', new Map([[1, 'deleted']] as const));
    const result = await run(['secret', 'purge', 'app/gone', '--yes'], { client });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, 'Purged: app/gone\n');
    assert.ok(client.secrets.has('app/gone2'));
    assert.ok(!client.calls.some((call) => call.method === 'listSecrets'));
    const live = await run(['secret', 'purge', 'app/live', '--yes'], { client });
    assert.equal(live.status, 0);
    assert.match(live.stderr, /Nothing to purge at "app\/live"/);
    assert.ok(client.secrets.has('app/live'));
    const missing = await run(['secret', 'purge', 'app/none', '--yes'], { client });
    assert.equal(missing.status, 4);
  });

  test('a path revived after the first look is kept: Nexus refuses its removal, and purge counts it', async () => {
    const client = world();
    const remove = client.deletePath.bind(client);
    client.deletePath = async (path, options) => {
      // Someone undeletes app/gone between purge's look and its removal.
      if (path === 'app/gone') client.versionStates.get('app/gone')?.delete(2);
      return remove(path, options);
    };
    const result = await run(['secret', 'purge', 'app/', '--yes', '-f', 'json'], { client });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      paths: ['app/razed'],
      skipped: [{ path: 'app/gone', code: 'ERR_CONFLICT' }],
    });
    assert.match(result.stderr, /1 written to meanwhile/);
    assert.ok(client.secrets.has('app/gone'));
    const removals = client.calls.filter((call) => call.method === 'deletePath');
    assert.ok(removals.every((call) => JSON.stringify(call.args[1]) === '{"onlyDeleted":true}'));
  });

  test('in a prefix, paths the caller may not read or remove are skipped and counted', async () => {
    const client = world();
    client.denied.add('getMetadata app/gone');
    client.denied.add('deletePath app/razed');
    const result = await run(['secret', 'purge', 'app/', '--yes', '-f', 'json'], { client });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      paths: [],
      skipped: [
        { path: 'app/gone', code: 'ERR_ACCESS_DENIED' },
        { path: 'app/razed', code: 'ERR_ACCESS_DENIED' },
      ],
    });
    assert.match(result.stderr, /Purged 0 path\(s\) under "app\/"; skipped 2 you may not read/);
    assert.equal(client.secrets.size, 4);
    const single = await run(['secret', 'purge', 'app/razed', '--yes'], { client });
    assert.equal(single.status, 3, 'one named path: access denied is the answer');
  });

  test('a path written to after the first look keeps its new version', async () => {
    const client = world();
    const terminal = createFakeTerminal({ interactive: true, answers: ['y'] });
    const prompt = terminal.prompt;
    terminal.prompt = async (question) => {
      // Someone writes while the user reads the question.
      client.secrets.set('app/gone', [{ a: '1' }, { a: '2' }, { a: 'new' }]);
      return prompt(question);
    };
    const result = await run(['secret', 'purge', 'app/'], { client, terminal });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(terminal.prompts, [
      'Remove 2 path(s) under "app/" whose every version is deleted or destroyed, for good? [y/N] ',
    ]);
    assert.equal(result.stdout, 'Purged: app/razed\n');
    assert.match(result.stderr, /skipped 1 written to meanwhile/);
    assert.equal(client.secrets.get('app/gone')?.length, 3);
  });
});
