import assert from 'node:assert/strict';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { creationMode, removeLeftovers, writeIfChanged } from './file_writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'pilot-writer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const modeOf = (path: string) => statSync(path).mode & 0o7777;

describe('writeIfChanged()', () => {
  test('writes with the mode asked for, whatever the umask, and leaves no temporary file', async () => {
    const file = join(dir, 'a.env');
    assert.equal(await writeIfChanged(file, 'A=1\n', 0o640), true);
    assert.equal(readFileSync(file, 'utf8'), 'A=1\n');
    assert.equal(modeOf(file), 0o640);
    assert.deepEqual(readdirSync(dir), ['a.env']);
  });

  test('an unchanged render does not touch the file; a new mode alone rewrites it', async () => {
    const file = join(dir, 'b.env');
    await writeIfChanged(file, 'B=1\n', 0o600);
    const before = statSync(file);
    assert.equal(await writeIfChanged(file, 'B=1\n', 0o600), false);
    assert.equal(statSync(file).ino, before.ino);
    assert.equal(await writeIfChanged(file, 'B=1\n', 0o400), true);
    assert.equal(modeOf(file), 0o400);
    assert.notEqual(statSync(file).ino, before.ino);
  });

  test('the temporary file is never readable by anyone the final mode leaves out', async () => {
    for (const mode of [0o600, 0o400, 0o640, 0o644, 0o040, 0o000]) {
      const created = creationMode(mode);
      assert.equal(created & 0o077, 0, mode.toString(8));
      assert.equal(created & 0o400 & ~mode, 0, mode.toString(8));
    }
    // And it is that mode on disk once complete, before it becomes the destination.
    const seen: number[] = [];
    await writeIfChanged(join(dir, 'c'), 'x', 0o440, {
      beforeRename: (temp) => void seen.push(modeOf(temp)),
    });
    assert.deepEqual(seen, [0o440]);
  });

  test('replaces the file atomically: a reader holding the old one keeps it whole', async () => {
    const file = join(dir, 'd.env');
    await writeIfChanged(file, 'old\n', 0o600);
    const oldInode = statSync(file).ino;
    await writeIfChanged(file, 'new\n', 0o600, {
      beforeRename: (temp) => {
        // Until the rename, the destination is the old file, complete.
        assert.equal(readFileSync(file, 'utf8'), 'old\n');
        assert.equal(readFileSync(temp, 'utf8'), 'new\n');
      },
    });
    assert.equal(readFileSync(file, 'utf8'), 'new\n');
    assert.notEqual(statSync(file).ino, oldInode);
  });

  test('a link at the destination is replaced, never written through', async () => {
    const target = join(dir, 'target');
    writeFileSync(target, 'untouched');
    const link = join(dir, 'link.env');
    symlinkSync(target, link);
    await writeIfChanged(link, 'E=1\n', 0o600);
    assert.equal(readFileSync(target, 'utf8'), 'untouched');
    assert.equal(statSync(link).isFile(), true);
    assert.equal(readFileSync(link, 'utf8'), 'E=1\n');
  });

  test('a failed write leaves the old file and no temporary file', async () => {
    const sub = join(dir, 'ro');
    mkdirSync(sub);
    const file = join(sub, 'f.env');
    await writeIfChanged(file, 'old\n', 0o600);
    chmodSync(sub, 0o500);
    try {
      // root may write anyway; then there is nothing to check.
      const wrote = await writeIfChanged(file, 'new\n', 0o600).then(
        () => true,
        () => false,
      );
      if (!wrote) {
        assert.equal(readFileSync(file, 'utf8'), 'old\n');
        assert.deepEqual(readdirSync(sub), ['f.env']);
      }
    } finally {
      chmodSync(sub, 0o700);
    }
    await assert.rejects(writeIfChanged(join(dir, 'missing', 'f'), 'x', 0o600), /ENOENT/);
  });

  test('removeLeftovers() removes only the temporary files of that destination', async () => {
    const file = join(dir, 'g.env');
    writeFileSync(join(dir, '.g.env.spike-tmp-1234abcd'), 'half');
    writeFileSync(join(dir, '.other.spike-tmp-1234abcd'), 'half');
    assert.equal(await removeLeftovers(file), 1);
    assert.ok(readdirSync(dir).includes('.other.spike-tmp-1234abcd'));
  });
});
