// Side-by-side rows of the race and the verdicts against the targets, at the same number
// of operations in flight:
//   put-only   distcache ops/s >= 1.5x etcd's, and p99 no worse than etcd's
//   get-only   distcache ops/s >= 2x etcd's (both linearizable reads), and p99 no worse
//   50/50      no ops/s target in the issue: the ratio is shown, only p99 is judged
import type { BenchReport } from '../cache-bench/report.js';
import { si, us } from '../cache-bench/report.js';

export type Workload = 'put' | 'get' | 'mixed';
export const WORKLOADS: readonly Workload[] = ['put', 'get', 'mixed'];
export const WORKLOAD_LABEL: Record<Workload, string> = { put: 'put-only', get: 'get-only', mixed: '50/50' };
export const OPS_TARGET: Record<Workload, number | undefined> = { put: 1.5, get: 2, mixed: undefined };

export interface RaceRow {
  workload: Workload;
  concurrency: number;
  distcache?: BenchReport;
  etcd?: BenchReport;
}

export interface Verdict {
  opsRatio?: number;
  p99Ratio?: number;
  ops: 'PASS' | 'MISS' | '-';
  p99: 'PASS' | 'MISS' | '-';
}

export function verdict(r: RaceRow): Verdict {
  const d = r.distcache?.result;
  const e = r.etcd?.result;
  if (!d || !e || e.opsPerSec === 0 || e.latency.p99Us === 0) return { ops: '-', p99: '-' };
  const opsRatio = d.opsPerSec / e.opsPerSec;
  const p99Ratio = d.latency.p99Us / e.latency.p99Us;
  const target = OPS_TARGET[r.workload];
  return { opsRatio, p99Ratio, ops: target === undefined ? '-' : opsRatio >= target ? 'PASS' : 'MISS', p99: p99Ratio <= 1 ? 'PASS' : 'MISS' };
}

const cell = (rep: BenchReport | undefined, f: (r: BenchReport['result']) => string): string => (rep ? f(rep.result) : 'n/a');

export const HEADER = [
  'workload', 'in flight',
  'distcache ops/s', 'etcd ops/s', 'ops ratio', 'ops target',
  'distcache p50', 'etcd p50', 'distcache p99', 'etcd p99', 'p99 ratio', 'p99 target',
  'distcache p999', 'etcd p999', 'distcache CPU µs/op', 'etcd CPU µs/op', 'errors (dc/etcd)',
];

export function rowCells(r: RaceRow): string[] {
  const v = verdict(r);
  const target = OPS_TARGET[r.workload];
  return [
    WORKLOAD_LABEL[r.workload], String(r.concurrency),
    cell(r.distcache, (x) => si(x.opsPerSec)), cell(r.etcd, (x) => si(x.opsPerSec)),
    v.opsRatio === undefined ? 'n/a' : `${v.opsRatio.toFixed(2)}x`,
    target === undefined ? '- (none)' : `${v.ops} (>= ${target}x)`,
    cell(r.distcache, (x) => us(x.latency.p50Us)), cell(r.etcd, (x) => us(x.latency.p50Us)),
    cell(r.distcache, (x) => us(x.latency.p99Us)), cell(r.etcd, (x) => us(x.latency.p99Us)),
    v.p99Ratio === undefined ? 'n/a' : `${v.p99Ratio.toFixed(2)}x`,
    v.p99 === '-' ? '-' : `${v.p99} (<= 1x)`,
    cell(r.distcache, (x) => us(x.latency.p999Us)), cell(r.etcd, (x) => us(x.latency.p999Us)),
    cell(r.distcache, (x) => x.cpuUsPerOp.toFixed(0)), cell(r.etcd, (x) => x.cpuUsPerOp.toFixed(0)),
    `${cell(r.distcache, (x) => String(x.errors))}/${cell(r.etcd, (x) => String(x.errors))}`,
  ];
}

export function markdownTable(rows: readonly RaceRow[]): string {
  const numeric = (c: number): boolean => c >= 1;
  const head = `| ${HEADER.join(' | ')} |`;
  const sep = `|${HEADER.map((_, c) => (numeric(c) ? '---:' : '---')).join('|')}|`;
  return [head, sep, ...rows.map((r) => `| ${rowCells(r).join(' | ')} |`)].join('\n');
}
