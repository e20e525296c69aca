import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../shared/errors/errors.ts';
import { ENV_KEEPER_AUDIT_LOG, loadKeeperConfig } from './config.ts';

describe('loadKeeperConfig()', () => {
  test('audits to stdout unless told otherwise', () => {
    assert.equal(loadKeeperConfig({}).auditLog, '-');
  });

  test('takes an absolute audit log path', () => {
    const config = loadKeeperConfig({
      [ENV_KEEPER_AUDIT_LOG]: '/var/log/spike/keeper-audit.jsonl',
    });
    assert.equal(config.auditLog, '/var/log/spike/keeper-audit.jsonl');
  });

  test('rejects a relative audit log path, naming the variable and its value', () => {
    assert.throws(
      () => loadKeeperConfig({ [ENV_KEEPER_AUDIT_LOG]: 'audit.jsonl' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /SPIKE_KEEPER_AUDIT_LOG must be "-" \(stdout\) or an absolute file path \(currently "audit.jsonl"\)/.test(
          err.message,
        ),
    );
  });
});
