import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClient, run } from './_testing.ts';

describe('spike status', () => {
  test('prints state, caller and Keepers; exits 6 when sealed', async () => {
    const client = new FakeClient();
    const ready = await run(['status', '-f', 'json'], { client });
    assert.equal(ready.status, 0, ready.stderr);
    const report = JSON.parse(ready.stdout);
    assert.equal(report.state, 'ready');
    assert.equal(report.caller, 'spiffe://unit.test/spike/pilot/role/superuser');
    assert.equal(report.nexusUrl, 'https://localhost:8553');
    assert.equal(report.keepers.length, 1);
    client.sealed = true;
    const sealed = await run(['status'], { client });
    assert.equal(sealed.status, 6);
    assert.match(sealed.stdout, /State: +sealed/);
    assert.match(sealed.stderr, /spike operator restore/);
  });

  test('--version and --help exit 0', async () => {
    const version = await run(['--version']);
    assert.equal(version.status, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const help = await run(['secret', 'put', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /Usage: spike secret put/);
  });
});
