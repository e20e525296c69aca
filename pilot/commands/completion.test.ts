import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { run } from './_testing.ts';
import { COMPLETION_SHELLS } from './completion.ts';

const dir = mkdtempSync(join(tmpdir(), 'pilot-completion-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Whether `shell` can be started; a missing shell skips its tests with a notice. */
function hasShell(shell: string): boolean {
  const found = spawnSync(shell, ['-c', 'exit 0'], { stdio: 'ignore' });
  return found.error === undefined && found.status === 0;
}

function skipWithout(shell: string): string | false {
  return hasShell(shell) ? false : `${shell} is not installed (apt-get install ${shell})`;
}

async function scriptFor(shell: string): Promise<string> {
  const result = await run(['completion', shell]);
  assert.equal(result.status, 0, result.stderr);
  const file = join(dir, `spike.${shell}`);
  writeFileSync(file, result.stdout);
  return file;
}

function sh(
  shell: string,
  args: readonly string[],
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(shell, args, {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '' },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The words bash's completion function offers for a command line ending at the cursor. */
function bashComplete(script: string, words: readonly string[]): string[] {
  const quoted = words.map((word) => `'${word.replaceAll("'", `'\\''`)}'`).join(' ');
  const program = `source '${script}'
COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}
_spike_complete
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const result = sh('bash', ['-c', program]);
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.split('\n').filter((line) => line !== '');
}

describe('spike completion', () => {
  test('every shell gets a script; an unknown or missing shell is a usage error', async () => {
    for (const shell of COMPLETION_SHELLS) {
      const result = await run(['completion', shell]);
      assert.equal(result.status, 0, `${shell}: ${result.stderr}`);
      assert.match(result.stdout, /secret/);
    }
    const unknown = await run(['completion', 'tcsh']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /'tcsh' is invalid.*bash, zsh, fish.*\[ERR_USAGE\]/);
    assert.equal((await run(['completion'])).status, 2);
  });

  for (const shell of COMPLETION_SHELLS) {
    test(`the ${shell} script passes ${shell} -n`, { skip: skipWithout(shell) }, async () => {
      const result = sh(shell, ['-n', await scriptFor(shell)]);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stderr, '');
    });
  }

  test('bash completes commands, subcommands, options and --format values', {
    skip: skipWithout('bash'),
  }, async () => {
    const script = await scriptFor('bash');
    assert.deepEqual(bashComplete(script, ['spike', 'sec']), ['secret']);
    assert.deepEqual(bashComplete(script, ['spike', 'secret', 'metadata', '']).slice(0, 3), [
      'get',
      'put',
      'delete',
    ]);
    assert.deepEqual(bashComplete(script, ['spike', '-f', 'json', 'secret', 'pa']), ['patch']);
    assert.deepEqual(bashComplete(script, ['spike', 'secret', 'get', 'app/x', '--f']), [
      '--field',
      '--format',
    ]);
    assert.deepEqual(bashComplete(script, ['spike', 'status', '--format', '']), [
      'human',
      'json',
      'yaml',
    ]);
    assert.deepEqual(bashComplete(script, ['spike', 'completion', '']), [
      'bash',
      'zsh',
      'fish',
      '--help',
      '-h',
    ]);
  });

  test('zsh registers _spike for spike when sourced after compinit', {
    skip: skipWithout('zsh'),
  }, async () => {
    const script = await scriptFor('zsh');
    const result = sh('zsh', [
      '-f',
      '-c',
      `autoload -U compinit; compinit -u -D; source '${script}'; print -r -- \${_comps[spike]}`,
    ]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, '_spike\n');
  });

  test('fish completes commands with their descriptions', {
    skip: skipWithout('fish'),
  }, async () => {
    const script = await scriptFor('fish');
    const result = sh('fish', [
      '--no-config',
      '-c',
      `source '${script}'; complete -C 'spike sec'; complete -C 'spike secret metadata d'; complete -C 'spike completion z'`,
    ]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^secret\tRead and write secrets$/m);
    assert.match(result.stdout, /^delete\t/m);
    assert.match(result.stdout, /^zsh$/m);
  });
});
