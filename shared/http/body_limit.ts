/**
 * The body limit of an app, checked by the base app (shared/http/app.ts). It
 * reads no body: that would happen before the
 * route's guard, so a caller the guard refuses could make the server read
 * (and wait for) a body it is never going to use. It refuses a declared
 * `Content-Length` over the limit at once (413, before the body is even
 * sent), and hands the limit to the validate step (`validateJson`), which
 * enforces it while it reads a chunked body, after the guard.
 */
import type { Context } from 'hono';
import { PayloadTooLargeError } from '../errors/errors.ts';

/** What a validate step reads at most when no body limit was handed on (an app without the base app). */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** `maxBytes` if it is a valid body limit; else a RangeError (at start-up). */
export function checkBodyLimit(maxBytes: number): number {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError(`A body limit must be a non-negative integer, got ${String(maxBytes)}`);
  }
  return maxBytes;
}

/**
 * Refuses a declared `Content-Length` over `maxBytes`, and hands the limit
 * on to the validate step.
 */
export function limitDeclaredBody(c: Context, maxBytes: number): void {
  c.set('maxBodyBytes', maxBytes);
  // With both headers the parser has already refused the request; a
  // chunked body is measured as it is read.
  const length = c.req.header('content-length');
  if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
    if (Number(length) > maxBytes) {
      throw tooLarge(maxBytes);
    }
  }
}

/** The body limit in force for this request. */
export function maxBodyBytesOf(c: Context): number {
  return (c.get('maxBodyBytes') as number | undefined) ?? DEFAULT_MAX_BODY_BYTES;
}

export function tooLarge(maxBytes: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`The request body is larger than ${maxBytes} bytes`);
}
