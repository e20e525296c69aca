/**
 * The operations listeners of real processes, as a load balancer, a
 * Kubernetes probe and Prometheus see them: plain HTTP, no certificate. A
 * Nexus that starts while its Keepers are down stays sealed, and says so on
 * `/ready` (503), on `/metrics` (`spike_sealed 1`) and on its mTLS
 * `/v1/health` (503); once the Keepers are back it unseals and `/ready`
 * turns 200. The request counters move with requests and name route
 * patterns, never paths; the same certificate-less client that gets its
 * probe answered is refused by every mTLS route, and counted; a stored row
 * altered on disk raises the integrity alarm (an error line and a counter).
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from 'node:tls';
import Database from 'libsql';
import { PATHS } from '../../shared/api/paths.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { type Family, parsePrometheusText, sampleValue } from '../harness/prometheus_text.ts';
import type { RunningProgram } from '../harness/spawn.ts';

const OPS_LINE_REGEXP =
  /"address":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"Serving probes and metrics/;
const SECRET_ROUTE = '/v1/secrets/data/:path{.+}';
const WAIT_MS = 30_000;

/** The operations listener's address, from the line the program logs. */
async function opsUrlOf(program: RunningProgram): Promise<string> {
  return (await program.waitFor(OPS_LINE_REGEXP))[1] as string;
}

async function probe(url: string, path: string) {
  const res = await fetch(`${url}${path}`);
  const text = await res.text();
  return {
    status: res.status,
    text,
    body: res.headers.get('content-type')?.startsWith('application/json')
      ? (JSON.parse(text) as unknown)
      : undefined,
  };
}

async function scrape(url: string): Promise<Map<string, Family>> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  return parsePrometheusText(await res.text());
}

/** Polls until `check` returns a value that is not undefined. */
async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await delay(50);
  }
}

/**
 * One request on a fresh TLS connection that presents no client
 * certificate: what came back before the server closed it ('' for nothing).
 */
function withoutCertificate(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('secureConnect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(received));
  });
}

describe('operations listeners', () => {
  let broker: Broker;
  let keeperOps: string;
  let nexusOps: string;
  let agentOps: string;

  before(async () => {
    broker = await startBroker({
      trustDomain: 'operations.test',
      startNexus: false,
      keeperEnv: { SPIKE_KEEPER_OPS_ADDR: '127.0.0.1:0' },
      agentEnv: { SPIKE_AGENT_OPS_ADDR: '127.0.0.1:0' },
      nexusEnv: { SPIKE_NEXUS_OPS_ADDR: '127.0.0.1:0' },
    });
    keeperOps = await opsUrlOf(broker.keeper(0));
    agentOps = await opsUrlOf(broker.agent);
  });

  after(async () => {
    await broker?.stop();
  });

  test('a Keeper with its SVID is live and ready, and its metrics parse', async () => {
    assert.deepEqual((await probe(keeperOps, '/live')).body, { status: 'live' });
    const ready = await probe(keeperOps, '/ready');
    assert.equal(ready.status, 200, ready.text);
    const families = await scrape(keeperOps);
    assert.ok(
      (sampleValue(families, 'spike_svid_expiry_timestamp_seconds') as number) > Date.now() / 1000,
    );
    assert.equal(
      sampleValue(families, 'spike_tls_handshake_refusals_total', { reason: 'no_certificate' }),
      0,
    );
    assert.ok(families.has('process_resident_memory_bytes'));
    assert.equal(families.has('spike_sealed'), false);
  });

  test('the agent is live and ready once its sockets serve', async () => {
    assert.equal((await probe(agentOps, '/live')).status, 200);
    assert.equal((await probe(agentOps, '/ready')).status, 200);
    assert.ok((await scrape(agentOps)).has('process_cpu_seconds_total'));
  });

  test('a sealed Nexus is live but answers /ready, /metrics and /v1/health as sealed', async () => {
    // Without its Keepers, Nexus can neither recover nor make a root key.
    for (let i = 0; i < broker.keeperPorts.length; i += 1) await broker.keeper(i).stop();
    broker.startNexus();
    nexusOps = await opsUrlOf(broker.nexus());
    assert.equal((await probe(nexusOps, '/live')).status, 200);
    const ready = await until('Nexus reports itself sealed', async () => {
      const answer = await probe(nexusOps, '/ready');
      return (answer.body as { reason?: string }).reason === 'sealed' ? answer : undefined;
    });
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.body, { status: 'not_ready', reason: 'sealed' });
    const families = await scrape(nexusOps);
    assert.equal(sampleValue(families, 'spike_sealed'), 1);
    assert.equal(sampleValue(families, 'spike_keepers_reachable'), 0);
    await broker.nexus().waitFor(/"msg":"Listening"/);
    const health = await broker.call('pilot', 'GET', PATHS.health);
    assert.equal(health.status, 503);
    assert.deepEqual(health.body, { status: 'sealed', component: 'nexus' });
  });

  test('once its Keepers are back Nexus unseals, and /ready turns 200', async () => {
    await Promise.all(broker.keeperPorts.map((_, i) => broker.startKeeper(i)));
    await until('Nexus is ready', async () =>
      (await probe(nexusOps, '/ready')).status === 200 ? true : undefined,
    );
    assert.deepEqual((await probe(nexusOps, '/ready')).body, { status: 'ready' });
    const families = await scrape(nexusOps);
    assert.equal(sampleValue(families, 'spike_sealed'), 0);
    assert.ok(
      (sampleValue(families, 'spike_svid_expiry_timestamp_seconds') as number) > Date.now() / 1000,
    );
    await until('every Keeper is reachable', async () =>
      sampleValue(await scrape(nexusOps), 'spike_keepers_reachable') === 3 ? true : undefined,
    );
    const health = await broker.call('pilot', 'GET', PATHS.health);
    assert.equal(health.status, 200);
  });

  test('the request counters move with requests, under the route pattern and never the path', async () => {
    const path = 'ops/payments/db-password';
    const value = broker.secretValue('counted');
    const ok = { route: SECRET_ROUTE, method: 'GET', status: '200' };
    const before = await scrape(nexusOps);
    const readsBefore = sampleValue(before, 'spike_http_requests_total', ok) ?? 0;
    const auditBefore = sampleValue(before, 'spike_audit_events_total') as number;
    const put = await broker.call('pilot', 'PUT', `${PATHS.secretData}/${path}`, {
      data: { value },
    });
    assert.equal(put.status, 200, put.text);
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await broker.call('pilot', 'GET', `${PATHS.secretData}/${path}`)).status, 200);
    }
    const text = await (await fetch(`${nexusOps}/metrics`)).text();
    const after = parsePrometheusText(text);
    assert.equal(sampleValue(after, 'spike_http_requests_total', ok), readsBefore + 3);
    assert.ok((sampleValue(after, 'spike_http_request_duration_seconds_count', ok) as number) >= 3);
    assert.equal(
      sampleValue(after, 'spike_http_requests_total', {
        route: SECRET_ROUTE,
        method: 'PUT',
        status: '200',
      }),
      1,
    );
    assert.ok((sampleValue(after, 'spike_audit_events_total') as number) >= auditBefore + 4);
    assert.equal(sampleValue(after, 'spike_audit_failures_total'), 0);
    for (const leak of [path, 'payments', value, broker.idOf('pilot'), 'spiffe://']) {
      assert.ok(!text.includes(leak), `/metrics holds ${leak}`);
    }
    for (const answer of [await probe(nexusOps, '/ready'), await probe(nexusOps, '/live')]) {
      assert.ok(!answer.text.includes('spiffe://'));
    }
  });

  test('a probe without any certificate gets its answer while every mTLS route refuses that client, and is counted', async () => {
    const counted = async () =>
      sampleValue(await scrape(nexusOps), 'spike_tls_handshake_refusals_total', {
        reason: 'no_certificate',
      }) as number;
    const before = await counted();
    const routes = [
      PATHS.health,
      PATHS.status,
      `${PATHS.secretData}/ops/payments/db-password`,
      `${PATHS.secretList}?prefix=ops/`,
      PATHS.policies,
      '/ready',
      '/metrics',
    ];
    for (const path of routes) {
      assert.equal(await withoutCertificate(broker.nexusPort, path), '', `${path} answered`);
    }
    assert.equal((await probe(nexusOps, '/ready')).status, 200);
    await until('the refusals are counted', async () =>
      (await counted()) === before + routes.length ? true : undefined,
    );
    // A Keeper refuses it too, and counts it under the same cause.
    const keeperPort = broker.keeperPorts[0] as number;
    assert.equal(await withoutCertificate(keeperPort, PATHS.health), '');
    const keeperUrl = await opsUrlOf(broker.keeper(0));
    await until('the Keeper counts its refusal', async () =>
      (sampleValue(await scrape(keeperUrl), 'spike_tls_handshake_refusals_total', {
        reason: 'no_certificate',
      }) as number) >= 1
        ? true
        : undefined,
    );
  });

  test('a stored row altered on disk raises the integrity alarm: one error line without the secret, and a counter', async () => {
    const path = 'ops/tampered';
    const value = broker.secretValue('tampered');
    const put = await broker.call('pilot', 'PUT', `${PATHS.secretData}/${path}`, {
      data: { value },
    });
    assert.equal(put.status, 200, put.text);
    // The write evicted the path from the read cache: the next read opens this row.
    const db = new Database(join(broker.dir, 'nexus-data', 'spike.db'), { timeout: 5_000 });
    try {
      const row = db
        .prepare('SELECT ciphertext FROM secrets WHERE path = ? AND version = 1')
        .get(path) as { ciphertext: Uint8Array };
      const altered = Buffer.from(row.ciphertext);
      altered[40] = (altered[40] as number) ^ 0x01;
      db.prepare('UPDATE secrets SET ciphertext = ? WHERE path = ? AND version = 1').run(
        altered,
        path,
      );
    } finally {
      db.close();
    }
    const read = await broker.call('pilot', 'GET', `${PATHS.secretData}/${path}`);
    assert.equal(read.status, 500);
    assert.equal((read.body as { error: { code: string } }).error.code, 'ERR_DECRYPTION_FAILED');
    const line = await broker.nexus().waitFor(/[^\n]*"msg":"Integrity alarm[^\n]*/);
    const alarm = JSON.parse(line[0]) as { level: string };
    assert.equal(alarm.level, 'error');
    assert.ok(!line[0].includes(value));
    assert.equal(sampleValue(await scrape(nexusOps), 'spike_decryption_failures_total'), 1);
    // The audit event of that request names the path, as the alarm says.
    const events = broker
      .auditEvents()
      .filter((event) => event.errorCode === 'ERR_DECRYPTION_FAILED');
    assert.deepEqual(
      events.map((event) => event.resource),
      [path],
    );
  });
});
