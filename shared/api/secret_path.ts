/**
 * Secret paths, parsed at the edge and carried as a branded string after
 * that: `app/db/creds`. Segments are non-empty, never `.` or `..`, made of
 * letters, digits, `.`, `_` and `-`; no leading or trailing slash; bounded.
 */
import { InvalidRequestError } from '../errors/errors.ts';

declare const SECRET_PATH: unique symbol;
export type SecretPath = string & { readonly [SECRET_PATH]: true };

export const MAX_SECRET_PATH_LENGTH = 512;
export const MAX_SECRET_PATH_SEGMENTS = 32;
const SEGMENT_REGEXP = /^[A-Za-z0-9._-]+$/;

/**
 * Exactly the paths the checks below admit, in one test without splitting:
 * segments of the allowed characters joined by single "/", none of them "."
 * or "..". Every request names a path, so the common case skips the
 * allocation; anything else takes the checks, which say what is wrong.
 */
const WELL_FORMED_PATH_REGEXP =
  /^(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)*$/;

export function parseSecretPath(value: unknown): SecretPath {
  if (
    typeof value === 'string' &&
    value.length <= MAX_SECRET_PATH_LENGTH &&
    WELL_FORMED_PATH_REGEXP.test(value) &&
    segmentCount(value) <= MAX_SECRET_PATH_SEGMENTS
  ) {
    return value as SecretPath;
  }
  if (typeof value !== 'string' || value === '') {
    throw new InvalidRequestError('A secret path must be a non-empty string');
  }
  if (value.length > MAX_SECRET_PATH_LENGTH) {
    throw new InvalidRequestError(
      `A secret path must be at most ${MAX_SECRET_PATH_LENGTH} characters (got ${value.length})`,
    );
  }
  const segments = value.split('/');
  if (segments.length > MAX_SECRET_PATH_SEGMENTS) {
    throw new InvalidRequestError(
      `A secret path must have at most ${MAX_SECRET_PATH_SEGMENTS} segments`,
    );
  }
  for (const segment of segments) {
    if (segment === '') {
      throw new InvalidRequestError('A secret path must not start or end with "/" or contain "//"');
    }
    if (segment === '.' || segment === '..') {
      throw new InvalidRequestError('A secret path must not contain "." or ".." segments');
    }
    if (!SEGMENT_REGEXP.test(segment)) {
      throw new InvalidRequestError(
        'A secret path segment may contain only letters, digits, ".", "_" and "-"',
      );
    }
  }
  return value as SecretPath;
}

function segmentCount(path: string): number {
  let count = 1;
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) count += 1;
  return count;
}

/**
 * A list prefix: empty (everything), or a path followed by "/" (`app/`), or a
 * path (`app` lists `app` itself if it exists and everything under `app/`).
 */
export function parseSecretPrefix(value: unknown): string {
  if (value === undefined || value === '') {
    return '';
  }
  if (typeof value !== 'string') {
    throw new InvalidRequestError('A list prefix must be a string');
  }
  parseSecretPath(value.endsWith('/') ? value.slice(0, -1) : value);
  return value;
}
