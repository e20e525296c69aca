import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../shared/errors/errors.ts';
import { ENV_NEXUS_BACKEND_STORE, ENV_NEXUS_DATABASE_URL, loadNexusConfig } from './config.ts';

const BASE = {
  SPIKE_TRUST_ROOT: 'example.org',
  SPIFFE_ENDPOINT_SOCKET: 'unix:///tmp/spike-agent.sock',
  SPIKE_NEXUS_KEEPER_PEERS: 'https://127.0.0.1:8443,https://127.0.0.1:8444,https://127.0.0.1:8445',
};

function problemsOf(env: Record<string, string>): string {
  try {
    loadNexusConfig({ ...BASE, ...env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

describe('loadNexusConfig() backend store', () => {
  test('defaults to sqlite without a database URL', () => {
    const config = loadNexusConfig(BASE);
    assert.equal(config.backendStore, 'sqlite');
    assert.equal(config.databaseUrl, undefined);
  });

  test('postgres takes its URL from SPIKE_NEXUS_DATABASE_URL', () => {
    const url = 'postgres://spike:pw@db.example:5432/spike?sslmode=require';
    const config = loadNexusConfig({
      ...BASE,
      [ENV_NEXUS_BACKEND_STORE]: 'postgres',
      [ENV_NEXUS_DATABASE_URL]: url,
    });
    assert.equal(config.backendStore, 'postgres');
    assert.equal(config.databaseUrl, url);
  });

  test('postgres without a URL is refused, naming the variable', () => {
    assert.match(
      problemsOf({ [ENV_NEXUS_BACKEND_STORE]: 'postgres' }),
      /SPIKE_NEXUS_DATABASE_URL is required/,
    );
  });

  test('a malformed URL is refused without showing its password', () => {
    const message = problemsOf({
      [ENV_NEXUS_BACKEND_STORE]: 'postgres',
      [ENV_NEXUS_DATABASE_URL]: 'mysql://spike:hunter2@db.example/spike',
    });
    assert.match(message, /SPIKE_NEXUS_DATABASE_URL must be a postgres:/);
    assert.doesNotMatch(message, /hunter2/);
    assert.match(message, /spike:\*\*\*@db\.example/);
  });

  test('the URL is ignored by other backends', () => {
    const config = loadNexusConfig({ ...BASE, [ENV_NEXUS_DATABASE_URL]: 'not a url' });
    assert.equal(config.databaseUrl, undefined);
  });
});
