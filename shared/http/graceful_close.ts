/**
 * Closing an HTTP(S) server without cutting a request or an answer in half.
 *
 * What goes wrong otherwise (found by `test/integration/faults_under_load.test.ts`:
 * on every SIGTERM of Nexus under load, most writes in flight went
 * unanswered, so their clients could not tell whether they had happened):
 * - `closeAllConnections()` cuts requests in flight.
 * - Node's `server.close()` closes every *idle* kept-alive connection at
 *   once. Idle only means that the server has not parsed a request on it: a
 *   request the client has already sent, still unread in the socket because
 *   the event loop was busy (SQLite runs on it), is lost unanswered. And on
 *   Node 20 a connection whose response has ended but is not yet flushed
 *   counts as idle too, so an answer already written is cut.
 * - Without closing idle connections, a busy kept-alive client holds the
 *   server open for ever.
 *
 * This drains instead:
 * 1. stop accepting connections (new ones are refused, which a client can
 *    always retry), keeping the open ones;
 * 2. answer every request in flight, and any that still arrives on an open
 *    connection, with `Connection: close`, so the client sends no further
 *    request on it and the connection closes after the answer;
 * 3. close the connections that stay idle: only once no request has started
 *    for `quietMs`, after pending reads had their turn, and never while an
 *    answer is being flushed;
 * 4. after `graceMs`, cut whatever is left.
 *
 * What remains is HTTP/1.1's own race, now narrow: a client that stayed
 * silent on a connection for `quietMs` and writes a request onto it at the
 * moment it is closed sees a reset, and the server never saw the request.
 */
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { Server as NetServer } from 'node:net';

export type DrainableServer = HttpServer | HttpsServer;

export interface GracefulCloseOptions {
  /** How long the drain may take before the remaining connections are cut. */
  readonly graceMs: number;
  /** How long no request may have started before idle connections are closed. Default 100. */
  readonly quietMs?: number;
}

const DEFAULT_QUIET_MS = 100;

/**
 * Starts tracking the server's requests (call it before the server listens)
 * and returns the function that closes it gracefully. The returned promise
 * resolves once every connection is gone. Calling it again returns the same
 * promise.
 */
export function createGracefulClose(
  server: DrainableServer,
  options: GracefulCloseOptions,
): () => Promise<void> {
  const { graceMs, quietMs = DEFAULT_QUIET_MS } = options;
  for (const [name, value] of [
    ['graceMs', graceMs],
    ['quietMs', quietMs],
  ] as const) {
    if (!Number.isFinite(value) || value < 0) {
      throw new RangeError(`Expected ${name} to be 0 or more, got ${value}`);
    }
  }
  const inFlight = new Set<ServerResponse>();
  let lastRequestAt = 0;
  let closing: Promise<void> | undefined;

  // First among the request listeners, so that the header is set before the
  // app can send its answer.
  server.prependListener(
    'request',
    function trackRequest(_request: IncomingMessage, response: ServerResponse) {
      lastRequestAt = Date.now();
      inFlight.add(response);
      if (closing !== undefined) {
        refuseKeepAlive(response);
      }
      // `on`: a response emits `close` once; `once` would add a wrapper per request.
      response.on('close', () => inFlight.delete(response));
    },
  );

  return function closeGracefully(): Promise<void> {
    closing ??= new Promise<void>((resolve) => {
      let isClosed = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cutOff = setTimeout(() => server.closeAllConnections(), graceMs);
      for (const response of inFlight) {
        refuseKeepAlive(response);
      }
      // Stop listening without Node's HTTP pre-close, which would close the
      // idle connections now (see above). The callback runs once every
      // connection is gone.
      NetServer.prototype.close.call(server, () => {
        isClosed = true;
        clearTimeout(cutOff);
        clearTimeout(timer);
        resolve();
      });
      const closeIdleWhenQuiet = (): void => {
        if (isClosed) return;
        const quietFor = Date.now() - lastRequestAt;
        if (quietFor < quietMs) {
          timer = setTimeout(afterReads, quietMs - quietFor);
          return;
        }
        const unflushed = [...inFlight].find(isEndedButUnflushed);
        if (unflushed !== undefined) {
          onceEither(unflushed, ['finish', 'close'], closeIdleWhenQuiet);
          return;
        }
        // Checked and closed in one synchronous step: nothing can start in between.
        server.closeIdleConnections();
        // Connections busy now close after their answer (`Connection: close`);
        // look again in case one was kept alive.
        timer = setTimeout(afterReads, quietMs);
      };
      // Timers run before pending socket reads in an event-loop turn: let
      // those reads (and the requests they start) come first.
      const afterReads = (): void => {
        setImmediate(closeIdleWhenQuiet);
      };
      timer = setTimeout(afterReads, quietMs);
    });
    return closing;
  };
}

/** Asks Node to close the connection after this response (and tells the client). */
function refuseKeepAlive(response: ServerResponse): void {
  if (!response.headersSent) {
    response.setHeader('connection', 'close');
  }
}

function isEndedButUnflushed(response: ServerResponse): boolean {
  return response.writableEnded && !response.writableFinished && !response.destroyed;
}

function onceEither(
  response: ServerResponse,
  events: readonly string[],
  listener: () => void,
): void {
  const fire = (): void => {
    for (const event of events) response.off(event, fire);
    listener();
  };
  for (const event of events) response.once(event, fire);
}
