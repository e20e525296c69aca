/**
 * The audit log: JSON lines, one event per request, in its own sink apart
 * from the operational log. Writes are synchronous so that an acknowledged
 * request is audited even if the process dies right after; pino's
 * destination (sonic-boom) retries when a pipe is full instead of failing.
 */
import { pino } from 'pino';

export type AuditOutcome = 'allowed' | 'denied' | 'error';

export interface AuditEvent {
  readonly ts: string;
  readonly trailId: string;
  readonly component: string;
  readonly peer: string | null;
  readonly method: string;
  /** The matched route pattern, e.g. `/v1/secrets/data/:path{.+}`. */
  readonly route: string;
  /** `noun.verb`, e.g. `secret.read`; `http.request` when a route set none. */
  readonly action: string;
  /** The entity acted on (a secret path, a policy name), never a value. */
  readonly resource: string | null;
  readonly outcome: AuditOutcome;
  readonly status: number;
  readonly errorCode: string | null;
  readonly durationMs: number;
}

export interface AuditSink {
  write(event: AuditEvent): void;
  close(): void;
}

/** A JSON-lines file (appended, mode 0600), or stdout with `-`. */
export function createFileAuditSink(destination: string): AuditSink {
  const stream = pino.destination({
    dest: destination === '-' ? 1 : destination,
    sync: true,
    append: true,
    mode: 0o600,
  });
  return {
    write(event) {
      stream.write(`${JSON.stringify(event)}\n`);
    },
    close() {
      if (destination !== '-') {
        stream.end();
      }
    },
  };
}

/** A sink that keeps events in memory, for tests. */
export function createMemoryAuditSink(): AuditSink & { readonly events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return {
    events,
    write(event) {
      events.push(event);
    },
    close() {},
  };
}
