import assert from 'node:assert/strict';
import { chmodSync, closeSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError } from '../errors/errors.ts';
import {
  ensureDirectory,
  looseModeProblem,
  NOT_WRITABLE_BY_OTHERS,
  OWNER_ONLY_DIRECTORY,
  OWNER_ONLY_FILE,
  openPrivateFileForAppend,
} from './file_modes.ts';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'spike-file-modes-'));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('looseModeProblem()', () => {
  test('names the path, the mode and the chmod that fixes it', () => {
    assert.equal(
      looseModeProblem('CA key', '/x/ca.key', 0o100644, OWNER_ONLY_FILE),
      'CA key "/x/ca.key" has mode 0644; it must be readable and writable by its owner only. Run: chmod 600 "/x/ca.key"',
    );
    assert.match(
      looseModeProblem(
        'Socket directory',
        '/s',
        0o40750,
        OWNER_ONLY_DIRECTORY,
        'or choose another',
      ) ?? '',
      /mode 0750; .* chmod 700 "\/s", or choose another$/,
    );
  });

  test('a data folder may be read by others, not written', () => {
    assert.equal(looseModeProblem('Data folder', '/d', 0o40755, NOT_WRITABLE_BY_OTHERS), undefined);
    assert.match(
      looseModeProblem('Data folder', '/d', 0o40775, NOT_WRITABLE_BY_OTHERS) ?? '',
      /0775/,
    );
    assert.match(
      looseModeProblem('Data folder', '/d', 0o41777, NOT_WRITABLE_BY_OTHERS) ?? '',
      /0777/,
    );
  });
});

describe('ensureDirectory() and openPrivateFileForAppend()', () => {
  test('create what is missing owner-only', () => {
    const folder = join(dir, 'new', 'data');
    ensureDirectory('Data folder', folder, NOT_WRITABLE_BY_OTHERS);
    assert.equal(statSync(folder).mode & 0o777, 0o700);
    const file = join(folder, 'audit.jsonl');
    closeSync(openPrivateFileForAppend('Audit log', file));
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test('refuse what exists with a loose mode, and change nothing', () => {
    const folder = join(dir, 'shared');
    ensureDirectory('Data folder', folder, NOT_WRITABLE_BY_OTHERS);
    chmodSync(folder, 0o777);
    assert.throws(
      () => ensureDirectory('Data folder', folder, NOT_WRITABLE_BY_OTHERS),
      (err: unknown) => err instanceof ConfigError && /has mode 0777/.test(err.message),
    );
    assert.equal(statSync(folder).mode & 0o777, 0o777);
    const file = join(dir, 'readable.jsonl');
    writeFileSync(file, 'kept\n');
    chmodSync(file, 0o644);
    assert.throws(
      () => openPrivateFileForAppend('Audit log', file),
      (err: unknown) => err instanceof ConfigError && /chmod 600/.test(err.message),
    );
    assert.equal(statSync(file).mode & 0o777, 0o644);
  });

  test('refuse a file where a folder should be', () => {
    const file = join(dir, 'not-a-folder');
    writeFileSync(file, '');
    assert.throws(
      () => ensureDirectory('Data folder', file, NOT_WRITABLE_BY_OTHERS),
      /EEXIST|not a folder/,
    );
  });
});
