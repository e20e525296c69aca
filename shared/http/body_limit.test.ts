import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Hono } from 'hono';
import { PayloadTooLargeError } from '../errors/errors.ts';
import { limitBody } from './body_limit.ts';

function app(): Hono {
  const made = new Hono();
  made.use(limitBody(8));
  made.all('/x', (c) => c.text('ok'));
  made.onError(
    (err) =>
      new Response(err instanceof PayloadTooLargeError ? 'too large' : 'other', { status: 500 }),
  );
  return made;
}

test('limitBody() refuses a body over the limit and passes one within it', async () => {
  const over = await app().request('/x', { method: 'PUT', body: '123456789' });
  assert.equal(await over.text(), 'too large');
  const within = await app().request('/x', { method: 'PUT', body: '12345678' });
  assert.equal(await within.text(), 'ok');
});

test('limitBody() lets GET and HEAD through without looking for a body (the base app refuses one)', async () => {
  for (const method of ['GET', 'HEAD']) {
    const answer = await app().request('/x', { method, headers: { 'content-length': '999' } });
    assert.equal(answer.status, 200, method);
  }
});
