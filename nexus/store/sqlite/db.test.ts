/**
 * `prepareRead()`: a compiled hot read sees every commit made through the
 * client before they run, on a file and in memory, and on a file they cannot
 * write.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { sql } from 'drizzle-orm';
import { openMemoryDatabase, openSqliteDatabase, type SqliteDatabase } from './db.ts';

const dir = mkdtempSync(join(tmpdir(), 'spike-db-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const COUNT_SQL = 'SELECT count(*) FROM secret_metadata WHERE path >= ?1';
const insert = (database: SqliteDatabase, path: string) =>
  database.db.run(
    sql`INSERT INTO secret_metadata (path, created_at_ms, updated_at_ms, current_version, oldest_version)
        VALUES (${path}, 1, 1, 1, 1)`,
  );

for (const [name, open] of [
  ['a file', () => openSqliteDatabase({ path: join(dir, 'read.db') })],
  ['memory', () => openMemoryDatabase()],
] as const) {
  describe(`prepareRead() on ${name}`, () => {
    test('a compiled read sees each commit made through the client before it runs', async () => {
      const database = await open();
      try {
        const count = database.prepareRead(COUNT_SQL);
        assert.deepEqual(await count.get(['']), [0]);
        await insert(database, 'a/b');
        assert.deepEqual(await count.get(['']), [1]);
        await insert(database, 'a/c');
        assert.deepEqual(await count.get(['a/c']), [1]);
      } finally {
        await database.close();
      }
    });
  });
}

test('prepareRead() on a file cannot write', async () => {
  const database = await openSqliteDatabase({ path: join(dir, 'readonly.db') });
  try {
    await insert(database, 'x');
    // RETURNING makes it a statement with rows, so only query_only can refuse it.
    const remove = database.prepareRead(
      'DELETE FROM secret_metadata WHERE path = ?1 RETURNING path',
    );
    await assert.rejects(remove.get(['x']), /readonly|query_only|attempt to write/i);
    const count = database.prepareRead(COUNT_SQL);
    assert.deepEqual(await count.get(['']), [1]);
  } finally {
    await database.close();
  }
});

test('a file opens with synchronous full by default or normal when asked, and nothing else', async () => {
  for (const [synchronous, want] of [
    [undefined, 2],
    ['normal', 1],
  ] as const) {
    const database = await openSqliteDatabase({
      path: join(dir, `sync-${synchronous ?? 'default'}.db`),
      ...(synchronous === undefined ? {} : { synchronous }),
    });
    try {
      const [row] = await database.db.all<{ synchronous: number }>(sql`PRAGMA synchronous`);
      assert.equal(row?.synchronous, want);
    } finally {
      await database.close();
    }
  }
  await assert.rejects(
    openSqliteDatabase({ path: join(dir, 'sync-bad.db'), synchronous: 'off' as never }),
    RangeError,
  );
});
