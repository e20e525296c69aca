import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SecretResponse } from '../../shared/api/secrets.ts';
import { isBrokerError } from '../../shared/errors/errors.ts';
import { parseTemplate, renderTemplate, TemplateSyntaxError } from './template.ts';

const T = '2026-01-01T00:00:00.000Z';
const SECRETS = new Map<string, SecretResponse>([
  ['app/db', { path: 'app/db', version: 2, data: { user: 'web', password: "it's" }, createdAt: T }],
  ['app/api', { path: 'app/api', version: 1, data: { token: 't0k' }, createdAt: T }],
]);

describe('templates', () => {
  test('key, json, env and text actions, with or without spaces', () => {
    const template = parseTemplate(
      'u={{app/db#user}} p={{ app/db#password }}\n{{ json app/db }}\n{{env app/api}}{{ "{{" }}x}}',
    );
    assert.deepEqual(template.paths, ['app/db', 'app/api']);
    assert.equal(
      renderTemplate(template, SECRETS),
      `u=web p=it's\n{"password":"it's","user":"web"}\nTOKEN='t0k'\n{{x}}`,
    );
  });

  test('env quotes a value as a POSIX shell reads it', () => {
    assert.equal(
      renderTemplate(parseTemplate('{{ env app/db }}'), SECRETS),
      "PASSWORD='it'\\''s'\nUSER='web'\n",
    );
  });

  test('a template without actions is its text', () => {
    assert.equal(renderTemplate(parseTemplate('plain } { text'), SECRETS), 'plain } { text');
  });

  test('syntax errors name the line and column', () => {
    const cases: [string, RegExp][] = [
      ['a\n  {{ app/db#user', /line 2, column 3: "\{\{" is never closed/],
      ['{{ nonsense }}', /line 1, column 1: .*is not an action/],
      ['{{ app/db# }}', /the key after "#" is empty/],
      ['{{ json }}', /is not an action/],
      ['{{ json ../x }}', /line 1, column 1: /],
      ['{{ "a" b }}', /quoted text/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseTemplate(text),
        (err: unknown) => {
          assert.ok(err instanceof TemplateSyntaxError);
          assert.match(err.message, message);
          return true;
        },
        text,
      );
    }
  });

  test('a missing key and an env collision fail the render without naming a value', () => {
    const missing = parseTemplate('{{ app/db#nope }}');
    assert.throws(
      () => renderTemplate(missing, SECRETS),
      (err: unknown) =>
        isBrokerError(err) && err.code === 'ERR_NOT_FOUND' && err.message.includes('"nope"'),
    );
    const clash = new Map<string, SecretResponse>([
      ['app/x', { path: 'app/x', version: 1, data: { 'a-b': 'v1', a_b: 'v2' }, createdAt: T }],
    ]);
    assert.throws(
      () => renderTemplate(parseTemplate('{{ env app/x }}'), clash),
      (err: unknown) =>
        isBrokerError(err) &&
        err.code === 'ERR_INVALID_REQUEST' &&
        !err.message.includes('v1') &&
        !err.message.includes('v2'),
    );
  });
});
