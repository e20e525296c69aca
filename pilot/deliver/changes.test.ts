import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_WATCH_PATHS } from '../../shared/api/secrets.ts';
import { AccessDeniedError } from '../../shared/errors/errors.ts';
import { createChangeWatcher, type WatchingClient, type WatchState } from './changes.ts';

/** What the fake Nexus answers one long-poll with: the versions that changed, or the wait's end. */
type Answer = ReadonlyMap<string, number> | 'wait over';

/**
 * A client whose long-poll answers, in order, what the test pushes (each
 * answer goes to the first long-poll that asked about one of its paths;
 * 'wait over' to the first that takes one), or throws while `refusing`; it
 * records what each asked and the signals it was given.
 */
function fakeNexus() {
  const queue: Answer[] = [];
  const wakers = new Set<() => void>();
  const state = {
    refusing: false,
    /** A path the caller may not read: a long-poll naming it is refused. */
    denied: undefined as string | undefined,
    calls: 0,
    asked: [] as Array<Map<string, number>>,
    signals: [] as AbortSignal[],
  };
  const client: WatchingClient = {
    async waitForVersions(known, options = {}) {
      state.calls += 1;
      state.asked.push(new Map(known));
      if (options.signal !== undefined) state.signals.push(options.signal);
      if (state.refusing || (state.denied !== undefined && known.has(state.denied))) {
        throw new AccessDeniedError();
      }
      for (;;) {
        // The first answer for this group: 'wait over', or one naming a path it asked.
        const index = queue.findIndex(
          (answer) => answer === 'wait over' || [...answer.keys()].some((path) => known.has(path)),
        );
        const [next] = index === -1 ? [] : queue.splice(index, 1);
        if (next === 'wait over') return undefined;
        if (next !== undefined) return new Map(next);
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
    push(next: Answer) {
      queue.push(next);
      for (const wake of wakers) wake();
      wakers.clear();
    },
  };
}

describe('the change watcher', () => {
  test('resolves with the paths that have another version, asking all of them in one long-poll', async () => {
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
    nexus.push('wait over');
    nexus.push(new Map([['app/b', 0]]));
    nexus.push(new Map([['app/b', 5]]));
    assert.deepEqual(await next, new Map([['app/b', 5]]));
    assert.deepEqual(nexus.state.asked, [
      new Map([
        ['app/a', 1],
        ['app/b', 4],
      ]),
      new Map([
        ['app/a', 1],
        ['app/b', 4],
      ]),
      new Map([
        ['app/a', 1],
        ['app/b', 0],
      ]),
    ]);
  });

  test('answers every path that changed together, and ignores paths it did not ask about', async () => {
    const nexus = fakeNexus();
    const next = createChangeWatcher(nexus.client).nextChange(
      new Map([
        ['app/a', 1],
        ['app/b', 1],
      ]),
      new AbortController().signal,
    );
    nexus.push(
      new Map([
        ['app/a', 2],
        ['app/b', 3],
        ['app/other', 9],
      ]),
    );
    assert.deepEqual(
      await next,
      new Map([
        ['app/a', 2],
        ['app/b', 3],
      ]),
    );
  });

  test(`cuts more than ${MAX_WATCH_PATHS} paths into groups, one long-poll each, and ends them all at the first change`, async () => {
    const nexus = fakeNexus();
    const known = new Map<string, number>();
    for (let i = 0; i < MAX_WATCH_PATHS * 2 + 1; i++) known.set(`app/p${i}`, 1);
    const next = createChangeWatcher(nexus.client).nextChange(known, new AbortController().signal);
    while (nexus.state.calls < 3) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.deepEqual(
      nexus.state.asked.map((group) => group.size),
      [MAX_WATCH_PATHS, MAX_WATCH_PATHS, 1],
    );
    assert.deepEqual(
      nexus.state.asked.flatMap((group) => [...group.keys()]),
      [...known.keys()],
    );
    nexus.push(new Map([[`app/p${MAX_WATCH_PATHS * 2}`, 2]]));
    assert.deepEqual(await next, new Map([[`app/p${MAX_WATCH_PATHS * 2}`, 2]]));
    assert.equal(nexus.state.signals.length, 3);
    assert.ok(nexus.state.signals.every((signal) => signal.aborted));
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
    assert.deepEqual(states[0]?.ok === false && states[0].paths, ['app/a']);
    nexus.state.refusing = false;
    nexus.push(new Map([['app/a', 2]]));
    assert.deepEqual(await next, new Map([['app/a', 2]]));
    assert.deepEqual(
      states.map((state) => state.ok),
      [false, true],
    );
  });

  test('rejects with the reason as soon as it is aborted, and ends the long-poll', async () => {
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
    assert.equal(nexus.state.signals.length, 1);
    assert.ok(nexus.state.signals.every((signal) => signal.aborted));
  });

  test('a path it may not read is found by halves and reported alone; the others stay watched', async () => {
    const nexus = fakeNexus();
    nexus.state.denied = 'app/c';
    const states: WatchState[] = [];
    const stop = new AbortController();
    const next = createChangeWatcher(nexus.client, {
      firstBackoffMs: 1,
      maxBackoffMs: 4,
      onState: (state) => states.push(state),
    }).nextChange(
      new Map([
        ['app/a', 1],
        ['app/b', 1],
        ['app/c', 1],
        ['app/d', 1],
      ]),
      stop.signal,
    );
    while (states.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.deepEqual(states[0]?.ok === false && states[0].paths, ['app/c']);
    // The refused path's siblings are still watched: a change of one arrives.
    nexus.push(new Map([['app/a', 2]]));
    assert.deepEqual(await next, new Map([['app/a', 2]]));
    const asked = nexus.state.asked.map((group) => [...group.keys()].join(','));
    assert.deepEqual(asked.slice(0, 5), [
      'app/a,app/b,app/c,app/d',
      'app/a,app/b',
      'app/c,app/d',
      'app/c',
      'app/d',
    ]);
  });
});
