/**
 * The PostgreSQL change feed over a fake listening connection: it hands
 * changes to its subscribers, it is current only while its own heartbeats
 * come back within the bound, a lost or silent connection stops it at once
 * and is replaced, and a reconnection reports a gap. (The real connection is
 * in `secret_store.test.ts` and test/integration/postgres.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CHANGE_FEED_BOUND_MS,
  CHANGES_CHANNEL,
  type ChangeFeedStatus,
  changePayload,
  PgChangeFeed,
} from './change_feed.ts';
import type { ListenHandlers, PgListener } from './db.ts';

/** Resolves once `condition()` holds; fails after the deadline. */
async function until(condition: () => boolean, what: string, deadlineMs = 5000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A fake server: connections it opened, whether it echoes heartbeats, a clock. */
function fakeServer() {
  const connections: { handlers: ListenHandlers; channels: readonly string[]; closed: boolean }[] =
    [];
  const world = {
    nowMs: 0,
    /** False: the connection stays open but delivers nothing (a silent stall). */
    isDelivering: true,
    refuse: false,
    connections,
    current() {
      const last = connections.at(-1);
      assert.ok(last !== undefined && !last.closed);
      return last;
    },
    async listen(channels: readonly string[], handlers: ListenHandlers): Promise<PgListener> {
      if (world.refuse) throw new Error('connection refused');
      const connection = { handlers, channels, closed: false };
      connections.push(connection);
      return {
        backendPid: connections.length,
        async notify(channel, payload) {
          if (world.isDelivering && !connection.closed) {
            queueMicrotask(() => handlers.onNotification(channel, payload));
          }
        },
        async close() {
          connection.closed = true;
        },
      };
    },
  };
  return world;
}

function feedOn(server: ReturnType<typeof fakeServer>) {
  const statuses: ChangeFeedStatus[] = [];
  const malformed: string[] = [];
  const feed = new PgChangeFeed({
    listen: (channels, handlers) => server.listen(channels, handlers),
    onStatus: (status) => statuses.push(status),
    onMalformed: (payload) => malformed.push(payload),
    now: () => server.nowMs,
  });
  return { feed, statuses, malformed };
}

describe('PgChangeFeed', () => {
  test('hands each change to its subscribers in order, and reports what it cannot read as a gap', async () => {
    const server = fakeServer();
    const { feed, malformed } = feedOn(server);
    const seen: string[] = [];
    const unsubscribe = feed.onChange((path, version) => seen.push(`${path}@${version}`));
    let gaps = 0;
    feed.onGap(() => {
      gaps += 1;
    });
    feed.start();
    try {
      await until(() => server.connections.length === 1, 'connected');
      const { handlers, channels } = server.current();
      assert.ok(channels.includes(CHANGES_CHANNEL));
      const gapsBefore = gaps; // listening itself starts with one
      handlers.onNotification(CHANGES_CHANNEL, changePayload('app/a', 2));
      handlers.onNotification(CHANGES_CHANNEL, '{"path":"../x","version":1}');
      handlers.onNotification(CHANGES_CHANNEL, 'nonsense');
      handlers.onNotification(CHANGES_CHANNEL, changePayload('app/b', 0));
      assert.deepEqual(seen, ['app/a@2', 'app/b@0']);
      assert.deepEqual(malformed, ['{"path":"../x","version":1}', 'nonsense']);
      // Which path changed is unknown: subscribers forget everything.
      assert.equal(gaps - gapsBefore, 2);
      unsubscribe();
      handlers.onNotification(CHANGES_CHANNEL, changePayload('app/c', 1));
      assert.equal(seen.length, 2);
    } finally {
      await feed.close();
    }
  });

  test('is current only while its newest heartbeat was sent less than the bound ago', async () => {
    const server = fakeServer();
    const { feed } = feedOn(server);
    assert.equal(feed.isCurrent(), false);
    feed.start();
    try {
      await until(() => feed.isCurrent(), 'the first heartbeat came back');
      // The connection stays open but delivers nothing from here on.
      server.isDelivering = false;
      server.nowMs += CHANGE_FEED_BOUND_MS - 1;
      assert.equal(feed.isCurrent(), true);
      server.nowMs += 1;
      assert.equal(feed.isCurrent(), false, 'current with no heartbeat for the bound');
      server.isDelivering = true;
      await until(() => feed.isCurrent(), 'a later heartbeat came back');
      // Someone else's stamp on our channel cannot make it current beyond the clock.
      const { handlers, channels } = server.current();
      const beat = channels.find((channel) => channel !== CHANGES_CHANNEL) as string;
      server.isDelivering = false;
      handlers.onNotification(beat, String(server.nowMs + 10 * CHANGE_FEED_BOUND_MS));
      server.nowMs += CHANGE_FEED_BOUND_MS;
      assert.equal(feed.isCurrent(), false);
    } finally {
      await feed.close();
    }
  });

  test('a lost connection stops it at once; it reconnects and reports a gap', async () => {
    const server = fakeServer();
    const { feed, statuses } = feedOn(server);
    let gaps = 0;
    feed.onGap(() => {
      gaps += 1;
    });
    const seen: string[] = [];
    feed.onChange((path) => seen.push(path));
    feed.start();
    try {
      await until(() => feed.isCurrent(), 'current');
      assert.equal(gaps, 1);
      const first = server.current();
      server.refuse = true;
      first.handlers.onLost(new Error('terminating connection due to administrator command'));
      assert.equal(feed.isCurrent(), false);
      assert.deepEqual(statuses.at(-1), {
        state: 'lost',
        error: 'terminating connection due to administrator command',
        retryInMs: 100,
      });
      await until(() => statuses.length >= 3, 'a refused reconnection');
      assert.equal(statuses.at(-1)?.state, 'lost');
      server.refuse = false;
      await until(() => feed.isCurrent(), 'current again');
      assert.equal(gaps, 2);
      assert.deepEqual(statuses.at(-1), { state: 'listening', backendPid: 2 });
      // What the old connection still says is ignored.
      first.handlers.onNotification(CHANGES_CHANNEL, changePayload('old/x', 1));
      assert.deepEqual(seen, []);
    } finally {
      await feed.close();
    }
  });

  test('a connection silent for 5 s is replaced', async () => {
    const server = fakeServer();
    const { feed, statuses } = feedOn(server);
    feed.start();
    try {
      await until(() => feed.isCurrent(), 'current');
      server.isDelivering = false;
      server.nowMs += 5001;
      await until(() => statuses.some((status) => status.state === 'lost'), 'given up');
      assert.match(JSON.stringify(statuses), /No heartbeat for 5000 ms/);
      assert.equal(server.connections[0]?.closed, true);
      server.isDelivering = true;
      await until(() => feed.isCurrent(), 'current on a new connection');
      assert.equal(server.connections.length, 2);
    } finally {
      await feed.close();
    }
  });
});
