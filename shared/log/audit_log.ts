/**
 * The audit log: JSON lines, one event per request and one per connection
 * refused at the TLS layer, in its own sink apart from the operational log. Writes are synchronous so that an acknowledged
 * request is audited even if the process dies right after; pino's
 * destination (sonic-boom) retries when a pipe is full instead of failing.
 */
import { pino } from 'pino';

export type AuditOutcome = 'allowed' | 'denied' | 'error';

/**
 * Why a route's guard admitted or refused a request. Audited, never
 * answered: a refusal's response does not say which rule failed.
 */
export interface AuditDecision {
  /**
   * A short code: `identity_matched` or `identity_not_matched` for a guard
   * on the caller's ID alone; from Nexus's access checker `superuser`,
   * `policy`, `trust_domain_member` (listing, each path then checked),
   * `no_matching_policy`, `operator_role`, `foreign_trust_domain` or
   * `malformed_path`.
   */
  readonly reason: string;
  /** The name of the policy that granted the request, else null. */
  readonly policy: string | null;
}

/**
 * One audit event. A connection refused at the TLS layer (action
 * `tls.connect`, outcome `denied`) has no method or route, since no request
 * was read; its `status` is the one the refusal stands for (401 when the peer
 * was not authenticated, 403 when its SVID verified but it may not connect),
 * so `denied` still means 401 or 403. It carries `reason`, `remoteAddress`
 * and `count`: after the first refusal from an address in a window, the
 * others are counted and written as one summary event when the window closes
 * or at stop, so a flood of refused connections costs a bounded number of
 * lines and the counts still add up to every refused connection.
 */
export interface AuditEvent {
  readonly ts: string;
  readonly trailId: string;
  readonly component: string;
  /** The verified SPIFFE ID of the caller, or null when none was verified. */
  readonly peer: string | null;
  /** The SPIFFE ID an unverified certificate claimed (TLS refusals only). */
  readonly claimedPeer?: string | null;
  readonly method: string | null;
  /** The matched route pattern, e.g. `/v1/secrets/data/:path{.+}`. */
  readonly route: string | null;
  /** `noun.verb`, e.g. `secret.read`; `http.request` when a route set none. */
  readonly action: string;
  /** The entity acted on (a secret path, a policy name), never a value. */
  readonly resource: string | null;
  /** The route guard's decision; null when no guard decided (a TLS refusal, a request refused before its guard). */
  readonly decision: AuditDecision | null;
  readonly outcome: AuditOutcome;
  /** The HTTP status; for a TLS refusal the status it stands for (never sent). */
  readonly status: number;
  readonly errorCode: string | null;
  readonly durationMs: number;
  /** Why a connection was refused (TLS refusals only); never certificate bytes. */
  readonly reason?: string;
  /**
   * `address:port` of the peer (TLS refusals only); on a summary the address
   * alone, and null on the one summary of more addresses than are tracked.
   */
  readonly remoteAddress?: string | null;
  /** The refused connections this event stands for (TLS refusals only): 1, or a summary's count. */
  readonly count?: number;
}

export interface AuditSink {
  write(event: AuditEvent): void;
  close(): void;
}

/** The file descriptor of stdout, where `-` sends the audit trail. */
export const STDOUT_FD = 1;

/**
 * JSON lines on an open file descriptor: stdout, or a file opened for
 * appending after its mode was checked (`openAuditSink` in
 * shared/http/audit.ts). Closing closes the file, never stdout.
 */
export function createFdAuditSink(fd: number): AuditSink {
  const stream = pino.destination({ dest: fd, sync: true });
  return {
    write(event) {
      stream.write(`${JSON.stringify(event)}\n`);
    },
    close() {
      if (fd !== STDOUT_FD) {
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
