import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { command } from './spawn.ts';

describe('command() on Deno', () => {
  test('runs the task as deno.json writes it when nothing is added', () => {
    const [, args] = command('nexus', 'deno');
    assert.deepEqual(args.slice(0, 3), ['run', '--quiet', '--no-check']);
    assert.equal(args.at(-1), 'nexus/main.ts');
    assert.equal(args.filter((arg) => arg.startsWith('--v8-flags=')).length, 1);
  });

  test("joins added V8 flags to the task's own and puts preloads before the script", () => {
    const [, plain] = command('nexus', 'deno');
    const own = plain.find((arg) => arg.startsWith('--v8-flags='));
    assert.ok(own !== undefined, 'the Nexus task sets V8 flags of its own');
    const [, args] = command('nexus', 'deno', [], false, undefined, {
      v8: ['--expose-gc'],
      preload: ['/tmp/first.mjs'],
    });
    // Deno reads --v8-flags once: the task's flags and the added ones share it.
    assert.deepEqual(
      args.filter((arg) => arg.startsWith('--v8-flags=')),
      [`${own},--expose-gc`],
    );
    assert.deepEqual(args.slice(-2), ['--preload=/tmp/first.mjs', 'nexus/main.ts']);
    // Every permission of the task is kept.
    for (const arg of plain.filter((arg) => arg.startsWith('--allow-'))) {
      assert.ok(args.includes(arg), `${arg} kept`);
    }
  });

  test('adds a --v8-flags of its own to a task without one', () => {
    const [, plain] = command('keeper', 'deno');
    assert.equal(plain.filter((arg) => arg.startsWith('--v8-flags=')).length, 0);
    const [, args] = command('keeper', 'deno', [], false, undefined, { v8: ['--expose-gc'] });
    assert.deepEqual(
      args.filter((arg) => arg.startsWith('--v8-flags=')),
      ['--v8-flags=--expose-gc'],
    );
    assert.equal(args.at(-1), plain.at(-1));
  });
});
