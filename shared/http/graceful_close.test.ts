import assert from 'node:assert/strict';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { createGracefulClose } from './graceful_close.ts';

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly connection: string | undefined;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function put(port: number, agent: Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end('x');
  });
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

describe('createGracefulClose()', () => {
  test('answers a request in flight in full, with Connection: close, before closing', async () => {
    const server = createServer((_req, res) => {
      setTimeout(() => res.end('committed'), 200);
    });
    const close = createGracefulClose(server, { graceMs: 5_000 });
    const port = await listen(server);
    const agent = new Agent({ keepAlive: true });
    try {
      const answer = put(port, agent);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const closed = close();
      assert.deepEqual(await answer, { status: 200, body: 'committed', connection: 'close' });
      await within(closed, 2_000, 'closing');
      assert.equal(server.listening, false);
    } finally {
      agent.destroy();
    }
  });

  test('does not cut an answer the app has ended but the socket has not flushed yet', async () => {
    // Bigger than the loopback socket buffers, and read slowly: the response
    // has ended (res.end was called) long before it is flushed. Node 20's
    // server.close() alone destroys such a connection.
    const size = 32 * 1024 * 1024;
    const server = createServer((_req, res) => {
      res.end(new Uint8Array(size).fill(7));
    });
    const close = createGracefulClose(server, { graceMs: 5_000 });
    const port = await listen(server);
    const agent = new Agent({ keepAlive: true });
    try {
      const received = new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, method: 'GET', path: '/', agent }, (res) => {
          let bytes = 0;
          res.pause();
          setTimeout(() => res.resume(), 300);
          res.on('data', (chunk: Uint8Array) => {
            bytes += chunk.byteLength;
          });
          res.on('end', () => resolve(bytes));
          res.on('error', reject);
          res.on('aborted', () => reject(new Error('aborted')));
        });
        req.on('error', reject);
        req.end();
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const closed = close();
      assert.equal(await received, size);
      await within(closed, 3_000, 'closing');
    } finally {
      agent.destroy();
    }
  });

  test('a client sending back to back on a kept-alive connection cannot hold it open', async () => {
    let handled = 0;
    const server = createServer((_req, res) => {
      handled += 1;
      setTimeout(() => res.end('ok'), 5);
    });
    const close = createGracefulClose(server, { graceMs: 5_000 });
    const port = await listen(server);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let answered = 0;
    let isClosed = false;
    const client = (async () => {
      while (!isClosed) {
        try {
          const answer = await put(port, agent);
          assert.equal(answer.body, 'ok');
          answered += 1;
        } catch {
          // Refused or reset once the server is gone.
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    })();
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await within(close(), 2_000, 'closing under a busy client');
      isClosed = true;
      await client;
      assert.ok(handled > 0);
      assert.equal(answered, handled, 'every request the server took was answered');
    } finally {
      isClosed = true;
      agent.destroy();
    }
  });

  test('answers a request sent on an idle kept-alive connection just after closing began', async () => {
    const server = createServer((_req, res) => res.end('ok'));
    const close = createGracefulClose(server, { graceMs: 5_000, quietMs: 200 });
    const port = await listen(server);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await put(port, agent)).connection, 'keep-alive');
      const closed = close();
      await new Promise((resolve) => setTimeout(resolve, 20));
      // Node's server.close() would have closed this connection already.
      assert.deepEqual(await put(port, agent), { status: 200, body: 'ok', connection: 'close' });
      await within(closed, 1_000, 'closing');
      await assert.rejects(put(port, agent), { code: 'ECONNREFUSED' });
    } finally {
      agent.destroy();
    }
  });

  test('closes connections that stay idle once no request started for the quiet period', async () => {
    const server = createServer((_req, res) => res.end('ok'));
    const close = createGracefulClose(server, { graceMs: 5_000, quietMs: 50 });
    const port = await listen(server);
    const agent = new Agent({ keepAlive: true });
    try {
      assert.equal((await put(port, agent)).body, 'ok');
      const started = Date.now();
      await within(close(), 1_000, 'closing with an idle connection');
      assert.ok(Date.now() - started >= 45, 'waited for the quiet period');
    } finally {
      agent.destroy();
    }
  });

  test('cuts a request that does not finish within the grace period', async () => {
    const server = createServer(() => {
      // Never answers.
    });
    const close = createGracefulClose(server, { graceMs: 100 });
    const port = await listen(server);
    const agent = new Agent({ keepAlive: true });
    try {
      const answer = put(port, agent).then(
        () => 'answered',
        () => 'cut',
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      await within(close(), 2_000, 'closing with a hung request');
      assert.ok(Date.now() - started >= 90, 'waited for the grace period');
      assert.equal(await answer, 'cut');
    } finally {
      agent.destroy();
    }
  });

  test('returns the same promise when called twice, and refuses negative periods', async () => {
    assert.throws(() => createGracefulClose(createServer(), { graceMs: -1 }), RangeError);
    assert.throws(
      () => createGracefulClose(createServer(), { graceMs: 1, quietMs: -1 }),
      RangeError,
    );
    const server = createServer((_req, res) => res.end('ok'));
    const close = createGracefulClose(server, { graceMs: 100 });
    await listen(server);
    const first = close();
    assert.equal(close(), first);
    await within(first, 1_000, 'closing');
  });
});
