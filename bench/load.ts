/**
 * One load run, from a separate process: what to send (LoadSpec), what came
 * back (LoadResult, vault-benchmark's columns), and `runLoad()`, which starts
 * bench/load_worker.ts on Node and waits for its answer with a deadline.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../test/harness/spawn.ts';
import type { ReadChecks } from './load_plan.ts';

export interface LoadSpec {
  readonly url: string;
  readonly method: 'GET' | 'PUT' | 'POST';
  /** What every write sends (the PUTs of a PUT or a mixed load, or every POST). */
  readonly body?: string;
  /**
   * Replaces the URL's path per request: `{n}` becomes a number from 1 to
   * `pathCount`, in sequence (seeding; concurrent writers on distinct paths)
   * or at random (reads across a set). See bench/load_plan.ts.
   */
  readonly pathTemplate?: string;
  readonly pick?: 'sequence' | 'random';
  readonly pathCount?: number;
  /**
   * With method GET and a path template: this share of requests (0 to 1) are
   * PUTs of `body` instead, and every read is checked against the writes
   * acknowledged before it was sent (LoadResult's checkedReads, staleReads).
   */
  readonly writeShare?: number;
  readonly connections: number;
  /** Either a duration or a fixed number of requests. */
  readonly durationS: number;
  readonly amount?: number;
  /** The client SVID as PEM files. */
  readonly certFile: string;
  readonly keyFile: string;
}

/** The read checks are there for mixed loads only. */
export interface LoadResult extends Partial<ReadChecks> {
  readonly operations: number;
  /** Successful operations per second. */
  readonly rate: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  /** 2xx answers ÷ all requests sent (errors and timeouts count as failures). */
  readonly successRatio: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

export function summarise(input: {
  latencies: number[];
  ok: number;
  failed: number;
  seconds: number;
}): LoadResult {
  const sorted = input.latencies.sort((a, b) => a - b);
  const total = input.ok + input.failed;
  const sum = sorted.reduce((acc, ms) => acc + ms, 0);
  return {
    operations: total,
    rate: input.seconds > 0 ? input.ok / input.seconds : 0,
    meanMs: sorted.length === 0 ? Number.NaN : sum / sorted.length,
    p50Ms: percentile(sorted, 50),
    p95Ms: percentile(sorted, 95),
    p99Ms: percentile(sorted, 99),
    successRatio: total === 0 ? 0 : input.ok / total,
  };
}

/** Load processes still running, so that an interrupted benchmark can stop them. */
const running = new Set<ChildProcess>();

export function stopLoads(): void {
  for (const child of running) child.kill('SIGKILL');
}

/** Runs one load in its own Node process; rejects after the duration plus a grace period. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const deadlineMs = (spec.amount === undefined ? spec.durationS * 1000 : 600_000) + 30_000;
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'bench/load_worker.ts'), JSON.stringify(spec)],
      { cwd: ROOT, timeout: deadlineMs, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        running.delete(child);
        if (error !== null) {
          reject(new Error(`Load run failed: ${error.message}\n${stderr}`));
          return;
        }
        try {
          resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as LoadResult);
        } catch {
          reject(new Error(`Load run printed no result\n${stdout}\n${stderr}`));
        }
      },
    );
    running.add(child);
  });
}
