// The elastic cluster's scaling benchmark.
//
//   npm run bench:scaling -- [--sizes 1,3,5] [--duration 10] [--warmup 2] [--concurrency 64]
//                            [--keys 10000] [--value-size 4096] [--shards 64] [--gb 0.5]
//                            [--moves N] [--phases writes,catchup] [--settle 3]
//                            [--converge-timeout 900] [--seed 42] [--json-out f]
//
// writes:  for each size, a fresh cluster grown from n1 by --seeds (rf = min(3, nodes): one
//          replica per shard on one node), then put-only load (throughput.ts); per-node server CPU
//          per write and the throughput it projects with one core per node.
// catchup: a 3-node cluster loaded with --gb GiB, then a 4th node joins; time until the cluster
//          converged on the new placement, bytes moved, foreground latency (catchup.ts).
// Every process is started and stopped by PID (bench/cluster/procs.ts), temp dirs removed, also
// on Ctrl-C and errors. Everything listens on 127.0.0.1.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { Command, CommanderError } from 'commander';
import { si, table, us } from '../cache-bench/report.js';
import { installSignalCleanup, isStopping, stopAll } from '../cluster/procs.js';
import { measureCatchup, type CatchupResult } from './catchup.js';
import { ElasticCluster } from './elastic-cluster.js';
import { measureWrites, projection, type WriteRow } from './throughput.js';

interface Options {
  sizes: number[];
  durationSec: number;
  warmupSec: number;
  concurrency: number;
  keys: number;
  valueSize: number;
  shards: number;
  gib: number;
  maxMoves: number | undefined;
  phases: Array<'writes' | 'catchup'>;
  seed: number;
  settleSec: number;
  convergeTimeoutSec: number;
  jsonOut: string | undefined;
}

function fail(msg: string): never {
  throw new CommanderError(2, 'scaling.badOption', msg);
}

function posNum(flag: string, v: string | undefined, int: boolean, max: number): number {
  const n = Number(v);
  if (v === undefined || v.trim() === '' || !Number.isFinite(n) || n <= 0 || n > max || (int && !Number.isInteger(n))) fail(`${flag} must be ${int ? 'an integer' : 'a number'} in (0, ${max}], got '${v ?? ''}'`);
  return n;
}

function parseArgs(argv: string[]): Options {
  const cmd = new Command('bench:scaling')
    .description('write throughput of 1, 3, 5 nodes grown by --seeds (rf 3) with per-node CPU per write, and the time a 4th node takes to receive its share of N GiB')
    .option('--sizes <list>', 'cluster sizes for the write runs', '1,3,5')
    .option('--duration <s>', 'measured seconds per write run', '10')
    .option('--warmup <s>', 'unmeasured seconds of the same load before each write run', '2')
    .option('--concurrency <n>', 'writes in flight', '64')
    .option('--keys <n>', 'key space of the write runs (uniform)', '10000')
    .option('--value-size <bytes>', 'value size', '4096')
    .option('--shards <n>', 'cluster.shard_count (the server default is 1024)', '64')
    .option('--gb <GiB>', 'data loaded before the 4th node joins', '0.5')
    .option('--moves <n>', 'cluster.max_concurrent_moves (default: the server default)')
    .option('--phases <list>', 'writes,catchup', 'writes,catchup')
    .option('--settle <s>', 'seconds to wait after convergence before measuring (leader balancing)', '3')
    .option('--converge-timeout <s>', 'give up on a convergence after this long', '900')
    .option('--seed <n>', 'PRNG seed', '42')
    .option('--json-out <file>', 'also write the results as JSON')
    .exitOverride();
  cmd.parse(argv, { from: 'user' });
  const o = cmd.opts<Record<string, string | undefined>>();
  const phases = (o['phases'] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const p of phases) if (p !== 'writes' && p !== 'catchup') fail(`--phases: unknown '${p}' (known: writes, catchup)`);
  if (phases.length === 0) fail('--phases is empty');
  return {
    sizes: (o['sizes'] ?? '').split(',').map((s) => posNum('--sizes', s, true, 7)),
    durationSec: posNum('--duration', o['duration'], false, 3600),
    warmupSec: o['warmup'] === '0' ? 0 : posNum('--warmup', o['warmup'], false, 600),
    concurrency: posNum('--concurrency', o['concurrency'], true, 10_000),
    keys: posNum('--keys', o['keys'], true, 1e9),
    valueSize: posNum('--value-size', o['valueSize'], true, 1 << 20),
    shards: posNum('--shards', o['shards'], true, 65534),
    gib: posNum('--gb', o['gb'], false, 1024),
    maxMoves: o['moves'] === undefined ? undefined : posNum('--moves', o['moves'], true, 1024),
    phases: phases as Options['phases'],
    seed: Number.isSafeInteger(Number(o['seed'])) ? Number(o['seed']) : fail(`--seed must be an integer, got '${o['seed'] ?? ''}'`),
    settleSec: o['settle'] === '0' ? 0 : posNum('--settle', o['settle'], false, 600),
    convergeTimeoutSec: posNum('--converge-timeout', o['convergeTimeout'], false, 86_400),
    jsonOut: o['jsonOut'],
  };
}

function gitCommit(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  if (r.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).stdout.trim() !== '';
  return r.stdout.trim() + (dirty ? ' (+ uncommitted changes)' : '');
}

const loadavg = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const log = (s: string): void => void process.stderr.write(s + '\n');
const mib = (b: number): string => (b / 2 ** 20).toFixed(0);
const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const WRITE_HEADER = ['nodes', 'replicas/shard', 'ops/s', 'p50', 'p99', 'client CPU µs/op', 'servers CPU µs/op (sum)', 'per node CPU µs/op [leaders, idle CPU]', 'projected ops/s, 1 core/node: bottleneck / balanced', 'errors'];

function writeCells(r: WriteRow): string[] {
  const p = projection(r);
  const errs = r.result.errors === 0 ? '0' : `${r.result.errors} (${Object.entries(r.result.errorsByCode).map(([k, v]) => `${k} ${v}`).join(', ')})`;
  return [
    String(r.nodes),
    String(r.replicas),
    si(r.result.opsPerSec),
    us(r.result.latency.p50Us),
    us(r.result.latency.p99Us),
    f1(r.result.cpuUsPerOp),
    f1(r.serverUsPerOp),
    r.perNode.map((n) => `${n.id} ${f1(n.usPerOp)} [${n.leaders}, ${(n.idleCpuShare * 100).toFixed(0)}%]`).join(', '),
    `${si(p.bottleneckOpsPerSec)} / ${si(p.balancedOpsPerSec)}`,
    errs,
  ];
}

const CATCHUP_HEADER = ['loaded', 'load time', 'load rate', 'n4 ready', 'n4 converged', 'n4 replicas', 'n4 share', 'n4 engine bytes in', 'n4 disk', 'share / time', 'n4 replicas created / destroyed / snapshots applied'];

function catchupCells(c: CatchupResult, shards: number): string[] {
  return [
    `${mib(c.loadedBytes)} MiB (${c.keys} keys)`,
    `${c.loadSec.toFixed(1)} s`,
    `${(c.loadedBytes / 2 ** 20 / c.loadSec).toFixed(1)} MiB/s`,
    `${c.readySec.toFixed(1)} s`,
    c.converged ? `${c.convergeSec.toFixed(1)} s` : `NOT after ${c.convergeSec.toFixed(0)} s`,
    `${c.newNodeReplicas} of ${shards * 3}`,
    `${mib(c.shareBytes)} MiB`,
    `${mib(c.newNode.engineBytesWritten)} MiB`,
    `${mib(c.newNodeDiskBytes)} MiB`,
    c.converged ? `${(c.shareBytes / 2 ** 20 / c.convergeSec).toFixed(1)} MiB/s` : 'n/a',
    `${c.newNode.replicasCreated} / ${c.newNode.replicasDestroyed} / ${c.newNode.snapshotsApplied}`,
  ];
}

const FG_HEADER = ['foreground (put/get 1:1)', 'ops/s', 'p50', 'p99', 'max', 'errors'];

function fgCells(label: string, r: CatchupResult['fgDuring']): string[] {
  return [label, si(r.opsPerSec), us(r.latency.p50Us), us(r.latency.p99Us), us(r.latency.maxUs), r.errors === 0 ? '0' : `${r.errors} (${Object.entries(r.errorsByCode).map(([k, v]) => `${k} ${v}`).join(', ')})`];
}

function markdown(rows: string[][]): string {
  const [h, ...body] = rows;
  const numeric = (c: number): boolean => body.every((r) => /^[\d.]/.test(r[c] ?? ''));
  return [`| ${h!.join(' | ')} |`, `|${h!.map((_, c) => (numeric(c) ? '---:' : '---')).join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

async function main(signal: AbortSignal): Promise<number> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'scaling.badOption') process.stderr.write(`bench:scaling: ${e.message}\n`);
      return e.exitCode === 0 ? 0 : 2;
    }
    throw e;
  }
  const cpus = os.cpus();
  const header = [
    `commit: ${gitCommit()}`,
    `machine: ${cpus.length} x ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}; the client and every server on this box, sharing its CPUs`,
    `load average at start (1/5/15 min): ${loadavg()}`,
    `cluster: ${o.shards} shards, replication factor min(3, nodes), grown from n1 by --seeds; max_concurrent_moves ${o.maxMoves ?? 'server default (4)'}`,
    `writes: put-only, ${o.valueSize} B random values, ${o.keys} keys uniform, ${o.concurrency} in flight, ${o.warmupSec} s warm-up + ${o.durationSec} s measured, seed ${o.seed}`,
  ];
  log(header.join('\n'));

  const writes: WriteRow[] = [];
  if (o.phases.includes('writes')) {
    for (const size of o.sizes) {
      if (signal.aborted) break;
      const cluster = new ElasticCluster({ shards: o.shards, maxMoves: o.maxMoves });
      try {
        const t = Date.now();
        await cluster.grow(size, o.convergeTimeoutSec * 1000);
        log(`\n== ${size} node(s): converged in ${((Date.now() - t) / 1000).toFixed(1)} s; settling ${o.settleSec} s`);
        await sleep(o.settleSec * 1000);
        const row = await measureWrites(cluster, { concurrency: o.concurrency, durationSec: o.durationSec, warmupSec: o.warmupSec, idleSec: 2, keys: o.keys, valueSize: o.valueSize, seed: o.seed, timeoutMs: 5000, signal });
        writes.push(row);
        log(table([WRITE_HEADER, writeCells(row)]));
      } finally {
        await cluster.stop();
      }
    }
  }

  let catchup: CatchupResult | undefined;
  if (o.phases.includes('catchup') && !signal.aborted) {
    log('');
    catchup = await measureCatchup({ gib: o.gib, shards: o.shards, maxMoves: o.maxMoves, valueSize: o.valueSize, loadBatch: 256, loadConcurrency: 4, fgConcurrency: 4, fgBaselineSec: 5, convergeTimeoutSec: o.convergeTimeoutSec, seed: o.seed, signal, log });
  }

  header.push(`load average at end (1/5/15 min): ${loadavg()}`);
  const out: string[] = ['', ...header, ''];
  if (writes.length > 0) {
    const rows = [WRITE_HEADER, ...writes.map(writeCells)];
    out.push('Write throughput:', '', table(rows), '', markdown(rows), '');
  }
  if (catchup !== undefined) {
    const rows = [CATCHUP_HEADER, catchupCells(catchup, o.shards)];
    const fg = [FG_HEADER, ...(catchup.fgBefore ? [fgCells('before the join (5 s)', catchup.fgBefore)] : []), fgCells('during the move', catchup.fgDuring)];
    const disk = (d: CatchupResult['diskAfterLoad']): string => d.map((x) => `${x.id} ${mib(x.bytes)}`).join(', ');
    out.push(
      'New node catching up:',
      '',
      table(rows),
      '',
      markdown(rows),
      '',
      markdown(fg),
      '',
      `load: multiPut batches of 256 keys, 4 in flight; batches re-sent: ${Object.entries(catchup.loadRetries).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
      `disk MiB after load: ${disk(catchup.diskAfterLoad)}; after the move: ${disk(catchup.diskAfterMove)}`,
      `peak RSS MiB (VmHWM, whole run): ${disk(catchup.peakRss)}`,
      `n4 replicas with nothing applied: ${catchup.newNode.emptyReplicas}; shards whose leader counts n4 as a voter while n4's replica applied nothing: ${catchup.newNode.votersWithoutData.length} [${catchup.newNode.votersWithoutData.join(',')}]; shards where n4 is still a learner: [${catchup.newNode.learnerShards.join(',')}]`,
      `members at the end: ${catchup.lastView.map((n) => `${n.id} ${n.state} ${n.replicas ?? '?'}/${n.placement_replicas} replicas, ${n.leaders ?? '?'} leaders`).join('; ')}`,
      '',
    );
  }
  process.stdout.write(out.join('\n'));
  if (o.jsonOut !== undefined) writeFileSync(o.jsonOut, JSON.stringify({ header, writes, catchup }, null, 2) + '\n');
  return 0;
}

const ac = new AbortController();
process.once('SIGINT', () => ac.abort());
installSignalCleanup();
main(ac.signal).then(
  async (code) => {
    await stopAll();
    process.exit(code);
  },
  async (e: unknown) => {
    if (!isStopping()) process.stderr.write(`bench:scaling: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    await stopAll();
    process.exit(1);
  },
);
