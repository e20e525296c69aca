/**
 * The benchmark's baselines, each its own process like Nexus: an mTLS server
 * with the same TLS settings as the broker (TLS 1.3, client certificate
 * required and chain-verified against the trust bundle) that answers every
 * request with one constant JSON body of a given size.
 *
 *   bare  node:https alone: the limit of the runtime for this work.
 *   hono  the same through @hono/node-server and a Hono route: the framework
 *         without the broker's work (no SPIFFE ID check, policy, store, AEAD
 *         or audit).
 *   hold  node:https alone, never answering: what a connection waiting on a
 *         long-poll costs the runtime (bench/watchers.ts).
 *
 * Usage: baseline_server.ts <bare|hono|hold> <port> <bodyBytes>, with
 * SPIFFE_ENDPOINT_SOCKET naming the Workload API socket of its identity.
 */
import { createServer, type Server } from 'node:https';
import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import { createLogger, createMemorySink } from '../shared/log/logger.ts';
import { serverTlsOptions } from '../shared/spiffe/mtls.ts';
import { createX509Source } from '../shared/spiffe/x509_source.ts';

const [kind, portText, sizeText] = process.argv.slice(2);
const address = process.env.SPIFFE_ENDPOINT_SOCKET ?? '';
const size = Number(sizeText);
// A JSON string padded to the size of Nexus's answer for the same read.
const body = JSON.stringify({ data: 'x'.repeat(Math.max(0, size - 12)) });

const source = await createX509Source({
  address,
  logger: createLogger({ component: 'baseline', sink: createMemorySink() }),
});
const tls = serverTlsOptions(source);

let server: Server;
if (kind === 'bare') {
  server = createServer(tls, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
} else if (kind === 'hold') {
  // Held until their client goes away (the warm-up round's do).
  const held = new Set<unknown>();
  server = createServer(tls, (_req, res) => {
    held.add(res);
    res.once('close', () => held.delete(res));
  });
} else if (kind === 'hono') {
  const app = new Hono();
  app.get('*', (c) => c.body(body, 200, { 'content-type': 'application/json' }));
  server = createAdaptorServer({ fetch: app.fetch, createServer, serverOptions: tls }) as Server;
} else {
  throw new Error(`Unknown baseline "${kind}"`);
}
server.listen(Number(portText), '127.0.0.1', () => {
  process.stdout.write(`Listening on ${portText}\n`);
});
process.on('SIGTERM', () => {
  source.close();
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
