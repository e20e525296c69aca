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

/**
 * The longest duration `durationMs` accepts unless the caller passes its own
 * `max`: setTimeout's limit (2^31-1 ms, about 24.8 days). A longer delay
 * would overflow and fire at once.
 */
export const MAX_TIMER_DURATION_MS = 2 ** 31 - 1;

const DURATION_REGEXP = /^(\d+)(ms|s|m|h)?$/;
const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

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

  /** One of a fixed set of words. */
  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) {
      return fallback;
    }
    if ((choices as readonly string[]).includes(value)) {
      return value as T;
    }
    this.problem(name, value, `must be one of ${choices.join(', ')}`);
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

  /** A TCP port, 0–65535 (0 asks the system for a free one). */
  port(name: string, fallback: number): number {
    return this.int(name, fallback, { min: 0, max: 65535 });
  }

  /**
   * A duration in milliseconds: a plain number of ms, or with a unit `ms`,
   * `s`, `m`, `h`. At most `options.max`, which defaults to
   * `MAX_TIMER_DURATION_MS` so that the value is safe for setTimeout; pass a
   * larger `max` only for durations that never become a timer.
   */
  durationMs(name: string, fallbackMs: number, options: IntOptions = {}): number {
    const value = this.raw(name);
    if (value === undefined) {
      return fallbackMs;
    }
    const match = DURATION_REGEXP.exec(value);
    if (match === null) {
      this.problem(name, value, 'must be a duration such as 500ms, 30s, 5m or 1h');
      return fallbackMs;
    }
    const unit = (match[2] ?? 'ms') as keyof typeof DURATION_UNITS_MS;
    const ms = Number(match[1]) * DURATION_UNITS_MS[unit];
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
