import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, createMemorySink } from '../log/logger.ts';
import { parseSpiffeId } from '../spiffe/spiffe_id.ts';
import { createBaseApp } from './app.ts';
import { checkBodyLimit, maxBodyBytesOf } from './body_limit.ts';

const PEER = {
  id: parseSpiffeId('spiffe://example.org/app'),
  notBefore: new Date(0),
  notAfter: new Date(Date.now() + 3_600_000),
  serialNumber: '01',
};

/** A base app with a body limit of 8 whose route answers the limit it was handed, without reading the body. */
function app() {
  const made = createBaseApp(
    () => PEER,
    createLogger({ component: 'test', sink: createMemorySink() }),
    {
      maxBodyBytes: 8,
    },
  );
  made.all('/x', (c) => c.text(String(maxBodyBytesOf(c))));
  return made;
}

/** The error code of an answer, or its text when it is not an error. */
async function outcome(answer: Response): Promise<string> {
  const text = await answer.text();
  return answer.status < 400 ? text : (JSON.parse(text) as { error: { code: string } }).error.code;
}

test('checkBodyLimit() refuses a limit that is not a non-negative integer', () => {
  assert.equal(checkBodyLimit(0), 0);
  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => checkBodyLimit(bad), RangeError);
  }
});

test('the base app refuses a declared length over the limit and hands the limit on', async () => {
  const over = await app().request('/x', {
    method: 'PUT',
    body: '123456789',
    headers: { 'content-length': '9' },
  });
  assert.equal(over.status, 413);
  assert.equal(await outcome(over), 'ERR_PAYLOAD_TOO_LARGE');
  const within = await app().request('/x', {
    method: 'PUT',
    body: '12345678',
    headers: { 'content-length': '8' },
  });
  assert.equal(await outcome(within), '8');
});

test('the base app reads no body: a chunked one is measured later, by the route that reads it', async () => {
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        pulled += 1;
        controller.enqueue(new Uint8Array(64));
      },
    },
    { highWaterMark: 0 },
  );
  const answer = await app().request('/x', {
    method: 'PUT',
    body,
    headers: { 'transfer-encoding': 'chunked' },
    duplex: 'half',
  } as RequestInit);
  assert.equal(await outcome(answer), '8');
  assert.equal(pulled, 0);
});
