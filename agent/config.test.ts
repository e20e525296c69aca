import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../shared/errors/errors.ts';
import {
  AGENT_ENV_NAMES,
  DEFAULT_CA_TTL_MS,
  DEFAULT_SVID_TTL_MS,
  loadAgentConfig,
} from './config.ts';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadAgentConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('loadAgentConfig() accepted the environment');
}

describe('loadAgentConfig()', () => {
  test('uses the documented defaults under $HOME', () => {
    const config = loadAgentConfig({ HOME: '/home/alice' });
    assert.equal(config.trustDomain.name, 'spike.ist');
    assert.equal(config.dataDir, '/home/alice/.spike/agent');
    assert.equal(config.socketDir, '/home/alice/.spike/agent/sockets');
    assert.equal(config.svidTtlMs, DEFAULT_SVID_TTL_MS);
    assert.equal(config.svidTtlMs, 3_600_000);
    assert.equal(config.caTtlMs, DEFAULT_CA_TTL_MS);
    assert.equal(config.caTtlMs, 8760 * 3_600_000);
    assert.equal(config.logLevel, 'info');
    assert.deepEqual(
      config.registrations.map((r) => [r.name, r.spiffeId.toString(), r.socketPath]),
      [
        ['nexus', 'spiffe://spike.ist/spike/nexus', '/home/alice/.spike/agent/sockets/nexus.sock'],
        [
          'keeper-1',
          'spiffe://spike.ist/spike/keeper/1',
          '/home/alice/.spike/agent/sockets/keeper-1.sock',
        ],
        [
          'keeper-2',
          'spiffe://spike.ist/spike/keeper/2',
          '/home/alice/.spike/agent/sockets/keeper-2.sock',
        ],
        [
          'keeper-3',
          'spiffe://spike.ist/spike/keeper/3',
          '/home/alice/.spike/agent/sockets/keeper-3.sock',
        ],
        [
          'pilot',
          'spiffe://spike.ist/spike/pilot/role/superuser',
          '/home/alice/.spike/agent/sockets/pilot.sock',
        ],
      ],
    );
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.registrations));
  });

  test('reads every variable', () => {
    const config = loadAgentConfig({
      SPIKE_TRUST_ROOT: 'example.org',
      SPIKE_AGENT_DATA_DIR: '/var/lib/spike-agent',
      SPIKE_AGENT_SOCKET_DIR: '/run/spike',
      SPIKE_AGENT_SVID_TTL: '10s',
      SPIKE_AGENT_CA_TTL: '48h',
      SPIKE_AGENT_WORKLOADS: ' web = /app/web , db_1=/app/db ',
      SPIKE_SYSTEM_LOG_LEVEL: 'debug',
    });
    assert.equal(config.trustDomain.name, 'example.org');
    assert.equal(config.dataDir, '/var/lib/spike-agent');
    assert.equal(config.socketDir, '/run/spike');
    assert.equal(config.svidTtlMs, 10_000);
    assert.equal(config.caTtlMs, 48 * 3_600_000);
    assert.equal(config.logLevel, 'debug');
    assert.deepEqual(
      config.registrations.map((r) => [r.name, r.spiffeId.toString(), r.socketPath]),
      [
        ['web', 'spiffe://example.org/app/web', '/run/spike/web.sock'],
        ['db_1', 'spiffe://example.org/app/db', '/run/spike/db_1.sock'],
      ],
    );
  });

  test('does not need HOME when the data dir is set', () => {
    const config = loadAgentConfig({ SPIKE_AGENT_DATA_DIR: '/srv/agent' });
    assert.equal(config.socketDir, '/srv/agent/sockets');
  });

  test('lists every problem at once', () => {
    const error = configError({
      SPIKE_TRUST_ROOT: 'Bad_Domain!',
      SPIKE_AGENT_DATA_DIR: 'relative/dir',
      SPIKE_AGENT_SOCKET_DIR: 'also/relative',
      SPIKE_AGENT_SVID_TTL: '5s',
      SPIKE_AGENT_CA_TTL: 'forever',
      SPIKE_AGENT_WORKLOADS: 'nexus=/spike/nexus,nexus=/spike/other,dup=/spike/nexus,bad/name=/x',
      SPIKE_SYSTEM_LOG_LEVEL: 'loud',
    });
    const text = error.problems.join('\n');
    for (const name of [
      'SPIKE_TRUST_ROOT',
      'SPIKE_AGENT_DATA_DIR',
      'SPIKE_AGENT_SOCKET_DIR',
      'SPIKE_AGENT_SVID_TTL',
      'SPIKE_AGENT_CA_TTL',
      'SPIKE_AGENT_WORKLOADS',
      'SPIKE_SYSTEM_LOG_LEVEL',
    ]) {
      assert.ok(text.includes(name), `no problem named ${name} in:\n${text}`);
    }
    assert.match(text, /"nexus" more than once/);
    assert.match(text, /ID "spiffe:\/\/spike\.ist\/spike\/nexus" to more than one name/);
    assert.match(text, /invalid name "bad\/name"/);
    assert.match(text, /must be at least 10000ms/);
    assert.match(error.message, /Invalid configuration/);
  });

  test('refuses the reserved agent ID and anything under it', () => {
    const error = configError({
      HOME: '/home/a',
      SPIKE_AGENT_WORKLOADS: 'a=/spike/agent,b=/spike/agent/x,c=/spike/agentx',
    });
    assert.equal(error.problems.length, 2);
    assert.match(
      error.problems[0] ?? '',
      /"a" the reserved agent ID "spiffe:\/\/spike\.ist\/spike\/agent"/,
    );
    assert.match(error.problems[1] ?? '', /"b" the reserved agent ID/);
  });

  test('refuses root, malformed and missing paths', () => {
    const error = configError({
      HOME: '/home/a',
      SPIKE_AGENT_WORKLOADS: 'a=,b=/,c=spike/x,d,e=/a//b,,',
    });
    const text = error.problems.join('\n');
    assert.match(text, /no SPIFFE ID path for "a"/);
    assert.match(text, /invalid path for "b"/);
    assert.match(text, /invalid path for "c"/);
    assert.match(text, /entry "d" without "="/);
    assert.match(text, /invalid path for "e"/);
    assert.match(text, /empty entries/);
  });

  test('refuses an empty registration list', () => {
    const error = configError({ HOME: '/home/a', SPIKE_AGENT_WORKLOADS: ' , ' });
    assert.match(error.problems.join('\n'), /SPIKE_AGENT_WORKLOADS must not contain empty entries/);
  });

  test('checks registration paths even when the trust domain is bad', () => {
    const error = configError({
      HOME: '/home/a',
      SPIKE_TRUST_ROOT: 'UPPER',
      SPIKE_AGENT_WORKLOADS: 'x=/spike/agent',
    });
    assert.equal(error.problems.length, 2);
  });

  test('refuses a data dir default without HOME', () => {
    const error = configError({});
    assert.deepEqual(error.problems, [
      'SPIKE_AGENT_DATA_DIR must be set because HOME is not set (unset)',
    ]);
  });

  test('refuses a CA lifetime that is not longer than the SVID lifetime', () => {
    const error = configError({
      HOME: '/h',
      SPIKE_AGENT_SVID_TTL: '2h',
      SPIKE_AGENT_CA_TTL: '2h',
    });
    assert.match(
      error.problems.join('\n'),
      /SPIKE_AGENT_CA_TTL must be longer than SPIKE_AGENT_SVID_TTL/,
    );
  });

  test('refuses socket paths too long to bind', () => {
    const error = configError({
      HOME: '/h',
      SPIKE_AGENT_SOCKET_DIR: `/${'d'.repeat(100)}`,
      SPIKE_AGENT_WORKLOADS: 'nexus=/spike/nexus',
    });
    assert.match(error.problems.join('\n'), /longer than 103 bytes/);
  });

  test('names each variable it reads once', () => {
    assert.equal(new Set(AGENT_ENV_NAMES).size, 8);
  });
});
