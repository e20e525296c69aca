/**
 * The body limit of an app. It reads no body: that would happen before the
 * route's guard, so a caller the guard refuses could make the server read
 * (and wait for) a body it is never going to use. It refuses a declared
 * `Content-Length` over the limit at once (413, before the body is even
 * sent), and hands the limit to the validate step (`validateJson`), which
 * enforces it while it reads a chunked body, after the guard.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { PayloadTooLargeError } from '../errors/errors.ts';

/** What a validate step reads at most when no `limitBody` runs before it (route tests). */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

export function limitBody(maxBytes: number): MiddlewareHandler {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError(`A body limit must be a non-negative integer, got ${String(maxBytes)}`);
  }
  return async function limitBodyBeforeItIsRead(c, next) {
    c.set('maxBodyBytes', maxBytes);
    // With both headers the parser has already refused the request; a
    // chunked body is measured as it is read.
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      if (Number(length) > maxBytes) {
        throw tooLarge(maxBytes);
      }
    }
    await next();
  };
}

/** The body limit in force for this request. */
export function maxBodyBytesOf(c: Context): number {
  return (c.get('maxBodyBytes') as number | undefined) ?? DEFAULT_MAX_BODY_BYTES;
}

export function tooLarge(maxBytes: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`The request body is larger than ${maxBytes} bytes`);
}
