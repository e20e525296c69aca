/**
 * PostgreSQL for tests. The suites run when `SPIKE_TEST_DATABASE_URL` names a
 * database whose role may create databases (`scripts/postgres.sh` prints one,
 * and CI exports it); otherwise they are skipped with a notice naming the
 * variable. Each fixture works in its own throw-away database, dropped when
 * its file's tests end, so nested fixtures, parallel files and repeated runs
 * never see each other's rows. (A schema per run is not enough: drizzle-kit writes
 * the foreign key as `REFERENCES "public"."secret_metadata"`.)
 */

import process from 'node:process';
import pg from 'pg';
import { openPostgresDatabase, type PostgresDatabase } from '../../nexus/store/postgres/db.ts';
import { delay } from '../../shared/runtime/delay.ts';

export const TEST_DATABASE_URL_ENV = 'SPIKE_TEST_DATABASE_URL';

/** The base URL, or undefined when the PostgreSQL tests are to be skipped. */
export function testDatabaseUrl(): string | undefined {
  const url = process.env[TEST_DATABASE_URL_ENV]?.trim();
  return url === undefined || url === '' ? undefined : url;
}

/** node:test's `skip` option: false when PostgreSQL is available, else why not. */
export function postgresSkip(): string | false {
  return testDatabaseUrl() === undefined
    ? `${TEST_DATABASE_URL_ENV} is not set; run "export ${TEST_DATABASE_URL_ENV}=$(sudo bash scripts/postgres.sh)" to run the PostgreSQL tests`
    : false;
}

/** Every database made here, with the server URL it was made on. */
const created: { base: string; name: string }[] = [];

/**
 * A new, empty database for one fixture; returns its URL. Every test file
 * that makes them calls `after(dropScratchDatabases)` at its top level (a
 * hook registered inside a test would run when that test ends). About
 * 0.1 s each: cheaper than any cleanup that would also isolate nested
 * fixtures.
 */
export async function createScratchDatabase(
  base: string | undefined = testDatabaseUrl(),
): Promise<string> {
  if (base === undefined) {
    throw new Error(`${TEST_DATABASE_URL_ENV} is not set`);
  }
  const name = `spike_test_${process.pid}_${crypto.randomUUID().slice(0, 8)}`;
  await admin(base, `CREATE DATABASE "${name}"`);
  created.push({ base, name });
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.href;
}

/**
 * Drops every database this process created, with any connection still open.
 * A backend our role may not end (an autovacuum worker on the new tables:
 * 42501) makes the drop fail for the moment; it is tried again while the
 * worker finishes, up to DROP_TRIES times.
 */
export async function dropScratchDatabases(): Promise<void> {
  for (const { base, name } of created.splice(0)) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await admin(base, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        break;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (attempt >= DROP_TRIES || (code !== '42501' && code !== '55006')) throw err;
        await delay(DROP_RETRY_MS);
      }
    }
  }
}

const DROP_TRIES = 25;
const DROP_RETRY_MS = 200;

async function admin(base: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: base, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** A migrated pool on a new, empty scratch database, and that database's URL. */
export async function openScratchDatabase(): Promise<{
  readonly database: PostgresDatabase;
  readonly url: string;
}> {
  const url = await createScratchDatabase();
  return { database: await openPostgresDatabase({ url }), url };
}
