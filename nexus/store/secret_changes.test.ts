import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import { SecretChanges } from './secret_changes.ts';

const A = parseSecretPath('app/a');
const B = parseSecretPath('app/b');

describe('SecretChanges', () => {
  test('a change wakes the waiters of its path once, with the path, and no other', () => {
    const changes = new SecretChanges();
    const woken: string[] = [];
    changes.next(A, (path) => woken.push(`a1 ${path}`));
    changes.next(A, (path) => woken.push(`a2 ${path}`));
    changes.next(B, () => woken.push('b'));
    assert.equal(changes.size, 3);
    changes.changed(A);
    assert.deepEqual(woken, ['a1 app/a', 'a2 app/a']);
    assert.equal(changes.size, 1);
    changes.changed(A);
    assert.deepEqual(woken, ['a1 app/a', 'a2 app/a'], 'a waiter woke twice');
  });

  test('a gap wakes every waiter, naming no path', () => {
    const changes = new SecretChanges();
    const woken: string[] = [];
    changes.next(A, (path) => woken.push(`a ${path}`));
    changes.next(B, (path) => woken.push(`b ${path}`));
    changes.gap();
    assert.deepEqual(woken.sort(), ['a undefined', 'b undefined']);
    assert.equal(changes.size, 0);
  });

  test('a cancelled waiter is not woken; cancelling again or after the wake does nothing', () => {
    const changes = new SecretChanges();
    const woken: string[] = [];
    const wake = () => woken.push('x');
    const cancelFirst = changes.next(A, wake);
    const cancelSecond = changes.next(A, wake);
    assert.equal(changes.size, 2, 'the same function given twice counts twice');
    cancelFirst();
    cancelFirst();
    assert.equal(changes.size, 1);
    changes.changed(A);
    assert.deepEqual(woken, ['x']);
    cancelSecond();
    assert.equal(changes.size, 0);
    // A waiter registered from inside a wake waits for the next change.
    changes.next(A, () => changes.next(A, () => woken.push('later')));
    changes.changed(A);
    assert.deepEqual(woken, ['x']);
    changes.changed(A);
    assert.deepEqual(woken, ['x', 'later']);
  });
});
