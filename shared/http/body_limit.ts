/**
 * The body limit of an app: hono's `bodyLimit`, answering an oversized body
 * with `PayloadTooLargeError` (413) through the one error handler.
 *
 * GET and HEAD pass untouched: the base app has already refused one that
 * carries a body, and hono's check reads `request.body`, which makes
 * @hono/node-server build a whole fetch Request (with an AbortController and
 * a stream) for every read (docs/performance.md).
 */
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { PayloadTooLargeError } from '../errors/errors.ts';

export function limitBody(maxBytes: number): MiddlewareHandler {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError(`A body limit must be a non-negative integer, got ${String(maxBytes)}`);
  }
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError() {
      throw new PayloadTooLargeError(`The request body is larger than ${maxBytes} bytes`);
    },
  });
  return function limitBodyUnlessBodiless(c, next) {
    return c.req.method === 'GET' || c.req.method === 'HEAD' ? next() : limit(c, next);
  };
}
