/**
 * Secret delivery to programs that know nothing of SPIFFE (docs/delivery.md),
 * as users run it: `spike run` and `spike agent` as subprocesses (on the
 * runtime of this test) with a workload's own SVID, against real processes
 * over real mTLS (the embedded agent, three Keepers, Nexus on SQLite). The
 * workload's child is a `sh` script, and a Python one where python3 is
 * installed (a CI machine may have none: that test skips itself). The
 * agent keeps its file current across a new version, SVID rotations every
 * few seconds and a Nexus killed with SIGKILL that unseals itself from its
 * Keepers. A denied path starts no child and writes no file. The leak scan
 * reads every process's output (the template agent's log included), the
 * broker's files and every error body for the values.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { type RunningProgram, runProgram, startProgram } from '../harness/spawn.ts';

const TD_NAME = 'delivery.test';
/**
 * The documented bounds (docs/delivery.md#how-fast-a-change-arrives): a new
 * version within 5 s while Nexus answers; after an outage, within the
 * longest back-off (5 s) and one poll (1 s) of Nexus answering again.
 */
const CHANGE_BOUND_MS = 5_000;
const AFTER_OUTAGE_BOUND_MS = 6_000;

/** Waits until `check` returns a value other than undefined, or fails after `timeoutMs`. */
async function waitUntil<T>(
  what: string,
  timeoutMs: number,
  check: () => T | undefined,
  details: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}\n${details()}`);
    await delay(25);
  }
}

function hasPython(): boolean {
  return spawnSync('python3', ['--version']).status === 0;
}

function readIfThere(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

describe('spike run and spike agent deliver secrets with the workload SVID', () => {
  let broker: Broker;
  /** Files that hold values by design, outside the broker's folder (which the leak scan reads). */
  let scratch: string;
  const long: RunningProgram[] = [];
  let runs = 0;

  const asWeb = (extra: Record<string, string> = {}) => ({
    ...broker.identityEnv('web'),
    SPIKE_NEXUS_API_URL: broker.nexusUrl,
    SPIKE_PILOT_TIMEOUT: '10s',
    ...extra,
  });

  /** An agent configuration of these lines, in the scratch folder; its path. */
  function agentConfig(name: string, lines: readonly string[]): string {
    const path = join(scratch, name);
    writeFileSync(path, lines.join('\n'));
    return path;
  }

  async function put(path: string, data: Record<string, string>): Promise<number> {
    const reply = await broker.call('pilot', 'PUT', `${PATHS.secretData}/${path}`, { data });
    assert.equal(reply.status, 200, reply.text);
    return (reply.body as { currentVersion: number }).currentVersion;
  }

  async function spike(args: readonly string[], env: Record<string, string> = {}) {
    const result = await runProgram('pilot', { args, env: asWeb(env), timeoutMs: 30_000 });
    runs += 1;
    broker.scan(`stdout of spike ${args[0]} (run #${runs})`, result.stdout);
    broker.scan(`stderr of spike ${args[0]} (run #${runs})`, result.stderr);
    return result;
  }

  /** A long-running spike, stopped and scanned at the end. */
  function start(args: readonly string[], env: Record<string, string> = {}): RunningProgram {
    const program = startProgram('pilot', { args, env: asWeb(env) });
    long.push(program);
    broker.scan(`output of spike ${args[0]} #${long.length}`, () => program.output());
    return program;
  }

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'spike-delivery-'));
    broker = await startBroker({
      trustDomain: TD_NAME,
      workloads: { web: '/apps/web' },
      // Every SVID, the workload's included, rotates every few seconds.
      agentEnv: { SPIKE_AGENT_SVID_TTL: '10s' },
    });
    const policy = await broker.call('pilot', 'PUT', `${PATHS.policies}/web-reads`, {
      spiffeIdPattern: `spiffe://${TD_NAME}/apps/web`,
      pathPattern: 'app/web/**',
      permissions: ['read'],
    });
    assert.equal(policy.status, 200, policy.text);
  });

  after(async () => {
    await Promise.all(long.map((program) => program.stop()));
    await broker?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('spike run starts a shell script with the password in its environment and passes its exit status on', async () => {
    const password = broker.secretValue('run password');
    await put('app/web/run', { password, 'db-user': 'web' });
    await put('app/other/db', { password: broker.secretValue('not for web') });
    const out = join(scratch, 'run.out');
    const script = 'printf "%s|%s|%s" "$DB_PASSWORD" "$PASSWORD" "$DB_USER" > "$OUT"; exit 7';
    const result = await spike(
      [
        'run',
        '--secret',
        'app/web/run',
        '--env',
        'DB_PASSWORD=app/web/run#password',
        '--',
        'sh',
        '-c',
        script,
      ],
      { OUT: out },
    );
    assert.equal(result.status, 7, result.stderr);
    assert.equal(readFileSync(out, 'utf8'), `${password}|${password}|web`);
  });

  test('spike run gives a Python program its password', {
    skip: !hasPython() && 'python3 is not installed here (the sh tests cover the same path)',
  }, async () => {
    const out = join(scratch, 'python.out');
    const program = "import os; open(os.environ['OUT'], 'w').write(os.environ['DB_PASSWORD'])";
    const result = await spike(
      ['run', '--env', 'DB_PASSWORD=app/web/run#password', '--', 'python3', '-c', program],
      { OUT: out },
    );
    assert.equal(result.status, 0, result.stderr);
    const secret = await broker.call('pilot', 'GET', `${PATHS.secretData}/app/web/run`);
    assert.equal(
      readFileSync(out, 'utf8'),
      (secret.body as { data: { password: string } }).data.password,
    );
  });

  test('a denied path, a missing key or a collision starts nothing, with the usual exit status', async () => {
    const marker = join(scratch, 'started');
    const script = ['--', 'sh', '-c', 'touch "$MARKER"'];
    const cases: [readonly string[], number, RegExp][] = [
      [['--secret', 'app/other/db'], 3, /Access denied.*\[ERR_ACCESS_DENIED\]/],
      [['--env', 'X=app/web/run#nope'], 4, /has no key "nope".*\[ERR_NOT_FOUND\]/],
      [['--secret', 'app/web/missing'], 4, /\[ERR_NOT_FOUND\]/],
      [
        ['--secret', 'app/web/run', '--env', 'PASSWORD=app/web/run#password'],
        2,
        /both set PASSWORD.*\[ERR_INVALID_REQUEST\]/,
      ],
    ];
    for (const [options, status, message] of cases) {
      const result = await spike(['run', ...options, ...script], { MARKER: marker });
      assert.equal(result.status, status, `${options.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(existsSync(marker), false, `${options.join(' ')} started the command`);
    }
  });

  test('spike run --watch restarts the script with a new version within the bound, and forwards SIGTERM', async () => {
    const first = broker.secretValue('watch v1');
    await put('app/web/watch', { password: first });
    const out = join(scratch, 'watch.out');
    const starts = join(scratch, 'watch.starts');
    const script = [
      'echo start >> "$STARTS"',
      'printf %s "$PASSWORD" > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"',
      'trap "exit 0" TERM',
      'while :; do sleep 0.1; done',
    ].join('; ');
    const run = start(
      ['run', '--watch', '--grace', '3s', '--secret', 'app/web/watch', '--', 'sh', '-c', script],
      { OUT: out, STARTS: starts },
    );
    await waitUntil(
      'the script runs with v1',
      30_000,
      () => (readIfThere(out) === first ? true : undefined),
      () => run.output(),
    );
    const second = broker.secretValue('watch v2');
    await put('app/web/watch', { password: second });
    await waitUntil(
      'the script runs with v2',
      CHANGE_BOUND_MS,
      () => (readIfThere(out) === second ? true : undefined),
      () => run.output(),
    );
    assert.equal(readFileSync(starts, 'utf8'), 'start\nstart\n');
    assert.match(run.stderr(), /app\/web\/watch has a new version: restarting sh/);
    run.signal('SIGTERM');
    assert.equal(await run.exited(), 0, run.output());
  });

  test('spike agent --once with a denied path writes no file and exits 3', async () => {
    const destination = join(scratch, 'denied.env');
    const config = agentConfig('denied.yaml', [
      'templates:',
      '  - destination: allowed.env',
      '    contents: "A={{ app/web/run#password }}"',
      '  - destination: denied.env',
      '    contents: "B={{ app/other/db#password }}"',
    ]);
    const result = await spike(['agent', '--once', '--config', config]);
    assert.equal(result.status, 3, result.stderr);
    assert.match(result.stderr, /\[ERR_ACCESS_DENIED\]/);
    assert.equal(existsSync(destination), false);
    assert.equal(existsSync(join(scratch, 'allowed.env')), false);
  });

  test('spike agent keeps a 0600 file current across a new version, SVID rotations and a Nexus SIGKILL', async () => {
    const path = 'app/web/db';
    let password = broker.secretValue('agent v1');
    await put(path, { password, user: 'web' });
    const destination = join(scratch, 'db.env');
    const changes = join(scratch, 'changes.log');
    const config = agentConfig('agent.yaml', [
      'templates:',
      '  - destination: db.env',
      '    contents: |',
      `      DB_PASSWORD={{ ${path}#password }}`,
      `      {{ env ${path} }}`,
      '    command: [sh, -c, "echo changed >> \\"$CHANGES\\""]',
    ]);
    const agent = start(['agent', '--config', config], { CHANGES: changes });
    /** The file once it holds `password`; its mode is checked at every look. */
    const holds = (value: string, timeoutMs: number) =>
      waitUntil(
        'the file holds the current password',
        timeoutMs,
        () => {
          const text = readIfThere(destination);
          if (text === undefined) return undefined;
          assert.equal(statSync(destination).mode & 0o777, 0o600);
          return text.includes(`DB_PASSWORD=${value}\n`) ? text : undefined;
        },
        () => agent.output(),
      );
    const text = await holds(password, 30_000);
    assert.equal(text, `DB_PASSWORD=${password}\nPASSWORD='${password}'\nUSER='web'\n\n`);
    await waitUntil('the command ran', 5_000, () =>
      readIfThere(changes) === 'changed\n' ? true : undefined,
    );

    password = broker.secretValue('agent v2');
    await put(path, { password, user: 'web' });
    await holds(password, CHANGE_BOUND_MS);
    await waitUntil('the command ran again', 5_000, () =>
      readIfThere(changes) === 'changed\nchanged\n' ? true : undefined,
    );

    // Two rotations of the agent's own SVID, then a version written after them.
    await agent.waitFor(/Rotated X509-SVID[\s\S]*Rotated X509-SVID/, 30_000);
    password = broker.secretValue('agent v3');
    await put(path, { password, user: 'web' });
    await holds(password, CHANGE_BOUND_MS);

    // Nexus dies without warning, comes back and unseals itself from the Keepers.
    broker.nexus().child.kill('SIGKILL');
    await broker.nexus().exited();
    await agent.waitFor(/Cannot check for new versions/, 30_000);
    broker.closeClients();
    broker.startNexus();
    await broker.waitUntilReady('Nexus unsealed itself after SIGKILL');
    password = broker.secretValue('agent v4');
    await put(path, { password, user: 'web' });
    await holds(password, AFTER_OUTAGE_BOUND_MS);
    assert.match(agent.output(), /Checking for new versions again/);

    agent.signal('SIGTERM');
    assert.equal(await agent.exited(), 0, agent.output());
    // Its log names the file and versions, and never a value (the leak scan checks that too).
    assert.match(agent.stderr(), /"destination":"[^"]*db\.env".*"msg":"Rendered"/);
  });

  test('spike agent keeps current a file of more paths than its SPIFFE ID may hold waiting watches', async () => {
    // 70 paths: over Nexus's 64 waiting watches per SPIFFE ID, so they must
    // be watched together (one long-poll per 100 paths), not one each.
    const count = 70;
    const paths = Array.from({ length: count }, (_, i) => `app/web/many/${i}`);
    // Values made by secretValue(): the leak scan proves none reaches a log.
    const value = (path: string, version: number) => broker.secretValue(`${path} v${version}`);
    const values = paths.map((path) => value(path, 1));
    for (const [i, path] of paths.entries()) await put(path, { v: values[i] as string });
    const destination = join(scratch, 'many.env');
    const config = agentConfig('many.yaml', [
      'templates:',
      '  - destination: many.env',
      '    contents: |',
      ...paths.map((path, i) => `      K${i}={{ ${path}#v }}`),
    ]);
    const agent = start(['agent', '--config', config]);
    const last = paths.at(-1) as string;
    const holds = (value: string, timeoutMs: number) =>
      waitUntil(
        `the file holds ${value}`,
        timeoutMs,
        () => (readIfThere(destination)?.includes(`K${count - 1}=${value}\n`) ? true : undefined),
        () => agent.output(),
      );
    await holds(values.at(-1) as string, 30_000);
    await agent.waitFor(/watching for new versions/, 10_000);
    const next = value(last, 2);
    await put(last, { v: next });
    await holds(next, CHANGE_BOUND_MS);
    assert.doesNotMatch(agent.output(), /ERR_TOO_MANY_WATCHES|Cannot check for new versions/);
    agent.signal('SIGTERM');
    assert.equal(await agent.exited(), 0, agent.output());
  });
});
