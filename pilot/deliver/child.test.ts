import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { delay } from '../../shared/runtime/delay.ts';
import { StartFailedError, startChild } from './child.ts';

const dir = mkdtempSync(join(tmpdir(), 'pilot-child-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Waits until a file holds `text` (the child says it is ready). */
async function fileHolds(path: string, text: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if (readFileSync(path, 'utf8') === text) return;
    } catch {
      // Not written yet.
    }
    if (Date.now() > deadline) throw new Error(`${path} never held ${text}`);
    await delay(10);
  }
}

const sh = (script: string, env: Record<string, string> = {}) =>
  startChild({
    command: 'sh',
    args: ['-c', script],
    env: { PATH: '/usr/bin:/bin', ...env },
    stdio: 'no-stdin',
  });

describe('a supervised child', () => {
  test('gets exactly the environment given and passes its exit status on', async () => {
    const out = join(dir, 'env');
    const child = await sh('printf %s "$ONLY:$HOME" > "$OUT"; exit 9', {
      ONLY: 'x',
      OUT: out,
    });
    assert.deepEqual(await child.exited, { status: 9, signal: null });
    assert.equal(readFileSync(out, 'utf8'), 'x:');
  });

  test('a child ended by a signal exits 128 + its number', async () => {
    const child = await sh('kill -KILL $$');
    assert.deepEqual(await child.exited, { status: 137, signal: 'SIGKILL' });
  });

  test('a forwarded signal reaches the child, which decides how it ends', async () => {
    const ready = join(dir, 'ready-hup');
    const child = await sh('trap "exit 42" HUP; echo up > "$READY"; while :; do sleep 0.05; done', {
      READY: ready,
    });
    await fileHolds(ready, 'up\n');
    child.signal('SIGHUP');
    assert.equal((await child.exited).status, 42);
  });

  test('stop() sends SIGTERM, then SIGKILL once the grace period is over', async () => {
    const polite = join(dir, 'ready-polite');
    const stopsWell = await sh(
      'trap "exit 0" TERM; echo up > "$READY"; while :; do sleep 0.05; done',
      {
        READY: polite,
      },
    );
    await fileHolds(polite, 'up\n');
    assert.deepEqual(await stopsWell.stop(10_000), { status: 0, signal: null });

    const stubborn = join(dir, 'ready-stubborn');
    const ignoresTerm = await sh('trap "" TERM; echo up > "$READY"; while :; do sleep 0.05; done', {
      READY: stubborn,
    });
    await fileHolds(stubborn, 'up\n');
    assert.deepEqual(await ignoresTerm.stop(200), { status: 137, signal: 'SIGKILL' });
    // Signalling a child that has ended is a no-op.
    ignoresTerm.signal('SIGTERM');
  });

  test('a command that cannot be started is refused with the status a shell gives', async () => {
    await assert.rejects(
      startChild({ command: join(dir, 'no-such-program'), args: [], env: {} }),
      (err: unknown) => err instanceof StartFailedError && err.status === 127,
    );
    await assert.rejects(
      startChild({ command: dir, args: [], env: {} }),
      (err: unknown) => err instanceof StartFailedError && err.status === 126,
    );
  });
});
