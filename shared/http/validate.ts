/**
 * `validateJson(parse)`: the validate step of a route. It reads the body as
 * JSON (only with a JSON content type, and only if it is UTF-8), runs a strict parser from
 * `shared/api/`, and hands the typed value to the handler through
 * `c.req.valid('json')`. Every failure is an `InvalidRequestError`; the body
 * itself is never logged or echoed.
 */
import type { Env, MiddlewareHandler } from 'hono';
import { InvalidRequestError } from '../errors/errors.ts';

const JSON_MEDIA_TYPE_REGEXP = /^application\/(?:[\w.-]+\+)?json$/i;
/** JSON is UTF-8 (RFC 8259 §8.1); a BOM is skipped, anything malformed throws. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

export type JsonInput<T> = { in: { json: unknown }; out: { json: T } };

export function validateJson<T extends object, E extends Env = Env>(
  parse: (body: unknown) => T,
): MiddlewareHandler<E, string, JsonInput<T>> {
  return async function validateJsonMiddleware(c, next) {
    const mediaType = (c.req.header('content-type') ?? '').split(';')[0]?.trim() ?? '';
    if (!JSON_MEDIA_TYPE_REGEXP.test(mediaType)) {
      throw new InvalidRequestError('The body must be JSON, sent as "application/json"');
    }
    let text: string;
    try {
      // `c.req.text()` would quietly turn bytes that are not UTF-8 into U+FFFD,
      // and store a value other than the one sent.
      text = UTF8.decode(await c.req.arrayBuffer());
    } catch {
      throw new InvalidRequestError('The body is not valid UTF-8');
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new InvalidRequestError('The body is not valid JSON');
    }
    c.req.addValidatedData('json', parse(body));
    await next();
  };
}
