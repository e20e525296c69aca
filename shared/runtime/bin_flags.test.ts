import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { nodeFlagsOfBin, nodeFlagsOfShebang } from './bin_flags.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin');

describe('nodeFlagsOfShebang', () => {
  test('reads no flags from a plain node shebang, and each flag after `env -S node`', () => {
    assert.deepEqual(nodeFlagsOfShebang('#!/usr/bin/env node'), []);
    assert.deepEqual(nodeFlagsOfShebang('#!/usr/bin/env -S node --max-semi-space-size=8'), [
      '--max-semi-space-size=8',
    ]);
    assert.deepEqual(nodeFlagsOfShebang('#!/usr/bin/env -S node --a --b=1'), ['--a', '--b=1']);
    // A checkout with CRLF line ends.
    assert.deepEqual(nodeFlagsOfShebang('#!/usr/bin/env -S node --a\r'), ['--a']);
  });

  test('reads none from a line of another form, or with anything but flags', () => {
    for (const line of [
      '',
      '// no shebang',
      '#!/usr/bin/node',
      '#!/usr/bin/env deno',
      '#!/usr/bin/env -S node',
      '#!/usr/bin/env -S node  --two-spaces',
      '#!/usr/bin/env -S node --flag;rm',
      '#!/usr/bin/env -S node --a not-a-flag',
    ]) {
      assert.deepEqual(nodeFlagsOfShebang(line), [], line);
    }
  });
});

describe('the bins', () => {
  test('only spike-nexus gives itself a flag, and its line reads as one', () => {
    const bins = readdirSync(BIN).filter((name) => name.endsWith('.js') && !name.startsWith('_'));
    assert.ok(bins.length >= 5);
    for (const name of bins) {
      assert.deepEqual(
        nodeFlagsOfBin(join(BIN, name)),
        name === 'spike-nexus.js' ? ['--max-semi-space-size=8'] : [],
        name,
      );
    }
  });
});
