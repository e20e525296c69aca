/**
 * `prepareRead()`: a compiled hot read sees every commit made through the
 * client before they run, on a file and in memory, and on a file they cannot
 * write. `write()`: group commit on the writer connection, on real SQLite,
 * with a failing write and a failing COMMIT.
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

const INSERT_PATH_SQL = `
  INSERT INTO secret_metadata (path, created_at_ms, updated_at_ms, current_version, oldest_version)
  VALUES (?1, 1, 1, 1, 1)`;
const PATHS_SQL = 'SELECT path FROM secret_metadata ORDER BY path';
const storedPaths = async (database: SqliteDatabase) =>
  (await database.db.all<{ path: string }>(sql.raw(PATHS_SQL))).map((row) => row.path);

let writeFiles = 0;
for (const [name, open] of [
  ['a file', () => openSqliteDatabase({ path: join(dir, `write-${++writeFiles}.db`) })],
  ['memory', () => openMemoryDatabase()],
] as const) {
  describe(`write() on ${name}`, () => {
    test('the writes of one turn commit together; one that fails changes nothing', async () => {
      const database = await open();
      try {
        const insert = database.prepareWrite(INSERT_PATH_SQL);
        const writes = ['g/a', 'g/b', 'g/a', 'g/c'].map((path) =>
          database.write(() => {
            insert.run([path]);
            return path;
          }, 1),
        );
        const settled = await Promise.allSettled(writes);
        assert.deepEqual(
          settled.map((s) => s.status),
          ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
        );
        assert.match(String((settled[2] as PromiseRejectedResult).reason), /UNIQUE/);
        assert.deepEqual(await storedPaths(database), ['g/a', 'g/b', 'g/c']);
        // A compiled read sees the committed writes.
        assert.deepEqual(await database.prepareRead(COUNT_SQL).get(['']), [3]);
      } finally {
        await database.close();
      }
    });

    test('a COMMIT that fails fails every write of its group and keeps none', async () => {
      const database = await open();
      try {
        const insert = database.prepareWrite(INSERT_PATH_SQL);
        // A deferred foreign key is checked only at COMMIT: a version row
        // without its path makes the COMMIT itself fail.
        const deferKeys = database.prepareWrite('PRAGMA defer_foreign_keys = ON');
        const orphan = database.prepareWrite(
          `INSERT INTO secrets (path, version, created_at_ms, destroyed, ciphertext)
           VALUES ('nowhere', 1, 1, 0, x'00')`,
        );
        const writes = [
          database.write(() => insert.run(['c/1']), 1),
          database.write(() => {
            deferKeys.run([]);
            orphan.run([]);
          }, 1),
          database.write(() => insert.run(['c/2']), 1),
        ];
        const settled = await Promise.allSettled(writes);
        for (const s of settled) {
          assert.equal(s.status, 'rejected');
          assert.match(String(s.reason), /FOREIGN KEY/);
        }
        assert.deepEqual(await storedPaths(database), []);
        // The connection is usable again: the next group commits.
        await database.write(() => insert.run(['c/3']), 1);
        assert.deepEqual(await storedPaths(database), ['c/3']);
      } finally {
        await database.close();
      }
    });

    test('close() commits the writes still queued, then write() is refused', async () => {
      const database = await open();
      const insert = database.prepareWrite(INSERT_PATH_SQL);
      const queued = database.write(() => insert.run(['q/1']), 1);
      await database.close();
      await queued;
      await assert.rejects(
        database.write(() => undefined, 1),
        /closed/,
      );
    });
  });
}

test('close() leaves what the queued writes committed in the file', async () => {
  const path = join(dir, 'close.db');
  let database = await openSqliteDatabase({ path });
  const insert = database.prepareWrite(INSERT_PATH_SQL);
  const queued = database.write(() => insert.run(['kept/1']), 1);
  await database.close();
  await queued;
  database = await openSqliteDatabase({ path });
  try {
    assert.deepEqual(await storedPaths(database), ['kept/1']);
  } finally {
    await database.close();
  }
});

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
