/**
 * Typed readers for environment variables that collect every problem instead
 * of stopping at the first, so a program reports all bad settings at once.
 * A malformed value is always an error, never a silent default.
 */
import { ConfigError } from '../errors/errors.ts';

export type Env = Readonly<Record<string, string | undefined>>;

export interface IntOptions {
  readonly min?: number;
  readonly max?: number;
}

export interface PortOptions {
  /** The lowest port allowed (default 0: the system picks a free one). */
  readonly min?: number;
  /** The variable that sets the host, named when a `host:port` is given. */
  readonly hostVariable?: string;
}

export interface OneOfOptions {
  /** Also accept the words in any case (SPIKE's `DEBUG` for `debug`). */
  readonly ignoreCase?: boolean;
}

/** `8553` or, as SPIKE writes its ports, `:8553`. */
const PORT_REGEXP = /^:?(\d+)$/;

/**
 * The longest duration `durationMs` accepts unless the caller passes its own
 * `max`: setTimeout's limit (2^31-1 ms, about 24.8 days). A longer delay
 * would overflow and fire at once.
 */
export const MAX_TIMER_DURATION_MS = 2 ** 31 - 1;

/** Go's duration units (time.ParseDuration), both spellings of micro included. */
const NS_PER_UNIT: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n,
  μs: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
/** Go keeps a duration in an int64 of nanoseconds: longer ones do not parse. */
const MAX_GO_DURATION_NS = 2n ** 63n - 1n;
const NS_PER_MS = 1_000_000n;
const DURATION_NUMBER_REGEXP = /^(\d*)(?:\.(\d*))?/;
const DURATION_UNIT_REGEXP = /^[^\d.]*/;

/**
 * A duration as Go's time.ParseDuration reads it (SPIKE's spelling):
 * numbers with an optional fraction, each followed by a unit (`ns`, `us` or
 * `µs`, `ms`, `s`, `m`, `h`), as in `1h2m3s` or `2.5s`; a bare `0`; an
 * optional `+`. Refused, with the reason in the error's message: whatever Go
 * refuses, a negative duration, and a part of a millisecond, which no
 * setting here can use (the result is whole milliseconds).
 */
export function parseDurationMs(text: string): number {
  if (text.startsWith('-')) {
    throw new Error('must not be negative');
  }
  let rest = text.startsWith('+') ? text.slice(1) : text;
  if (rest === '0') {
    return 0;
  }
  if (rest === '') {
    throw new Error('is empty');
  }
  let totalNs = 0n;
  while (rest !== '') {
    const number = DURATION_NUMBER_REGEXP.exec(rest) as RegExpExecArray;
    const whole = number[1] as string;
    const fraction = number[2] ?? '';
    if (whole === '' && fraction === '') {
      throw new Error(`expected a number at "${rest.slice(0, 16)}"`);
    }
    rest = rest.slice(number[0].length);
    const unit = (DURATION_UNIT_REGEXP.exec(rest) as RegExpExecArray)[0];
    if (unit === '') {
      throw new Error(`"${number[0]}" has no unit (ns, us, ms, s, m or h)`);
    }
    const perUnit = NS_PER_UNIT[unit];
    if (perUnit === undefined) {
      throw new Error(`"${unit.slice(0, 16)}" is not a unit (ns, us, ms, s, m or h)`);
    }
    rest = rest.slice(unit.length);
    // Like Go, a fraction finer than a nanosecond is dropped.
    const fractionNs =
      fraction === '' ? 0n : (BigInt(fraction) * perUnit) / 10n ** BigInt(fraction.length);
    totalNs += BigInt(whole === '' ? '0' : whole) * perUnit + fractionNs;
    if (totalNs > MAX_GO_DURATION_NS) {
      throw new Error('is out of range (a Go duration is at most about 292 years)');
    }
  }
  if (totalNs % NS_PER_MS !== 0n) {
    throw new Error('must be a whole number of milliseconds');
  }
  return Number(totalNs / NS_PER_MS);
}

export class EnvReader {
  readonly #env: Env;
  readonly #problems: string[] = [];

  constructor(env: Env) {
    this.#env = env;
  }

  /** The raw value, or undefined when unset or empty. */
  raw(name: string): string | undefined {
    const value = this.#env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  str(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  /** One of a fixed set of words, in any case with `ignoreCase`. */
  oneOf<T extends string>(
    name: string,
    choices: readonly T[],
    fallback: T,
    options: OneOfOptions = {},
  ): T {
    const value = this.raw(name);
    if (value === undefined) {
      return fallback;
    }
    const found = choices.find((choice) =>
      options.ignoreCase === true ? choice.toLowerCase() === value.toLowerCase() : choice === value,
    );
    if (found !== undefined) {
      return found;
    }
    const anyCase = options.ignoreCase === true ? ' (any case)' : '';
    this.problem(name, value, `must be one of ${choices.join(', ')}${anyCase}`);
    return fallback;
  }

  int(name: string, fallback: number, options: IntOptions = {}): number {
    const value = this.raw(name);
    if (value === undefined) {
      return fallback;
    }
    if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
      this.problem(name, value, 'must be an integer');
      return fallback;
    }
    const n = Number(value);
    if (options.min !== undefined && n < options.min) {
      this.problem(name, value, `must be at least ${options.min}`);
    } else if (options.max !== undefined && n > options.max) {
      this.problem(name, value, `must be at most ${options.max}`);
    }
    return n;
  }

  /**
   * A TCP port, 0–65535 (0 asks the system for a free one), written `8553`
   * or `:8553` as SPIKE does. A host is not taken here: it has its own
   * variable.
   */
  port(name: string, fallback: number, options: PortOptions = {}): number {
    const value = this.raw(name);
    if (value === undefined) {
      return fallback;
    }
    const match = PORT_REGEXP.exec(value);
    if (match === null) {
      const host =
        options.hostVariable === undefined ? '' : `: set the host with ${options.hostVariable}`;
      this.problem(
        name,
        value,
        value.includes(':') && !value.startsWith(':')
          ? `must be a port such as 8553 or :8553, without a host${host}`
          : 'must be a port such as 8553 or :8553',
      );
      return fallback;
    }
    const port = Number(match[1]);
    const min = options.min ?? 0;
    if (port < min) {
      this.problem(name, value, `must be at least ${min}`);
    } else if (port > 65535) {
      this.problem(name, value, 'must be at most 65535');
    }
    return port;
  }

  /**
   * A duration in milliseconds, spelled as Go spells it (`parseDurationMs`:
   * `500ms`, `30s`, `1m30s`, `2.5s`). At most `options.max`, which defaults
   * to `MAX_TIMER_DURATION_MS` so that the value is safe for setTimeout; pass
   * a larger `max` only for durations that never become a timer.
   */
  durationMs(name: string, fallbackMs: number, options: IntOptions = {}): number {
    const value = this.raw(name);
    if (value === undefined) {
      return fallbackMs;
    }
    let ms: number;
    try {
      ms = parseDurationMs(value);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.problem(name, value, `must be a duration such as 500ms, 30s or 1m30s: ${reason}`);
      return fallbackMs;
    }
    const max = options.max ?? MAX_TIMER_DURATION_MS;
    if (options.min !== undefined && ms < options.min) {
      this.problem(name, value, `must be at least ${options.min}ms`);
    } else if (ms > max) {
      this.problem(name, value, `must be at most ${max}ms`);
    }
    return ms;
  }

  /** A comma-separated list; empty entries are a problem, duplicates too. */
  list(name: string, fallback: readonly string[]): string[] {
    const value = this.raw(name);
    if (value === undefined) {
      return [...fallback];
    }
    const items = value.split(',').map((item) => item.trim());
    if (items.some((item) => item === '')) {
      this.problem(name, value, 'must not contain empty entries');
    }
    const seen = new Set<string>();
    for (const item of items) {
      if (seen.has(item)) {
        this.problem(name, value, `has the duplicate entry "${item}"`);
      }
      seen.add(item);
    }
    return items.filter((item) => item !== '');
  }

  /**
   * Parses a value with a domain parser (SPIFFE ID, URL, socket address…).
   * A thrown error's message becomes the problem.
   */
  parsed<T>(name: string, fallback: string, parse: (value: string) => T): T | undefined {
    const value = this.raw(name) ?? fallback;
    try {
      return parse(value);
    } catch (err) {
      this.problem(name, value, err instanceof Error ? err.message : String(err));
      return undefined;
    }
  }

  /** Records a problem with a variable, shown with its current value. */
  problem(name: string, value: string | undefined, message: string): void {
    const shown = value === undefined ? 'unset' : `currently ${JSON.stringify(value)}`;
    this.#problems.push(`${name} ${message} (${shown})`);
  }

  /** Throws one ConfigError listing every problem, or returns the frozen value. */
  finish<T extends object>(value: T): Readonly<T> {
    if (this.#problems.length > 0) {
      throw new ConfigError(this.#problems);
    }
    return Object.freeze(value);
  }
}
