/**
 * The metrics of one program in the Prometheus text format, through
 * prom-client (the only module that imports it). Each program has a registry
 * of its own, never prom-client's global one, so that tests running several
 * apps in one process keep their counts apart.
 *
 * What the metrics say is never a secret, a secret's path or a caller's
 * SPIFFE ID: the route label is the route's pattern
 * (`/v1/secrets/data/:path{.+}`), the refusal label one of a fixed set of
 * causes. The catalogue, with the alerts worth having, is in
 * docs/operations.md.
 *
 * Counts that change on every request are kept in plain numbers and handed
 * to prom-client when scraped (`_request_series.ts`); values owned by other
 * objects (sealed, the SVID's expiry, Keepers reachable, TLS refusals) are
 * read from them at the scrape, through the readings given to `observe()`.
 */
import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client';
import { DURATION_BUCKETS, RequestSeries } from './_request_series.ts';

/** Which metrics a program has beyond the process ones. */
export type MetricsProgram = 'nexus' | 'keeper' | 'agent';

export interface MetricsOptions {
  readonly program: MetricsProgram;
  /**
   * prom-client's `process_*` and `nodejs_*` metrics (CPU, memory, open
   * files, event-loop lag…). Default true; tests that make many registries
   * leave them out (each set watches the event loop until the process ends).
   */
  readonly processMetrics?: boolean;
}

/** Values read at each scrape from the objects that own them. */
export interface MetricReadings {
  /** Nexus: whether the root key is still missing (`spike_sealed` 1) or not (0). */
  readonly sealed?: () => boolean;
  /** When our current X509-SVID expires; a throw (no SVID) reads as 0, long expired. */
  readonly svidNotAfter?: () => Date;
  /** Nexus: how many of its Keepers answered their last check. */
  readonly keepersReachable?: () => number;
  /** Connections refused at the TLS layer since start, by cause (a fixed set of words). */
  readonly tlsRefusals?: () => Iterable<readonly [string, number]>;
}

/** What the HTTP layer calls once per answered request; see `Metrics.recordRequest`. */
export interface RequestRecorder {
  recordRequest(route: string, method: string, status: number, seconds: number): void;
}

/** What the audit sink calls once per batch (`openAuditSink`'s `counters`). */
export interface AuditCounters {
  /** `count` events were written to the audit trail. */
  countAuditEvents(count: number): void;
  /** `count` events could not be written (the request that waited on each got a 500). */
  countAuditFailures(count: number): void;
}

const REQUESTS = 'spike_http_requests_total';
const DURATION = 'spike_http_request_duration_seconds';
const REQUEST_LABELS = ['route', 'method', 'status'] as const;

export class Metrics implements RequestRecorder, AuditCounters {
  readonly #registry = new Registry();
  readonly #program: MetricsProgram;
  readonly #requests = new RequestSeries();
  readonly #auditEvents: Counter | undefined;
  readonly #auditFailures: Counter | undefined;
  readonly #decryptionFailures: Counter | undefined;

  constructor(options: MetricsOptions) {
    this.#program = options.program;
    const registers = [this.#registry];
    if (options.processMetrics !== false) {
      collectDefaultMetrics({ register: this.#registry });
    }
    if (this.#program === 'agent') {
      return;
    }
    const requests = this.#requests;
    new Counter({
      name: REQUESTS,
      help: 'HTTP requests answered over mTLS, by route pattern, method and status',
      labelNames: REQUEST_LABELS,
      registers,
      collect() {
        this.reset();
        for (const sample of requests.samples()) {
          this.inc(labelsOf(sample), sample.count);
        }
      },
    });
    this.#registry.registerMetric(durationHistogram(requests));
    this.#auditEvents = new Counter({
      name: 'spike_audit_events_total',
      help: 'Events written to the audit trail',
      registers,
    });
    this.#auditFailures = new Counter({
      name: 'spike_audit_failures_total',
      help: 'Audit events that could not be written (each such request was answered 500)',
      registers,
    });
    if (this.#program === 'nexus') {
      this.#decryptionFailures = new Counter({
        name: 'spike_decryption_failures_total',
        help: 'Stored secret data or metadata that failed authentication (an integrity alarm)',
        registers,
      });
    }
  }

  /**
   * One answered request, under its route pattern (never the path asked
   * for), method and status, with its duration in seconds. Cheap enough for
   * the hot read path: no allocation once the series exists.
   */
  recordRequest(route: string, method: string, status: number, seconds: number): void {
    this.#requests.record(route, method, status, seconds);
  }

  countAuditEvents(count: number): void {
    this.#auditEvents?.inc(count);
  }

  countAuditFailures(count: number): void {
    this.#auditFailures?.inc(count);
  }

  /** A stored ciphertext failed to open (Nexus); the caller also logs the alarm. */
  countDecryptionFailure(): void {
    this.#decryptionFailures?.inc();
  }

  /** Registers the metrics read from other objects; each reading once. */
  observe(readings: MetricReadings): void {
    const registers = [this.#registry];
    const { sealed, svidNotAfter, keepersReachable, tlsRefusals } = readings;
    if (sealed !== undefined) {
      new Gauge({
        name: 'spike_sealed',
        help: '1 while Nexus has no root key (it answers 503), 0 once unsealed',
        registers,
        collect() {
          this.set(sealed() ? 1 : 0);
        },
      });
    }
    if (svidNotAfter !== undefined) {
      new Gauge({
        name: 'spike_svid_expiry_timestamp_seconds',
        help: "When this program's current X509-SVID expires, in seconds since the epoch",
        registers,
        collect() {
          let seconds = 0;
          try {
            seconds = svidNotAfter().getTime() / 1000;
          } catch {
            // No SVID now: 0 trips every "expires soon" alert, as it should.
          }
          this.set(seconds);
        },
      });
    }
    if (keepersReachable !== undefined) {
      new Gauge({
        name: 'spike_keepers_reachable',
        help: 'Keepers that answered their last check from Nexus',
        registers,
        collect() {
          this.set(keepersReachable());
        },
      });
    }
    if (tlsRefusals !== undefined) {
      new Counter({
        name: 'spike_tls_handshake_refusals_total',
        help: 'Connections refused at the TLS layer, by cause',
        labelNames: ['reason'],
        registers,
        collect() {
          this.reset();
          for (const [reason, count] of tlsRefusals()) {
            this.inc({ reason }, count);
          }
        },
      });
    }
  }

  /** The media type of `text()`. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** Every metric, in the Prometheus text format. */
  text(): Promise<string> {
    return this.#registry.metrics();
  }
}

function labelsOf(sample: {
  readonly route: string;
  readonly method: string;
  readonly status: number;
}): Record<(typeof REQUEST_LABELS)[number], string> {
  return { route: sample.route, method: sample.method, status: String(sample.status) };
}

/** One line of the histogram as prom-client's registry formats it. */
interface HistogramValue {
  readonly metricName: string;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
}

/**
 * The request-duration histogram, built from the plain numbers at each
 * scrape. prom-client's Histogram has no way to take counts kept elsewhere,
 * so this is a metric of our own in the shape its registry formats (the
 * shape of `Histogram.get()`: cumulative `_bucket` values with `le`, then
 * `_sum` and `_count`); metrics.test.ts parses what comes out.
 */
function durationHistogram(requests: RequestSeries): Metric {
  const help = 'Time from the request reaching the app to its answer, in seconds';
  const metric = {
    name: DURATION,
    help,
    type: 'histogram',
    aggregator: 'sum',
    labelNames: REQUEST_LABELS,
    reset() {},
    async get() {
      const values: HistogramValue[] = [];
      for (const sample of requests.samples()) {
        const labels = labelsOf(sample);
        let cumulative = 0;
        for (let i = 0; i < DURATION_BUCKETS.length; i++) {
          cumulative += sample.buckets[i] as number;
          values.push({
            metricName: `${DURATION}_bucket`,
            labels: { ...labels, le: DURATION_BUCKETS[i] as number },
            value: cumulative,
          });
        }
        values.push(
          {
            metricName: `${DURATION}_bucket`,
            labels: { ...labels, le: '+Inf' },
            value: sample.count,
          },
          { metricName: `${DURATION}_sum`, labels, value: sample.sumSeconds },
          { metricName: `${DURATION}_count`, labels, value: sample.count },
        );
      }
      return { name: DURATION, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  // The registry reads only what is above (name, get(), reset()); the type
  // prom-client declares for a metric is its own classes.
  return metric as unknown as Metric;
}
