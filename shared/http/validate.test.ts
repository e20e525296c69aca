import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Hono } from 'hono';
import { type BrokerError, isBrokerError } from '../errors/errors.ts';
import { validateJson } from './validate.ts';

/** An app whose one route echoes what validateJson() handed it, or the error code. */
function appWith() {
  const app = new Hono();
  app.post(
    '/',
    validateJson((body) => ({ body })),
    (c) => c.json(c.req.valid('json')),
  );
  app.onError((err, c) =>
    c.json(
      { code: isBrokerError(err) ? (err as BrokerError).code : 'bug', message: err.message },
      400,
    ),
  );
  return app;
}

function post(body: string | Uint8Array, type = 'application/json'): Promise<Response> {
  return Promise.resolve(
    appWith().request('/', { method: 'POST', headers: { 'content-type': type }, body }),
  );
}

describe('validateJson()', () => {
  test('hands a UTF-8 JSON body to the route, non-ASCII and escaped lone surrogates included', async () => {
    const res = await post('{"a":"é💥\\ud800"}');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { body: { a: 'é💥\ud800' } });
  });

  for (const bytes of [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80]]) {
    test(`refuses a body that is not UTF-8 (${bytes.map((b) => b.toString(16)).join(' ')}) instead of storing U+FFFD`, async () => {
      const encoder = new TextEncoder();
      const body = Uint8Array.from([
        ...encoder.encode('{"a":"'),
        ...bytes,
        ...encoder.encode('"}'),
      ]);
      const res = await post(body);
      assert.equal(res.status, 400);
      const answer = (await res.json()) as { code: string; message: string };
      assert.equal(answer.code, 'ERR_INVALID_REQUEST');
      assert.equal(answer.message, 'The body is not valid UTF-8');
    });
  }

  test('skips a UTF-8 byte order mark, as JSON parsers may', async () => {
    const body = Uint8Array.from([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('{"a":1}')]);
    const res = await post(body);
    assert.deepEqual(await res.json(), { body: { a: 1 } });
  });

  test('refuses broken JSON and a body that is not sent as JSON', async () => {
    for (const [body, type] of [
      ['{"a":', 'application/json'],
      ['{"a":1}', 'text/plain'],
      ['{"a":1}', 'application/jsonx'],
    ] as const) {
      const res = await post(body, type);
      assert.equal(res.status, 400, `${type} ${body}`);
      assert.equal(((await res.json()) as { code: string }).code, 'ERR_INVALID_REQUEST');
    }
  });
});

describe('validateJson() refuses a key twice in one object', () => {
  for (const [what, text] of [
    ['at the top', '{"s3cr3t-name":1,"s3cr3t-name":2}'],
    ['once escaped', '{"s3cr3t-name":1,"\\u0073\\u0033cr3t-name":2}'],
    ['in a nested object', '{"data":{"k":"1","s3cr3t-name":"x","s3cr3t-name":"y"}}'],
    ['in an object in an array', '[{"k":1},{"s3cr3t-name":1,"s3cr3t-name":1}]'],
    ['as __proto__', '{"__proto__":1,"__proto__":2}'],
  ] as const) {
    test(`${what}, with 400 ERR_INVALID_REQUEST that does not name the key`, async () => {
      const res = await post(text);
      assert.equal(res.status, 400);
      const answer = (await res.json()) as { code: string; message: string };
      assert.equal(answer.code, 'ERR_INVALID_REQUEST');
      assert.match(answer.message, /a key twice in one object/);
      assert.doesNotMatch(answer.message, /s3cr3t|proto/);
    });
  }

  test('passes the same key in different objects, and quotes and braces inside strings', async () => {
    for (const text of [
      '{"a":{"k":1},"b":{"k":2},"c":[{"k":1},{"k":2}]}',
      '{"a":"}{\\"a\\":1,","b":"\\\\","c":"{\\"a\\""}',
      '{"":1,"\\"":2,"\\\\":3}',
    ]) {
      const res = await post(text);
      assert.equal(res.status, 200, text);
      assert.deepEqual(await res.json(), { body: JSON.parse(text) });
    }
  });
});
