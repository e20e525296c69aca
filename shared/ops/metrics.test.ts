import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parsePrometheusText, sampleValue } from '../../test/harness/prometheus_text.ts';
import { Metrics } from './metrics.ts';

const SECRET_ROUTE = '/v1/secrets/data/:path{.+}';

async function scrape(metrics: Metrics) {
  return parsePrometheusText(await metrics.text());
}

describe('Metrics', () => {
  test('counts requests by route pattern, method and status, with a histogram whose buckets add up', async () => {
    const metrics = new Metrics({ program: 'nexus', processMetrics: false });
    metrics.recordRequest(SECRET_ROUTE, 'GET', 200, 0.0004);
    metrics.recordRequest(SECRET_ROUTE, 'GET', 200, 0.003);
    metrics.recordRequest(SECRET_ROUTE, 'GET', 404, 0.02);
    metrics.recordRequest('/v1/health', 'GET', 200, 12);
    const families = await scrape(metrics);
    const ok = { route: SECRET_ROUTE, method: 'GET', status: '200' };
    assert.equal(families.get('spike_http_requests_total')?.type, 'counter');
    assert.equal(sampleValue(families, 'spike_http_requests_total', ok), 2);
    assert.equal(sampleValue(families, 'spike_http_requests_total', { ...ok, status: '404' }), 1);
    assert.equal(families.get('spike_http_request_duration_seconds')?.type, 'histogram');
    const bucket = (le: string, labels = ok) =>
      sampleValue(families, 'spike_http_request_duration_seconds_bucket', { ...labels, le });
    assert.equal(bucket('0.0005'), 1);
    assert.equal(bucket('0.0025'), 1);
    assert.equal(bucket('0.005'), 2);
    assert.equal(bucket('+Inf'), 2);
    assert.equal(sampleValue(families, 'spike_http_request_duration_seconds_count', ok), 2);
    assert.ok(
      Math.abs(
        (sampleValue(families, 'spike_http_request_duration_seconds_sum', ok) as number) - 0.0034,
      ) < 1e-12,
    );
    // Above the largest bound: only +Inf holds it.
    const slow = { route: '/v1/health', method: 'GET', status: '200' };
    assert.equal(bucket('10', slow), 0);
    assert.equal(bucket('+Inf', slow), 1);
  });

  test('a later scrape sees the counts move, and two registries in one process stay apart', async () => {
    const one = new Metrics({ program: 'keeper', processMetrics: false });
    const two = new Metrics({ program: 'keeper', processMetrics: false });
    const labels = { route: '/v1/health', method: 'GET', status: '200' };
    one.recordRequest('/v1/health', 'GET', 200, 0.001);
    assert.equal(sampleValue(await scrape(one), 'spike_http_requests_total', labels), 1);
    one.recordRequest('/v1/health', 'GET', 200, 0.001);
    assert.equal(sampleValue(await scrape(one), 'spike_http_requests_total', labels), 2);
    assert.equal(sampleValue(await scrape(two), 'spike_http_requests_total', labels), undefined);
  });

  test('audit and decryption counters move; Keepers have no decryption counter', async () => {
    const metrics = new Metrics({ program: 'nexus', processMetrics: false });
    metrics.countAuditEvents(3);
    metrics.countAuditFailures(1);
    metrics.countDecryptionFailure();
    const families = await scrape(metrics);
    assert.equal(sampleValue(families, 'spike_audit_events_total'), 3);
    assert.equal(sampleValue(families, 'spike_audit_failures_total'), 1);
    assert.equal(sampleValue(families, 'spike_decryption_failures_total'), 1);
    const keeper = await scrape(new Metrics({ program: 'keeper', processMetrics: false }));
    assert.equal(keeper.has('spike_decryption_failures_total'), false);
    assert.equal(keeper.has('spike_audit_events_total'), true);
  });

  test('readings are taken at each scrape: sealed, SVID expiry, Keepers reachable, refusals by cause', async () => {
    const metrics = new Metrics({ program: 'nexus', processMetrics: false });
    let sealed = true;
    let reachable = 0;
    let notAfter: Date | undefined = new Date('2030-01-02T03:04:05.000Z');
    const refusals = new Map([
      ['no_certificate', 0],
      ['not_allowed', 0],
    ]);
    metrics.observe({
      sealed: () => sealed,
      keepersReachable: () => reachable,
      svidNotAfter: () => {
        if (notAfter === undefined) throw new Error('No X509-SVID is available');
        return notAfter;
      },
      tlsRefusals: () => refusals,
    });
    let families = await scrape(metrics);
    assert.equal(sampleValue(families, 'spike_sealed'), 1);
    assert.equal(sampleValue(families, 'spike_keepers_reachable'), 0);
    assert.equal(sampleValue(families, 'spike_svid_expiry_timestamp_seconds'), 1893553445);
    assert.equal(
      sampleValue(families, 'spike_tls_handshake_refusals_total', { reason: 'no_certificate' }),
      0,
    );
    sealed = false;
    reachable = 3;
    notAfter = undefined;
    refusals.set('no_certificate', 5);
    families = await scrape(metrics);
    assert.equal(sampleValue(families, 'spike_sealed'), 0);
    assert.equal(sampleValue(families, 'spike_keepers_reachable'), 3);
    assert.equal(sampleValue(families, 'spike_svid_expiry_timestamp_seconds'), 0);
    assert.equal(
      sampleValue(families, 'spike_tls_handshake_refusals_total', { reason: 'no_certificate' }),
      5,
    );
    assert.equal(families.get('spike_tls_handshake_refusals_total')?.type, 'counter');
  });

  test('the agent has only the process metrics, which parse', async () => {
    const families = await scrape(new Metrics({ program: 'agent' }));
    const names = [...families.keys()];
    assert.ok(names.includes('process_cpu_seconds_total'), names.join(' '));
    assert.ok(names.includes('process_resident_memory_bytes'));
    assert.ok(names.includes('nodejs_eventloop_lag_seconds'));
    assert.deepEqual(
      names.filter((name) => name.startsWith('spike_')),
      [],
    );
    assert.equal(
      new Metrics({ program: 'agent', processMetrics: false }).contentType.split(';')[0],
      'text/plain',
    );
  });
});
