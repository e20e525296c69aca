/**
 * The load generator, run as its own process so that it never shares a
 * thread with the server it measures. It reads a LoadSpec (JSON) from its
 * first argument, drives autocannon with the client SVID from the spec's PEM
 * files, and prints one LoadResult as JSON on stdout.
 *
 * autocannon's own latency histogram has no p95, so every response time is
 * kept and the percentiles are computed here, the same way for every figure.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { type LoadResult, type LoadSpec, summarise } from './load.ts';

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const latencies: number[] = [];
let ok = 0;
let failed = 0;
let counter = 0;

const instance = autocannon(
  {
    url: spec.url,
    connections: spec.connections,
    pipelining: 1,
    ...(spec.amount === undefined ? { duration: spec.durationS } : { amount: spec.amount }),
    timeout: 10,
    tlsOptions: {
      cert: readFileSync(spec.certFile),
      key: readFileSync(spec.keyFile),
    },
    requests: [
      {
        method: spec.method,
        ...(spec.body === undefined
          ? {}
          : { body: spec.body, headers: { 'content-type': 'application/json' } }),
        ...(spec.pathTemplate === undefined
          ? {}
          : {
              setupRequest: (request: autocannon.Request) => {
                counter += 1;
                const random = 1 + Math.floor(Math.random() * (spec.randomMax ?? 1));
                request.path = (spec.pathTemplate ?? request.path ?? '/')
                  .replace('{n}', String(counter))
                  .replace('{r}', String(random));
                return request;
              },
            }),
      },
    ],
  },
  (error, raw) => {
    if (error !== null && error !== undefined) throw error;
    const result: LoadResult = summarise({
      latencies,
      ok,
      failed: failed + raw.errors,
      seconds: raw.duration,
    });
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
);

// The tracker passes the client first; @types/autocannon has the arguments of the client's own event.
(instance as unknown as NodeJS.EventEmitter).on(
  'response',
  (_client: unknown, statusCode: number, _bytes: number, ms: number) => {
    latencies.push(ms);
    if (statusCode >= 200 && statusCode < 300) ok += 1;
    else failed += 1;
  },
);
