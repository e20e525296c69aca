import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { redactUrl } from './redact_url.ts';

describe('redactUrl()', () => {
  test('masks the password and keeps everything else', () => {
    assert.equal(
      redactUrl('postgres://spike:s3cr%40t@db.example:5432/spike?sslmode=require'),
      'postgres://spike:***@db.example:5432/spike?sslmode=require',
    );
  });

  test('masks a password given as a query parameter', () => {
    const shown = redactUrl('postgres://db.example/spike?user=u&password=hunter2');
    assert.doesNotMatch(shown, /hunter2/);
    assert.match(shown, /password=\*\*\*/);
  });

  test('leaves a URL without a password unchanged', () => {
    assert.equal(redactUrl('postgres://spike@127.0.0.1/spike'), 'postgres://spike@127.0.0.1/spike');
  });

  test('masks text that is not a URL whole, since it may hold a password anywhere', () => {
    assert.equal(redactUrl('spike:hunter2@nowhere'), '***');
  });
});
