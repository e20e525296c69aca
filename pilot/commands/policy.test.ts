import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createFakeTerminal, FakeClient, run } from './_testing.ts';
import { parsePolicyFile } from './policy.ts';

const dir = mkdtempSync(join(tmpdir(), 'pilot-policy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const WEB = {
  name: 'web-reads',
  spiffeIdPattern: 'spiffe://unit.test/apps/web',
  pathPattern: 'app/web/**',
  permissions: ['read', 'list'],
};

const YAML_FILE = `# two policies in one file
- name: web-reads
  spiffeIdPattern: spiffe://unit.test/apps/web
  pathPattern: app/web/**
  permissions: [read, list]
- name: ci-writes
  spiffeIdPattern: spiffe://unit.test/ci/*
  pathPattern: ci/**
  permissions:
    - write
`;

describe('parsePolicyFile()', () => {
  test('reads a YAML list of policies', async () => {
    const policies = await parsePolicyFile(YAML_FILE, 'policy.yaml');
    assert.deepEqual(
      policies.map((p) => [p.name, p.permissions]),
      [
        ['web-reads', ['read', 'list']],
        ['ci-writes', ['write']],
      ],
    );
  });

  test('reads JSON: one policy, a list, or { policies: [...] }', async () => {
    assert.deepEqual(await parsePolicyFile(JSON.stringify(WEB), 'p.json'), [WEB]);
    assert.deepEqual(await parsePolicyFile(JSON.stringify([WEB]), 'p.json'), [WEB]);
    assert.deepEqual(await parsePolicyFile(JSON.stringify({ policies: [WEB] }), 'p.json'), [WEB]);
  });

  test('names the file and the policy that is wrong', async () => {
    const bad = [WEB, { ...WEB, name: 'other', permissions: ['fly'] }];
    await assert.rejects(parsePolicyFile(JSON.stringify(bad), 'p.json'), {
      code: 'ERR_INVALID_REQUEST',
      message: /^p\.json: policy 2: Field "permissions"/,
    });
    await assert.rejects(parsePolicyFile(JSON.stringify([{ ...WEB, extra: 1 }]), 'p.json'), {
      message: /policy 1: Unknown field "extra"/,
    });
    await assert.rejects(parsePolicyFile(JSON.stringify([WEB, WEB]), 'p.json'), {
      message: /"web-reads" appears more than once/,
    });
  });

  test('refuses malformed text, empty lists and scalars', async () => {
    for (const [text, name] of [
      ['{ not json', 'p.json'],
      ['- a: [', 'p.yaml'],
      ['[]', 'p.json'],
      ['42', 'p.yaml'],
    ] as const) {
      await assert.rejects(parsePolicyFile(text, name), { code: 'ERR_INVALID_REQUEST' }, text);
    }
  });
});

describe('spike policy', () => {
  test('create sends the flags as a policy and refuses an existing name (exit 5)', async () => {
    const client = new FakeClient();
    const args = [
      'policy',
      'create',
      '--name',
      'web-reads',
      '--spiffeid-pattern',
      WEB.spiffeIdPattern,
      '--path-pattern',
      WEB.pathPattern,
      '--permissions',
      'list,read',
    ];
    const created = await run(args, { client });
    assert.equal(created.status, 0, created.stderr);
    assert.deepEqual(client.policies.get('web-reads')?.permissions, ['read', 'list']);
    const again = await run(args, { client });
    assert.equal(again.status, 5);
    assert.match(again.stderr, /already exists/);
  });

  test('create refuses an unknown permission with exit 2 before connecting', async () => {
    const result = await run([
      'policy',
      'create',
      '--name',
      'x',
      '--spiffeid-pattern',
      'spiffe://unit.test/a',
      '--path-pattern',
      'a/**',
      '--permissions',
      'read,fly',
    ]);
    assert.equal(result.status, 2);
    assert.equal(result.client.calls.length, 0);
  });

  test('apply upserts every policy of a YAML file and reports each', async () => {
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, YAML_FILE);
    const client = new FakeClient();
    const result = await run(['policy', 'apply', '--file', file, '--format', 'json'], { client });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(
      JSON.parse(result.stdout).policies.map((p: { name: string }) => p.name),
      ['web-reads', 'ci-writes'],
    );
    assert.deepEqual([...client.policies.keys()], ['web-reads', 'ci-writes']);
  });

  test('apply of a missing file is invalid input (exit 2)', async () => {
    const result = await run(['policy', 'apply', '--file', join(dir, 'missing.yaml')]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /Cannot read policy file .*ENOENT/);
  });

  test('list and get print the policies; get of a missing one exits 4', async () => {
    const client = new FakeClient();
    await client.putPolicy(WEB as never);
    client.calls.length = 0;
    const list = await run(['policy', 'list', '-f', 'yaml'], { client });
    assert.match(list.stdout, /name: web-reads/);
    const get = await run(['policy', 'get', 'web-reads', '-f', 'json'], { client });
    assert.equal(JSON.parse(get.stdout).pathPattern, 'app/web/**');
    const missing = await run(['policy', 'get', 'nope'], { client });
    assert.equal(missing.status, 4);
    assert.match(missing.stderr, /Policy "nope" not found \[ERR_NOT_FOUND\]/);
  });

  test('delete refuses without --yes when stdin is not a terminal', async () => {
    const client = new FakeClient();
    await client.putPolicy(WEB as never);
    client.calls.length = 0;
    const refused = await run(['policy', 'delete', 'web-reads'], { client });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /refused without --yes because stdin is not a terminal/);
    assert.equal(client.calls.length, 0);
    const done = await run(['policy', 'delete', 'web-reads', '--yes'], { client });
    assert.equal(done.status, 0, done.stderr);
    assert.deepEqual(client.calls, [{ method: 'deletePolicy', args: ['web-reads'] }]);
  });

  test('delete asks on a terminal and does nothing unless the answer is yes', async () => {
    const client = new FakeClient();
    await client.putPolicy(WEB as never);
    client.calls.length = 0;
    const no = createFakeTerminal({ interactive: true, answers: ['n'] });
    const canceled = await run(['policy', 'delete', 'web-reads'], { client, terminal: no });
    assert.equal(canceled.status, 1);
    assert.deepEqual(no.prompts, ['Delete policy "web-reads"? [y/N] ']);
    assert.equal(client.calls.length, 0);
    const yes = createFakeTerminal({ interactive: true, answers: ['y'] });
    const done = await run(['policy', 'delete', 'web-reads'], { client, terminal: yes });
    assert.equal(done.status, 0, done.stderr);
    assert.equal(client.policies.size, 0);
  });
});
