/**
 * Group commit on a scripted connection: which statements it runs, in which
 * order, when each write settles, and how failures spread (only to their own
 * write, or to the whole group when the transaction is lost). The real
 * SQLite cases are in db.test.ts and secret_store.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InternalError } from '../../../shared/errors/errors.ts';
import { type CommitConnection, GroupCommit } from './_group_commit.ts';

/** A connection that logs what it runs; `failOn` makes one statement throw (once). */
class ScriptedConnection implements CommitConnection {
  readonly log: string[] = [];
  inTransaction = false;
  failOn: string | undefined;

  run(sql: string): void {
    if (sql === this.failOn) {
      this.failOn = undefined;
      this.log.push(`${sql} failed`);
      throw new Error(`${sql} failed`);
    }
    this.log.push(sql);
    if (sql.startsWith('BEGIN')) this.inTransaction = true;
    if (sql === 'COMMIT' || sql === 'ROLLBACK') this.inTransaction = false;
  }
}

/** Settles every promise; what each resolved to, or its error's message. */
async function outcomes(promises: readonly Promise<unknown>[]): Promise<unknown[]> {
  const settled = await Promise.allSettled(promises);
  return settled.map((s) =>
    s.status === 'fulfilled' ? s.value : `error: ${(s.reason as Error).message}`,
  );
}

const countOf = (log: readonly string[], sql: string) => log.filter((s) => s === sql).length;

describe('GroupCommit', () => {
  test('the writes of one turn run in one transaction, each in a savepoint, and settle after its commit', async () => {
    const connection = new ScriptedConnection();
    const group = new GroupCommit(connection);
    const settledAt: number[] = [];
    const writes = [1, 2, 3].map((n) =>
      group
        .submit(() => {
          connection.log.push(`write ${n}`);
          return n * 10;
        }, 1)
        .then((value) => {
          settledAt.push(connection.log.length);
          return value;
        }),
    );
    // Nothing runs in the turn that submits.
    assert.deepEqual(connection.log, []);
    assert.deepEqual(await outcomes(writes), [10, 20, 30]);
    assert.deepEqual(connection.log, [
      'BEGIN IMMEDIATE',
      ...[1, 2, 3].flatMap((n) => ['SAVEPOINT write', `write ${n}`, 'RELEASE write']),
      'COMMIT',
    ]);
    // Every write was acknowledged only once the COMMIT had run.
    assert.ok(settledAt.every((at) => at === connection.log.length));
  });

  test('a write that throws is rolled back to its savepoint alone; the others commit', async () => {
    const connection = new ScriptedConnection();
    const group = new GroupCommit(connection);
    const writes = [
      group.submit(() => 'a', 1),
      group.submit(() => {
        throw new Error('refused');
      }, 1),
      group.submit(() => 'c', 1),
    ];
    assert.deepEqual(await outcomes(writes), ['a', 'error: refused', 'c']);
    assert.deepEqual(connection.log, [
      'BEGIN IMMEDIATE',
      'SAVEPOINT write',
      'RELEASE write',
      'SAVEPOINT write',
      'ROLLBACK TO write',
      'RELEASE write',
      'SAVEPOINT write',
      'RELEASE write',
      'COMMIT',
    ]);
  });

  test('a failed COMMIT fails every write of the group and rolls it back', async () => {
    const connection = new ScriptedConnection();
    const group = new GroupCommit(connection);
    connection.failOn = 'COMMIT';
    const writes = [group.submit(() => 'a', 1), group.submit(() => 'b', 1)];
    assert.deepEqual(await outcomes(writes), ['error: COMMIT failed', 'error: COMMIT failed']);
    assert.deepEqual(connection.log.slice(-2), ['COMMIT failed', 'ROLLBACK']);
    assert.equal(connection.inTransaction, false);
    // The next turn starts afresh.
    assert.deepEqual(await outcomes([group.submit(() => 'next', 1)]), ['next']);
  });

  test('a write that loses the whole transaction fails every write of the group', async () => {
    const connection = new ScriptedConnection();
    const group = new GroupCommit(connection);
    const writes = [
      group.submit(() => 'a', 1),
      group.submit(() => {
        // As SQLite does on a full disk: the transaction is rolled back.
        connection.inTransaction = false;
        throw new Error('disk full');
      }, 1),
      group.submit(() => 'c', 1),
    ];
    assert.deepEqual(await outcomes(writes), [
      'error: disk full',
      'error: disk full',
      'error: disk full',
    ]);
    assert.equal(countOf(connection.log, 'COMMIT'), 0);
    assert.equal(countOf(connection.log, 'ROLLBACK TO write'), 0);
  });

  test('a failed BEGIN fails every write of the group and runs none', async () => {
    const connection = new ScriptedConnection();
    const group = new GroupCommit(connection);
    connection.failOn = 'BEGIN IMMEDIATE';
    let ran = 0;
    const writes = [1, 2].map(() => group.submit(() => ran++, 1));
    assert.deepEqual(await outcomes(writes), [
      'error: BEGIN IMMEDIATE failed',
      'error: BEGIN IMMEDIATE failed',
    ]);
    assert.equal(ran, 0);
  });

  test('a write that returns a promise is refused and rolled back', async () => {
    const connection = new ScriptedConnection();
    const group = new GroupCommit(connection);
    const writes = [group.submit(() => Promise.resolve(1), 1), group.submit(() => 2, 1)];
    const [first, second] = await Promise.allSettled(writes);
    assert.ok(first?.status === 'rejected' && first.reason instanceof InternalError);
    assert.deepEqual(second, { status: 'fulfilled', value: 2 });
  });

  test('a group takes at most maxWrites writes; the rest commit in the next turns', async () => {
    const connection = new ScriptedConnection();
    const group = new GroupCommit(connection, { maxWrites: 3, maxBytes: 1_000_000 });
    const writes = Array.from({ length: 7 }, (_, i) => group.submit(() => i, 1));
    assert.deepEqual(await outcomes(writes), [0, 1, 2, 3, 4, 5, 6]);
    const sizes = connection.log
      .join(' ')
      .split('BEGIN IMMEDIATE')
      .slice(1)
      .map((part) => part.split('SAVEPOINT').length - 1);
    assert.deepEqual(sizes, [3, 3, 1]);
  });

  test('a group takes at most maxBytes, beyond its first write, which always goes', async () => {
    const connection = new ScriptedConnection();
    const group = new GroupCommit(connection, { maxWrites: 100, maxBytes: 10 });
    const writes = [50, 4, 4, 4, 20].map((bytes) => group.submit(() => bytes, bytes));
    assert.deepEqual(await outcomes(writes), [50, 4, 4, 4, 20]);
    const sizes = connection.log
      .join(' ')
      .split('BEGIN IMMEDIATE')
      .slice(1)
      .map((part) => part.split('SAVEPOINT').length - 1);
    // 50 alone; 4 + 4 (a third 4 would pass 10); 4 alone (20 would pass it); 20 alone.
    assert.deepEqual(sizes, [1, 2, 1, 1]);
  });

  test('close() commits what is queued at once, then refuses new writes', async () => {
    const connection = new ScriptedConnection();
    const group = new GroupCommit(connection);
    const queued = group.submit(() => 'queued', 1);
    group.close();
    assert.equal(countOf(connection.log, 'COMMIT'), 1);
    assert.equal(await queued, 'queued');
    await assert.rejects(
      group.submit(() => 'late', 1),
      InternalError,
    );
  });

  test('refuses limits that would take no write', () => {
    const connection = new ScriptedConnection();
    assert.throws(() => new GroupCommit(connection, { maxWrites: 0, maxBytes: 1 }), RangeError);
    assert.throws(() => new GroupCommit(connection, { maxWrites: 1, maxBytes: -1 }), RangeError);
  });
});
