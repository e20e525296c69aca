import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AuditEvent, createFdAuditSink } from '../log/audit_log.ts';
import { countAuditWrites } from './count_audit.ts';

const EVENT: AuditEvent = {
  ts: '2026-01-01T00:00:00.000Z',
  trailId: 't',
  component: 'test',
  peer: null,
  method: 'GET',
  route: '/v1/health',
  action: 'health.read',
  resource: null,
  decision: null,
  outcome: 'allowed',
  status: 200,
  errorCode: null,
  durationMs: 0,
};

describe('countAuditWrites()', () => {
  test('counts written events and failed ones, and passes each result on unchanged', async () => {
    let failing = false;
    const counts = { events: 0, failures: 0 };
    const sink = countAuditWrites(
      createFdAuditSink(99, {
        writeSync: (_fd, bytes) => {
          if (failing) throw Object.assign(new Error('no space left'), { code: 'ENOSPC' });
          return bytes.length;
        },
      }),
      {
        countAuditEvents: (n) => (counts.events += n),
        countAuditFailures: (n) => (counts.failures += n),
      },
    );
    const written = await Promise.all([sink.write(EVENT), sink.write(EVENT)]);
    assert.ok(written.every((result) => result.written));
    assert.deepEqual(counts, { events: 2, failures: 0 });
    failing = true;
    const failed = await sink.write(EVENT);
    assert.equal(failed.written, false);
    assert.deepEqual(counts, { events: 2, failures: 1 });
  });
});
