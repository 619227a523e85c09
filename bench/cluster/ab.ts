// A/B of server settings on this noisy shared box: runs `probe.js` (a fresh N-node cluster and
// one cache-bench run) alternately for each variant, several rounds, and prints per variant the
// median ops/s, p50/p99 and server CPU per op (all nodes together, in µs). Alternating rounds let
// machine noise hit every variant alike; the medians are what to compare.
//
//   node dist/bench/cluster/ab.js --variants 'base=;sync=DISTCACHE_SYNC_ON_LOOP=1' \
//        [--rounds 3] [--concurrency 16] [--duration 8] [--ops put] [--nodes 3] [--warmup 10] [--idle 0]
//
// A variant is name=ENV1=v1,ENV2=v2 (environment for the servers; empty = as is), or
// name@dir=... to run another built checkout (a git worktree of an older commit with this
// probe.js copied into its dist); variants are separated by ';'.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PROBE_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'probe.js');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

interface Variant {
  name: string;
  env: Record<string, string>;
  /** another checkout's root to run (its dist/bench/cluster/probe.js); default: this one */
  root?: string;
}

function parseVariants(spec: string): Variant[] {
  return spec.split(';').filter((s) => s.trim() !== '').map((s) => {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error(`variant '${s}': expected name=ENV=v,...`);
    const env: Record<string, string> = {};
    for (const kv of s.slice(eq + 1).split(',').filter((x) => x !== '')) {
      const e = kv.indexOf('=');
      if (e <= 0) throw new Error(`variant '${s}': '${kv}' is not ENV=value`);
      env[kv.slice(0, e)] = kv.slice(e + 1);
    }
    // name@root: the probe (and so the servers) of another built checkout
    const [name, root] = s.slice(0, eq).split('@') as [string, string | undefined];
    return root ? { name, env, root } : { name, env };
  });
}

interface Run {
  ops: number;
  p50: number;
  p99: number;
  cpuUsPerOp: number;
}

function runProbe(v: Variant, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const probe = v.root ? path.resolve(v.root, 'dist/bench/cluster/probe.js') : PROBE_JS;
    const p = spawn(process.execPath, [probe, ...args], { env: { ...process.env, ...v.env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`probe (${v.name}) exited ${code}: ${out}`));
      // the cache-bench table row: "<op>  <count>  <ops/s>  <p50> ms  <p99> ms ..."
      const row = /^(?:put|get|mixed)\s+(\d+)\s+([\d.]+)(k?)\s+([\d.]+) ms\s+([\d.]+) ms/m.exec(out);
      const durationMs = Number(/^duration_ms (\d+)/m.exec(out)?.[1] ?? NaN);
      const cpu = [...out.matchAll(/cpu (\d+)% of a core/g)].reduce((a, m) => a + Number(m[1]), 0);
      if (!row) return reject(new Error(`probe (${v.name}): no result row in: ${out}`));
      const ops = Number(row[2]) * (row[3] === 'k' ? 1000 : 1);
      void durationMs;
      resolve({ ops, p50: Number(row[4]), p99: Number(row[5]), cpuUsPerOp: ((cpu / 100) * 1e6) / ops });
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const variants = parseVariants(arg('variants', 'base='));
  const rounds = Number(arg('rounds', '3'));
  const args = ['--concurrency', arg('concurrency', '16'), '--duration', arg('duration', '8'), '--ops', arg('ops', 'put'), '--nodes', arg('nodes', '3'), '--warmup', arg('warmup', '10'), '--idle', arg('idle', '0')];
  const runs = new Map<string, Run[]>(variants.map((v) => [v.name, []]));
  for (let r = 0; r < rounds; r++) {
    // alternate the order each round too
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const res = await runProbe(v, args);
      runs.get(v.name)!.push(res);
      console.log(`round ${r + 1} ${v.name}: ${res.ops.toFixed(0)} ops/s, p50 ${res.p50} ms, p99 ${res.p99} ms, server CPU ${res.cpuUsPerOp.toFixed(0)} µs/op`);
    }
  }
  console.log(`\nmedians over ${rounds} rounds (${args.join(' ')}):`);
  for (const v of variants) {
    const rs = runs.get(v.name)!;
    console.log(`${v.name.padEnd(12)} ${median(rs.map((x) => x.ops)).toFixed(0).padStart(6)} ops/s  p50 ${median(rs.map((x) => x.p50)).toFixed(1)} ms  p99 ${median(rs.map((x) => x.p99)).toFixed(1)} ms  server CPU ${median(rs.map((x) => x.cpuUsPerOp)).toFixed(0)} µs/op`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
