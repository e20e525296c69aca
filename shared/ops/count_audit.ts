/**
 * Counts what becomes of each audit event (`spike_audit_events_total`,
 * `spike_audit_failures_total`) by wrapping the program's audit sink, so the
 * sink itself needs no knowledge of metrics. Every writer of audit events,
 * the request middleware and the TLS refusal listener, goes through it.
 */
import type { AuditSink } from '../log/audit_log.ts';
import type { AuditCounters } from './metrics.ts';

export function countAuditWrites(sink: AuditSink, counters: AuditCounters): AuditSink {
  return {
    write(event) {
      return sink.write(event).then((result) => {
        if (result.written) {
          counters.countAuditEvents(1);
        } else {
          counters.countAuditFailures(1);
        }
        return result;
      });
    },
    close() {
      sink.close();
    },
  };
}
