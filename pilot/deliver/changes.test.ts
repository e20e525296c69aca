import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SecretResponse } from '../../shared/api/secrets.ts';
import { AccessDeniedError, NotFoundError } from '../../shared/errors/errors.ts';
import { createChangeWatcher, type WatchingClient, type WatchState } from './changes.ts';

/** What the fake Nexus answers one long-poll with. */
type Answer = SecretResponse | 'gone' | 'wait over';

/**
 * A client whose long-poll answers what the test pushes for each path, in
 * order, or throws while `refusing`; it records what each asked.
 */
function fakeNexus() {
  const queues = new Map<string, Answer[]>();
  const wakers = new Set<() => void>();
  const state = { refusing: false, calls: 0, asked: [] as Array<[string, number]> };
  const client: WatchingClient = {
    async getSecretNewerThan(path, newerThan, options = {}) {
      state.calls += 1;
      state.asked.push([path, newerThan]);
      if (state.refusing) throw new AccessDeniedError();
      for (;;) {
        const next = queues.get(path)?.shift();
        if (next === 'gone') throw new NotFoundError('No secret at this path');
        if (next === 'wait over') return undefined;
        if (next !== undefined) return next;
        options.signal?.throwIfAborted();
        await new Promise<void>((resolve) => {
          wakers.add(resolve);
          options.signal?.addEventListener('abort', () => resolve(), { once: true });
        });
      }
    },
  };
  return {
    client,
    state,
    push(path: string, next: Answer) {
      queues.set(path, [...(queues.get(path) ?? []), next]);
      for (const wake of wakers) wake();
      wakers.clear();
    },
  };
}

function version(path: string, number: number): SecretResponse {
  return { path, version: number, data: {}, createdAt: new Date(0).toISOString() };
}

describe('the change watcher', () => {
  test('resolves with the first path that has another version, asking each from its known one', async () => {
    const nexus = fakeNexus();
    const watcher = createChangeWatcher(nexus.client);
    const next = watcher.nextChange(
      new Map([
        ['app/a', 1],
        ['app/b', 4],
      ]),
      new AbortController().signal,
    );
    // A wait that ends is asked again; a gone secret is no change, and its
    // next version is waited for from nothing (0).
    nexus.push('app/a', 'wait over');
    nexus.push('app/b', 'gone');
    nexus.push('app/b', version('app/b', 5));
    assert.deepEqual(await next, new Map([['app/b', 5]]));
    assert.deepEqual(nexus.state.asked, [
      ['app/a', 1],
      ['app/b', 4],
      ['app/a', 1],
      ['app/b', 0],
    ]);
  });

  test('reports a refusal once, keeps trying with back-off, and reports when it works again', async () => {
    const nexus = fakeNexus();
    nexus.state.refusing = true;
    const states: WatchState[] = [];
    const watcher = createChangeWatcher(nexus.client, {
      firstBackoffMs: 1,
      maxBackoffMs: 4,
      onState: (state) => states.push(state),
    });
    const next = watcher.nextChange(new Map([['app/a', 1]]), new AbortController().signal);
    while (nexus.state.calls < 4) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.equal(states.length, 1);
    assert.equal(states[0]?.ok, false);
    nexus.state.refusing = false;
    nexus.push('app/a', version('app/a', 2));
    assert.deepEqual(await next, new Map([['app/a', 2]]));
    assert.deepEqual(
      states.map((state) => state.ok),
      [false, true],
    );
  });

  test('rejects with the reason as soon as it is aborted, and ends every watch', async () => {
    const nexus = fakeNexus();
    const watcher = createChangeWatcher(nexus.client);
    const controller = new AbortController();
    const next = watcher.nextChange(
      new Map([
        ['app/a', 1],
        ['app/b', 1],
      ]),
      controller.signal,
    );
    const reason = new Error('stopping');
    controller.abort(reason);
    await assert.rejects(next, (err) => err === reason);
  });

  test('ends the other long-polls once one path changed', async () => {
    const nexus = fakeNexus();
    const signals: AbortSignal[] = [];
    const client: WatchingClient = {
      getSecretNewerThan(path, newerThan, options = {}) {
        if (options.signal !== undefined) signals.push(options.signal);
        return nexus.client.getSecretNewerThan(path, newerThan, options);
      },
    };
    const next = createChangeWatcher(client).nextChange(
      new Map([
        ['app/a', 1],
        ['app/b', 1],
      ]),
      new AbortController().signal,
    );
    nexus.push('app/a', version('app/a', 2));
    assert.deepEqual(await next, new Map([['app/a', 2]]));
    assert.ok(signals.length === 2 && signals.every((signal) => signal.aborted));
  });
});
