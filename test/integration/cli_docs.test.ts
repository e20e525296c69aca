/**
 * docs/cli.md as a newcomer uses it: its ```bash examples, in order and as
 * written, in one fresh bash (no profile, a new HOME, stdin not a terminal)
 * started in the checkout, against a real broker (the embedded agent, three
 * Keepers and Nexus over real mTLS). The first example puts `spike` on the
 * PATH the way the page says; any example that fails fails the test and
 * names its line.
 *
 * An example that cannot run here (it needs a terminal, a break-glass role,
 * a sealed Nexus) is marked in the page by the line
 * `<!-- docs-test: skip (reason) -->` just before its fence; the reason is
 * required and such examples stay few. Examples for other shells are fenced
 * ```zsh or ```fish; a ```sh fence is refused, so that no shell example
 * escapes this test unmarked.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Broker, startBroker } from '../harness/broker.ts';
import { ROOT } from '../harness/spawn.ts';

const DOC = 'docs/cli.md';
const SKIP_REGEXP = /^<!-- docs-test: skip \((.+)\) -->$/;
const FENCE_REGEXP = /^```(\S*)/;
/** Fences that hold shell commands; only `bash` runs here. */
const SHELL_FENCES = new Set(['bash', 'zsh', 'fish']);
/** Fences that are not commands to run: transcripts and file contents. */
const OTHER_FENCES = new Set(['console', 'yaml', 'json', '']);
/** "Keep those few": more skipped examples than this needs a second look. */
const MAX_SKIPPED = 4;

interface Example {
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly text: string;
  /** The reason it is not run, or undefined when it runs. */
  readonly skip: string | undefined;
}

/** The ```bash examples of a Markdown text, in order, with their skip marks. */
function bashExamples(markdown: string): Example[] {
  const lines = markdown.split('\n');
  const examples: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = FENCE_REGEXP.exec(lines[i] as string);
    if (fence === null) continue;
    const language = fence[1] as string;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i] as string);
    assert.ok(i < lines.length, `${DOC}:${start + 1}: a fence that is never closed`);
    assert.ok(
      SHELL_FENCES.has(language) || OTHER_FENCES.has(language),
      `${DOC}:${start + 1}: fence "${language}": shell examples are bash (run by this test), zsh or fish`,
    );
    const previous = start > 0 ? (lines[start - 1] as string) : '';
    const skip = SKIP_REGEXP.exec(previous.trim())?.[1];
    if (language === 'bash') {
      examples.push({ line: start + 1, text: body.join('\n'), skip });
    } else {
      assert.equal(skip, undefined, `${DOC}:${start + 1}: only bash examples can be skipped`);
    }
  }
  return examples;
}

/** One bash script: the examples in order, each announced on stderr by its line. */
function scriptOf(examples: readonly Example[]): string {
  const parts = ['set -eo pipefail'];
  for (const example of examples) {
    if (example.skip !== undefined) continue;
    parts.push(`echo '# docs-test: example at ${DOC}:${example.line}' >&2`, example.text);
  }
  parts.push(`echo '# docs-test: all examples ran' >&2`);
  return `${parts.join('\n')}\n`;
}

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runBash(script: string, env: Record<string, string>, timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['--noprofile', '--norc', script], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

describe(`the examples of ${DOC}`, () => {
  const examples = bashExamples(readFileSync(join(ROOT, DOC), 'utf8'));
  let broker: Broker;
  let home: string;

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'spike-cli-docs-'));
    // The page's examples name SPIKE's default trust domain, as a newcomer's broker has it.
    broker = await startBroker({ trustDomain: 'spike.ist' });
  });

  after(async () => {
    try {
      await broker?.stop();
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test('are bash, few are skipped, each skip says why, and the first puts spike on the PATH', () => {
    const skipped = examples.filter((example) => example.skip !== undefined);
    assert.ok(skipped.length <= MAX_SKIPPED, `${skipped.length} examples are skipped`);
    assert.ok(examples.length - skipped.length >= 20, 'most examples run');
    assert.match(examples[0]?.text ?? '', /ln -sf "\$PWD\/bin\/spike\.js" ~\/\.local\/bin\/spike/);
    assert.equal(examples[0]?.skip, undefined);
  });

  test('run in order as written in one fresh bash against a real broker', {
    timeout: 600_000,
  }, async () => {
    const tmp = join(home, 'tmp');
    mkdirSync(tmp);
    const script = join(home, 'examples.sh');
    writeFileSync(script, scriptOf(examples));
    const result = await runBash(
      script,
      {
        // Deno's folder, as the README says to put it on the PATH; spike is not on it yet.
        PATH: `${join(ROOT, '.tools', 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
        HOME: home,
        TMPDIR: tmp,
        ...broker.identityEnv('pilot'),
        SPIKE_NEXUS_API_URL: broker.nexusUrl,
        NO_COLOR: '1',
      },
      540_000,
    );
    const ran = [...result.stderr.matchAll(/^# docs-test: (.+)$/gm)].map((match) => match[1]);
    assert.equal(
      result.status,
      0,
      `failed at the ${ran.at(-1) ?? 'first example'} (exit ${result.status})\n` +
        `--- stdout (end) ---\n${result.stdout.slice(-3000)}\n` +
        `--- stderr (end) ---\n${result.stderr.slice(-3000)}`,
    );
    assert.equal(ran.at(-1), 'all examples ran');
    // A few results that show the examples did what the page says.
    assert.match(
      result.stdout,
      /^Patched "app\/db\/creds": version 4 sets port \(from version 3\)$/m,
    );
    assert.match(result.stdout, /^Would purge: app\/tmp\/token$/m);
    assert.match(result.stdout, /^Purged: app\/tmp\/token$/m);
    assert.match(result.stdout, /^Removed "app\/db\/creds" with every version$/m);
  });
});
