import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_NEXUS_PORT } from '../shared/api/nexus_address.ts';
import { ConfigError } from '../shared/errors/errors.ts';
import {
  DEFAULT_KEEPER_PORTS,
  DEFAULT_RESTORE_AFTER_MS,
  loadLauncherConfig,
  socketDirOf,
} from './config.ts';

function problemsOf(env: Record<string, string>): string {
  try {
    loadLauncherConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

describe('loadLauncherConfig', () => {
  test('defaults: $HOME/.spike/local, Nexus 8553, Keepers 8443-8445', () => {
    const config = loadLauncherConfig({ HOME: '/home/alice' });
    assert.equal(config.dataDir, '/home/alice/.spike/local');
    assert.equal(config.nexusPort, DEFAULT_NEXUS_PORT);
    assert.equal(DEFAULT_NEXUS_PORT, 8553);
    assert.deepEqual(config.keeperPorts, DEFAULT_KEEPER_PORTS);
    assert.deepEqual(DEFAULT_KEEPER_PORTS, [8443, 8444, 8445]);
    assert.equal(config.restoreAfterMs, DEFAULT_RESTORE_AFTER_MS);
    assert.equal(config.trustDomain.name, 'spike.ist');
    assert.equal(config.logLevel, 'info');
    assert.ok(Object.isFrozen(config));
    assert.equal(socketDirOf(config.dataDir), '/home/alice/.spike/local/agent/sockets');
  });

  test('reads every variable', () => {
    const config = loadLauncherConfig({
      SPIKE_LOCAL_DATA_DIR: '/tmp/l',
      SPIKE_NEXUS_TLS_PORT: '9553',
      SPIKE_LOCAL_KEEPER_PORTS: '9443, 9444,9445',
      SPIKE_LOCAL_RESTORE_AFTER: '2s',
      SPIKE_LOCAL_START_TIMEOUT: '1m',
      SPIKE_TRUST_ROOT: 'example.org',
      SPIKE_SYSTEM_LOG_LEVEL: 'debug',
    });
    assert.equal(config.dataDir, '/tmp/l');
    assert.equal(config.nexusPort, 9553);
    assert.deepEqual(config.keeperPorts, [9443, 9444, 9445]);
    assert.equal(config.restoreAfterMs, 2_000);
    assert.equal(config.startTimeoutMs, 60_000);
    assert.equal(config.trustDomain.name, 'example.org');
    assert.equal(config.logLevel, 'debug');
  });

  test('reports every problem at once', () => {
    const message = problemsOf({
      SPIKE_LOCAL_DATA_DIR: 'relative',
      SPIKE_NEXUS_TLS_PORT: '0',
      SPIKE_LOCAL_KEEPER_PORTS: '1,x',
      SPIKE_LOCAL_RESTORE_AFTER: 'soon',
      SPIKE_TRUST_ROOT: 'Not A Domain',
    });
    assert.match(message, /SPIKE_LOCAL_DATA_DIR must be an absolute path/);
    assert.match(message, /SPIKE_NEXUS_TLS_PORT/);
    assert.match(message, /SPIKE_LOCAL_KEEPER_PORTS has "x", not a port/);
    assert.match(message, /SPIKE_LOCAL_KEEPER_PORTS must list exactly 3 ports/);
    assert.match(message, /SPIKE_LOCAL_RESTORE_AFTER/);
    assert.match(message, /SPIKE_TRUST_ROOT/);
  });

  test('refuses a Keeper port equal to the Nexus port, or twice the same', () => {
    assert.match(
      problemsOf({ HOME: '/h', SPIKE_LOCAL_KEEPER_PORTS: '8553,8444,8445' }),
      /must not include the Nexus port/,
    );
    assert.match(
      problemsOf({ HOME: '/h', SPIKE_LOCAL_KEEPER_PORTS: '8443,8443,8445' }),
      /duplicate entry "8443"/,
    );
  });

  test('needs HOME or a data folder, short enough for socket paths', () => {
    assert.match(problemsOf({}), /SPIKE_LOCAL_DATA_DIR must be set because HOME is not set/);
    assert.match(
      problemsOf({ SPIKE_LOCAL_DATA_DIR: `/${'d'.repeat(90)}` }),
      /SPIKE_LOCAL_DATA_DIR is too long/,
    );
  });
});
