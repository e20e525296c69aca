/**
 * The operational log: JSON lines on stderr (or any sink), one logger per
 * program, injected rather than global. Built on pino. Request bodies, secret
 * values, shards and keys are never logged; values that might carry them are
 * wrapped so that an accidental log line shows "[redacted]".
 */
import { pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/** Where log lines go: a writable with `write(line)`. */
export interface LogSink {
  write(line: string): unknown;
}

export interface LoggerOptions {
  readonly component: string;
  readonly level?: LogLevel;
  /** Defaults to synchronous writes on stderr, so nothing is lost on exit. */
  readonly sink?: LogSink;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.sink ?? pino.destination({ fd: 2, sync: true });
  const base = pino(
    {
      level: options.level ?? 'info',
      base: { component: options.component },
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return wrap(base);
}

function wrap(inner: pino.Logger): Logger {
  return {
    debug: (message, fields) => inner.debug(fields ?? {}, message),
    info: (message, fields) => inner.info(fields ?? {}, message),
    warn: (message, fields) => inner.warn(fields ?? {}, message),
    error: (message, fields) => inner.error(fields ?? {}, message),
    child: (fields) => wrap(inner.child(fields)),
  };
}

/** A sink that keeps parsed lines in memory, for tests. */
export function createMemorySink(): LogSink & { readonly lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    write(line: string) {
      lines.push(JSON.parse(line) as Record<string, unknown>);
      return true;
    },
  };
}
