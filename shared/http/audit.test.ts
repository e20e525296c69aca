import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { type AuditEvent, createFdAuditSink, createMemoryAuditSink } from '../log/audit_log.ts';
import { createLogger, createMemorySink } from '../log/logger.ts';
import type { VerifiedSvid } from '../spiffe/x509_svid.ts';
import { createBaseApp } from './app.ts';
import { audit, auditRefusals, openAuditSink, setAudit, TLS_CONNECT_ACTION } from './audit.ts';
import { RequestCount } from './request_count.ts';

const NOW = Date.parse('2026-01-02T03:04:05.000Z');

describe('auditRefusals()', () => {
  test('writes one denied tls.connect event with the reason, the address and the claimed ID', () => {
    const sink = createMemoryAuditSink();
    const audit = auditRefusals({ sink, component: 'keeper', now: () => NOW });
    audit({
      reason: 'TLS verification failed: CERT_HAS_EXPIRED',
      claimedId: 'spiffe://example.org/spike/nexus',
      remoteAddress: '127.0.0.1:40000',
    });
    assert.equal(sink.events.length, 1);
    const [event] = sink.events;
    assert.deepEqual(
      { ...event, trailId: 'x' },
      {
        ts: '2026-01-02T03:04:05.000Z',
        trailId: 'x',
        component: 'keeper',
        peer: null,
        claimedPeer: 'spiffe://example.org/spike/nexus',
        method: null,
        route: null,
        action: TLS_CONNECT_ACTION,
        resource: null,
        decision: null,
        outcome: 'denied',
        status: 401,
        errorCode: 'ERR_UNAUTHENTICATED',
        durationMs: 0,
        reason: 'TLS verification failed: CERT_HAS_EXPIRED',
        remoteAddress: '127.0.0.1:40000',
        count: 1,
      },
    );
    assert.match(event?.trailId ?? '', /^[0-9a-f-]{36}$/);
  });

  test('a verified peer that may not connect is the peer, with 403 ERR_ACCESS_DENIED', () => {
    const sink = createMemoryAuditSink();
    auditRefusals({ sink, component: 'keeper' })({
      reason: 'Peer "spiffe://example.org/spike/keeper/2" is not allowed here',
      peerId: 'spiffe://example.org/spike/keeper/2',
    });
    const [event] = sink.events;
    assert.equal(event?.peer, 'spiffe://example.org/spike/keeper/2');
    assert.equal(event?.claimedPeer, null);
    assert.equal(event?.status, 403);
    assert.equal(event?.errorCode, 'ERR_ACCESS_DENIED');
    assert.equal(event?.outcome, 'denied');
    assert.equal(event?.remoteAddress, null);
  });

  test("a summary's count is the event's, so the counts add up to every refusal", () => {
    const sink = createMemoryAuditSink();
    auditRefusals({ sink, component: 'nexus' })({
      reason: '41 more refusals from this address; the last: TLS handshake failed: ECONNRESET',
      remoteAddress: '192.0.2.1',
      count: 41,
    });
    assert.equal(sink.events[0]?.count, 41);
    assert.equal(sink.events[0]?.remoteAddress, '192.0.2.1');
  });

  test('each refusal gets its own trail ID', () => {
    const sink = createMemoryAuditSink();
    const audit = auditRefusals({ sink, component: 'nexus' });
    audit({ reason: 'a' });
    audit({ reason: 'b' });
    assert.notEqual(sink.events[0]?.trailId, sink.events[1]?.trailId);
  });
});

describe('audit(): deniedRequests', () => {
  test('counts the requests answered 401, 403 or 429, and no refused connection', async () => {
    const sink = createMemoryAuditSink();
    const deniedRequests = new RequestCount();
    const app = new Hono();
    app.use(audit({ sink, component: 'nexus', deniedRequests }));
    app.get('/:status', (c) => c.body(null, Number(c.req.param('status')) as ContentfulStatusCode));
    for (const status of [200, 401, 403, 404, 429, 500]) {
      await app.request(`/${status}`);
    }
    assert.equal(deniedRequests.value, 3);
    auditRefusals({ sink, component: 'nexus', deniedRequests })({ reason: 'no certificate' });
    assert.equal(deniedRequests.value, 3);
  });
});

describe('audit() and setAudit()', () => {
  function appWith(annotate: (c: Parameters<typeof setAudit>[0]) => void) {
    const sink = createMemoryAuditSink();
    const app = new Hono();
    app.use(audit({ sink, component: 'nexus', now: () => NOW }));
    app.get('/thing', (c) => {
      annotate(c);
      return c.text('ok');
    });
    return { app, events: sink.events };
  }

  test("setAudit() calls add up: the guard's decision stays when the handler names the resource", async () => {
    const { app, events } = appWith((c) => {
      setAudit(c, { action: 'policy.read' });
      setAudit(c, { decision: { reason: 'policy', policy: 'auditors' } });
      setAudit(c, { resource: 'web-reads-db' });
    });
    assert.equal((await app.request('/thing')).status, 200);
    assert.equal(events.length, 1);
    const [event] = events;
    assert.equal(event?.action, 'policy.read');
    assert.equal(event?.resource, 'web-reads-db');
    assert.deepEqual(event?.decision, { reason: 'policy', policy: 'auditors' });
    assert.equal(event?.outcome, 'allowed');
  });

  test('without a guard the event has action http.request and decision null', async () => {
    const { app, events } = appWith(() => {});
    await app.request('/thing');
    assert.equal(events[0]?.action, 'http.request');
    assert.equal(events[0]?.resource, null);
    assert.equal(events[0]?.decision, null);
  });
});

const dir = mkdtempSync(join(tmpdir(), 'spike-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The sink options the tests share: no checkpoints by the clock. */
const BASE = { component: 'nexus', checkpointIntervalMs: 0 } as const;

/** The events in the file, without the chain's own lines. */
function linesOf(path: string): AuditEvent[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as AuditEvent)
    .filter((event) => !event.action.startsWith('audit.'));
}

const PEER = {
  id: { toString: () => 'spiffe://example.org/apps/web' },
  notAfter: new Date(Date.parse('2100-01-01T00:00:00Z')),
} as unknown as VerifiedSvid;

const SAMPLE_EVENT: AuditEvent = {
  ts: '2026-01-02T03:04:05.000Z',
  trailId: 'trail',
  component: 'keeper',
  peer: null,
  method: 'GET',
  route: '/*',
  action: 'http.request',
  resource: null,
  decision: null,
  outcome: 'error',
  status: 404,
  errorCode: 'ERR_NOT_FOUND',
  durationMs: 0,
};

describe('audit() with the batched file sink', () => {
  test('an answer leaves only after the write that holds its audit line returned', async () => {
    // Through a real HTTP server: each write(2) of the sink and each
    // response's head are recorded in one sequence, with the route's name.
    const path = join(dir, 'ordering.jsonl');
    const order: string[] = [];
    const sink = createFdAuditSink(openSync(path, 'a', 0o600), {
      ...BASE,
      writeSync(fd, bytes) {
        const written = writeSync(fd, bytes);
        for (const line of Buffer.from(bytes).toString('utf8').split('\n')) {
          if (line !== '') order.push(`audited ${(JSON.parse(line) as AuditEvent).resource}`);
        }
        return written;
      },
    });
    const app = new Hono();
    app.use(audit({ sink, component: 'nexus' }));
    app.get('/things/:name', (c) => {
      setAudit(c, { resource: c.req.param('name') });
      return c.text('ok');
    });
    const listener = getRequestListener(app.fetch);
    const server = createServer((req, res) => {
      const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
      res.writeHead = ((...args: unknown[]) => {
        order.push(`answered ${req.url?.slice('/things/'.length)}`);
        return writeHead(...args);
      }) as typeof res.writeHead;
      void listener(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const names = Array.from({ length: 12 }, (_, i) => `n${i}`);
      const statuses = await Promise.all(
        names.map(
          (name) =>
            new Promise<number>((resolve, reject) => {
              request({ host: '127.0.0.1', port, path: `/things/${name}`, agent: false }, (res) => {
                res.resume();
                res.on('end', () => resolve(res.statusCode ?? 0));
              })
                .on('error', reject)
                .end();
            }),
        ),
      );
      assert.deepEqual(statuses, Array(names.length).fill(200));
      for (const name of names) {
        const audited = order.indexOf(`audited ${name}`);
        assert.ok(audited !== -1, `no audit line for ${name}: ${order.join(', ')}`);
        assert.ok(audited < order.indexOf(`answered ${name}`), order.join(', '));
      }
      assert.equal(linesOf(path).length, names.length);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      sink.close();
    }
  });

  test('the line is in the file once app.request() has the answer', async () => {
    const path = join(dir, 'request.jsonl');
    const sink = createFdAuditSink(openSync(path, 'a', 0o600), BASE);
    const app = new Hono();
    app.use(audit({ sink, component: 'keeper' }));
    app.get('/x', (c) => c.text('ok'));
    const answers = await Promise.all([app.request('/x'), app.request('/x')]);
    assert.deepEqual(
      answers.map((answer) => answer.status),
      [200, 200],
    );
    assert.equal(linesOf(path).length, 2);
    sink.close();
  });

  test('a request whose audit line cannot be written is answered 500 ERR_INTERNAL', async () => {
    // A descriptor open only for reading fails every write with EBADF.
    const path = join(dir, 'unwritable.jsonl');
    writeFileSync(path, '');
    const failures: Error[] = [];
    const sink = createFdAuditSink(openSync(path, 'r'), {
      ...BASE,
      onError: (error) => failures.push(error),
    });
    const logs = createMemorySink();
    const logger = createLogger({ component: 'nexus', sink: logs });
    const app = createBaseApp(() => PEER, logger, { audit: { sink, component: 'nexus' } });
    let handled = 0;
    app.get('/x', (c) => {
      handled += 1;
      return c.json({ answer: 'never sent' });
    });
    const answers = await Promise.all([app.request('/x'), app.request('/x')]);
    assert.equal(handled, 2);
    for (const answer of answers) {
      assert.equal(answer.status, 500);
      assert.deepEqual(await answer.json(), {
        error: { code: 'ERR_INTERNAL', message: 'Internal error' },
      });
    }
    // One failed write for the batch; the error handler does not log each request.
    assert.equal(failures.length, 1);
    assert.deepEqual(logs.lines, []);
    sink.close();
  });

  // Deno opens a device only with --allow-all.
  test("openAuditSink() logs a failed write on the program's log", {
    skip: 'Deno' in globalThis,
  }, async () => {
    const logs = createMemorySink();
    // /dev/full fails every write with ENOSPC.
    const sink = openAuditSink('/dev/full', createLogger({ component: 'keeper', sink: logs }), {
      component: 'keeper',
    });
    const result = await sink.write(SAMPLE_EVENT);
    assert.equal(result.written, false);
    assert.deepEqual(
      logs.lines.map((line) => [line.level, line.msg]),
      [['error', 'Cannot write the audit trail; its events stay queued']],
    );
    assert.match(String(logs.lines[0]?.error), /ENOSPC/);
    sink.close();
  });

  test('refused connections and requests of one turn share one write, nothing waits on the refusals', async () => {
    const path = join(dir, 'refusals.jsonl');
    let writes = 0;
    const sink = createFdAuditSink(openSync(path, 'a', 0o600), {
      ...BASE,
      writeSync(fd, bytes) {
        writes += 1;
        return writeSync(fd, bytes);
      },
    });
    const app = new Hono();
    app.use(audit({ sink, component: 'nexus' }));
    app.get('/x', (c) => c.text('ok'));
    const refused = auditRefusals({ sink, component: 'nexus' });
    assert.equal(refused({ reason: 'no certificate' }), undefined);
    const answer = await app.request('/x');
    assert.equal(answer.status, 200);
    assert.equal(writes, 1);
    assert.deepEqual(
      linesOf(path).map((event) => event.action),
      [TLS_CONNECT_ACTION, 'http.request'],
    );
    sink.close();
  });

  /** A base app over a file sink whose write(2) fails while `broken.now` is true. */
  function appOverBreakableSink(failClosed: boolean) {
    const path = join(dir, `breakable-${failClosed}.jsonl`);
    const broken = { now: false };
    const sink = createFdAuditSink(openSync(path, 'a', 0o600), {
      ...BASE,
      failClosed,
      onError: () => {},
      writeSync(fd, bytes) {
        if (broken.now)
          throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        return writeSync(fd, bytes);
      },
    });
    const logger = createLogger({ component: 'nexus', sink: createMemorySink() });
    const app = createBaseApp(() => PEER, logger, { audit: { sink, component: 'nexus' } });
    const handled: string[] = [];
    app.get('/x/:n', (c) => {
      handled.push(c.req.param('n'));
      return c.json({ n: c.req.param('n') });
    });
    return { app, sink, broken, handled, path };
  }

  test('failing closed: while the sink fails, requests are refused 503 ERR_AUDIT_UNAVAILABLE before their handler, and served again once it writes', async () => {
    const { app, sink, broken, handled, path } = appOverBreakableSink(true);
    assert.equal((await app.request('/x/1')).status, 200);
    broken.now = true;
    // The request that finds the disk full ran before anyone knew: 500, as before.
    const first = await app.request('/x/2');
    assert.equal(first.status, 500);
    for (const n of ['3', '4']) {
      const refused = await app.request(`/x/${n}`);
      assert.equal(refused.status, 503);
      assert.deepEqual(await refused.json(), {
        error: {
          code: 'ERR_AUDIT_UNAVAILABLE',
          message: 'The audit trail cannot be written; requests are refused until it can',
        },
      });
    }
    assert.deepEqual(handled, ['1', '2']);
    broken.now = false;
    // The first request after the disk recovered is served.
    assert.equal((await app.request('/x/5')).status, 200);
    assert.deepEqual(handled, ['1', '2', '5']);
    sink.close();
    // Every request is audited, the refusals as 503 with their code, in order.
    assert.deepEqual(
      linesOf(path).map((event) => [event.status, event.errorCode]),
      [
        [200, null],
        [200, null],
        [503, 'ERR_AUDIT_UNAVAILABLE'],
        [503, 'ERR_AUDIT_UNAVAILABLE'],
        [200, null],
      ],
    );
  });

  test('failing open: while the sink fails, requests are answered as their handler answered, and their lines follow', async () => {
    const { app, sink, broken, handled, path } = appOverBreakableSink(false);
    broken.now = true;
    const answers = await Promise.all([app.request('/x/1'), app.request('/x/2')]);
    assert.deepEqual(
      answers.map((answer) => answer.status),
      [200, 200],
    );
    assert.deepEqual(handled, ['1', '2']);
    assert.equal(linesOf(path).length, 0);
    broken.now = false;
    assert.equal((await app.request('/x/3')).status, 200);
    sink.close();
    assert.equal(linesOf(path).length, 3);
  });
});
