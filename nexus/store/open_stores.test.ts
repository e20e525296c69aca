/**
 * What `openStores` wires on PostgreSQL for watchers (ADR 0024): the change
 * feed runs even with the cache of sealed rows off, a write through one
 * Nexus wakes the waiters of its path in another, and a gap of the feed (a
 * lost listening connection, reconnected) wakes every waiter, so none sleeps
 * past a change it may have missed. Skipped without PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { sql } from 'drizzle-orm';
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import {
  createScratchDatabase,
  dropScratchDatabases,
  postgresSkip,
  TEST_DATABASE_URL_ENV,
} from '../../test/harness/postgres.ts';
import { openStores, type Stores } from './open_stores.ts';
import type { ChangeFeedStatus } from './postgres/change_feed.ts';
import { openPostgresDatabase } from './postgres/db.ts';

const skip = postgresSkip();
after(dropScratchDatabases);

const KEY = randomBytes(32);
const NO_CACHE_LIMITS = { maxEntries: 0, maxBytes: 0 };

/** Resolves once `condition()` holds; fails after the deadline. */
async function until(condition: () => boolean, what: string, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves when `woken` is; fails after the deadline. */
async function within<T>(woken: Promise<T>, what: string, deadlineMs = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting until ${what}`)), deadlineMs);
  });
  try {
    return await Promise.race([woken, late]);
  } finally {
    clearTimeout(timer);
  }
}

interface Opened {
  readonly stores: Stores;
  readonly statuses: ChangeFeedStatus[];
}

async function openNexusStores(url: string): Promise<Opened> {
  const statuses: ChangeFeedStatus[] = [];
  const stores = await openStores({
    backend: { kind: 'postgres', url },
    keyring: (use) => use(KEY, 1),
    maxVersionsDefault: 3,
    cache: NO_CACHE_LIMITS,
    onChangeFeed: (status) => statuses.push(status),
  });
  await until(() => statuses.some((s) => s.state === 'listening'), 'the change feed listens');
  return { stores, statuses };
}

if (skip !== false) {
  test(`openStores on PostgreSQL (${TEST_DATABASE_URL_ENV})`, { skip }, () => {});
} else {
  describe('openStores on PostgreSQL, for watchers', () => {
    test('with the cache off, a write through one Nexus wakes the waiters of its path in another', async () => {
      const url = await createScratchDatabase();
      const a = await openNexusStores(url);
      const b = await openNexusStores(url);
      try {
        const path = parseSecretPath('watch/feed');
        const woken = new Promise<void>((resolve) => b.stores.changes.next(path, () => resolve()));
        await a.stores.secrets.put(path, { v: '1' });
        await within(woken, 'B woke');
        assert.equal(await b.stores.secrets.currentVersion(path), 1);
      } finally {
        await a.stores.close();
        await b.stores.close();
      }
    });

    test('a lost and reconnected feed wakes every waiter', async () => {
      const url = await createScratchDatabase();
      const b = await openNexusStores(url);
      const admin = await openPostgresDatabase({ url });
      try {
        const woken = Promise.all(
          ['watch/x', 'watch/y'].map(
            (text) =>
              new Promise<void>((resolve) =>
                b.stores.changes.next(parseSecretPath(text), () => resolve()),
              ),
          ),
        );
        const listening = b.statuses.at(-1);
        assert.ok(listening?.state === 'listening');
        await admin.db.execute(sql`SELECT pg_terminate_backend(${listening.backendPid})`);
        await within(woken, 'every waiter woke');
        assert.equal(b.stores.changes.size, 0);
      } finally {
        await admin.close();
        await b.stores.close();
      }
    });
  });
}
