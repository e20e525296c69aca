import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parsePrometheusText, sampleValue } from '../../test/harness/prometheus_text.ts';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { Metrics } from './metrics.ts';
import { notReady, type OpsServer, READY, type Readiness, startOpsServer } from './ops_server.ts';

describe('the operations listener', () => {
  const logSink = createMemorySink();
  const metrics = new Metrics({ program: 'keeper', processMetrics: false });
  let ops: OpsServer;

  before(async () => {
    ops = await startOpsServer({
      host: '127.0.0.1',
      port: 0,
      metrics,
      logger: createLogger({ component: 'test', sink: logSink }),
      readyTimeoutMs: 200,
    });
  });

  after(async () => {
    await ops.close();
  });

  async function get(path: string, init: RequestInit = {}) {
    const res = await fetch(`${ops.url}${path}`, init);
    return { status: res.status, headers: res.headers, text: await res.text() };
  }

  test('logs its plain-HTTP address, with the port the system chose', () => {
    assert.match(ops.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(ops.port, 0);
    const line = logSink.lines.find((l) => l.msg === 'Serving probes and metrics over plain HTTP');
    assert.equal(line?.address, ops.url);
  });

  test('/live answers 200 without any certificate', async () => {
    const res = await get('/live');
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.text), { status: 'live' });
    assert.equal(res.headers.get('cache-control'), 'no-store');
  });

  test('/ready is 503 "starting" until the program sets its check, then answers what it says', async () => {
    let state: Readiness = notReady('sealed');
    const before = await get('/ready');
    assert.equal(before.status, 503);
    assert.deepEqual(JSON.parse(before.text), { status: 'not_ready', reason: 'starting' });
    ops.setReadiness(() => state);
    assert.deepEqual(JSON.parse((await get('/ready')).text), {
      status: 'not_ready',
      reason: 'sealed',
    });
    state = READY;
    const ready = await get('/ready');
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.text), { status: 'ready' });
    // A query string does not change the route.
    assert.equal((await get('/ready?verbose=1')).status, 200);
  });

  test('a check that throws is "check_failed", one that hangs "check_timed_out"', async () => {
    ops.setReadiness(() => {
      throw new Error('database password is hunter2');
    });
    const failed = await get('/ready');
    assert.equal(failed.status, 503);
    assert.deepEqual(JSON.parse(failed.text), { status: 'not_ready', reason: 'check_failed' });
    assert.doesNotMatch(failed.text, /hunter2/);
    ops.setReadiness(() => new Promise<Readiness>(() => {}));
    assert.deepEqual(JSON.parse((await get('/ready')).text), {
      status: 'not_ready',
      reason: 'check_timed_out',
    });
  });

  test('/metrics is the Prometheus text format with its media type', async () => {
    metrics.recordRequest('/v1/health', 'GET', 200, 0.001);
    const res = await get('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusText(res.text);
    assert.equal(
      sampleValue(families, 'spike_http_requests_total', {
        route: '/v1/health',
        method: 'GET',
        status: '200',
      }),
      1,
    );
  });

  test('HEAD answers without a body; other methods 405 with Allow; other paths 404', async () => {
    const head = await get('/live', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
    const post = await get('/ready', { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    for (const path of ['/', '/v1/health', '/metrics/', '/livez']) {
      assert.equal((await get(path)).status, 404, path);
    }
  });
});
