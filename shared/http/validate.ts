/**
 * `validateJson(parse)`: the validate step of a route, after its guard. It
 * reads the body (within the app's body limit, see body_limit.ts) as JSON
 * (only with a JSON content type, only if it is UTF-8, and only if no object
 * in it has a key twice), runs a strict parser from `shared/api/`, and hands
 * the typed value to the handler through `c.req.valid('json')`. A malformed
 * body is an `InvalidRequestError`, one that ends before it is whole a
 * `BodyIncompleteError`, one over the limit a `PayloadTooLargeError`; the
 * body itself is never logged or echoed.
 *
 * It and `validateStream` are the only readers of bodies: a route without
 * one takes none, and its guard refuses a request that declares one
 * (`routeReadsBody`).
 */
import type { Context, Env, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { BodyIncompleteError, InvalidRequestError } from '../errors/errors.ts';
import { duplicateKeyOffset } from './_duplicate_keys.ts';
import { maxBodyBytesOf, tooLarge } from './body_limit.ts';

const JSON_MEDIA_TYPE_REGEXP = /^application\/(?:[\w.-]+\+)?json$/i;
/** JSON is UTF-8 (RFC 8259 §8.1); a BOM is skipped, anything malformed throws. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

export type JsonInput<T> = { in: { json: unknown }; out: { json: T } };

/** The validate steps that read a body; a route with none of them takes no body. */
const BODY_READERS = new WeakSet<object>();

export function validateJson<T extends object, E extends Env = Env>(
  parse: (body: unknown) => T,
): MiddlewareHandler<E, string, JsonInput<T>> {
  async function validateJsonMiddleware(
    c: Context<E, string, JsonInput<T>>,
    next: () => Promise<void>,
  ): Promise<void> {
    const mediaType = (c.req.header('content-type') ?? '').split(';')[0]?.trim() ?? '';
    if (!JSON_MEDIA_TYPE_REGEXP.test(mediaType)) {
      throw new InvalidRequestError('The body must be JSON, sent as "application/json"');
    }
    const bytes = await readBody(c);
    let text: string;
    try {
      // `c.req.text()` would quietly turn bytes that are not UTF-8 into U+FFFD,
      // and store a value other than the one sent.
      text = UTF8.decode(bytes);
    } catch {
      throw new InvalidRequestError('The body is not valid UTF-8');
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new InvalidRequestError('The body is not valid JSON');
    }
    const duplicate = duplicateKeyOffset(text);
    if (duplicate !== -1) {
      // Where, never which: a key of secret data may be sensitive itself.
      throw new InvalidRequestError(
        `The body has a key twice in one object (the second at character ${duplicate})`,
      );
    }
    c.req.addValidatedData('json', parse(body));
    await next();
  }
  BODY_READERS.add(validateJsonMiddleware);
  return validateJsonMiddleware;
}

/**
 * `validateStream(mediaType)`: the validate step of a route that takes its
 * body as a stream (a snapshot upload), after its guard. It checks the
 * media type and marks the route as one that reads a body; the handler then
 * reads `c.req.raw.body` itself, counting it against `maxBodyBytesOf(c)`
 * (a declared `Content-Length` was checked already).
 */
export function validateStream<E extends Env = Env>(mediaType: string): MiddlewareHandler<E> {
  async function validateStreamMiddleware(c: Context<E>, next: () => Promise<void>): Promise<void> {
    const given = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    if (given !== mediaType) {
      throw new InvalidRequestError(`The body must be sent as "${mediaType}"`);
    }
    await next();
  }
  BODY_READERS.add(validateStreamMiddleware);
  return validateStreamMiddleware;
}

/**
 * Whether the route that matched reads a body (has a `validateJson` step).
 * False when no route matched: the request is then answered 404.
 */
export function routeReadsBody(c: Context): boolean {
  return matchedRoutes(c).some((route) => BODY_READERS.has(route.handler));
}

/** Whether the request declares a body: a `Transfer-Encoding`, or a `Content-Length` other than 0. */
export function declaresBody(c: Context): boolean {
  const length = c.req.header('content-length');
  return (
    c.req.header('transfer-encoding') !== undefined || (length !== undefined && length !== '0')
  );
}

/**
 * The whole body, up to the app's limit. A declared length is read in one go
 * (the limit checked it, and the HTTP parser delivers no more); a chunked
 * body is counted as it arrives and refused once over the limit. A body that
 * ends early, or whose stream fails (the peer closed the connection or
 * aborted the upload), is a `BodyIncompleteError`.
 */
async function readBody(c: Context): Promise<Uint8Array> {
  const declared = c.req.header('content-length');
  if (declared !== undefined && c.req.header('transfer-encoding') === undefined) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await c.req.arrayBuffer());
    } catch (err) {
      throw new BodyIncompleteError(undefined, { cause: err });
    }
    if (bytes.byteLength !== Number(declared)) {
      throw new BodyIncompleteError();
    }
    return bytes;
  }
  const maxBytes = maxBodyBytesOf(c);
  const stream = c.req.raw.body;
  if (stream === null) {
    return new Uint8Array(0);
  }
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch (err) {
      throw new BodyIncompleteError(undefined, { cause: err });
    }
    if (chunk.done) {
      break;
    }
    size += chunk.value.byteLength;
    if (size > maxBytes) {
      reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    chunks.push(chunk.value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
