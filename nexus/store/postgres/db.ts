/**
 * Opens the PostgreSQL database of Nexus. The only file that imports the
 * PostgreSQL driver (`pg`, which runs on Node and Deno alike).
 *
 * Opening makes a connection pool, then applies the committed drizzle-kit
 * migrations under `migrations/` on one connection that holds a
 * PostgreSQL advisory lock meanwhile: several Nexus processes starting at
 * once on the same database take turns, and each one after the first finds
 * the migrations applied. The lock is a session lock, released explicitly
 * (and by PostgreSQL if the connection dies).
 *
 * `listen()` opens one more connection, outside the pool, that LISTENs on
 * channels (the change feed, `change_feed.ts`): a pooled connection would be
 * handed to other queries, and a LISTEN lasts only as long as its session.
 *
 * The URL may carry a password: it appears only in redacted form
 * (`redactUrl`) in errors; the driver's own errors (kept as `cause`) never
 * contain it.
 */
import { fileURLToPath } from 'node:url';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { redactUrl } from '../../../shared/config/redact_url.ts';
import { InternalError } from '../../../shared/errors/errors.ts';
import * as schema from './schema.ts';

/** The drizzle handle over the Nexus schema on PostgreSQL. */
export type PgDb = NodePgDatabase<typeof schema>;

export interface OpenPostgresDatabaseOptions {
  /** `postgres://user:password@host:port/database?...` (libpq's URL form). */
  readonly url: string;
  /** Connections in the pool. Default 10. */
  readonly maxConnections?: number;
  /** How long to wait for a connection (also at start-up). Default 10000. */
  readonly connectTimeoutMs?: number;
  /**
   * Called when an idle pooled connection fails (the server restarted, say);
   * the pool replaces it. Without this, such an error would end the process.
   */
  readonly onIdleError?: (err: Error) => void;
}

/** What a listening connection reports; called in the order the server sends. */
export interface ListenHandlers {
  /** A notification on one of the channels, in commit order of the senders. */
  onNotification(channel: string, payload: string): void;
  /** The connection failed or ended; not called after `close()`. */
  onLost(err: Error): void;
}

/** A dedicated connection that LISTENs (see `listen()`). */
export interface PgListener {
  /** The server process of this connection (`pg_stat_activity.pid`), for logs. */
  readonly backendPid: number;
  /** Sends `payload` on `channel` from this connection, in a transaction of its own. */
  notify(channel: string, payload: string): Promise<void>;
  /** Ends the connection. Idempotent. */
  close(): Promise<void>;
}

export interface PostgresDatabase {
  readonly db: PgDb;
  /** The URL with its password masked, for logs. */
  readonly redactedUrl: string;
  /**
   * Opens a connection of its own (not pooled) that LISTENs on `channels`
   * (lower-case identifiers) until closed or lost.
   */
  listen(channels: readonly string[], handlers: ListenHandlers): Promise<PgListener>;
  /** Ends every connection of the pool. Idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_MAX_CONNECTIONS = 10;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Where the committed drizzle-kit migrations live, whatever the cwd or runtime. */
const MIGRATIONS_FOLDER = fileURLToPath(new URL('./migrations', import.meta.url));

/**
 * The advisory lock key that serialises migrations: an arbitrary constant
 * ("spike-ts" as bytes, shortened to fit a bigint), the same in every process.
 */
const MIGRATION_LOCK_KEY = 0x7370_696b_6574_73n;

export async function openPostgresDatabase(
  options: OpenPostgresDatabaseOptions,
): Promise<PostgresDatabase> {
  const {
    url,
    maxConnections = DEFAULT_MAX_CONNECTIONS,
    connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
    onIdleError = () => {},
  } = options;
  const redactedUrl = redactUrl(url);
  if (typeof url !== 'string' || !/^postgres(ql)?:\/\//.test(url)) {
    throw new TypeError(`Expected a postgres:// URL, got "${redactedUrl}"`);
  }
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1) {
    throw new RangeError(`Expected maxConnections >= 1, got ${maxConnections}`);
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: maxConnections,
    connectionTimeoutMillis: connectTimeoutMs,
  });
  pool.on('error', onIdleError);
  const db = drizzle({ client: pool, schema });
  try {
    await migrateLocked(pool);
  } catch (err) {
    await pool.end();
    throw new InternalError(`Cannot prepare the PostgreSQL database at "${redactedUrl}"`, {
      cause: err,
    });
  }
  let closing: Promise<void> | undefined;
  return {
    db,
    redactedUrl,
    listen: (channels, handlers) => openListener(url, connectTimeoutMs, channels, handlers),
    close() {
      closing ??= pool.end();
      return closing;
    },
  };
}

/** Applies the migrations on one connection while it holds the advisory lock. */
async function migrateLocked(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  let isBroken = false;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    try {
      await migrate(drizzle({ client, schema }), { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
    }
  } catch (err) {
    // A connection that failed mid-way may still hold the lock: drop it.
    isBroken = true;
    throw err;
  } finally {
    client.release(isBroken);
  }
}

/** A channel name that needs no quoting rules beyond the quotes themselves. */
const CHANNEL_REGEXP = /^[a-z_][a-z0-9_]{0,62}$/;

async function openListener(
  url: string,
  connectTimeoutMs: number,
  channels: readonly string[],
  handlers: ListenHandlers,
): Promise<PgListener> {
  for (const channel of channels) {
    if (!CHANNEL_REGEXP.test(channel)) {
      throw new TypeError(`Expected a lower-case identifier as a channel name, got "${channel}"`);
    }
  }
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    // A dead peer shows up as an error instead of silence (the feed's
    // heartbeat covers a connection that stays open but delivers nothing).
    keepAlive: true,
    application_name: 'spike-nexus-change-feed',
  });
  let isDone = false;
  const end = () => {
    isDone = true;
    return client.end().catch(() => {});
  };
  const lost = (err: Error) => {
    if (isDone) return;
    void end();
    handlers.onLost(err);
  };
  client.on('error', lost);
  client.on('end', () => lost(new Error('The listening connection ended')));
  client.on('notification', (message) => {
    if (!isDone) handlers.onNotification(message.channel, message.payload ?? '');
  });
  try {
    await client.connect();
    for (const channel of channels) await client.query(`LISTEN "${channel}"`);
  } catch (err) {
    await end();
    throw err;
  }
  return {
    backendPid: (client as unknown as { processID: number }).processID,
    async notify(channel, payload) {
      await client.query('SELECT pg_notify($1, $2)', [channel, payload]);
    },
    close: end,
  };
}
