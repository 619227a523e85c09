// The final report of one cache-bench run: a human table (fmtReport) and the machine-readable
// object behind --json (BenchReport), which bench/cluster/race.ts parses.
import type { RunResult } from './driver.js';
import type { BenchOptions } from './options.js';

export interface BenchReport {
  target: BenchOptions['target'];
  endpoints: string[];
  concurrency: number;
  durationSec: number;
  mix: BenchOptions['mix'];
  valueSize: number;
  keys: number;
  distribution: BenchOptions['distribution'];
  zipfTheta?: number;
  seed: number;
  preloaded: boolean;
  result: RunResult;
}

export function toReport(o: BenchOptions, result: RunResult): BenchReport {
  const r: BenchReport = {
    target: o.target,
    endpoints: o.endpoints,
    concurrency: o.concurrency,
    durationSec: o.durationSec,
    mix: o.mix,
    valueSize: o.valueSize,
    keys: o.keys,
    distribution: o.distribution,
    seed: o.seed,
    preloaded: o.preload,
    result,
  };
  if (o.distribution === 'zipf') r.zipfTheta = o.zipfTheta;
  return r;
}

/** 1234 -> "1.23k", 1234567 -> "1.23M". */
export function si(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)}k`;
  return n.toFixed(n >= 100 ? 0 : 1);
}

/** Microseconds as µs or ms, whichever reads better. */
export function us(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} ms` : n >= 1000 ? `${(n / 1000).toFixed(2)} ms` : `${n} µs`;
}

/** Rows of equal-width columns; the first row is the header. Numbers right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[], i: number): string =>
    r.map((v, c) => (i > 0 && c > 0 ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join('  ').trimEnd();
  return [line(rows[0]!, 0), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map((r, i) => line(r, i + 1))].join('\n');
}

export function fmtReport(rep: BenchReport): string {
  const r = rep.result;
  const mix = Object.entries(rep.mix).filter(([, w]) => w > 0).map(([k, w]) => `${k}:${w}`).join(',');
  const dist = rep.distribution === 'zipf' ? `zipf(theta=${rep.zipfTheta ?? ''})` : 'uniform';
  const head =
    `cache-bench: ${rep.target} @ ${rep.endpoints.join(',')}  in-flight ${rep.concurrency}  ${r.elapsedSec.toFixed(1)} s  ops ${mix}  ` +
    `value ${rep.valueSize} B  keys ${rep.keys} ${dist}  seed ${rep.seed}${rep.preloaded ? '  preloaded' : ''}`;
  const rows: string[][] = [['op', 'ops', 'ops/s', 'p50', 'p99', 'p999', 'max']];
  for (const [op, s] of Object.entries(r.byOp)) rows.push([op, String(s.count), si(s.opsPerSec), us(s.p50Us), us(s.p99Us), us(s.p999Us), us(s.maxUs)]);
  if (Object.keys(r.byOp).length > 1 || r.ops === 0) rows.push(['all', String(r.ops), si(r.opsPerSec), us(r.latency.p50Us), us(r.latency.p99Us), us(r.latency.p999Us), us(r.latency.maxUs)]);
  const errs = Object.entries(r.errorsByCode).map(([c, n]) => `${c}=${n}`).join(' ');
  const tail = [
    `errors: ${r.errors}${errs ? ` (${errs})` : ''}`,
    `gets not found: ${r.notFound}`,
    `client CPU: ${r.cpuUsPerOp.toFixed(0)} µs/op (user ${(r.cpuUserUs / 1e6).toFixed(2)} s, system ${(r.cpuSystemUs / 1e6).toFixed(2)} s)`,
  ];
  return [head, table(rows), ...tail].join('\n') + '\n';
}
