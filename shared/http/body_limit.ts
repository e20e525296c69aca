/**
 * The body limit of an app: hono's `bodyLimit`, answering an oversized body
 * with `PayloadTooLargeError` (413) through the one error handler.
 */
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { PayloadTooLargeError } from '../errors/errors.ts';

export function limitBody(maxBytes: number): MiddlewareHandler {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError(`A body limit must be a non-negative integer, got ${String(maxBytes)}`);
  }
  return bodyLimit({
    maxSize: maxBytes,
    onError() {
      throw new PayloadTooLargeError(`The request body is larger than ${maxBytes} bytes`);
    },
  });
}
