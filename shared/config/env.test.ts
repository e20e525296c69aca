import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../errors/errors.ts';
import { EnvReader, MAX_TIMER_DURATION_MS } from './env.ts';

describe('EnvReader', () => {
  test('returns defaults for unset and empty variables', () => {
    const r = new EnvReader({ EMPTY: '  ' });
    assert.equal(r.str('UNSET', 'x'), 'x');
    assert.equal(r.int('EMPTY', 7), 7);
    assert.equal(r.durationMs('UNSET', 1500), 1500);
    assert.deepEqual(r.list('UNSET', ['a']), ['a']);
    assert.deepEqual(r.finish({ ok: true }), { ok: true });
  });

  test('parses integers, ports, durations with units and lists', () => {
    const r = new EnvReader({
      N: '42',
      P: '8443',
      D1: '30s',
      D2: '5m',
      D3: '1h',
      D4: '250',
      L: 'a, b ,c',
    });
    assert.equal(r.int('N', 0), 42);
    assert.equal(r.port('P', 0), 8443);
    assert.equal(r.durationMs('D1', 0), 30_000);
    assert.equal(r.durationMs('D2', 0), 300_000);
    assert.equal(r.durationMs('D3', 0), 3_600_000);
    assert.equal(r.durationMs('D4', 0), 250);
    assert.deepEqual(r.list('L', []), ['a', 'b', 'c']);
  });

  test('reports every malformed variable at once with its current value', () => {
    const r = new EnvReader({
      N: '4x',
      P: '70000',
      D: 'soon',
      L: 'a,,a',
      W: 'loud',
    });
    r.int('N', 0);
    r.port('P', 0);
    r.durationMs('D', 0);
    r.list('L', []);
    r.oneOf('W', ['debug', 'info'], 'info');
    assert.throws(
      () => r.finish({}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.code, 'ERR_CONFIG_INVALID');
        assert.equal(err.problems.length, 6);
        assert.match(err.message, /N must be an integer \(currently "4x"\)/);
        assert.match(err.message, /P must be at most 65535/);
        assert.match(err.message, /D must be a duration/);
        assert.match(err.message, /L must not contain empty entries/);
        assert.match(err.message, /L has the duplicate entry "a"/);
        assert.match(err.message, /W must be one of debug, info/);
        return true;
      },
    );
  });

  test('durationMs() refuses by default what setTimeout cannot wait for', () => {
    assert.equal(MAX_TIMER_DURATION_MS, 2 ** 31 - 1);
    const r = new EnvReader({
      LIMIT: String(MAX_TIMER_DURATION_MS),
      OVER: String(MAX_TIMER_DURATION_MS + 1),
      HUGE: '999999999h',
      ENDLESS: `${'9'.repeat(400)}h`,
    });
    // Positive control: the limit itself is accepted.
    assert.equal(r.durationMs('LIMIT', 0), MAX_TIMER_DURATION_MS);
    r.durationMs('OVER', 0);
    r.durationMs('HUGE', 0);
    r.durationMs('ENDLESS', 0);
    assert.throws(
      () => r.finish({}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(
          err.problems.map((problem) => problem.split(' ')[0]),
          ['OVER', 'HUGE', 'ENDLESS'],
        );
        assert.match(err.message, /HUGE must be at most 2147483647ms \(currently "999999999h"\)/);
        return true;
      },
    );
  });

  test('durationMs() takes a larger max only when the caller passes one', () => {
    const fiftyDaysMs = 50 * 24 * 3_600_000;
    const r = new EnvReader({ D: '1200h' });
    assert.equal(r.durationMs('D', 0, { max: 2 * fiftyDaysMs }), fiftyDaysMs);
    assert.deepEqual(r.finish({}), {});
    const tight = new EnvReader({ D: '2s' });
    tight.durationMs('D', 0, { max: 1000 });
    assert.throws(() => tight.finish({}), /D must be at most 1000ms/);
    const defaulted = new EnvReader({ D: '1200h' });
    defaulted.durationMs('D', 0, { min: 1 });
    assert.throws(() => defaulted.finish({}), /D must be at most 2147483647ms/);
  });

  test('turns a domain parser failure into a problem', () => {
    const r = new EnvReader({ X: 'bad' });
    const value = r.parsed('X', 'good', (v) => {
      if (v === 'bad') throw new Error('is not good');
      return v;
    });
    assert.equal(value, undefined);
    assert.throws(() => r.finish({}), /X is not good \(currently "bad"\)/);
  });

  test('freezes the finished value', () => {
    const value = new EnvReader({}).finish({ a: 1 });
    assert.ok(Object.isFrozen(value));
  });
});
