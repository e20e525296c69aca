import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SignalName } from '../../shared/runtime/signals.ts';
import type { CommandContext } from '../commands/_context.ts';
import { createFakeTerminal, FakeClient } from '../commands/_testing.ts';
import { loadPilotConfig } from '../config.ts';
import type { ChangeWatcher, Versions } from './changes.ts';
import type { ChildExit, ChildSpec, RunningChild } from './child.ts';
import { type RunDeps, runWithSecrets } from './run.ts';

/** A child whose end the test decides; it ends on SIGTERM unless told to ignore it. */
class FakeChild implements RunningChild {
  readonly pid = 4242;
  readonly signals: SignalName[] = [];
  readonly exited: Promise<ChildExit>;
  end: (exit: ChildExit) => void = () => {};
  ignoreTerm = false;

  readonly spec: ChildSpec;

  constructor(spec: ChildSpec) {
    this.spec = spec;
    this.exited = new Promise((resolve) => {
      this.end = resolve;
    });
  }
  signal(name: SignalName): void {
    this.signals.push(name);
    if (name === 'SIGTERM' && !this.ignoreTerm) this.end({ status: 143, signal: 'SIGTERM' });
  }
  async stop(): Promise<ChildExit> {
    this.signal('SIGTERM');
    return this.exited;
  }
}

/** A watcher that reports a change when the test calls `change()`. */
class FakeWatcher implements ChangeWatcher {
  #pending: ((versions: Versions) => void) | undefined;
  waiting = 0;
  nextChange(_known: Versions, signal: AbortSignal): Promise<Versions> {
    this.waiting += 1;
    return new Promise((resolve, reject) => {
      this.#pending = resolve;
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }
  change(path: string, version: number): void {
    this.#pending?.(new Map([[path, version]]));
  }
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (check()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail(`never: ${what}`);
}

function setUp() {
  const client = new FakeClient();
  client.secrets.set('app/db', [{ password: 'v1' }]);
  const children: FakeChild[] = [];
  const watcher = new FakeWatcher();
  let deliver: (name: SignalName) => void = () => {};
  let stderr = '';
  let closed = false;
  const context: CommandContext = {
    config: () => loadPilotConfig({ SPIKE_TRUST_ROOT: 'unit.test' }),
    client: async () => client,
    output: {
      stdout: () => {},
      stdoutBytes: () => {},
      stderr: (text) => {
        stderr += `${text}\n`;
      },
    },
    terminal: createFakeTerminal(),
    environment: { PATH: '/bin' },
    exitWith: () => {},
  };
  const deps: RunDeps = {
    connectLongLived: async () => ({
      getSecret: (path) => client.getSecret(path),
      waitForVersions: () => {
        throw new Error('the fake watcher is used instead');
      },
      close: () => {
        closed = true;
      },
    }),
    watcherFor: () => watcher,
    onSignals: (_names, handler) => {
      deliver = handler;
      return () => {
        deliver = () => {};
      };
    },
    startChild: async (spec) => {
      const child = new FakeChild(spec);
      children.push(child);
      return child;
    },
  };
  const options = { secret: ['app/db'], env: [], watch: true, graceMs: 100 };
  const start = () => runWithSecrets(context, ['app', '--flag'], options, deps);
  return {
    client,
    children,
    watcher,
    start,
    signal: (name: SignalName) => deliver(name),
    stderr: () => stderr,
    closed: () => closed,
  };
}

describe('spike run --watch', () => {
  test('a new version restarts the command with the new values; an equal value does not', async () => {
    const t = setUp();
    const running = t.start();
    await until('the first child', () => t.children.length === 1 && t.watcher.waiting === 1);
    assert.equal(t.children[0]?.spec.env.PASSWORD, 'v1');
    assert.deepEqual(t.children[0]?.spec.args, ['--flag']);

    // A new version with the same value: no restart, the watch goes on.
    t.client.secrets.get('app/db')?.push({ password: 'v1' });
    t.watcher.change('app/db', 2);
    await until('the next wait', () => t.watcher.waiting === 2);
    assert.equal(t.children.length, 1);

    t.client.secrets.get('app/db')?.push({ password: 'v3' });
    t.watcher.change('app/db', 3);
    await until('the second child', () => t.children.length === 2);
    assert.deepEqual(t.children[0]?.signals, ['SIGTERM']);
    assert.equal(t.children[1]?.spec.env.PASSWORD, 'v3');
    assert.match(t.stderr(), /app\/db has a new version: restarting app/);
    assert.ok(!t.stderr().includes('v3'));

    // The command ending on its own ends the run with its status.
    t.children[1]?.end({ status: 5, signal: null });
    assert.equal(await running, 5);
    assert.equal(t.closed(), true);
  });

  test('a new version that cannot be used keeps the command running with its values', async () => {
    const t = setUp();
    const running = t.start();
    await until('the first child', () => t.watcher.waiting === 1);
    t.client.secrets.get('app/db')?.push({ other: 'x' });
    t.client.denied.add('getSecret app/db');
    t.watcher.change('app/db', 2);
    await until('the failure is reported', () => t.stderr().includes('ERR_ACCESS_DENIED'));
    assert.match(
      t.stderr(),
      /cannot use the new version of app\/db: .*the command keeps its values/,
    );
    assert.equal(t.children.length, 1);
    t.signal('SIGTERM');
    assert.equal(await running, 143);
  });

  test('signals reach the command; after SIGTERM it is not started again', async () => {
    const t = setUp();
    const running = t.start();
    await until('the first child', () => t.watcher.waiting === 1);
    const child = t.children[0] as FakeChild;
    t.signal('SIGHUP');
    t.signal('SIGUSR1');
    child.ignoreTerm = true;
    t.signal('SIGTERM');
    assert.deepEqual(child.signals, ['SIGHUP', 'SIGUSR1', 'SIGTERM']);
    child.end({ status: 0, signal: null });
    assert.equal(await running, 0);
    assert.equal(t.children.length, 1);
  });
});
