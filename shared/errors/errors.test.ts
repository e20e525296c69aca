import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { errorBody, errorFromBody } from '../api/error_body.ts';
import { VERSION } from '../api/version.ts';
import {
  AccessDeniedError,
  ConfigError,
  ERROR_CODES,
  InvalidSpiffeIdError,
  isBrokerError,
} from './errors.ts';
import { STATUS_BY_CODE, statusForCode } from './http_status.ts';

describe('errors', () => {
  test('every error code has an HTTP status', () => {
    for (const code of ERROR_CODES) {
      assert.equal(typeof STATUS_BY_CODE[code], 'number', code);
    }
    assert.equal(Object.keys(STATUS_BY_CODE).length, ERROR_CODES.length);
  });

  test('subclasses carry their code, their name and a cause', () => {
    const cause = new Error('inner');
    const err = new InvalidSpiffeIdError('bad', { cause });
    assert.equal(err.code, 'ERR_SPIFFE_ID_INVALID');
    assert.equal(err.name, 'InvalidSpiffeIdError');
    assert.equal(err.cause, cause);
    assert.ok(isBrokerError(err));
    assert.equal(statusForCode(new AccessDeniedError().code), 403);
  });

  test('ConfigError lists every problem in its message', () => {
    const err = new ConfigError(['A is bad', 'B is bad']);
    assert.deepEqual(err.problems, ['A is bad', 'B is bad']);
    assert.match(err.message, /A is bad[\s\S]*B is bad/);
  });

  test('an error survives the wire shape with its code', () => {
    const body = JSON.parse(JSON.stringify(errorBody(new AccessDeniedError())));
    const back = errorFromBody(body);
    assert.ok(back instanceof AccessDeniedError);
    assert.equal(back.message, 'Access denied');
    assert.equal(errorFromBody({ error: { code: 'ERR_MADE_UP', message: 'x' } }), undefined);
    assert.equal(errorFromBody('nope'), undefined);
  });

  test('VERSION matches package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    assert.equal(VERSION, pkg.version);
  });
});
