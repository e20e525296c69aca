import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VERSION } from '../shared/api/version.ts';
import { type FakeClient, run } from './commands/_testing.ts';

/** One line on stderr, `spike: <what> ; see '<cmd> --help' [ERR_USAGE]`, nothing on stdout. */
function assertUsageError(
  result: { status: number; stdout: string; stderr: string; client: FakeClient },
  what: RegExp,
  helpOf: string,
): void {
  const shown = `status ${result.status}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
  assert.equal(result.status, 2, shown);
  assert.equal(result.stdout, '', shown);
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  assert.equal(lines.length, 1, shown);
  const line = lines[0] as string;
  assert.match(line, /^spike: .+; see '.+ --help' \[ERR_USAGE\]$/, shown);
  assert.match(line, what, shown);
  assert.ok(line.includes(`; see '${helpOf} --help' [ERR_USAGE]`), shown);
  assert.deepEqual(result.client.calls, [], 'nothing was sent');
}

describe('usage errors', () => {
  test('an unknown command is one line naming it, exit 2', async () => {
    assertUsageError(await run(['sekret']), /unknown command 'sekret'/, 'spike');
    assertUsageError(
      await run(['secret', 'gett', 'app/x']),
      /unknown command 'gett'/,
      'spike secret',
    );
  });

  test('a group without its command is one line listing the commands, exit 2', async () => {
    assertUsageError(
      await run(['secret']),
      /missing command: one of put, patch, get, /,
      'spike secret',
    );
    assertUsageError(
      await run(['secret', 'metadata']),
      /missing command: one of get, put, delete/,
      'spike secret metadata',
    );
  });

  test('an unknown option is one line naming it and its command, exit 2', async () => {
    assertUsageError(
      await run(['secret', 'get', 'app/x', '--bogus']),
      /unknown option '--bogus'/,
      'spike secret get',
    );
    assertUsageError(await run(['--bogus', 'status']), /unknown option '--bogus'/, 'spike');
  });

  test('a missing argument or required option is one line, exit 2', async () => {
    assertUsageError(
      await run(['secret', 'get']),
      /missing required argument 'path'/,
      'spike secret get',
    );
    assertUsageError(
      await run(['secret', 'destroy', 'app/x']),
      /required option '--versions <list>' not specified/,
      'spike secret destroy',
    );
    assertUsageError(
      await run(['secret', 'get', 'app/x', '--version']),
      /option '--version <n>' argument missing/,
      'spike secret get',
    );
  });

  test('an extra argument is one line, exit 2', async () => {
    assertUsageError(
      await run(['secret', 'get', 'app/x', 'app/y']),
      /too many arguments/,
      'spike secret get',
    );
  });

  test('a bad option value is one line naming the option, exit 2', async () => {
    assertUsageError(
      await run(['status', '--format', 'xml']),
      /'xml' is invalid.*human, json, yaml/,
      'spike status',
    );
    assertUsageError(
      await run(['secret', 'get', 'app/x', '--version', 'two']),
      /--version .*positive integer/,
      'spike secret get',
    );
    assertUsageError(
      await run(['secret', 'delete', 'app/x', '--versions', '1,x']),
      /--versions .*positive integer/,
      'spike secret delete',
    );
    assertUsageError(
      await run(['secret', 'put', 'app/x', 'a=b', '--cas', '-1']),
      /--cas/,
      'spike secret put',
    );
    assertUsageError(
      await run(['secret', 'metadata', 'put', 'app/x', '--max-versions', '0']),
      /--max-versions .*1 to/,
      'spike secret metadata put',
    );
  });

  test('a bad path is still ERR_INVALID_REQUEST, the code Nexus gives it (exit 2)', async () => {
    const result = await run(['secret', 'get', 'app//x']);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /\[ERR_INVALID_REQUEST\]\n$/);
  });

  test('--help, help and --version still exit 0 with their text on stdout', async () => {
    for (const args of [['--help'], ['help'], ['help', 'secret'], ['secret', '--help']]) {
      const result = await run(args);
      assert.equal(result.status, 0, args.join(' '));
      assert.match(result.stdout, /^Usage: spike/, args.join(' '));
      assert.equal(result.stderr, '');
    }
  });
});

describe('spike version', () => {
  test('prints what spike --version prints', async () => {
    const flag = await run(['--version']);
    const command = await run(['version']);
    assert.equal(command.status, 0);
    assert.equal(command.stdout, `${VERSION}\n`);
    assert.equal(command.stdout, flag.stdout);
  });
});
