import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../errors/errors.ts';
import {
  parseListenHost,
  readIdentityConfig,
  readListenConfig,
  readLogLevel,
  readOpsAddress,
} from './common.ts';
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

describe('readLogLevel()', () => {
  test("takes SPIKE's upper-case levels, in any case", () => {
    for (const [value, level] of [
      ['DEBUG', 'debug'],
      ['INFO', 'info'],
      ['WARN', 'warn'],
      ['Error', 'error'],
      ['warn', 'warn'],
    ] as const) {
      const reader = new EnvReader({ SPIKE_SYSTEM_LOG_LEVEL: value });
      assert.equal(readLogLevel(reader), level, value);
      assert.equal(reader.finish(readIdentityConfig(reader)).logLevel, level, value);
    }
  });

  test('refuses words SPIKE does not know (WARNING, TRACE)', () => {
    for (const value of ['WARNING', 'TRACE']) {
      const reader = new EnvReader({ SPIKE_SYSTEM_LOG_LEVEL: value });
      readLogLevel(reader);
      assert.throws(
        () => reader.finish({}),
        /SPIKE_SYSTEM_LOG_LEVEL must be one of debug, info, warn, error \(any case\)/,
      );
    }
  });
});

describe('readListenConfig()', () => {
  test('takes the port as SPIKE writes it, ":8553"; a host:port names the host variable', () => {
    const reader = new EnvReader({ X_TLS_PORT: ':8553' });
    assert.deepEqual(readListenConfig(reader, NAMES, 8443), { host: '127.0.0.1', port: 8553 });
    const hostInPort = new EnvReader({ X_TLS_PORT: '0.0.0.0:8553' });
    readListenConfig(hostInPort, NAMES, 8443);
    assert.throws(() => hostInPort.finish({}), /X_TLS_PORT .*set the host with X_TLS_HOST/);
  });

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

describe('readOpsAddress()', () => {
  const read = (value: string | undefined) => {
    const reader = new EnvReader(value === undefined ? {} : { X_OPS_ADDR: value });
    const address = readOpsAddress(reader, 'X_OPS_ADDR');
    return reader.finish({ address }).address;
  };

  test('is off when unset or empty', () => {
    assert.equal(read(undefined), undefined);
    assert.equal(read('  '), undefined);
  });

  test('takes host:port with an IPv4, bracketed IPv6 or localhost host, and port 0', () => {
    assert.deepEqual(read('127.0.0.1:9090'), { host: '127.0.0.1', port: 9090 });
    assert.deepEqual(read('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
    assert.deepEqual(read('[::1]:9090'), { host: '::1', port: 9090 });
    assert.deepEqual(read('localhost:8080'), { host: 'localhost', port: 8080 });
  });

  test('refuses a value without a port, a host name, an unbracketed IPv6 or a port too large, naming the variable', () => {
    for (const value of [
      '9090',
      ':9090',
      '127.0.0.1',
      'example.com:9090',
      '::1:9090',
      '127.0.0.1:65536',
      'http://127.0.0.1:9090',
    ]) {
      assert.throws(
        () => read(value),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.problems.length === 1 &&
          (err.problems[0] as string).startsWith('X_OPS_ADDR '),
        value,
      );
    }
  });
});
