import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../errors/errors.ts';
import { EnvReader, MAX_TIMER_DURATION_MS, parseDurationMs } from './env.ts';

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
      D4: '250ms',
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
      LIMIT: `${MAX_TIMER_DURATION_MS}ms`,
      OVER: `${MAX_TIMER_DURATION_MS + 1}ms`,
      HUGE: '999999h',
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
        assert.match(err.message, /HUGE must be at most 2147483647ms \(currently "999999h"\)/);
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

  test('port() takes SPIKE\'s ":8553" as well as "8553", and refuses a host in it', () => {
    const r = new EnvReader({ A: ':8553', B: '8443', C: '127.0.0.1:8553', D: ':', E: '::8553' });
    assert.equal(r.port('A', 0), 8553);
    assert.equal(r.port('B', 0), 8443);
    r.port('C', 0, { hostVariable: 'C_HOST' });
    r.port('D', 0);
    r.port('E', 0);
    assert.throws(
      () => r.finish({}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(
          err.problems.map((problem) => problem.split(' ')[0]),
          ['C', 'D', 'E'],
        );
        assert.match(
          err.message,
          /C must be a port such as 8553 or :8553, without a host: set the host with C_HOST \(currently "127\.0\.0\.1:8553"\)/,
        );
        return true;
      },
    );
    const low = new EnvReader({ P: ':0' });
    low.port('P', 1, { min: 1 });
    assert.throws(() => low.finish({}), /P must be at least 1/);
  });

  test("oneOf() with ignoreCase takes SPIKE's upper-case spellings", () => {
    const levels = ['debug', 'info', 'warn', 'error'] as const;
    const r = new EnvReader({ A: 'DEBUG', B: 'Warn', C: 'WARNING', D: 'INFO' });
    assert.equal(r.oneOf('A', levels, 'info', { ignoreCase: true }), 'debug');
    assert.equal(r.oneOf('B', levels, 'info', { ignoreCase: true }), 'warn');
    r.oneOf('C', levels, 'info', { ignoreCase: true });
    r.oneOf('D', levels, 'info');
    assert.throws(
      () => r.finish({}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(
          err.problems.map((problem) => problem.split(' ')[0]),
          ['C', 'D'],
        );
        assert.match(err.message, /C must be one of debug, info, warn, error \(any case\)/);
        return true;
      },
    );
  });
});

describe('parseDurationMs()', () => {
  test('reads Go durations: several units, fractions, a sign, and bare 0', () => {
    const cases: [string, number][] = [
      ['0', 0],
      ['0s', 0],
      ['+5s', 5_000],
      ['500ms', 500],
      ['30s', 30_000],
      ['5m', 300_000],
      ['1h', 3_600_000],
      ['1m30s', 90_000],
      ['1h2m3s', 3_723_000],
      ['1h2m3s4ms', 3_723_004],
      ['2.5s', 2_500],
      ['.5s', 500],
      ['1.s', 1_000],
      ['1.5h', 5_400_000],
      ['2000000ns', 2],
      ['3000us', 3],
      ['4000µs', 4],
      ['5000μs', 5],
      ['1s500ms', 1_500],
      ['0.001s', 1],
      ['007s', 7_000],
    ];
    for (const [text, ms] of cases) {
      assert.equal(parseDurationMs(text), ms, text);
    }
  });

  test('refuses what Go refuses, and negative durations, saying why', () => {
    const cases: [string, RegExp][] = [
      ['', /is empty/],
      ['250', /"250" has no unit/],
      ['1h30', /"30" has no unit/],
      ['5d', /"d" is not a unit/],
      ['5S', /"S" is not a unit/],
      ['1 s', /" s" is not a unit/],
      ['s', /expected a number at "s"/],
      ['.s', /expected a number at "\.s"/],
      ['1..5s', /"1\." has no unit/],
      ['-5s', /must not be negative/],
      ['-0', /must not be negative/],
      ['+', /is empty/],
      ['1e3s', /"e" is not a unit/],
      ['9223372036854775808ns', /out of range/],
      ['2562048h', /out of range/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parseDurationMs(text), message, text);
    }
  });

  test('refuses a part of a millisecond, the finest unit a setting uses', () => {
    assert.throws(() => parseDurationMs('1.5ms'), /whole number of milliseconds/);
    assert.throws(() => parseDurationMs('100us'), /whole number of milliseconds/);
    assert.throws(() => parseDurationMs('1ns'), /whole number of milliseconds/);
  });

  test('durationMs() reports a bad duration with its reason and value', () => {
    const r = new EnvReader({ A: '1m30s', B: '250', C: '-1s', D: '1.5ms' });
    assert.equal(r.durationMs('A', 0), 90_000);
    r.durationMs('B', 0);
    r.durationMs('C', 0);
    r.durationMs('D', 0);
    assert.throws(
      () => r.finish({}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(
          err.problems[0] ?? '',
          /^B must be a duration such as 500ms, 30s or 1m30s: "250" has no unit \(ns, us, ms, s, m or h\) \(currently "250"\)$/,
        );
        assert.match(
          err.problems[1] ?? '',
          /^C must be a duration such as .*: must not be negative/,
        );
        assert.match(
          err.problems[2] ?? '',
          /^D must be a duration such as .*whole number of milliseconds/,
        );
        return true;
      },
    );
  });
});
