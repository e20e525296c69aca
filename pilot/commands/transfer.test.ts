/**
 * `spike secret export` and `import` against fake clients: an encrypted
 * export holds no value in clear and imports only with its passphrase; a
 * plain one warns; an import writes through the API what differs (a second
 * run writes nothing), a dry run writes nothing, a policy with other rules
 * stops the import unless replaced; a Vault KV v2 export is read strictly.
 * No value appears in any output or error.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createFakeTerminal, FakeClient, run } from './_testing.ts';
import { reachesOnlyInto } from './transfer.ts';

const dir = mkdtempSync(join(tmpdir(), 'pilot-transfer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const VALUE = 'canary-value-never-printed';
const PASSPHRASE = 'correct horse battery staple';
const passphraseFile = join(dir, 'passphrase');
writeFileSync(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 });
let files = 0;
const newFile = (name: string) => join(dir, `${++files}-${name}`);

function source(): FakeClient {
  const client = new FakeClient();
  client.secrets.set('app/db', [{ password: 'old' }, { password: VALUE }]);
  client.secrets.set('app/api', [{ token: `${VALUE}-2` }]);
  client.secrets.set('app/gone', [{ k: 'v' }]);
  client.versionStates.set('app/gone', new Map([[1, 'deleted']]));
  client.secrets.set('other/x', [{ k: `${VALUE}-3` }]);
  for (const [name, pathPattern] of [
    ['app-reads', 'app/**'],
    ['everything', '**'],
    ['other-reads', 'other/*'],
  ] as const) {
    void client.putPolicy({
      name,
      spiffeIdPattern: 'spiffe://unit.test/apps/web',
      pathPattern,
      permissions: ['read'],
    });
  }
  return client;
}

function assertNoValue(...texts: string[]): void {
  for (const text of texts) assert.ok(!text.includes(VALUE), `a value was printed: ${text}`);
}

describe('spike secret export and import', () => {
  test('an encrypted export holds no value in clear and imports with its passphrase, once', async () => {
    const file = newFile('app.export');
    const exported = await run(
      ['secret', 'export', 'app/', file, '--passphrase-file', passphraseFile, '-f', 'json'],
      { client: source() },
    );
    assert.equal(exported.status, 0, exported.stderr);
    assert.deepEqual(JSON.parse(exported.stdout), {
      file,
      prefix: 'app/',
      encrypted: true,
      secrets: 2,
      policies: 1,
      skipped: ['app/gone'],
    });
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assertNoValue(readFileSync(file, 'utf8'), exported.stdout, exported.stderr);

    const target = new FakeClient();
    const imported = await run(['secret', 'import', file, '--passphrase-file', passphraseFile], {
      client: target,
    });
    assert.equal(imported.status, 0, imported.stderr);
    assert.deepEqual(target.secrets.get('app/db'), [{ password: VALUE }]);
    assert.deepEqual(target.secrets.get('app/api'), [{ token: `${VALUE}-2` }]);
    assert.deepEqual([...target.policies.keys()], ['app-reads']);
    assertNoValue(imported.stdout, imported.stderr);
    assert.match(imported.stdout, /secret create +app\/db/);

    const again = await run(['secret', 'import', file, '--passphrase-file', passphraseFile], {
      client: target,
    });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /secret unchanged app\/db/);
    assert.deepEqual(target.secrets.get('app/db'), [{ password: VALUE }], 'nothing written twice');
  });

  test('a wrong passphrase or a changed file opens nothing and writes nothing', async () => {
    const file = newFile('wrong.export');
    await run(['secret', 'export', 'app/', file, '--passphrase-file', passphraseFile], {
      client: source(),
    });
    const wrong = newFile('wrong-passphrase');
    writeFileSync(wrong, 'another long passphrase\n');
    const target = new FakeClient();
    const refused = await run(['secret', 'import', file, '--passphrase-file', wrong], {
      client: target,
    });
    assert.equal(refused.status, 2);
    assert.match(
      refused.stderr,
      /wrong passphrase, or the file was changed \[ERR_INVALID_REQUEST\]/,
    );
    const parsed = JSON.parse(readFileSync(file, 'utf8'));
    parsed.encryption.nonce = Buffer.alloc(12, 1).toString('base64');
    const changed = newFile('changed.export');
    writeFileSync(changed, JSON.stringify(parsed));
    const tampered = await run(['secret', 'import', changed, '--passphrase-file', passphraseFile], {
      client: target,
    });
    assert.equal(tampered.status, 2);
    assert.equal(target.calls.filter((call) => call.method.startsWith('put')).length, 0);
  });

  test('without a passphrase off a terminal the export is refused; a terminal asks twice', async () => {
    const file = newFile('none.export');
    const refused = await run(['secret', 'export', 'app/', file], { client: source() });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /--passphrase-file.*--plain/);
    const terminal = createFakeTerminal({
      interactive: true,
      answers: [PASSPHRASE, 'different!!!!'],
    });
    const differ = await run(['secret', 'export', 'app/', file], { client: source(), terminal });
    assert.equal(differ.status, 2);
    assert.match(differ.stderr, /passphrases differ/);
  });

  test('a plain export warns, and a dry run writes nothing', async () => {
    const file = newFile('plain.export');
    const exported = await run(['secret', 'export', 'app/', file, '--plain'], { client: source() });
    assert.equal(exported.status, 0, exported.stderr);
    assert.match(exported.stderr, /^Warning: .* clear text/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(readFileSync(file, 'utf8').includes(VALUE));
    const again = await run(['secret', 'export', 'app/', file, '--plain'], { client: source() });
    assert.equal(again.status, 2, 'never replaces a file');

    const target = new FakeClient();
    const dry = await run(['secret', 'import', file, '--dry-run', '-f', 'json'], {
      client: target,
    });
    assert.equal(dry.status, 0, dry.stderr);
    assert.deepEqual(JSON.parse(dry.stdout), {
      dryRun: true,
      secrets: [
        { path: 'app/api', action: 'create' },
        { path: 'app/db', action: 'create' },
      ],
      policies: [{ name: 'app-reads', action: 'create' }],
    });
    assert.equal(target.calls.filter((call) => call.method.startsWith('put')).length, 0);
  });

  test('a policy of the same name with other rules stops the import unless replaced', async () => {
    const file = newFile('conflict.export');
    await run(['secret', 'export', 'app/', file, '--plain'], { client: source() });
    const target = new FakeClient();
    await target.putPolicy({
      name: 'app-reads',
      spiffeIdPattern: 'spiffe://unit.test/apps/other',
      pathPattern: 'app/**',
      permissions: ['read'],
    });
    target.calls.length = 0;
    const refused = await run(['secret', 'import', file], { client: target });
    assert.equal(refused.status, 5, refused.stderr);
    assert.match(refused.stderr, /"app-reads" exist with other rules: nothing was imported/);
    assert.equal(target.calls.filter((call) => call.method.startsWith('put')).length, 0);
    const replaced = await run(['secret', 'import', file, '--replace-policies'], {
      client: target,
    });
    assert.equal(replaced.status, 0, replaced.stderr);
    assert.equal(target.policies.get('app-reads')?.spiffeIdPattern, 'spiffe://unit.test/apps/web');
  });

  test('a Vault KV v2 export (vault kv get -format=json per path) is read strictly', async () => {
    const vault = (data: unknown, metadata: Record<string, unknown> = {}) => ({
      request_id: 'c0ffee',
      lease_id: '',
      lease_duration: 0,
      renewable: false,
      data: {
        data,
        metadata: {
          created_time: '2026-01-01T00:00:00Z',
          custom_metadata: { owner: 'team-a' },
          deletion_time: '',
          destroyed: false,
          version: 3,
          ...metadata,
        },
      },
      warnings: null,
    });
    const good = newFile('vault.json');
    writeFileSync(good, JSON.stringify({ 'app/db': vault({ password: VALUE }) }));
    const target = new FakeClient();
    const imported = await run(['secret', 'import', good, '--from', 'vault-kv2'], {
      client: target,
    });
    assert.equal(imported.status, 0, imported.stderr);
    assert.deepEqual(target.secrets.get('app/db'), [{ password: VALUE }]);
    const metadataCall = target.calls.find((call) => call.method === 'putMetadata');
    assert.deepEqual(metadataCall?.args, [
      'app/db',
      { maxVersions: null, customMetadata: { owner: 'team-a' } },
    ]);

    const cases: [unknown, RegExp][] = [
      [
        { 'app/db': vault({ port: 5432, password: VALUE }) },
        /must be an object of string values|string/,
      ],
      [
        { 'app/db': vault({ password: VALUE }, { deletion_time: '2026-01-02T00:00:00Z' }) },
        /deleted or destroyed/,
      ],
      [{ 'app/db': vault({ password: VALUE }, { destroyed: true }) }, /deleted or destroyed/],
      [{ 'app/db': { ...vault({ password: VALUE }), extra: 1 } }, /unknown field/],
      [{ '../db': vault({ password: VALUE }) }, /Vault secret/],
      [[vault({ password: VALUE })], /must be a JSON object/],
    ];
    for (const [content, message] of cases) {
      const file = newFile('vault-bad.json');
      writeFileSync(file, JSON.stringify(content));
      const result = await run(['secret', 'import', file, '--from', 'vault-kv2'], {
        client: new FakeClient(),
      });
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, message);
      assertNoValue(result.stderr);
    }
    const ours = await run(['secret', 'import', good], { client: new FakeClient() });
    assert.equal(ours.status, 2);
    assert.match(ours.stderr, /--from vault-kv2/);
  });

  test('a policy travels with a prefix only when it reaches into nothing else', () => {
    assert.equal(reachesOnlyInto('app/**', 'app/'), true);
    assert.equal(reachesOnlyInto('app/web/*', 'app'), true);
    assert.equal(reachesOnlyInto('app', 'app/'), true);
    assert.equal(reachesOnlyInto('**', 'app/'), false);
    assert.equal(reachesOnlyInto('*/db', 'app/'), false);
    assert.equal(reachesOnlyInto('apps/**', 'app/'), false);
    assert.equal(reachesOnlyInto('app/**', 'app/web/'), false);
    assert.equal(reachesOnlyInto('**', ''), true);
  });
});
