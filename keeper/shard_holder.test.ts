import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import { SHARD_VALUE_BYTES, type Shard } from '../shared/crypto/shard.ts';
import { ConflictError } from '../shared/errors/errors.ts';
import { createLogger, createMemorySink } from '../shared/log/logger.ts';
import { DEFAULT_MAX_GENERATIONS, ShardHolder } from './shard_holder.ts';

function value(seed: number): Uint8Array {
  return Uint8Array.from({ length: SHARD_VALUE_BYTES }, (_, i) => (seed * 13 + i + 1) & 255);
}

function shard(generation: number, overrides: Partial<Shard> = {}): Shard {
  return { generation, index: 1, threshold: 2, value: value(generation), ...overrides };
}

function holderWith(maxGenerations?: number) {
  const sink = createMemorySink();
  const logger = createLogger({ component: 'test', sink });
  const holder = new ShardHolder({
    logger,
    ...(maxGenerations === undefined ? {} : { maxGenerations }),
  });
  return { holder, sink };
}

/**
 * Captures the copies the holder makes by intercepting Uint8Array.from while
 * `run` stores pre-built shards, so that tests can see the holder wipe what
 * it drops.
 */
function captureCopies<T>(run: () => T): { result: T; copies: Uint8Array[] } {
  const copies: Uint8Array[] = [];
  const original = Uint8Array.from;
  Uint8Array.from = function capturingFrom(this: unknown, ...args: unknown[]) {
    const out = (original as (...a: unknown[]) => Uint8Array).apply(Uint8Array, args);
    copies.push(out);
    return out;
  } as typeof Uint8Array.from;
  try {
    return { result: run(), copies };
  } finally {
    Uint8Array.from = original;
  }
}

describe('ShardHolder', () => {
  test('stores a copy: the caller may wipe its bytes afterwards', () => {
    const { holder } = holderWith();
    const input = shard(1);
    assert.deepEqual(holder.store(input), { outcome: 'stored', dropped: [] });
    input.value.fill(0);
    assert.deepEqual(holder.list(), [shard(1)]);
  });

  test('list() returns copies that cannot change what is held', () => {
    const { holder } = holderWith();
    holder.store(shard(1));
    const first = holder.list();
    (first[0] as Shard).value.fill(0);
    assert.deepEqual(holder.list(), [shard(1)]);
  });

  test('storing the same shard again is idempotent', () => {
    const { holder } = holderWith();
    holder.store(shard(2));
    assert.deepEqual(holder.store(shard(2)), { outcome: 'unchanged', dropped: [] });
    assert.deepEqual(holder.generations(), [2]);
  });

  test('other bytes, index or threshold for a held generation conflict and keep the held shard', () => {
    const { holder } = holderWith();
    holder.store(shard(2));
    const variants = [
      shard(2, { value: value(99) }),
      shard(2, { index: 2 }),
      shard(2, { threshold: 3 }),
    ];
    for (const variant of variants) {
      assert.throws(
        () => holder.store(variant),
        (err: unknown) => {
          assert.ok(err instanceof ConflictError);
          assert.equal(err.code, 'ERR_CONFLICT');
          assert.match(err.message, /Generation 2 is already held/);
          return true;
        },
      );
    }
    assert.deepEqual(holder.list(), [shard(2)]);
  });

  test('keeps new generations beside older ones, ascending', () => {
    const { holder } = holderWith();
    holder.store(shard(3));
    holder.store(shard(1, { index: 2 }));
    holder.store(shard(2));
    assert.deepEqual(holder.generations(), [1, 2, 3]);
    assert.deepEqual(
      holder.list().map((s) => [s.generation, s.index]),
      [
        [1, 2],
        [2, 1],
        [3, 1],
      ],
    );
  });

  test('prune() drops older generations when it holds keepFrom, and wipes them', () => {
    const { holder } = holderWith();
    const inputs = [1, 2, 3, 4].map((generation) => shard(generation));
    const { copies } = captureCopies(() => {
      for (const input of inputs) holder.store(input);
    });
    assert.equal(copies.length, 4);
    assert.deepEqual(holder.prune(3), { applied: true, dropped: [1, 2] });
    assert.deepEqual(holder.generations(), [3, 4]);
    assert.ok(copies[0]?.every((byte) => byte === 0));
    assert.ok(copies[1]?.every((byte) => byte === 0));
    assert.deepEqual(copies[2], value(3));
    assert.deepEqual(holder.prune(3), { applied: true, dropped: [] });
  });

  test('prune() is a no-op that says so when keepFrom is not held', () => {
    const { holder } = holderWith();
    holder.store(shard(1));
    holder.store(shard(2));
    assert.deepEqual(holder.prune(5), { applied: false, dropped: [] });
    assert.deepEqual(holder.prune(0), { applied: false, dropped: [] });
    assert.deepEqual(holder.generations(), [1, 2]);
    assert.throws(() => holder.prune(1.5), TypeError);
  });

  test('drops and wipes the oldest beyond the cap, with a warning, never the newest', () => {
    const { holder, sink } = holderWith();
    const inputs = Array.from({ length: DEFAULT_MAX_GENERATIONS + 1 }, (_, i) => shard(i + 1));
    const { copies } = captureCopies(() => {
      for (const input of inputs) holder.store(input);
    });
    assert.equal(copies.length, inputs.length);
    assert.equal(holder.generations().length, DEFAULT_MAX_GENERATIONS);
    assert.deepEqual(holder.generations()[0], 2);
    assert.deepEqual(holder.generations().at(-1), DEFAULT_MAX_GENERATIONS + 1);
    assert.ok(copies[0]?.every((byte) => byte === 0));
    const warning = sink.lines.find((line) => line.level === 'warn');
    assert.deepEqual(warning?.dropped, [1]);
  });

  test('refuses a generation older than all it holds when full', () => {
    const { holder } = holderWith(2);
    holder.store(shard(5));
    holder.store(shard(6));
    assert.throws(() => holder.store(shard(4)), ConflictError);
    assert.deepEqual(holder.generations(), [5, 6]);
    // Between held ones it is kept and the oldest goes.
    holder.store(shard(7));
    assert.deepEqual(holder.generations(), [6, 7]);
  });

  test('clear() wipes every shard', () => {
    const { holder } = holderWith();
    const inputs = [shard(1), shard(2)];
    const { copies } = captureCopies(() => {
      for (const input of inputs) holder.store(input);
    });
    assert.equal(copies.length, 2);
    holder.clear();
    assert.deepEqual(holder.generations(), []);
    assert.ok(copies.every((copy) => copy.every((byte) => byte === 0)));
  });

  test('JSON and inspect show generations only, never bytes', () => {
    const { holder } = holderWith();
    const input = shard(1, { value: new Uint8Array(SHARD_VALUE_BYTES).fill(0xab) });
    holder.store(input);
    assert.equal(JSON.stringify(holder), '{"generations":[1]}');
    const shown = inspect(holder, { showHidden: true, depth: 10 });
    assert.equal(shown, 'ShardHolder { generations: [1] }');
    assert.doesNotMatch(shown, /171|ab/);
    assert.deepEqual(Object.keys(holder), []);
  });

  test('rejects malformed shards and a cap below two as programmer errors', () => {
    const { holder } = holderWith();
    assert.throws(() => holder.store(shard(0)), RangeError);
    assert.throws(() => holder.store(shard(1, { index: 0 })), RangeError);
    assert.throws(() => holder.store(shard(1, { threshold: 1 })), RangeError);
    assert.throws(() => holder.store(shard(1, { value: new Uint8Array(3) })), RangeError);
    assert.throws(() => holderWith(1), RangeError);
    assert.deepEqual(holder.generations(), []);
  });
});
