/**
 * The one-shot `FetchX509SVID` over node:http2 against a small HTTP/2 server
 * written here, which answers each case at the wire level: the request it
 * sends, a response split across many DATA frames, and every way the answer
 * can be wrong (a compressed frame, a length over the limit, a stream that
 * ends inside a message, error statuses in trailers or in a trailers-only
 * answer, HTTP errors, a reset stream, bytes that do not decode, a server
 * that never answers). Each call must settle with the error the watching
 * client gives, and leave no stream or connection open at the server.
 * (Against the real agent: test/integration/agent_workload_api.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import {
  constants,
  createServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { rawSvid, waitUntil } from '../../test/harness/fake_workload_api.ts';
import { createTestCa, type TestCa, type TestSvid } from '../../test/harness/pki.ts';
import {
  InvalidWorkloadApiAddressError,
  SvidInvalidError,
  WorkloadApiRejectedError,
  WorkloadApiUnavailableError,
} from '../errors/errors.ts';
import { fetchX509SvidOnce, MAX_MESSAGE_BYTES } from './workload_fetch_once.ts';
import { FETCH_X509_SVID_PATH, workloadApiServiceDefinition } from './workload_proto.ts';

type Answer = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;

interface TestServer {
  readonly address: string;
  /** What each request carried: its headers and its body. */
  readonly requests: { headers: IncomingHttpHeaders; body: Buffer }[];
  /** Streams and connections still open at the server. */
  openStreams(): number;
  openSessions(): number;
  /** How the streams ended, by their RST_STREAM code (0: ended normally). */
  readonly closeCodes: number[];
  close(): Promise<void>;
}

let ca: TestCa;
let svid: TestSvid;
let dir: string;
const servers: TestServer[] = [];

before(async () => {
  ca = await createTestCa('example.org');
  svid = await ca.issueSvid('spiffe://example.org/spike/pilot/role/superuser');
  dir = await mkdtemp(join(tmpdir(), 'spike-fetch-once-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(async () => {
  for (const server of servers.splice(0)) {
    await server.close();
  }
});

let socketCount = 0;

/** An HTTP/2 server (unix socket, or TCP on 127.0.0.1) that answers every stream with `answer`. */
async function serve(answer: Answer, transport: 'unix' | 'tcp' = 'unix'): Promise<TestServer> {
  const server: Http2Server = createServer();
  const sessions = new Set<Http2Session>();
  const streams = new Set<ServerHttp2Stream>();
  const requests: TestServer['requests'] = [];
  const closeCodes: number[] = [];
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    streams.add(stream);
    stream.on('error', () => {});
    stream.on('close', () => {
      streams.delete(stream);
      closeCodes.push(stream.rstCode);
    });
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => requests.push({ headers, body: Buffer.concat(chunks) }));
    answer(stream, headers);
  });
  let address: string;
  if (transport === 'unix') {
    socketCount += 1;
    const path = join(dir, `server-${socketCount}.sock`);
    await new Promise<void>((resolve) => server.listen(path, resolve));
    address = `unix://${path}`;
  } else {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
  const made: TestServer = {
    address,
    requests,
    closeCodes,
    openStreams: () => streams.size,
    openSessions: () => sessions.size,
    close: async () => {
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(made);
  return made;
}

const GRPC_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };

function encoded(message: unknown): Buffer {
  const method = workloadApiServiceDefinition().FetchX509SVID;
  assert.ok(method);
  return method.responseSerialize(message);
}

/** A gRPC frame with a chosen flag and declared length (by default the real ones). */
function frame(message: Buffer, options: { flag?: number; length?: number } = {}): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(options.flag ?? 0, 0);
  header.writeUInt32BE(options.length ?? message.length, 1);
  return Buffer.concat([header, message]);
}

function validResponse(): Buffer {
  return frame(encoded({ svids: [rawSvid(svid, ca)] }));
}

/** Answers with headers, the given bytes, and trailers with a status. */
function answerWith(body: Buffer, status = '0', message?: string): Answer {
  return (stream) => {
    stream.respond(GRPC_HEADERS, { waitForTrailers: true });
    stream.on('wantTrailers', () => {
      stream.sendTrailers({
        'grpc-status': status,
        ...(message === undefined ? {} : { 'grpc-message': message }),
      });
    });
    stream.end(body);
  };
}

/** The call settles, and nothing stays open at the server afterwards. */
async function settlesAndCloses(server: TestServer, call: Promise<unknown>): Promise<void> {
  await call.then(
    () => {},
    () => {},
  );
  await waitUntil(
    () => server.openStreams() === 0 && server.openSessions() === 0,
    5000,
    'the server to see the stream and the connection closed',
  );
}

async function rejectsWith(
  server: TestServer,
  type: new (...args: never[]) => Error,
  message: RegExp,
  timeoutMs = 5000,
): Promise<void> {
  const call = fetchX509SvidOnce({ address: server.address, timeoutMs });
  await assert.rejects(call, (err: unknown) => {
    assert.ok(err instanceof type, `${String(err)} is not a ${type.name}`);
    assert.match(err.message, message);
    return true;
  });
  await settlesAndCloses(server, call);
}

describe('fetchX509SvidOnce()', () => {
  test('sends one gRPC request with the security header, reads the first response and cancels the stream', async () => {
    const server = await serve((stream) => {
      stream.respond(GRPC_HEADERS);
      // A watch keeps its stream open: the call must not wait for its end.
      stream.write(validResponse());
    });
    const update = await fetchX509SvidOnce({ address: server.address, timeoutMs: 5000 });
    assert.equal(update.svids.length, 1);
    assert.equal(update.svids[0]?.id.toString(), svid.spiffeId);
    assert.deepEqual(
      update.bundles.all().map((bundle) => bundle.trustDomain.name),
      ['example.org'],
    );
    await settlesAndCloses(server, Promise.resolve());
    assert.deepEqual(server.closeCodes, [constants.NGHTTP2_CANCEL]);
    const [request] = server.requests;
    assert.ok(request);
    assert.equal(request.headers[':method'], 'POST');
    assert.equal(request.headers[':path'], FETCH_X509_SVID_PATH);
    assert.equal(request.headers['content-type'], 'application/grpc');
    assert.equal(request.headers.te, 'trailers');
    assert.equal(request.headers['workload.spiffe.io'], 'true');
    // An empty X509SVIDRequest in an uncompressed frame.
    assert.deepEqual([...request.body], [0, 0, 0, 0, 0]);
  });

  test('a response split into many small DATA frames is put together', async () => {
    const bytes = validResponse();
    const server = await serve((stream) => {
      stream.respond(GRPC_HEADERS);
      for (let at = 0; at < bytes.length; at += 7) {
        stream.write(bytes.subarray(at, at + 7));
      }
    });
    const update = await fetchX509SvidOnce({ address: server.address, timeoutMs: 5000 });
    assert.equal(update.svids[0]?.id.toString(), svid.spiffeId);
  });

  test('works over TCP to an IP literal too', async () => {
    const server = await serve(answerWith(validResponse()), 'tcp');
    const update = await fetchX509SvidOnce({ address: server.address, timeoutMs: 5000 });
    assert.equal(update.svids[0]?.id.toString(), svid.spiffeId);
  });

  test('a compressed frame is refused: no compression was negotiated', async () => {
    const body = encoded({ svids: [rawSvid(svid, ca)] });
    const server = await serve(answerWith(frame(body, { flag: 1 })));
    await rejectsWith(
      server,
      WorkloadApiUnavailableError,
      /^The Workload API stream FetchX509SVID failed with INTERNAL \(".*compressed.*"\)$/,
    );
  });

  test('a frame longer than 4 MiB is refused before its bytes arrive', async () => {
    const server = await serve((stream) => {
      stream.respond(GRPC_HEADERS);
      stream.write(frame(Buffer.alloc(0), { length: MAX_MESSAGE_BYTES + 1 }));
    });
    await rejectsWith(
      server,
      WorkloadApiUnavailableError,
      /failed with RESOURCE_EXHAUSTED \("Received message larger than max \(4194305 vs 4194304\)"\)/,
    );
  });

  test('a stream that ends inside a message fails, with or without a status', async () => {
    const truncated = validResponse().subarray(0, 40);
    for (const answer of [
      answerWith(truncated, '0'),
      (stream: ServerHttp2Stream) => {
        stream.respond(GRPC_HEADERS);
        stream.end(truncated);
      },
    ]) {
      const server = await serve(answer);
      await rejectsWith(
        server,
        WorkloadApiUnavailableError,
        /failed with INTERNAL \("the stream ended inside a message"\)/,
      );
    }
  });

  test('error statuses in the trailers become the errors of the watching client', async () => {
    const cases: [string, string | undefined, new (...args: never[]) => Error, RegExp][] = [
      [
        '14',
        'agent%20restarting',
        WorkloadApiUnavailableError,
        /^The Workload API stream FetchX509SVID failed with UNAVAILABLE \("agent restarting"\)$/,
      ],
      [
        '7',
        'no identity issued',
        WorkloadApiUnavailableError,
        /^The Workload API has no identity for this workload \(PERMISSION_DENIED: "no identity issued"\)$/,
      ],
      [
        '3',
        'security header missing from request',
        WorkloadApiRejectedError,
        /^The Workload API rejected FetchX509SVID with INVALID_ARGUMENT \("security header missing from request"\); not retrying$/,
      ],
      [
        '0',
        undefined,
        WorkloadApiUnavailableError,
        /^The Workload API stream FetchX509SVID ended \("no details"\)$/,
      ],
    ];
    for (const [code, message, type, expected] of cases) {
      const server = await serve(answerWith(Buffer.alloc(0), code, message));
      await rejectsWith(server, type, expected);
    }
  });

  test('a trailers-only answer carries the status in its headers', async () => {
    const server = await serve((stream) => {
      stream.respond(
        { ...GRPC_HEADERS, 'grpc-status': '12', 'grpc-message': 'not served here' },
        { endStream: true },
      );
    });
    await rejectsWith(
      server,
      WorkloadApiRejectedError,
      /^The Workload API rejected FetchX509SVID with UNIMPLEMENTED \("not served here"\); not retrying$/,
    );
  });

  test('an HTTP status other than 200, or a content type other than gRPC, fails the call', async () => {
    const cases: [Answer, new (...args: never[]) => Error, RegExp][] = [
      [
        (stream) => stream.respond({ ':status': 503 }, { endStream: true }),
        WorkloadApiUnavailableError,
        /failed with UNAVAILABLE \("Received HTTP status code 503"\)/,
      ],
      [
        (stream) => stream.respond({ ':status': 404 }, { endStream: true }),
        WorkloadApiRejectedError,
        /rejected FetchX509SVID with UNIMPLEMENTED \("Received HTTP status code 404"\)/,
      ],
      [
        (stream) => {
          stream.respond({ ':status': 200, 'content-type': 'text/plain' });
          stream.end('hello');
        },
        WorkloadApiUnavailableError,
        /failed with UNKNOWN \("the response's content type "text\/plain" is not gRPC"\)/,
      ],
    ];
    for (const [answer, type, expected] of cases) {
      const server = await serve(answer);
      await rejectsWith(server, type, expected);
    }
  });

  test('a stream the server resets fails with the status grpc-js gives', async () => {
    const server = await serve((stream) => stream.close(constants.NGHTTP2_REFUSED_STREAM));
    await rejectsWith(
      server,
      WorkloadApiUnavailableError,
      /failed with UNAVAILABLE \("Received RST_STREAM with code 7"\)/,
    );
  });

  test('a message that does not decode, or is not a valid response, is refused', async () => {
    const garbage = await serve(answerWith(frame(Buffer.from([0x0a, 0xff, 0xff, 0xff]))));
    await rejectsWith(
      garbage,
      SvidInvalidError,
      /^The Workload API sent an X509SVIDResponse that does not decode: /,
    );
    const empty = await serve(answerWith(frame(encoded({}))));
    await rejectsWith(empty, SvidInvalidError, /^X509SVIDResponse has no SVIDs$/);
  });

  test('a server that never answers: the deadline ends the call and closes everything', async () => {
    const server = await serve(() => {});
    await rejectsWith(
      server,
      WorkloadApiUnavailableError,
      new RegExp(`^No X509-SVID arrived from the Workload API at ${server.address} within 200 ms$`),
      200,
    );
    assert.deepEqual(server.closeCodes, [constants.NGHTTP2_CANCEL]);
  });

  test('a socket that does not exist fails at once, saying so', async () => {
    const address = `unix://${join(dir, 'missing.sock')}`;
    await assert.rejects(fetchX509SvidOnce({ address, timeoutMs: 60_000 }), (err: unknown) => {
      assert.ok(err instanceof WorkloadApiUnavailableError, String(err));
      assert.equal(
        err.message,
        `Cannot connect to the Workload API at ${address}: the socket does not exist`,
      );
      return true;
    });
  });

  test('a malformed address or timeout is refused before connecting', async () => {
    await assert.rejects(
      fetchX509SvidOnce({ address: 'unix://host/x.sock', timeoutMs: 1000 }),
      InvalidWorkloadApiAddressError,
    );
    await assert.rejects(
      fetchX509SvidOnce({ address: `unix://${join(dir, 'x.sock')}`, timeoutMs: 0 }),
      RangeError,
    );
  });
});
