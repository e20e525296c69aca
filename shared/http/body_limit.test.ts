import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Hono } from 'hono';
import { PayloadTooLargeError } from '../errors/errors.ts';
import { limitBody, maxBodyBytesOf } from './body_limit.ts';

/** An app whose route answers the limit it was handed, without reading the body. */
function app(): Hono {
  const made = new Hono();
  made.use(limitBody(8));
  made.all('/x', (c) => c.text(String(maxBodyBytesOf(c))));
  made.onError(
    (err) =>
      new Response(err instanceof PayloadTooLargeError ? 'too large' : 'other', { status: 500 }),
  );
  return made;
}

test('limitBody() refuses a declared length over the limit and hands the limit on', async () => {
  const over = await app().request('/x', {
    method: 'PUT',
    body: '123456789',
    headers: { 'content-length': '9' },
  });
  assert.equal(await over.text(), 'too large');
  const within = await app().request('/x', {
    method: 'PUT',
    body: '12345678',
    headers: { 'content-length': '8' },
  });
  assert.equal(await within.text(), '8');
});

test('limitBody() reads no body: a chunked one is measured later, by the route that reads it', async () => {
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
  assert.equal(await answer.text(), '8');
  assert.equal(pulled, 0);
});
