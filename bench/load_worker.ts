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
import { LoadPlan, type Planned } from './load_plan.ts';

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const latencies: number[] = [];
let ok = 0;
let failed = 0;

const plan =
  spec.pathTemplate === undefined
    ? undefined
    : new LoadPlan({
        pathTemplate: spec.pathTemplate,
        pick: spec.pick ?? 'random',
        pathCount: spec.pathCount ?? 1,
        writeShare: spec.method === 'PUT' ? 1 : (spec.writeShare ?? 0),
        connections: spec.connections,
      });
const writeHeaders = { 'content-type': 'application/json' };

/** autocannon's per-connection context, which lives from a request's setup to its answer. */
interface PlanContext {
  planned?: Planned;
}

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
        ...(spec.method !== 'GET' && spec.body !== undefined
          ? { body: spec.body, headers: writeHeaders }
          : {}),
        ...(plan === undefined
          ? {}
          : {
              // Called right before each request is sent (one in flight per
              // connection), so what it reads of the plan is what the load
              // generator knew at that moment.
              setupRequest: (request: autocannon.Request, context: object) => {
                const planned = plan.next();
                (context as PlanContext).planned = planned;
                return planned.write
                  ? {
                      ...request,
                      method: 'PUT',
                      path: planned.path,
                      body: spec.body ?? '',
                      headers: { ...request.headers, ...writeHeaders },
                    }
                  : { ...request, method: 'GET', path: planned.path };
              },
              onResponse: (status: number, body: string, context: object) => {
                const planned = (context as PlanContext).planned;
                if (planned !== undefined) plan.answered(planned, status, body);
              },
            }),
      },
    ],
  },
  (error, raw) => {
    if (error !== null && error !== undefined) throw error;
    const result: LoadResult = {
      ...summarise({ latencies, ok, failed: failed + raw.errors, seconds: raw.duration }),
      ...plan?.readChecks(),
    };
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
