import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LoadPlan, type PlanSpec } from './load_plan.ts';

const TEMPLATE = '/v1/secrets/data/bench/small/{n}';

function plan(spec: Partial<PlanSpec>, randoms: number[] = []): LoadPlan {
  let i = 0;
  return new LoadPlan(
    {
      pathTemplate: TEMPLATE,
      pick: 'random',
      pathCount: 10,
      writeShare: 0,
      connections: 1,
      ...spec,
    },
    () => randoms[i++] ?? 0,
  );
}

const readAnswer = (version: number) =>
  JSON.stringify({ path: 'bench/small/1', version, data: { value: 'vvv' }, createdAt: 'x' });
const writeAnswer = (version: number) =>
  JSON.stringify({
    path: 'bench/small/1',
    currentVersion: version,
    versions: [{ version: 1 }, { version }],
  });

describe('LoadPlan', () => {
  test('a sequence wraps after pathCount and skips numbers still in flight', () => {
    const p = plan({ pick: 'sequence', pathCount: 3, writeShare: 1, connections: 2 });
    const first = p.next();
    const second = p.next();
    assert.deepEqual([first.n, second.n], [1, 2]);
    assert.equal(first.path, '/v1/secrets/data/bench/small/1');
    p.answered(first, 200, '');
    const third = p.next();
    assert.equal(third.n, 3);
    // 2 and 3 are in flight: the sequence wraps to 1, then skips 2 and 3.
    assert.equal(p.next().n, 1);
    p.answered(second, 200, '');
    assert.equal(p.next().n, 2);
  });

  test('concurrent requests of a sequence never share a path', () => {
    const p = plan({ pick: 'sequence', pathCount: 20, writeShare: 1, connections: 16 });
    const inFlight = Array.from({ length: 16 }, () => p.next());
    for (let round = 0; round < 200; round += 1) {
      const numbers = inFlight.map((planned) => planned.n);
      assert.equal(new Set(numbers).size, numbers.length);
      // Answer one in the middle, out of order, and send another in its place.
      const index = (round * 7) % inFlight.length;
      p.answered(inFlight[index] as (typeof inFlight)[number], 500, '');
      inFlight[index] = p.next();
    }
  });

  test('when every number is in flight, the sequence still goes on', () => {
    const p = plan({ pick: 'sequence', pathCount: 2, writeShare: 1, connections: 2 });
    assert.deepEqual([p.next().n, p.next().n, p.next().n], [1, 2, 1]);
  });

  test('random picks cover 1 to pathCount', () => {
    const p = plan({ pathCount: 10 }, [0, 0.999, 0.5]);
    assert.deepEqual([p.next().n, p.next().n, p.next().n], [1, 10, 6]);
  });

  test('writeShare decides each request by one draw', () => {
    // Each next() draws the path first, then whether it writes.
    const p = plan({ writeShare: 0.1 }, [0, 0.05, 0, 0.5]);
    assert.equal(p.next().write, true);
    assert.equal(p.next().write, false);
    assert.equal(plan({ writeShare: 1 }).next().write, true);
    assert.equal(plan({ writeShare: 0 }).next().write, false);
  });

  test('a mixed load counts reads older than an acknowledged write sent before them', () => {
    // Draws: path 1 and write, path 1 and read, path 1 and read.
    const p = plan({ writeShare: 0.5 }, [0, 0, 0, 0.9, 0, 0.9]);
    const write = p.next();
    const before = p.next();
    assert.equal(before.atLeast, 0);
    p.answered(write, 200, writeAnswer(5));
    const after = p.next();
    assert.equal(after.atLeast, 5);
    // Sent before the write was acknowledged: an older version is allowed.
    p.answered(before, 200, readAnswer(4));
    p.answered(after, 200, readAnswer(4));
    assert.deepEqual(p.readChecks(), { checkedReads: 2, readsAfterWrites: 1, staleReads: 1 });
  });

  test('a newer acknowledged version is never replaced by an older one', () => {
    const p = plan({ writeShare: 0.5 }, [0, 0, 0, 0, 0, 0.9]);
    const a = p.next();
    const b = p.next();
    p.answered(b, 200, writeAnswer(7));
    p.answered(a, 200, writeAnswer(6));
    assert.equal(p.next().atLeast, 7);
  });

  test('failed answers acknowledge nothing and check nothing', () => {
    const p = plan({ writeShare: 0.5 }, [0, 0, 0, 0.9, 0, 0.9]);
    p.answered(p.next(), 503, writeAnswer(9));
    const read = p.next();
    assert.equal(read.atLeast, 0);
    p.answered(read, 500, '');
    assert.deepEqual(p.readChecks(), { checkedReads: 0, readsAfterWrites: 0, staleReads: 0 });
  });

  test('a load that only reads or only writes has no read checks', () => {
    assert.equal(plan({ writeShare: 0 }).readChecks(), undefined);
    assert.equal(plan({ writeShare: 1 }).readChecks(), undefined);
  });

  test('a spec it cannot honour is refused', () => {
    assert.throws(() => plan({ pathTemplate: '/v1/x' }), RangeError);
    assert.throws(() => plan({ pathCount: 0 }), RangeError);
    assert.throws(() => plan({ writeShare: 1.5 }), RangeError);
    assert.throws(() => plan({ writeShare: Number.NaN }), RangeError);
    assert.throws(() => plan({ pick: 'sequence', pathCount: 4, connections: 16 }), RangeError);
  });
});
