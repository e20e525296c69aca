import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { delay } from './delay.ts';

describe('delay()', () => {
  it('resolves after the wait', async () => {
    const started = performance.now();
    await delay(20);
    assert.ok(performance.now() - started >= 15);
  });

  it('rejects with the reason when the signal aborts during the wait', async () => {
    const controller = new AbortController();
    const waiting = delay(60_000, { signal: controller.signal });
    const reason = new Error('stopping');
    controller.abort(reason);
    await assert.rejects(waiting, (err) => err === reason);
  });

  it('rejects at once when the signal has already aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('already'));
    await assert.rejects(delay(60_000, { signal: controller.signal }), /already/);
  });

  it('refuses a negative or non-finite wait as a programmer error', () => {
    assert.throws(() => delay(-1), RangeError);
    assert.throws(() => delay(Number.NaN), RangeError);
  });
});
