import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError } from '../../shared/errors/errors.ts';
import { loadAgentConfig } from './agent_config.ts';

const dir = mkdtempSync(join(tmpdir(), 'pilot-agent-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

async function problemsOf(file: string): Promise<readonly string[]> {
  try {
    await loadAgentConfig(file);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('accepted');
}

describe('spike agent configuration', () => {
  test('defaults, relative paths from the file, a source file, a command and a signal', async () => {
    writeFileSync(join(dir, 'db.tmpl'), 'P={{ app/db#password }}\n');
    const file = configFile(
      'good.yaml',
      [
        'templates:',
        '  - destination: out/db.env',
        '    source: db.tmpl',
        '    command: [systemctl, reload, app]',
        '  - destination: /run/app/api.json',
        '    mode: "0640"',
        '    contents: "{{ json app/api }}"',
        '    signal: { pidFile: app.pid }',
      ].join('\n'),
    );
    const config = await loadAgentConfig(file);
    const [first, second] = config.templates;
    assert.equal(first?.destination, join(dir, 'out/db.env'));
    assert.equal(first?.mode, 0o600);
    assert.deepEqual(first?.template.paths, ['app/db']);
    assert.deepEqual(first?.command, ['systemctl', 'reload', 'app']);
    assert.equal(second?.mode, 0o640);
    assert.deepEqual(second?.signal, { pidFile: join(dir, 'app.pid'), name: 'SIGHUP' });
  });

  test('every problem is reported at once', async () => {
    const problems = await problemsOf(
      configFile(
        'bad.yaml',
        [
          'extra: 1',
          'templates:',
          '  - mode: 0640',
          '    contents: "{{ app/db# }}"',
          '    command: "systemctl reload app"',
          '  - destination: same',
          '    contents: x',
          '    source: y',
          '  - destination: same',
          '    contents: x',
          '    signal: { pidFile: p, name: SIGNOPE }',
          '    colour: blue',
          '  - destination: other',
          '    source: missing.tmpl',
        ].join('\n'),
      ),
    );
    const expected = [
      /unknown setting "extra"/,
      /templates\[0\]\.destination: required/,
      /templates\[0\]\.mode: octal permissions in quotes/,
      /templates\[0\]: line 1, column 1: the key after "#" is empty/,
      /templates\[0\]\.command: a list/,
      /templates\[1\]: give exactly one of "contents"/,
      /templates\[2\]: unknown setting "colour"/,
      /templates\[2\]\.destination: .* is the destination of an earlier template/,
      /templates\[2\]\.signal\.name: a signal name/,
      /templates\[3\]\.source: cannot read the template source .*missing\.tmpl \(ENOENT\)/,
    ];
    for (const pattern of expected) {
      assert.ok(
        problems.some((problem) => pattern.test(problem)),
        `${pattern} in\n${problems.join('\n')}`,
      );
    }
    assert.equal(problems.length, expected.length, problems.join('\n'));
  });

  test('a file that is no YAML, has no templates or cannot be read', async () => {
    assert.match((await problemsOf(configFile('x.yaml', 'a: [')))[0] ?? '', /not valid YAML/);
    assert.match(
      (await problemsOf(configFile('y.yaml', 'templates: []')))[0] ?? '',
      /non-empty list/,
    );
    assert.match((await problemsOf(join(dir, 'nope.yaml')))[0] ?? '', /cannot read .*ENOENT/);
  });
});
