import assert from 'node:assert/strict';
import { dirname, isAbsolute, join } from 'node:path';
import { describe, test } from 'node:test';
import { loadKeeperConfig } from '../keeper/config.ts';
import { loadNexusConfig } from '../nexus/config.ts';
import { KEEPER_COUNT, loadLauncherConfig, socketDirOf } from './config.ts';
import { NEXUS_AUDIT_LOG_FILE, OPS_CHILDREN, serviceSpecs } from './launcher.ts';
import { formatSummary } from './summary.ts';

const DATA_DIR = '/home/alice/.spike/local';
const LOGS_DIR = join(DATA_DIR, 'logs');

function specs() {
  const config = loadLauncherConfig({ HOME: '/home/alice' });
  return serviceSpecs(config, { logsDir: LOGS_DIR, socketDir: socketDirOf(DATA_DIR) });
}

describe('serviceSpecs()', () => {
  test('starts three Keepers, then Nexus', () => {
    assert.deepEqual(
      specs().map((spec) => [spec.name, spec.program]),
      [
        ['keeper-1', 'keeper'],
        ['keeper-2', 'keeper'],
        ['keeper-3', 'keeper'],
        ['nexus', 'nexus'],
      ],
    );
    assert.equal(KEEPER_COUNT, 3);
  });

  test('each Keeper audits to a file of its own in the logs folder, as its config reads it', () => {
    const keepers = specs().filter((spec) => spec.program === 'keeper');
    const files = keepers.map((spec) => loadKeeperConfig(spec.env).auditLog);
    assert.deepEqual(files, [
      join(LOGS_DIR, 'keeper-1.audit.log'),
      join(LOGS_DIR, 'keeper-2.audit.log'),
      join(LOGS_DIR, 'keeper-3.audit.log'),
    ]);
  });

  test('Nexus keeps audit.log in the logs folder', () => {
    const nexus = specs().find((spec) => spec.name === 'nexus');
    assert.ok(nexus !== undefined);
    assert.equal(loadNexusConfig(nexus.env).auditLog, join(LOGS_DIR, NEXUS_AUDIT_LOG_FILE));
  });

  test('no audit file is another audit file or the own log of any program', () => {
    const all = specs();
    const auditFiles = all.map(
      (spec) => spec.env.SPIKE_KEEPER_AUDIT_LOG ?? spec.env.SPIKE_NEXUS_AUDIT_LOG ?? '',
    );
    const ownLogs = ['agent', ...all.map((spec) => spec.name)].map((name) =>
      join(LOGS_DIR, `${name}.log`),
    );
    assert.equal(new Set(auditFiles).size, all.length);
    for (const file of auditFiles) {
      assert.ok(isAbsolute(file), file);
      assert.equal(dirname(file), LOGS_DIR);
      assert.ok(!ownLogs.includes(file), `${file} is also a program's log`);
    }
  });
});

describe('operations listeners', () => {
  const config = loadLauncherConfig({ HOME: '/home/alice' });
  const ports = { 'keeper-1': 40001, 'keeper-2': 40002, 'keeper-3': 40003, nexus: 40004 };

  test('each Keeper and Nexus serve probes on loopback at the port picked for them, as their configs read it', () => {
    const all = serviceSpecs(
      config,
      { logsDir: LOGS_DIR, socketDir: socketDirOf(DATA_DIR) },
      ports,
    );
    const read = all.map((spec) =>
      spec.program === 'keeper'
        ? loadKeeperConfig(spec.env).opsAddress
        : loadNexusConfig(spec.env).opsAddress,
    );
    assert.deepEqual(read, [
      { host: '127.0.0.1', port: 40001 },
      { host: '127.0.0.1', port: 40002 },
      { host: '127.0.0.1', port: 40003 },
      { host: '127.0.0.1', port: 40004 },
    ]);
    // Without picked ports they are off.
    assert.ok(specs().every((spec) => loadKeeperConfig(spec.env).opsAddress === undefined));
  });

  test('the summary prints the address of every listener', () => {
    const opsUrls = Object.fromEntries(
      OPS_CHILDREN.map((name, i) => [name, `http://127.0.0.1:${41000 + i}`]),
    );
    const text = formatSummary(
      {
        nexusUrl: 'https://127.0.0.1:8553',
        socketDir: socketDirOf(DATA_DIR),
        logsDir: LOGS_DIR,
        dataDir: DATA_DIR,
        restored: false,
        opsUrls,
      },
      { runtime: 'node', trustDomain: 'spike.ist', nexusPort: 8553 },
    );
    assert.deepEqual(OPS_CHILDREN, ['nexus', 'keeper-1', 'keeper-2', 'keeper-3', 'agent']);
    for (const [name, url] of Object.entries(opsUrls)) {
      assert.match(text, new RegExp(`^  ${name} +${url}$`, 'm'));
    }
    assert.match(text, /GET \/live, \/ready, \/metrics/);
  });
});
