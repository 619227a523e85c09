// The race: distcache vs etcd, same workloads, same machine, same run.
//
//   npm run bench:cluster -- [--duration 10] [--concurrency 16,64] [--keys 10000]
//                            [--value-size 4096] [--workloads put,get,mixed] [--warmup 20]
//                            [--targets distcache,etcd] [--shards N] [--json-out file]
//
// Starts a 3-node distcache cluster (cache-server child processes, default sync policy) and a
// 3-member etcd cluster (etcd from $ETCD_BIN or PATH, default fsync), all on 127.0.0.1 with temp
// data dirs; then warms each target up (--warmup seconds of unmeasured 50/50 load at the highest
// in-flight count: a Node server runs its first minute partly interpreted while V8 compiles the
// hot paths, and a long-running node is past that; etcd gets the same load, so the comparison
// stays fair); then for each in-flight count, each workload, each target runs one cache-bench child
// process (`--json`, its progress line on our stderr): put-only, get-only (keys preloaded by the
// first get-only run of each target, before its clock starts), 50/50. Targets alternate per row
// so that machine noise hits both alike. Prints a side-by-side table (also as markdown, for
// bench/RESULTS.md) with ratios and PASS/MISS against the issue's targets (see compare.ts).
// Every process it started is stopped by PID and the temp dirs removed, also on Ctrl-C/errors.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import type { BenchReport } from '../cache-bench/report.js';
import { table } from '../cache-bench/report.js';
import { HEADER, markdownTable, rowCells, WORKLOAD_LABEL, WORKLOADS, type RaceRow, type Workload } from './compare.js';
import { startDistcacheCluster } from './distcache-cluster.js';
import { ETCD_INSTALL_HINT, etcdVersion, findEtcd, startEtcdCluster } from './etcd-cluster.js';
import { installSignalCleanup, isStopping, stopAll, trackProcess } from './procs.js';

const BENCH_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../cache-bench/cli.js');
type Target = 'distcache' | 'etcd';

interface RaceOptions {
  durationSec: number;
  concurrency: number[];
  keys: number;
  valueSize: number;
  workloads: Workload[];
  targets: Target[];
  shards: number;
  seed: number;
  warmupSec: number;
  jsonOut: string | undefined;
}

function fail(msg: string): never {
  throw new CommanderError(2, 'race.badOption', msg);
}

function posInt(flag: string, v: string, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 1 || n > max) fail(`${flag} must be an integer in [1, ${max}], got '${v}'`);
  return n;
}

function list<T extends string>(flag: string, v: string, known: readonly T[]): T[] {
  const out = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of out) if (!(known as readonly string[]).includes(s)) fail(`${flag}: unknown '${s}' (known: ${known.join(', ')})`);
  if (out.length === 0) fail(`${flag} is empty`);
  return out as T[];
}

function parseArgs(argv: string[]): RaceOptions {
  const cmd = new Command('bench:cluster')
    .description('distcache (3 nodes) vs etcd (3 members) on 127.0.0.1: put-only, get-only, 50/50 at each in-flight count')
    .option('--duration <s>', 'seconds per run', '10')
    .option('--concurrency <list>', 'in-flight counts', '16,64')
    .option('--keys <n>', 'key space', '10000')
    .option('--value-size <bytes>', 'value size', '4096')
    .option('--workloads <list>', 'put,get,mixed', 'put,get,mixed')
    .option('--targets <list>', 'distcache,etcd', 'distcache,etcd')
    .option('--shards <n>', 'distcache shard count (the server default is 1024)', '1024')
    .option('--seed <n>', 'cache-bench seed (same for both targets)', '42')
    .option('--warmup <s>', 'seconds of unmeasured 50/50 load per target before the runs (0 = none)', '20')
    .option('--json-out <file>', 'also write every report as JSON')
    .exitOverride();
  cmd.parse(argv, { from: 'user' });
  const o = cmd.opts<Record<string, string | undefined>>();
  const durationSec = Number(o['duration']);
  if (!(durationSec > 0 && durationSec <= 3600)) fail(`--duration must be seconds in (0, 3600], got '${o['duration'] ?? ''}'`);
  return {
    durationSec,
    concurrency: (o['concurrency'] ?? '').split(',').map((s) => posInt('--concurrency', s, 10_000)),
    keys: posInt('--keys', o['keys'] ?? '', 10_000_000),
    valueSize: posInt('--value-size', o['valueSize'] ?? '', 1 << 20),
    workloads: list('--workloads', o['workloads'] ?? '', WORKLOADS),
    targets: list('--targets', o['targets'] ?? '', ['distcache', 'etcd'] as const),
    shards: posInt('--shards', o['shards'] ?? '', 65535),
    seed: posInt('--seed', o['seed'] ?? '', 0xffff_ffff),
    warmupSec: o['warmup'] === '0' ? 0 : posInt('--warmup', o['warmup'] ?? '', 3600),
    jsonOut: o['jsonOut'],
  };
}

/** One cache-bench child process; resolves with its --json report. */
function runBench(args: string[]): Promise<BenchReport> {
  if (isStopping()) return Promise.reject(new Error('stopping: no new runs'));
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BENCH_JS, ...args, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    trackProcess(p);
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', (code, sig) => {
      if (code !== 0) return reject(new Error(`cache-bench ${args.join(' ')} exited with ${code ?? sig}`));
      try {
        resolve(JSON.parse(out) as BenchReport);
      } catch (e) {
        reject(new Error(`cache-bench printed no JSON report: ${out.slice(0, 500)} (${String(e)})`));
      }
    });
  });
}

function gitCommit(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  if (r.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).stdout.trim() !== '';
  return r.stdout.trim() + (dirty ? ' (+ uncommitted changes)' : '');
}

async function main(): Promise<number> {
  let o: RaceOptions;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'race.badOption') process.stderr.write(`bench:cluster: ${e.message}\n`);
      return e.exitCode === 0 ? 0 : 2;
    }
    throw e;
  }
  const etcdBin = o.targets.includes('etcd') ? findEtcd() : undefined;
  if (o.targets.includes('etcd') && etcdBin === undefined) {
    process.stderr.write(`bench:cluster: ${ETCD_INSTALL_HINT}\n`);
    return 2;
  }
  installSignalCleanup();

  const cpus = os.cpus();
  const header = [
    `commit: ${gitCommit()}`,
    `machine: ${cpus.length} x ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, ${os.type()} ${os.release()}; client and all servers on this box`,
    `load average at start (1/5/15 min): ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other processes on the box add noise)`,
    `etcd: ${etcdBin === undefined ? 'not run' : `${etcdVersion(etcdBin)} (${etcdBin})`}`,
    `workload: ${o.valueSize} B values, ${o.keys} keys uniform, seed ${o.seed}, ${o.durationSec} s per run, in flight ${o.concurrency.join(',')}, after ${o.warmupSec} s of unmeasured 50/50 warm-up per target; distcache ${o.shards} shards, default sync policy; etcd default fsync`,
  ];
  process.stderr.write(header.join('\n') + '\n');

  const endpoints: Partial<Record<Target, string[]>> = {};
  if (o.targets.includes('distcache')) {
    const t = Date.now();
    endpoints.distcache = (await startDistcacheCluster(o.shards)).endpoints;
    process.stderr.write(`distcache cluster up in ${((Date.now() - t) / 1000).toFixed(1)} s: ${endpoints.distcache.join(',')}\n`);
  }
  if (etcdBin !== undefined) {
    const t = Date.now();
    endpoints.etcd = (await startEtcdCluster(etcdBin)).endpoints;
    process.stderr.write(`etcd cluster up in ${((Date.now() - t) / 1000).toFixed(1)} s: ${endpoints.etcd.join(',')}\n`);
  }

  if (o.warmupSec > 0) {
    for (const target of o.targets) {
      process.stderr.write(`\n== warm-up, ${target}: ${o.warmupSec} s of 50/50 at ${Math.max(...o.concurrency)} in flight (not measured)\n`);
      await runBench([
        '--target', target, '--endpoints', endpoints[target]!.join(','), '--concurrency', String(Math.max(...o.concurrency)),
        '--duration', String(o.warmupSec), '--value-size', String(o.valueSize), '--keys', String(o.keys),
        '--seed', String(o.seed + 1), '--ops', 'put,get',
      ]);
    }
  }

  const rows: RaceRow[] = [];
  const preloaded = new Set<Target>();
  for (const c of o.concurrency) {
    for (const w of o.workloads) {
      const row: RaceRow = { workload: w, concurrency: c };
      for (const target of o.targets) {
        const args = [
          '--target', target, '--endpoints', endpoints[target]!.join(','), '--concurrency', String(c),
          '--duration', String(o.durationSec), '--value-size', String(o.valueSize), '--keys', String(o.keys),
          '--seed', String(o.seed), '--ops', w === 'mixed' ? 'put,get' : w,
        ];
        if (w === 'get' && !preloaded.has(target)) {
          args.push('--preload');
          preloaded.add(target);
        }
        process.stderr.write(`\n== ${WORKLOAD_LABEL[w]}, ${c} in flight, ${target}${args.includes('--preload') ? ' (preloading every key first)' : ''}\n`);
        row[target] = await runBench(args);
      }
      rows.push(row);
    }
  }

  header.push(`load average at end (1/5/15 min): ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const out = [
    '',
    ...header,
    '',
    table([HEADER, ...rows.map(rowCells)]),
    '',
    'markdown:',
    '',
    markdownTable(rows),
    '',
  ].join('\n');
  process.stdout.write(out);
  if (o.jsonOut !== undefined) writeFileSync(o.jsonOut, JSON.stringify({ header, rows }, null, 2) + '\n');
  return 0;
}

main()
  .then(
    async (code) => {
      await stopAll();
      process.exit(code);
    },
    async (e: unknown) => {
      // after Ctrl-C the running cache-bench dies with its cluster: that is no error to report
      if (!isStopping()) process.stderr.write(`bench:cluster: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      await stopAll();
      process.exit(1);
    },
  );
