// Where a distcache put's time goes: starts an N-node cluster (cache-server child processes, as
// the race does), runs one cache-bench child against it, and prints per node the deltas of the
// host loop counters (/api/stats: turns, group readies, log writes, fsyncs, and the time spent in
// turns, in the Raft-log persist and in apply) and the server's CPU over the run.
//
//   node dist/bench/cluster/probe.js [--nodes 3] [--shards 1024] [--concurrency 16]
//        [--duration 8] [--ops put] [--warmup <s>] [--idle <s>] [--cpu-prof <dir>]
//   --cpu-prof: V8 profiles of the servers; --idle: seconds without clients between the warm-up
//   and the measured run (as the race's rows follow the other system's: a node that was quiet)
//   DISTCACHE_SERVER_NODE_ARGS='--flag ...' adds node/V8 flags to the servers' command line.
//
// Every process it started is stopped by PID and the temp dirs removed (procs.ts).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, localCluster, connect } from '../../test/server/harness.js';
import { installSignalCleanup, stopAll, trackDir, trackProcess } from './procs.js';

const BENCH_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../cache-bench/cli.js');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

/** utime + stime of a process in ms (Linux /proc; clock ticks assumed 100/s). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * 10;
}

/** CPU ms per thread kind of a process: 'main', else the thread's name (comm, e.g. libuv-worker,
 *  V8 DefaultWorke) */
function threadsMs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const f = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const name = Number(t) === pid ? 'main' : f.slice(f.indexOf('(') + 1, f.lastIndexOf(')')).trim();
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + (Number(rest[11]) + Number(rest[12])) * 10);
    } catch {
      /* thread gone */
    }
  }
  return out;
}

/** system-time share of a process's CPU in ms */
function sysMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[12]) * 10;
}

type Stats = { host: Record<string, number>; raft_log: Record<string, number>; engine: Record<string, number>; transfers: number; termSum: number };

async function stats(httpPort: number): Promise<Stats> {
  const r = await fetch(`http://127.0.0.1:${httpPort}/api/stats`);
  const s = (await r.json()) as Stats;
  // leadership transfers the rebalancer started, and the sum of the replicas' terms (elections)
  const rep = (await (await fetch(`http://127.0.0.1:${httpPort}/api/cluster/replicas`)).json()) as { replicas: Array<{ term: number }>; rebalancer: { transfers: number } | null };
  s.transfers = rep.rebalancer?.transfers ?? 0;
  s.termSum = rep.replicas.reduce((a, x) => a + x.term, 0);
  return s;
}

/** One cache-bench child process against `endpoints`; resolves with what it printed. */
function runBench(endpoints: string[], args: string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const env = { ...process.env };
    delete env['NODE_OPTIONS'];
    const p = spawn(process.execPath, [BENCH_JS, '--endpoints', endpoints.join(','), ...args, '--no-progress'], { stdio: ['ignore', 'pipe', 'inherit'], env });
    trackProcess(p);
    let s = '';
    p.stdout.on('data', (d: Buffer) => (s += d.toString()));
    p.on('exit', (code) => (code === 0 ? resolve(s) : reject(new Error(`cache-bench exited ${code}`))));
  });
}

async function main(): Promise<void> {
  installSignalCleanup();
  const size = Number(arg('nodes', '3'));
  const shards = Number(arg('shards', '1024'));
  const prof = process.argv.includes('--cpu-prof') ? arg('cpu-prof', '/tmp/distcache-prof') : undefined;
  const nodes = await localCluster(Array.from({ length: size }, (_, i) => `n${i + 1}`), shards);
  // DISTCACHE_SERVER_NODE_ARGS: node/V8 flags for the servers that NODE_OPTIONS refuses (an A/B
  // variant sets it, e.g. --single-threaded-gc)
  const extra = (process.env['DISTCACHE_SERVER_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  for (const n of nodes) n.proc.spec.nodeArgs = [...extra, ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [])];
  for (const n of nodes) trackDir(n.dir);
  await Promise.all(nodes.map(async (n) => {
    const p = n.proc.start(60_000);
    trackProcess(n.proc.proc!);
    await p;
  }));
  for (const n of nodes) {
    const c = connect(n.address);
    try {
      await eventually(async () => {
        const info = await c.call('ClusterInfo', {});
        const s = info['shards'] as Array<{ leader_address: string }>;
        if (s.length !== shards || !s.every((x) => x.leader_address !== '')) throw new Error('no leaders yet');
      }, 60_000, 200);
    } finally {
      c.close();
    }
  }
  const httpPorts = nodes.map((n) => Number(n.proc.spec.args[n.proc.spec.args.indexOf('--http-port') + 1]));
  {
    // idle baseline: what the nodes burn with no client at all
    const i0 = nodes.map((n) => threadsMs(n.proc.pid!));
    await new Promise((r) => setTimeout(r, 3000));
    const i1 = nodes.map((n) => threadsMs(n.proc.pid!));
    const others = (m: Map<string, number>): number => [...m].filter(([k]) => k !== 'main').reduce((a, [, v]) => a + v, 0);
    console.log('idle: ' + nodes.map((n, i) => `${n.id} main ${(((i1[i]!.get('main') ?? 0) - (i0[i]!.get('main') ?? 0)) / 30).toFixed(1)}% other ${((others(i1[i]!) - others(i0[i]!)) / 30).toFixed(1)}%`).join(', '));
  }
  const warmupSec = Number(arg('warmup', '0'));
  if (warmupSec > 0) {
    // unmeasured load first, so the measured window sees JIT-compiled servers (as a long-running
    // node is), not their warm-up
    await runBench(nodes.map((n) => n.address), ['--concurrency', arg('concurrency', '16'), '--duration', String(warmupSec), '--ops', 'put,get', '--seed', '7']);
  }
  const idleSec = Number(arg('idle', '0'));
  if (idleSec > 0) await new Promise((r) => setTimeout(r, idleSec * 1000));
  const before = await Promise.all(httpPorts.map(stats));
  const cpu0 = nodes.map((n) => cpuMs(n.proc.pid!));
  const sys0 = nodes.map((n) => sysMs(n.proc.pid!));
  const thr0 = nodes.map((n) => threadsMs(n.proc.pid!));
  const outMark = nodes.map((n) => [n.proc.out.length, n.proc.err.length] as const);
  const t0 = Date.now();
  const out = await runBench(nodes.map((n) => n.address), ['--concurrency', arg('concurrency', '16'), '--duration', arg('duration', '8'), '--ops', arg('ops', 'put'), '--seed', '42']);
  const wall = Date.now() - t0;
  const after = await Promise.all(httpPorts.map(stats));
  const cpu1 = nodes.map((n) => cpuMs(n.proc.pid!));
  const sys1 = nodes.map((n) => sysMs(n.proc.pid!));
  const thr1 = nodes.map((n) => threadsMs(n.proc.pid!));
  console.log(out.trim());
  // DISTCACHE_PROBE_OUT_DIR: keep what each server printed during the run (e.g. V8 --trace-deopt)
  const outDir = process.env['DISTCACHE_PROBE_OUT_DIR'];
  if (outDir) nodes.forEach((n, i) => writeFileSync(path.join(outDir, `${n.id}.out`), n.proc.out.slice(outMark[i]![0]) + n.proc.err.slice(outMark[i]![1])));
  const keys = [...Object.keys(after[0]!.host).filter((k) => k.startsWith('qx_')), 'roleChanges', 'maxTurnsInFlight', 'earlySends', 'earlyApplies', 'beginMs', 'turns', 'readyGroups', 'logWrites', 'applyWrites', 'sends', 'messagesSent', 'commandsProposed', 'entriesProposed', 'electionTimeouts', 'quorumStepDowns', 'turnMs', 'persistMs', 'applyMs'];
  for (let i = 0; i < nodes.length; i++) {
    const d: Record<string, number> = {};
    for (const k of keys) d[k] = (after[i]!.host[k] ?? 0) - (before[i]!.host[k] ?? 0);
    d['transfers'] = after[i]!.transfers - before[i]!.transfers;
    d['termsUp'] = after[i]!.termSum - before[i]!.termSum;
    for (const k of ['syncs', 'syncMs', 'writeMs', 'coldReads']) d[k] = (after[i]!.raft_log[k] ?? 0) - (before[i]!.raft_log[k] ?? 0);
    for (const k of ['flushes', 'compactions', 'writeSlowdowns', 'writeStalls']) d[`engine.${k}`] = (after[i]!.engine[k] ?? 0) - (before[i]!.engine[k] ?? 0);
    for (const k of ['logGcs', 'logTruncations', 'truncationRoundMs']) d[k] = (after[i]!.host[k] ?? 0) - (before[i]!.host[k] ?? 0);
    for (const k of ['maxTurnMs', 'maxTruncationRoundMs']) d[k] = after[i]!.host[k] ?? 0; // since start
    const turns = d['turns']! || 1;
    const threads = [...thr1[i]!].map(([k, v]) => [k, v - (thr0[i]!.get(k) ?? 0)] as const).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${((v / wall) * 100).toFixed(0)}%`);
    console.log(`${nodes[i]!.id} threads: ${threads.join(', ')}`);
    console.log(
      `${nodes[i]!.id}: cpu ${(((cpu1[i]! - cpu0[i]!) / wall) * 100).toFixed(0)}% of a core (system ${(((sys1[i]! - sys0[i]!) / wall) * 100).toFixed(0)}%); ` +
        Object.entries(d).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ') +
        `; per turn: ${(d['turnMs']! / turns).toFixed(2)} ms (persist ${(d['persistMs']! / turns).toFixed(2)}, apply ${(d['applyMs']! / turns).toFixed(2)}), ${(d['readyGroups']! / turns).toFixed(1)} groups; loop busy ${((d['turnMs']! / wall) * 100).toFixed(0)}% of wall`,
    );
  }
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => void stopAll());
