/**
 * Hostile input that only a real socket shows, against a whole broker
 * (agent, three Keepers, Nexus as processes, over real mTLS): oversized
 * header blocks, oversized and lying Content-Length bodies, chunked bodies
 * over the limit, bodies cut short or aborted, a body an unauthorised caller
 * never finishes, a body sent to GET or to a route that takes none, a key
 * twice in a body, dot segments and encoded slashes in the raw request
 * target, and framing the HTTP parser refuses. Requests are
 * written byte by byte on a TLS socket that presents the superuser's SVID.
 *
 * Every case must be answered with a 4xx (or the connection closed by a
 * server timeout), never a 5xx or a hang; nothing may be stored; a request
 * that reaches the app is audited exactly once, with its status, and one the
 * HTTP parser refuses before the app is not audited (a documented limit).
 * Nexus must keep serving throughout, and the leak scan at stop() must not
 * find any value sent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { PATHS } from '../../shared/api/paths.ts';
import type { AuditEvent } from '../../shared/log/audit_log.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { isNexus } from '../../shared/spiffe/identities.ts';
import { clientAgentOptions } from '../../shared/spiffe/mtls.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { assertError, type Expected, INVALID, TOO_LARGE } from '../harness/hostile.ts';

const MAX_BODY_BYTES = 8192;
const REQUEST_TIMEOUT_MS = 3000;

let broker: Broker;

before(async () => {
  broker = await startBroker({
    trustDomain: 'hostile.test',
    nexusEnv: {
      SPIKE_NEXUS_MAX_BODY_BYTES: String(MAX_BODY_BYTES),
      SPIKE_NEXUS_REQUEST_TIMEOUT: `${REQUEST_TIMEOUT_MS}ms`,
      SPIKE_NEXUS_HEADERS_TIMEOUT: `${REQUEST_TIMEOUT_MS}ms`,
    },
  });
  const put = await broker.call('pilot', 'PUT', `${PATHS.secretData}/app/kept`, {
    data: { password: broker.secretValue('kept') },
  });
  assert.equal(put.status, 200, put.text);
});

after(async () => {
  await broker?.stop();
});

interface RawAnswer {
  /** The status of the first response, or undefined if the server sent none. */
  readonly status: number | undefined;
  /** Its body (the first response's only). */
  readonly body: string;
  /** Everything the server sent. */
  readonly raw: string;
  /** Whether the server closed the connection. */
  readonly closed: boolean;
}

/**
 * Writes `chunks` on a fresh mTLS connection as the superuser (or `as`),
 * pausing `pauseMs` between them, and collects what comes back until the
 * server closes, a complete first response has arrived and `settleMs`
 * passed, or `timeoutMs` runs out. With `hangUp` it closes the connection
 * right after the last chunk instead.
 */
async function rawRequest(
  chunks: readonly (string | Uint8Array)[],
  options: {
    readonly timeoutMs?: number;
    readonly pauseMs?: number;
    readonly settleMs?: number;
    readonly as?: string;
    readonly hangUp?: boolean;
  } = {},
): Promise<RawAnswer> {
  const source = await broker.source(options.as ?? 'pilot');
  const socket: TLSSocket = connect({
    host: '127.0.0.1',
    port: broker.nexusPort,
    ...clientAgentOptions(source, isNexus(broker.trustDomain)),
  });
  const received: Buffer[] = [];
  let closed = false;
  socket.on('data', (data: Buffer) => received.push(data));
  socket.on('error', () => {
    closed = true;
  });
  const ended = new Promise<void>((resolve) =>
    socket.on('close', () => {
      closed = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  for (const chunk of chunks) {
    if (socket.destroyed) break;
    socket.write(chunk);
    if (options.pauseMs !== undefined) await delay(options.pauseMs);
  }
  if (options.hangUp === true) {
    await new Promise<void>((resolve) => socket.end(resolve));
    socket.destroy();
    return { status: undefined, body: '', raw: '', closed: true };
  }
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  let completeAt: number | undefined;
  while (!closed && Date.now() < deadline) {
    const text = Buffer.concat(received).toString('latin1');
    if (completeAt === undefined && isComplete(text)) completeAt = Date.now();
    if (completeAt !== undefined && Date.now() - completeAt >= (options.settleMs ?? 100)) break;
    await Promise.race([ended, delay(20)]);
  }
  socket.destroy();
  const raw = Buffer.concat(received).toString('utf8');
  return { ...firstResponse(raw), raw, closed };
}

function isComplete(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return false;
  const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1];
  return length === undefined ? false : text.length >= end + 4 + Number(length);
}

function firstResponse(raw: string): { status: number | undefined; body: string } {
  const status = /^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1];
  const end = raw.indexOf('\r\n\r\n');
  if (status === undefined || end === -1) return { status: undefined, body: '' };
  const length = /\r\ncontent-length: *(\d+)/i.exec(raw.slice(0, end))?.[1];
  const body = raw.slice(end + 4, length === undefined ? undefined : end + 4 + Number(length));
  return { status: Number(status), body };
}

/** The first response has `expected`'s status and error code. */
function assertAnswered(answer: RawAnswer, expected: Expected): void {
  assertError(answer.status, answer.body, expected, answer.raw.slice(0, 300));
}

function head(
  method: string,
  target: string,
  headers: Readonly<Record<string, string>> = {},
): string {
  const lines = [`${method} ${target} HTTP/1.1`, `host: 127.0.0.1:${broker.nexusPort}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Everything stored that a case could touch, read through the API. */
async function snapshot(): Promise<string> {
  const list = await broker.call('pilot', 'GET', `${PATHS.secretList}?limit=1000`);
  const kept = await broker.call('pilot', 'GET', `${PATHS.secretMetadata}/app/kept`);
  const policies = await broker.call('pilot', 'GET', PATHS.policies);
  assert.equal(list.status, 200);
  return JSON.stringify([list.body, kept.body, policies.body]);
}

/**
 * Runs one case: the store is unchanged, Nexus still answers, and the
 * request is audited `audited` times (1 when it reaches the app, 0 when the
 * HTTP parser refuses it first), with the answer's status.
 */
async function expectCase(
  send: () => Promise<RawAnswer>,
  check: (answer: RawAnswer) => void,
  audited: 0 | 1,
): Promise<void> {
  const before = await snapshot();
  const eventsBefore = broker.auditEvents().length;
  const answer = await send();
  check(answer);
  if (answer.status !== undefined) assert.ok(answer.status < 500, answer.raw.slice(0, 400));
  await delay(50);
  const events = broker.auditEvents().slice(eventsBefore);
  assert.equal(events.length, audited, `audit events: ${JSON.stringify(events)}`);
  if (audited === 1 && answer.status !== undefined) assert.equal(events[0]?.status, answer.status);
  assert.equal(await snapshot(), before, 'the store changed');
  const health = await broker.call('pilot', 'GET', PATHS.health);
  assert.equal(health.status, 200, 'Nexus stopped serving');
}

/**
 * 431 from the HTTP parser; Deno's node:http sometimes closes the connection
 * while the client is still sending, so the 431 is lost with the reset.
 */
function assertHeadersRefused(answer: RawAnswer): void {
  assert.ok(
    answer.status === 431 || (answer.status === undefined && answer.closed),
    `${answer.status}: ${answer.raw.slice(0, 200)}`,
  );
}

function jsonPut(target: string, body: string, extra: Readonly<Record<string, string>> = {}) {
  return head('PUT', target, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    ...extra,
  });
}

describe('Nexus over a real socket under hostile input', () => {
  test('an oversized header block is refused by the HTTP parser (431, or the connection closed)', async () => {
    await expectCase(
      () => rawRequest([head('GET', PATHS.health, { 'x-junk': 'j'.repeat(64 * 1024) })]),
      (answer) => assertHeadersRefused(answer),
      0,
    );
  });

  test('many small headers adding up past the limit are refused the same way', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) headers[`x-h${i}`] = 'v'.repeat(16);
    await expectCase(
      () => rawRequest([head('GET', PATHS.health, headers)]),
      (answer) => assertHeadersRefused(answer),
      0,
    );
  });

  test('a Content-Length over the limit gets 413 before the body is sent', async () => {
    await expectCase(
      () =>
        rawRequest([
          head('PUT', `${PATHS.secretData}/app/huge`, {
            'content-type': 'application/json',
            'content-length': String(50 * 1024 * 1024),
          }),
        ]),
      (answer) => assertAnswered(answer, TOO_LARGE),
      1,
    );
  });

  test('a chunked body over the limit gets 413', async () => {
    const value = broker.secretValue('chunked');
    const chunk = JSON.stringify({ data: { k: `${value}${'x'.repeat(MAX_BODY_BYTES)}` } });
    await expectCase(
      () =>
        rawRequest(
          [
            head('PUT', `${PATHS.secretData}/app/chunked`, {
              'content-type': 'application/json',
              'transfer-encoding': 'chunked',
            }),
            `${(1024).toString(16)}\r\n${chunk.slice(0, 1024)}\r\n`,
            `${(chunk.length - 1024).toString(16)}\r\n${chunk.slice(1024)}\r\n`,
            '0\r\n\r\n',
          ],
          { pauseMs: 20 },
        ),
      (answer) => assertAnswered(answer, TOO_LARGE),
      1,
    );
  });

  test('a Content-Length shorter than the body: the cut body is refused, the rest is not a request', async () => {
    const body = JSON.stringify({ data: { k: broker.secretValue('short') } });
    await expectCase(
      () =>
        rawRequest(
          [
            `${jsonPut(`${PATHS.secretData}/app/short`, body).replace(/content-length: \d+/, 'content-length: 10')}${body.slice(0, 10)}`,
            body.slice(10),
            // The rest follows once the first response is out: pipelined garbage
            // makes Deno's server drop the connection before answering at all.
          ],
          { pauseMs: 500 },
        ),
      (answer) => {
        assertAnswered(answer, INVALID);
        // The bytes after it are parsed as a request line, refused and the connection closed.
        assert.ok(
          answer.closed || /HTTP\/1\.1 400/.test(answer.raw.slice(20)),
          answer.raw.slice(0, 400),
        );
      },
      1,
    );
  });

  test('a Content-Length longer than the body does not hang Nexus: other requests are served and the stalled one times out', async () => {
    const body = JSON.stringify({ data: { k: broker.secretValue('long') } });
    const stalled = rawRequest(
      [
        `${jsonPut(`${PATHS.secretData}/app/long`, body).replace(/content-length: \d+/, 'content-length: 4000')}${body}`,
      ],
      { timeoutMs: REQUEST_TIMEOUT_MS + 10_000 },
    );
    await delay(200);
    const started = Date.now();
    const health = await broker.call('pilot', 'GET', PATHS.health);
    assert.equal(health.status, 200);
    assert.ok(Date.now() - started < 2000, 'a stalled body held up another request');
    const answer = await stalled;
    assert.ok(answer.closed, 'the stalled connection was never closed');
    assert.ok(answer.status === undefined || answer.status === 408, answer.raw.slice(0, 300));
    const read = await broker.call('pilot', 'GET', `${PATHS.secretData}/app/long`);
    assert.equal(read.status, 404);
  });

  test('a GET with a body is refused with ERR_INVALID_REQUEST', async () => {
    const body = JSON.stringify({ data: { k: broker.secretValue('get-body') } });
    await expectCase(
      () =>
        rawRequest([
          `${head('GET', `${PATHS.secretData}/app/kept`, {
            'content-type': 'application/json',
            'content-length': String(body.length),
          })}${body}`,
        ]),
      (answer) => {
        assertAnswered(answer, INVALID);
        assert.ok(!answer.raw.includes('canary'), 'the secret was answered');
      },
      1,
    );
  });

  for (const target of [
    `${PATHS.secretData}/app/x/../kept`,
    `${PATHS.secretData}/app/x/%2e%2e/kept`,
    `${PATHS.secretData}/app/%2E/kept`,
    `${PATHS.secretData}/app%2Fkept`,
    `${PATHS.secretData}//app/kept`,
    `/v1/secrets/x/../data/app/kept`,
    `${PATHS.secretData}/app/kept%0a`,
  ]) {
    test(`raw target ${JSON.stringify(target)} gets ERR_INVALID_REQUEST, not the secret it resolves to`, async () => {
      await expectCase(
        () => rawRequest([head('GET', target)]),
        (answer) => {
          assertAnswered(answer, INVALID);
          assert.ok(!answer.raw.includes('canary'), 'the secret was answered');
        },
        1,
      );
    });
  }

  test('an absolute-form target with a dot segment gets ERR_INVALID_REQUEST', async () => {
    await expectCase(
      () =>
        rawRequest([
          head('GET', `https://127.0.0.1:${broker.nexusPort}${PATHS.secretData}/app/x/../kept`),
        ]),
      (answer) => assertAnswered(answer, INVALID),
      1,
    );
  });

  test("an unauthorised caller's body is never read: a chunked body that never ends gets 403 while it is still open", async () => {
    const before = await snapshot();
    const chunk = JSON.stringify({ data: { k: broker.secretValue('never-read') } });
    const answer = await rawRequest(
      [
        head('PUT', `${PATHS.secretData}/app/unread`, {
          'content-type': 'application/json',
          'transfer-encoding': 'chunked',
        }),
        // The first chunk of a body whose end never comes.
        `${chunk.length.toString(16)}\r\n${chunk}\r\n`,
      ],
      { as: 'keeper-1' },
    );
    assertAnswered(answer, { status: 403, code: 'ERR_ACCESS_DENIED' });
    assert.equal(await snapshot(), before, 'the store changed');
  });

  /** Waits for the audit event of the one request on `route` since `from`, and returns it. */
  async function auditedRequest(from: number): Promise<AuditEvent> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const events = broker
        .auditEvents()
        .slice(from)
        .filter((e) => e.action !== 'tls.connect' && e.route !== PATHS.status);
      if (events.length > 0) {
        assert.equal(events.length, 1, JSON.stringify(events));
        return events[0] as AuditEvent;
      }
      if (Date.now() > deadline) throw new Error('the request was never audited');
      await delay(20);
    }
  }

  for (const [what, chunks] of [
    [
      'a chunked upload aborted midway',
      (body: string) => [
        head('PUT', `${PATHS.secretData}/app/aborted`, {
          'content-type': 'application/json',
          'transfer-encoding': 'chunked',
        }),
        `${(body.length - 4).toString(16)}\r\n${body.slice(0, -4)}\r\n`,
      ],
    ],
    [
      'a body cut short of its Content-Length by a closed connection',
      (body: string) => [
        `${jsonPut(`${PATHS.secretData}/app/truncated`, body).replace(/content-length: \d+/, `content-length: ${body.length + 100}`)}${body}`,
      ],
    ],
  ] as const) {
    test(`${what} is audited as 400 ERR_BODY_INCOMPLETE, never a 500, and stores nothing`, async () => {
      const before = await snapshot();
      const from = broker.auditEvents().length;
      const body = JSON.stringify({ data: { k: broker.secretValue('incomplete') } });
      await rawRequest(chunks(body), { hangUp: true, pauseMs: 50 });
      const event = await auditedRequest(from);
      assert.equal(event.status, 400, JSON.stringify(event));
      assert.equal(event.errorCode, 'ERR_BODY_INCOMPLETE');
      assert.doesNotMatch(broker.nexus().stderr(), /Unhandled error/);
      assert.equal(await snapshot(), before, 'the store changed');
      const health = await broker.call('pilot', 'GET', PATHS.health);
      assert.equal(health.status, 200, 'Nexus stopped serving');
    });
  }

  test('a body on a route that takes none, and a key twice in a body, get ERR_INVALID_REQUEST', async () => {
    const body = JSON.stringify({ versions: [1] });
    await expectCase(
      () =>
        rawRequest([
          `${head('DELETE', `${PATHS.secretMetadata}/app/kept`, {
            'content-type': 'application/json',
            'content-length': String(body.length),
          })}${body}`,
        ]),
      (answer) => assertAnswered(answer, INVALID),
      1,
    );
    const value = broker.secretValue('twice');
    const twice = `{"data":{"k":"${value}"},"data":{"k":"other"}}`;
    await expectCase(
      () => rawRequest([`${jsonPut(`${PATHS.secretData}/app/twice`, twice)}${twice}`]),
      (answer) => {
        assertAnswered(answer, INVALID);
        assert.match(answer.body, /a key twice in one object/);
      },
      1,
    );
  });

  for (const [what, request] of [
    ['a backslash in the path', () => head('GET', '/v1/secrets/data/app\\kept')],
    [
      'a malformed Content-Length',
      () => head('PUT', `${PATHS.secretData}/app/x`, { 'content-length': 'abc' }),
    ],
    [
      'both Content-Length and Transfer-Encoding',
      () =>
        `${head('PUT', `${PATHS.secretData}/app/x`, {
          'content-type': 'application/json',
          'content-length': '5',
          'transfer-encoding': 'chunked',
        })}0\r\n\r\n`,
    ],
    ['a request line that is not HTTP', () => 'HELLO\r\n\r\n'],
    [
      'a control character in the request line',
      () => `GET /v1/health\u0000 HTTP/1.1\r\nhost: x\r\n\r\n`,
    ],
  ] as const) {
    test(`${what} is refused with 400 before the app, never a 5xx`, async () => {
      await expectCase(
        () => rawRequest([request()]),
        (answer) => {
          assert.ok(
            answer.status === 400 || (answer.status === undefined && answer.closed),
            answer.raw.slice(0, 300),
          );
        },
        0,
      );
    });
  }
});
