import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SecretResponse } from '../../shared/api/secrets.ts';
import { isBrokerError } from '../../shared/errors/errors.ts';
import { buildVariables, parseEnvArgument, planVariables, variableNameOf } from './names.ts';

const T = '2026-01-01T00:00:00.000Z';

function secrets(entries: Record<string, Record<string, string>>): Map<string, SecretResponse> {
  return new Map(
    Object.entries(entries).map(([path, data]) => [path, { path, version: 3, data, createdAt: T }]),
  );
}

/** The error's code, and that its message holds none of `values`. */
function codeOf(fn: () => unknown, values: readonly string[] = []): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isBrokerError(err), String(err));
    for (const value of values) assert.ok(!err.message.includes(value), err.message);
    return err.code;
  }
  assert.fail('did not throw');
}

describe('variable names', () => {
  test('a key is upper-cased and every character outside [A-Z0-9_] becomes _', () => {
    assert.equal(variableNameOf('password'), 'PASSWORD');
    assert.equal(variableNameOf('db-host.name'), 'DB_HOST_NAME');
    assert.equal(variableNameOf('Api_Key2'), 'API_KEY2');
    assert.equal(variableNameOf('naïve key'), 'NA_VE_KEY');
  });

  test('--env NAME=PATH#KEY splits at the first = and the first # after it', () => {
    assert.deepEqual(parseEnvArgument('DB_PASSWORD=app/db#pass#word'), {
      name: 'DB_PASSWORD',
      path: 'app/db',
      key: 'pass#word',
    });
    for (const bad of ['NOPE', '=app/db#k', 'X=app/db', 'X=app/db#', '1X=app/db#k', 'X=../db#k']) {
      assert.equal(
        codeOf(() => parseEnvArgument(bad)),
        'ERR_INVALID_REQUEST',
        bad,
      );
    }
  });

  test('a plan needs a secret, and names no path or variable twice', () => {
    assert.deepEqual(planVariables(['app/a'], ['X=app/b#k', 'Y=app/a#k']).paths, [
      'app/a',
      'app/b',
    ]);
    assert.equal(
      codeOf(() => planVariables([], [])),
      'ERR_INVALID_REQUEST',
    );
    assert.equal(
      codeOf(() => planVariables(['app/a', 'app/a'], [])),
      'ERR_INVALID_REQUEST',
    );
    assert.equal(
      codeOf(() => planVariables([], ['X=app/a#k', 'X=app/b#k'])),
      'ERR_INVALID_REQUEST',
    );
  });
});

describe('buildVariables()', () => {
  test('every key of a --secret, and each --env', () => {
    const plan = planVariables(['app/db'], ['PW=app/other#password']);
    const fetched = secrets({
      'app/db': { user: 'web', 'db-host': 'h' },
      'app/other': { password: 'p' },
    });
    assert.deepEqual(buildVariables(plan, fetched), { DB_HOST: 'h', USER: 'web', PW: 'p' });
  });

  test('collisions, missing keys, reserved names, bad names and NUL are errors that name no value', () => {
    const value = 'sekr1t-value';
    const cases: [string[], string[], Record<string, Record<string, string>>, string][] = [
      [['app/db'], [], { 'app/db': { 'db-host': value, db_host: value } }, 'ERR_INVALID_REQUEST'],
      [['app/db'], ['USER=app/db#user'], { 'app/db': { user: value } }, 'ERR_INVALID_REQUEST'],
      [[], ['X=app/db#nope'], { 'app/db': { user: value } }, 'ERR_NOT_FOUND'],
      [['app/db'], [], { 'app/db': { spike_nexus_api_url: value } }, 'ERR_INVALID_REQUEST'],
      [['app/db'], [], { 'app/db': { spiffe_endpoint_socket: value } }, 'ERR_INVALID_REQUEST'],
      [['app/db'], [], { 'app/db': { '9lives': value } }, 'ERR_INVALID_REQUEST'],
      [[], ['X=app/db#k'], { 'app/db': { k: `a\0${value}` } }, 'ERR_INVALID_REQUEST'],
    ];
    for (const [whole, env, data, code] of cases) {
      const plan = planVariables(whole, env);
      assert.equal(
        codeOf(() => buildVariables(plan, secrets(data)), [value]),
        code,
      );
    }
    assert.equal(
      codeOf(() => planVariables([], ['SPIKE_X=app/db#k'])),
      'ERR_INVALID_REQUEST',
    );
  });
});
