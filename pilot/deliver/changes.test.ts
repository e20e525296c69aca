import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MetadataResponse } from '../../shared/api/secrets.ts';
import { UnavailableError } from '../../shared/errors/errors.ts';
import { createPollingWatcher, type WatchState } from './changes.ts';

/** getMetadata answering from a table of current versions, or failing while `down`. */
function fakeNexus() {
  const versions = new Map<string, number>();
  const state = { down: false, calls: 0 };
  return {
    versions,
    state,
    async getMetadata(path: string): Promise<MetadataResponse> {
      state.calls += 1;
      if (state.down) throw new UnavailableError('Nexus is unreachable');
      return { currentVersion: versions.get(path) ?? 0 } as MetadataResponse;
    },
  };
}

describe('the polling change watcher', () => {
  test('resolves with the paths whose current version is other than the known one', async () => {
    const nexus = fakeNexus();
    nexus.versions.set('app/a', 1).set('app/b', 4);
    const watcher = createPollingWatcher(nexus, { intervalMs: 1 });
    const next = watcher.nextChange(
      new Map([
        ['app/a', 1],
        ['app/b', 4],
      ]),
      new AbortController().signal,
    );
    // Nothing changed for a few polls, then b moves.
    while (nexus.state.calls < 6) await new Promise((resolve) => setImmediate(resolve));
    nexus.versions.set('app/b', 5);
    assert.deepEqual(await next, new Map([['app/b', 5]]));
  });

  test('reports failing once, keeps trying with back-off, and reports when it works again', async () => {
    const nexus = fakeNexus();
    nexus.versions.set('app/a', 1);
    nexus.state.down = true;
    const states: WatchState[] = [];
    const watcher = createPollingWatcher(nexus, {
      intervalMs: 1,
      maxBackoffMs: 4,
      onState: (state) => {
        states.push(state);
      },
    });
    const next = watcher.nextChange(new Map([['app/a', 1]]), new AbortController().signal);
    while (nexus.state.calls < 5) await new Promise((resolve) => setTimeout(resolve, 1));
    nexus.state.down = false;
    nexus.versions.set('app/a', 2);
    assert.deepEqual(await next, new Map([['app/a', 2]]));
    assert.deepEqual(
      states.map((state) => state.ok),
      [false, true],
    );
    assert.equal(states[0]?.ok === false && states[0].path, 'app/a');
  });

  test('rejects with the reason as soon as it is aborted', async () => {
    const nexus = fakeNexus();
    const watcher = createPollingWatcher(nexus, { intervalMs: 60_000 });
    const stop = new AbortController();
    const next = watcher.nextChange(new Map([['app/a', 0]]), stop.signal);
    stop.abort(new Error('stopping'));
    await assert.rejects(next, /stopping/);
  });
});
