import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ResponseTooLargeError } from '../../shared/errors/errors.ts';
import { createMemoryAuditSink } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { keeperId } from '../../shared/spiffe/identities.ts';
import { serverTlsOptions } from '../../shared/spiffe/mtls.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { StaticX509Source } from '../../shared/spiffe/x509_source.ts';
import { bundleSetOf, createTestCa, type TestCa } from '../../test/harness/pki.ts';
import {
  createHttpsKeeperLink,
  type HttpsKeeperLink,
  KEEPER_CONNECT_ACTION,
  KEEPER_MAX_ANSWER_BYTES,
} from './keeper_link.ts';

const TD = parseTrustDomain('example.org');
const SHARD = {
  generation: 1,
  index: 1,
  threshold: 2,
  value: new Uint8Array(33).fill(7),
};

describe('createHttpsKeeperLink()', () => {
  let ca: TestCa;
  let nexusSource: StaticX509Source;
  const sources = new Map<string, StaticX509Source>();
  const servers: Server[] = [];
  const links: HttpsKeeperLink[] = [];

  before(async () => {
    ca = await createTestCa('example.org');
    nexusSource = new StaticX509Source(
      (await ca.issueSvid('spiffe://example.org/spike/nexus')).x509Svid(),
      bundleSetOf(ca),
    );
  });

  after(() => {
    for (const link of links) link.close();
    for (const server of servers) server.close();
  });

  async function keeperSource(name: string): Promise<StaticX509Source> {
    let source = sources.get(name);
    if (source === undefined) {
      const svid = await ca.issueSvid(keeperId(TD, name).toString());
      source = new StaticX509Source(svid.x509Svid(), bundleSetOf(ca));
      sources.set(name, source);
    }
    return source;
  }

  /**
   * A Keeper stand-in with the SVID of `.../spike/keeper/<name>`: it records
   * each request and answers as a Keeper holding nothing, or with an endless
   * body when `endless` is set.
   */
  async function keeper(
    name: string,
    options: { port?: number; endless?: boolean } = {},
  ): Promise<{ server: Server; url: URL; requests: string[] }> {
    const requests: string[] = [];
    const chunk = new Uint8Array(16 * 1024).fill(0x20);
    const server = createServer(serverTlsOptions(await keeperSource(name)), (req, res) => {
      requests.push(`${req.method} ${req.url}`);
      req.resume();
      if (options.endless === true) {
        res.writeHead(200, { 'content-type': 'application/json' });
        const pump = () => {
          while (!res.destroyed && res.write(chunk)) {
            // keep writing until the connection pushes back
          }
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        req.url === '/v1/shards' && req.method === 'GET' ? '{"shards":[]}' : '{"generations":[]}',
      );
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { server, url: new URL(`https://127.0.0.1:${port}`), requests };
  }

  function link(url: URL, expected: string) {
    const sink = createMemorySink();
    const auditSink = createMemoryAuditSink();
    const made = createHttpsKeeperLink({
      url,
      id: keeperId(TD, expected),
      source: nexusSource,
      timeoutMs: 5_000,
      logger: createLogger({ component: 'nexus', sink }),
      auditSink,
    });
    links.push(made);
    return { link: made, logs: sink.lines, audit: auditSink.events };
  }

  /** Each call a Keeper link makes. */
  const calls = [
    ['putShard', (l: HttpsKeeperLink) => l.putShard(SHARD)],
    ['listShards', (l: HttpsKeeperLink) => l.listShards()],
    ['generations', (l: HttpsKeeperLink) => l.generations()],
    ['prune', (l: HttpsKeeperLink) => l.prune(1)],
  ] as const;

  test('the Keeper registered for the position gets every call', async () => {
    const { url, requests } = await keeper('1');
    const { link: made, logs, audit } = link(url, '1');
    for (const [, run] of calls) await run(made);
    assert.deepEqual(requests, [
      'PUT /v1/shards',
      'GET /v1/shards',
      'GET /v1/shards/generations',
      'POST /v1/shards/prune',
    ]);
    assert.deepEqual(audit, []);
    assert.deepEqual(
      logs.filter((line) => line.level === 'warn'),
      [],
    );
  });

  test("another Keeper's SVID at the address gets no call, and why is logged and audited once", async () => {
    const { url, requests } = await keeper('2');
    const { link: made, logs, audit } = link(url, '1');
    for (const [what, run] of calls) {
      const err = await run(made).catch((e: unknown) => e);
      assert.equal((err as { code?: string }).code, 'ERR_SVID_INVALID', what);
      assert.match(
        (err as Error).message,
        /"spiffe:\/\/example\.org\/spike\/keeper\/2" is not the expected one: expected id "spiffe:\/\/example\.org\/spike\/keeper\/1"/,
      );
    }
    assert.deepEqual(requests, [], 'nothing reached the impostor');
    const warnings = logs.filter((line) => line.level === 'warn');
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.equal(warnings[0]?.keeper, url.origin);
    assert.equal(warnings[0]?.expected, 'spiffe://example.org/spike/keeper/1');
    assert.equal(audit.length, 1);
    const event = audit[0];
    assert.equal(event?.action, KEEPER_CONNECT_ACTION);
    assert.equal(event?.outcome, 'denied');
    assert.equal(event?.status, 401);
    assert.equal(event?.errorCode, 'ERR_SVID_INVALID');
    assert.equal(event?.resource, url.origin);
    assert.match(event?.reason ?? '', /spike\/keeper\/2" is not the expected one/);
  });

  test('a refusal is reported again after the right Keeper answered in between', async () => {
    const first = await keeper('3');
    const port = Number(first.url.port);
    const { link: made, logs, audit } = link(first.url, '2');
    const stop = async (server: Server) => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    };
    await assert.rejects(made.generations(), { code: 'ERR_SVID_INVALID' });
    await stop(first.server);
    const rightful = await keeper('2', { port });
    assert.deepEqual(await made.generations(), []);
    assert.deepEqual(rightful.requests, ['GET /v1/shards/generations']);
    await stop(rightful.server);
    const second = await keeper('3', { port });
    // The kept-alive connection to the stopped Keeper may be tried first.
    let code: unknown;
    for (let tries = 0; tries < 5 && code !== 'ERR_SVID_INVALID'; tries += 1) {
      code = ((await made.generations().catch((e: unknown) => e)) as { code?: string }).code;
    }
    assert.equal(code, 'ERR_SVID_INVALID');
    assert.deepEqual([...first.requests, ...second.requests], []);
    assert.deepEqual(
      logs.filter((line) => line.level !== 'debug').map((line) => line.msg),
      [
        'Refused the server at a Keeper address: it is not the Keeper registered there',
        'A Keeper answers as expected again',
        'Refused the server at a Keeper address: it is not the Keeper registered there',
      ],
    );
    assert.equal(audit.length, 2);
  });

  test('an endless answer fails that call with ERR_RESPONSE_TOO_LARGE, logged once', async () => {
    const { url } = await keeper('1', { endless: true });
    const { link: made, logs, audit } = link(url, '1');
    for (let i = 0; i < 2; i += 1) {
      const err = await made.listShards().catch((e: unknown) => e);
      assert.ok(err instanceof ResponseTooLargeError, String(err));
      assert.match(err.message, new RegExp(`larger than ${KEEPER_MAX_ANSWER_BYTES} bytes`));
    }
    const warnings = logs.filter((line) => line.level === 'warn');
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]?.msg), /answered more than Nexus reads/);
    assert.deepEqual(audit, []);
  });
});
