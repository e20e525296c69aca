import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { InvalidRequestError } from '../errors/errors.ts';
import {
  MAX_SECRET_PATH_LENGTH,
  MAX_SECRET_PATH_SEGMENTS,
  parseSecretPath,
} from './secret_path.ts';

/** The rules of a secret path, restated the slow way: split, then check each segment. */
function isWellFormed(value: string): boolean {
  if (value === '' || value.length > MAX_SECRET_PATH_LENGTH) return false;
  const segments = value.split('/');
  return (
    segments.length <= MAX_SECRET_PATH_SEGMENTS &&
    segments.every((s) => s !== '.' && s !== '..' && /^[A-Za-z0-9._-]+$/.test(s))
  );
}

function accepts(value: string): boolean {
  try {
    return parseSecretPath(value) === value;
  } catch (err) {
    assert.ok(err instanceof InvalidRequestError);
    return false;
  }
}

test('parseSecretPath() admits exactly the well-formed paths (its one-regex fast path included)', () => {
  // Few characters, so that dots, slashes and their mixes come up often.
  const path = fc
    .array(fc.constantFrom('a', 'Z', '0', '.', '..', '/', '-', '_', ' ', '%2f', '\n', 'é'), {
      maxLength: 40,
    })
    .map((parts) => parts.join(''));
  fc.assert(
    fc.property(path, (value) => accepts(value) === isWellFormed(value)),
    { numRuns: 5000 },
  );
});

test('parseSecretPath() refuses dot segments, empty segments and too many or too long ones', () => {
  for (const value of ['.', '..', 'a/./b', 'a/../b', './a', 'a/..', '/a', 'a/', 'a//b', '']) {
    assert.equal(accepts(value), false, value);
  }
  for (const value of ['.a', 'a.', '...', 'a/.b/..c', 'a-b_c.d/e']) {
    assert.equal(accepts(value), true, value);
  }
  const segments = Array.from({ length: MAX_SECRET_PATH_SEGMENTS }, () => 'a');
  assert.equal(accepts(segments.join('/')), true);
  assert.equal(accepts([...segments, 'a'].join('/')), false);
  assert.equal(accepts('a'.repeat(MAX_SECRET_PATH_LENGTH)), true);
  assert.equal(accepts('a'.repeat(MAX_SECRET_PATH_LENGTH + 1)), false);
  assert.equal(accepts(42 as unknown as string), false);
});
