/**
 * Suite 7 of issue 7, resource limits: a whole broker as processes, with
 * Nexus's limits turned down so that each one trips within seconds. One
 * identity (the attacker) holds idle connections, trickles headers and
 * bodies, opens silent TCP connections, and floods requests; throughout,
 * another identity (the bystander) reads its secret with every answer a 200.
 *
 * Deadlines are generous: these tests check that each protection acts, never
 * how fast Nexus is.
 */
import assert from 'node:assert/strict';
import { type Socket, connect as tcpConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { PATHS } from '../../shared/api/paths.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { isNexus } from '../../shared/spiffe/identities.ts';
import { clientAgentOptions } from '../../shared/spiffe/mtls.ts';
import { type Broker, startBroker } from '../harness/broker.ts';

const TD = 'resource-limits.test';
const PER_IDENTITY = 8;
const PER_ADDRESS = 48;
const RATE_PER_SECOND = 20;
const BURST = 20;
/** Far above each timeout set below (1–2 s), far below Node's default 30 s check. */
const CLOSE_DEADLINE_MS = 15_000;
const BYSTANDER_SECRET_PATH = 'app/bystander/db';
const ATTACKER_SECRET_PATH = 'app/attacker/db';
/** A second loopback address: the attacker's silent connections come from there. */
const OTHER_LOOPBACK = '127.0.0.2';

describe('resource limits: Nexus stays responsive for other identities', () => {
  let broker: Broker;
  let bystanderValue: string;
  const sockets: Socket[] = [];

  before(async () => {
    broker = await startBroker({
      trustDomain: TD,
      workloads: { attacker: '/apps/attacker', bystander: '/apps/bystander' },
      nexusEnv: {
        SPIKE_NEXUS_HANDSHAKE_TIMEOUT: '1s',
        SPIKE_NEXUS_HEADERS_TIMEOUT: '1s',
        SPIKE_NEXUS_REQUEST_TIMEOUT: '2s',
        SPIKE_NEXUS_KEEP_ALIVE_TIMEOUT: '1s',
        SPIKE_NEXUS_MAX_CONNECTIONS: '400',
        SPIKE_NEXUS_MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
        SPIKE_NEXUS_MAX_CONNECTIONS_PER_IDENTITY: String(PER_IDENTITY),
        SPIKE_NEXUS_RATE_LIMIT_PER_SECOND: String(RATE_PER_SECOND),
        SPIKE_NEXUS_RATE_LIMIT_BURST: String(BURST),
      },
    });
    for (const [name, pattern, permissions] of [
      ['bystander', 'app/bystander/**', ['read']],
      ['attacker', 'app/attacker/**', ['read', 'write']],
    ] as const) {
      const policy = await broker.call('pilot', 'PUT', `${PATHS.policies}/${name}`, {
        spiffeIdPattern: broker.idOf(name),
        pathPattern: pattern,
        permissions,
      });
      assert.equal(policy.status, 200, policy.text);
    }
    bystanderValue = broker.secretValue('bystander');
    for (const [path, value] of [
      [BYSTANDER_SECRET_PATH, bystanderValue],
      [ATTACKER_SECRET_PATH, broker.secretValue('attacker')],
    ] as const) {
      const put = await broker.call('pilot', 'PUT', `${PATHS.secretData}/${path}`, {
        data: { value },
      });
      assert.equal(put.status, 200, put.text);
    }
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    await broker?.stop();
  });

  function track<T extends Socket>(socket: T): T {
    sockets.push(socket);
    socket.on('error', () => {});
    return socket;
  }

  /** A raw TLS connection to Nexus with the attacker's SVID; resolves once the handshake is done. */
  async function attackerTls(): Promise<TLSSocket> {
    const options = clientAgentOptions(
      await broker.source('attacker'),
      isNexus(broker.trustDomain),
    );
    return new Promise((resolve, reject) => {
      const socket = track(
        connect({
          host: '127.0.0.1',
          port: broker.nexusPort,
          key: options.key as string,
          cert: options.cert as string,
          ca: options.ca as string,
          minVersion: 'TLSv1.3',
          ...(options.checkServerIdentity === undefined
            ? {}
            : { checkServerIdentity: options.checkServerIdentity }),
        }),
      );
      socket.once('secureConnect', () => resolve(socket));
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('closed before the handshake completed')));
    });
  }

  /** What the server wrote before it closed the socket; fails after the deadline. */
  function whenClosed(socket: Socket): Promise<string> {
    let received = '';
    socket.on('data', (chunk: Uint8Array) => {
      received += new TextDecoder().decode(chunk);
    });
    socket.resume();
    return new Promise((resolve, reject) => {
      if (socket.destroyed) {
        resolve(received);
        return;
      }
      const timer = setTimeout(
        () => reject(new Error(`Nexus kept a connection open for ${CLOSE_DEADLINE_MS} ms`)),
        CLOSE_DEADLINE_MS,
      );
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(received);
      });
    });
  }

  /**
   * The bystander reads its secret over and over until `attack` settles,
   * then once more; every answer must be a 200 with the value it stored.
   */
  async function bystanderServedDuring<T>(attack: Promise<T>): Promise<T> {
    let isDone = false;
    const outcome = attack.finally(() => {
      isDone = true;
    });
    const failures: string[] = [];
    let reads = 0;
    const read = async () => {
      try {
        const reply = await broker.call(
          'bystander',
          'GET',
          `${PATHS.secretData}/${BYSTANDER_SECRET_PATH}`,
        );
        const data = (reply.body as { data?: { value?: string } } | undefined)?.data;
        if (reply.status !== 200 || data?.value !== bystanderValue) {
          failures.push(`status ${reply.status}`);
        }
      } catch (err) {
        failures.push(err instanceof Error ? err.message : String(err));
      }
      reads += 1;
    };
    while (!isDone) {
      await read();
      await delay(100);
    }
    await read();
    const result = await outcome;
    assert.deepEqual(failures, [], `the bystander failed ${failures.length} of ${reads} reads`);
    assert.ok(reads >= 2);
    return result;
  }

  async function refusedHandshakes(): Promise<number> {
    const status = await broker.call('pilot', 'GET', PATHS.status);
    assert.equal(status.status, 200, status.text);
    return (status.body as { refusedHandshakes: number }).refusedHandshakes;
  }

  test('idle connections of one identity are capped per SPIFFE ID, and each is closed', async () => {
    const refusedBefore = await refusedHandshakes();
    const attempts = PER_IDENTITY + 12;
    const answers = await bystanderServedDuring(
      (async () => {
        const closed: Promise<string>[] = [];
        for (let i = 0; i < attempts; i += 1) closed.push(whenClosed(await attackerTls()));
        return Promise.all(closed);
      })(),
    );
    // Past the cap a connection is closed without a word; within it, the
    // headers timeout answers 408.
    const timedOut = answers.filter((text) => text.startsWith('HTTP/1.1 408'));
    const refused = answers.filter((text) => text === '');
    assert.ok(timedOut.length <= PER_IDENTITY, `${timedOut.length} admitted`);
    assert.ok(timedOut.length >= 1);
    assert.equal(timedOut.length + refused.length, attempts);
    assert.ok((await refusedHandshakes()) - refusedBefore >= attempts - PER_IDENTITY);
  });

  test('silent TCP connections are capped per remote address and closed by the handshake timeout', async () => {
    const attempts = PER_ADDRESS + 10;
    const refusedBefore = await refusedHandshakes();
    await bystanderServedDuring(
      Promise.all(
        Array.from({ length: attempts }, () =>
          whenClosed(
            track(
              tcpConnect({
                host: '127.0.0.1',
                port: broker.nexusPort,
                localAddress: OTHER_LOOPBACK,
              }),
            ),
          ),
        ),
      ),
    );
    // Every refusal is counted; the log has the first from this address in
    // full, with its reason and the address (the rest of the minute's go into
    // one summary line when the minute ends).
    assert.ok((await refusedHandshakes()) - refusedBefore >= 10);
    const refusals = broker
      .nexus()
      .stderr()
      .split('\n')
      .filter((line) => line.includes('open connections per remote address'));
    assert.ok(refusals.length >= 1, 'the first refusal from the address is logged');
    for (const line of refusals) assert.match(line, /127\.0\.0\.2/);
  });

  test('trickled headers and trickled bodies are answered 408 and closed', async () => {
    const answers = await bystanderServedDuring(
      (async () => {
        const closed: Promise<string>[] = [];
        const timers: ReturnType<typeof setInterval>[] = [];
        for (let i = 0; i < PER_IDENTITY; i += 1) {
          const socket = await attackerTls();
          closed.push(whenClosed(socket));
          const isBody = i % 2 === 1;
          socket.write(
            isBody
              ? `PUT ${PATHS.secretData}/${ATTACKER_SECRET_PATH} HTTP/1.1\r\nHost: nexus\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n`
              : `GET ${PATHS.secretData}/${ATTACKER_SECRET_PATH} HTTP/1.1\r\nHost: nexus\r\n`,
          );
          timers.push(
            setInterval(() => {
              if (!socket.destroyed) socket.write(isBody ? ' ' : 'X-Slow: 1\r\n');
            }, 100),
          );
        }
        try {
          return await Promise.all(closed);
        } finally {
          for (const timer of timers) clearInterval(timer);
        }
      })(),
    );
    for (const text of answers) assert.match(text, /^HTTP\/1\.1 408/);
  });

  test('a request flood from one identity is answered 429 ERR_RATE_LIMITED with Retry-After and audited as denied', async () => {
    const statuses = new Map<number, number>();
    const problems: string[] = [];
    let limited = 0;
    const floodUntil = Date.now() + 4_000;
    await bystanderServedDuring(
      Promise.all(
        Array.from({ length: PER_IDENTITY }, async () => {
          while (Date.now() < floodUntil) {
            const client = await broker.client('attacker');
            const res = await client.request({
              method: 'GET',
              url: new URL(`${broker.nexusUrl}${PATHS.secretData}/${ATTACKER_SECRET_PATH}`),
            });
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            if (res.status === 429) {
              limited += 1;
              const code = (res.json() as { error?: { code?: string } }).error?.code;
              const retryAfter = Number(res.headers['retry-after']);
              if (code !== 'ERR_RATE_LIMITED' || !(retryAfter >= 1)) {
                problems.push(`429 with code ${code} and Retry-After ${retryAfter}`);
              }
            } else if (res.status !== 200) {
              problems.push(`status ${res.status}`);
            }
          }
        }),
      ),
    );
    assert.deepEqual(problems, []);
    assert.ok((statuses.get(200) ?? 0) >= BURST, JSON.stringify([...statuses]));
    assert.ok(limited > 0, JSON.stringify([...statuses]));
    const events = broker.auditEvents();
    const denied = events.filter(
      (event) => event.peer === broker.idOf('attacker') && event.status === 429,
    );
    assert.equal(denied.length, limited);
    for (const event of denied) {
      assert.equal(event.outcome, 'denied');
      assert.equal(event.errorCode, 'ERR_RATE_LIMITED');
    }
    assert.ok(
      !events.some((event) => event.peer === broker.idOf('bystander') && event.status !== 200),
    );
  });
});
