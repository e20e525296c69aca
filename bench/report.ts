/**
 * What a benchmark run reports: one row per load (vault-benchmark's columns),
 * one line per goal with the value, its baseline from the same run and the
 * ratio, and where the run happened. Printed as it goes, then written as JSON
 * and as a markdown table.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { LoadResult } from './load.ts';

export interface LoadRow extends LoadResult {
  readonly name: string;
}

export interface Goal {
  readonly figure: string;
  /** The figure itself, in its unit. */
  readonly value: string;
  /** What it is judged against, measured in this run. */
  readonly baseline: string;
  readonly ratio: string;
  readonly goal: string;
  /** undefined when the figure is only reported. */
  readonly met: boolean | undefined;
}

export interface Machine {
  readonly date: string;
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly deno: string;
  readonly store: string;
  readonly mode: string;
}

export function describeMachine(options: { store: string; mode: string; deno: string }): Machine {
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${platform()} ${release()}`,
    node: process.version,
    deno: options.deno,
    store: options.store,
    mode: options.mode,
  };
}

/** The Deno binary's version, or "absent". */
export function denoVersion(denoPath: string): string {
  try {
    return execFileSync(denoPath, ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? 'unknown';
  } catch {
    return 'absent';
  }
}

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');

const LOAD_HEADER = ['load', 'ops', 'rate/s', 'mean ms', 'p50 ms', 'p95 ms', 'p99 ms', 'success'];

function loadCells(row: LoadRow): string[] {
  return [
    row.name,
    String(row.operations),
    fixed(row.rate, 0),
    fixed(row.meanMs, 2),
    fixed(row.p50Ms, 2),
    fixed(row.p95Ms, 2),
    fixed(row.p99Ms, 2),
    fixed(row.successRatio * 100, 2).concat('%'),
  ];
}

const GOAL_HEADER = ['figure', 'value', 'baseline (same run)', 'ratio', 'goal', 'met'];

function goalCells(goal: Goal): string[] {
  const met = goal.met === undefined ? 'reported' : goal.met ? 'yes' : 'no';
  return [goal.figure, goal.value, goal.baseline, goal.ratio, goal.goal, met];
}

/** A fixed-width line for the terminal. */
export function printLoad(row: LoadRow, log: (line: string) => void): void {
  log(
    loadCells(row)
      .map((cell, i) => (i === 0 ? cell.padEnd(46) : cell.padStart(9)))
      .join(' '),
  );
}

export function printLoadHeader(log: (line: string) => void): void {
  log(LOAD_HEADER.map((cell, i) => (i === 0 ? cell.padEnd(46) : cell.padStart(9))).join(' '));
}

function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function markdownReport(machine: Machine, loads: LoadRow[], goals: Goal[]): string {
  return [
    `# spike-ts benchmark, ${machine.date}`,
    '',
    `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}; ` +
      `Node ${machine.node}, ${machine.deno}; store ${machine.store}; mode ${machine.mode}.`,
    '',
    '## Goals',
    '',
    markdownTable(GOAL_HEADER, goals.map(goalCells)),
    '',
    '## Loads',
    '',
    markdownTable(LOAD_HEADER, loads.map(loadCells)),
    '',
  ].join('\n');
}

/** Writes `<stamp>.json` and `<stamp>.md` into the folder; returns their paths. */
export function writeReport(
  folder: string,
  machine: Machine,
  loads: LoadRow[],
  goals: Goal[],
): string[] {
  mkdirSync(folder, { recursive: true });
  const stamp = machine.date.replace(/[:.]/g, '-');
  const json = join(folder, `${stamp}.json`);
  const md = join(folder, `${stamp}.md`);
  writeFileSync(json, `${JSON.stringify({ machine, loads, goals }, null, 2)}\n`);
  writeFileSync(md, markdownReport(machine, loads, goals));
  return [json, md];
}
