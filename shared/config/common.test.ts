import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../errors/errors.ts';
import { parseListenHost, readIdentityConfig, readListenConfig } from './common.ts';
import { EnvReader } from './env.ts';

const NAMES = { host: 'X_TLS_HOST', port: 'X_TLS_PORT' };

describe('readIdentityConfig()', () => {
  test('defaults to SPIKE trust domain, SPIRE socket, 30 s and info', () => {
    const reader = new EnvReader({});
    const config = reader.finish(readIdentityConfig(reader));
    assert.equal(config.trustDomain.name, 'spike.ist');
    assert.deepEqual(config.workloadApiAddress, {
      kind: 'unix',
      path: '/tmp/spire-agent/public/api.sock',
    });
    assert.equal(config.sourceTimeoutMs, 30_000);
    assert.equal(config.logLevel, 'info');
  });

  test('reports a bad trust domain, socket, timeout and log level together', () => {
    const reader = new EnvReader({
      SPIKE_TRUST_ROOT: 'UPPER.case',
      SPIFFE_ENDPOINT_SOCKET: 'tcp://localhost:1',
      SPIKE_SPIFFE_SOURCE_TIMEOUT: 'forever',
      SPIKE_SYSTEM_LOG_LEVEL: 'chatty',
    });
    readIdentityConfig(reader);
    assert.throws(
      () => reader.finish({}),
      (err: unknown) => err instanceof ConfigError && err.problems.length === 4,
    );
  });
});

describe('readListenConfig()', () => {
  test('listens on loopback at the default port unless told otherwise', () => {
    const reader = new EnvReader({});
    assert.deepEqual(readListenConfig(reader, NAMES, 8443), { host: '127.0.0.1', port: 8443 });
    const custom = new EnvReader({ X_TLS_HOST: '0.0.0.0', X_TLS_PORT: '0' });
    assert.deepEqual(readListenConfig(custom, NAMES, 8443), { host: '0.0.0.0', port: 0 });
  });

  test('refuses host names and bad ports', () => {
    const reader = new EnvReader({ X_TLS_HOST: 'example.com', X_TLS_PORT: '-1' });
    readListenConfig(reader, NAMES, 8443);
    assert.throws(() => reader.finish({}), /X_TLS_HOST must be an IP address[\s\S]*X_TLS_PORT/);
  });
});

describe('parseListenHost()', () => {
  test('accepts IPv4 and IPv6 literals and localhost only', () => {
    for (const ok of ['127.0.0.1', '0.0.0.0', '::', '::1', 'localhost']) {
      assert.equal(parseListenHost(ok), ok);
    }
    for (const bad of ['', 'example.com', '127.0.0.1:80', '[::1]', '256.0.0.1']) {
      assert.throws(() => parseListenHost(bad), /must be an IP address/);
    }
  });
});
