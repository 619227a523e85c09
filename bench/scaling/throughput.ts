// Write throughput of one converged cluster: the cache-bench driver (closed loop, put-only,
// uniform keys) through one CacheClient given every endpoint, after a short unmeasured warm-up.
// First 2 s with no load give each server's idle CPU (ticks, heartbeats of every group).
// Around the measured run it reads each server's utime+stime, so the row carries the CPU every
// node spent per cluster write — what predicts throughput once the nodes have cores of their own
// (see projection() and the reading in bench/RESULTS.md).
import { performance } from 'node:perf_hooks';
import { Rng } from '../../src/util/rng.js';
import { openBackend } from '../cache-bench/backend.js';
import { runLoad, type RunResult } from '../cache-bench/driver.js';
import { UniformChooser } from '../cache-bench/keys.js';
import type { ElasticCluster } from './elastic-cluster.js';
import { cpuUs } from './procstat.js';

export interface WriteOptions {
  concurrency: number;
  durationSec: number;
  warmupSec: number;
  /** Seconds of no client load before the warm-up, to measure each node's idle CPU. */
  idleSec: number;
  keys: number;
  valueSize: number;
  seed: number;
  timeoutMs: number;
  signal: AbortSignal;
}

export interface NodeCpu {
  id: string;
  /** Server CPU (user+system) over the measured run / successful cluster writes, µs. */
  usPerOp: number;
  /** CPU share of one core this node used with no client load (ticks, heartbeats, metadata):
   *  part of usPerOp that does not grow with load. */
  idleCpuShare: number;
  /** Shards this node led at the end of the run. */
  leaders: number;
  replicas: number;
}

export interface WriteRow {
  nodes: number;
  /** Replicas per shard (min(3, nodes)). */
  replicas: number;
  result: RunResult;
  perNode: NodeCpu[];
  /** Sum of perNode usPerOp: the whole cluster's CPU per write. */
  serverUsPerOp: number;
}

export async function measureWrites(cluster: ElasticCluster, o: WriteOptions): Promise<WriteRow> {
  const rng = new Rng(o.seed);
  const chooser = new UniformChooser(o.keys, rng.fork());
  const opRng = rng.fork();
  const value = Buffer.from(rng.fork().bytes(o.valueSize)); // random bytes: lz4 gains nothing
  const backend = await openBackend('distcache', cluster.endpoints, o.timeoutMs);
  try {
    const pids = cluster.nodes.map((n) => n.proc.pid);
    const idle0 = pids.map(cpuUs);
    const tIdle = performance.now();
    await new Promise((r) => setTimeout(r, o.idleSec * 1000));
    const idle1 = pids.map(cpuUs);
    const idleUs = (performance.now() - tIdle) * 1000;
    const base = { backend, concurrency: o.concurrency, mix: { put: 1, get: 0 }, chooser, value, rng: opRng, signal: o.signal };
    if (o.warmupSec > 0) await runLoad({ ...base, durationMs: o.warmupSec * 1000 }); // connections, streams, JIT
    const cpu0 = pids.map(cpuUs);
    const result = await runLoad({ ...base, durationMs: o.durationSec * 1000 });
    const cpu1 = pids.map(cpuUs);
    const view = await cluster.view();
    const perNode = cluster.nodes.map((n, i): NodeCpu => {
      const a = cpu0[i];
      const b = cpu1[i];
      const v = view.nodes.find((x) => x.id === n.id);
      const i0 = idle0[i];
      const i1 = idle1[i];
      return {
        idleCpuShare: i0 === undefined || i1 === undefined || idleUs <= 0 ? NaN : (i1 - i0) / idleUs,
        id: n.id,
        usPerOp: a === undefined || b === undefined ? NaN : (b - a) / Math.max(1, result.ops),
        leaders: v?.leaders ?? 0,
        replicas: v?.replicas ?? 0,
      };
    });
    return { nodes: cluster.nodes.length, replicas: Math.min(3, cluster.nodes.length), result, perNode, serverUsPerOp: perNode.reduce((s, n) => s + n.usPerOp, 0) };
  } finally {
    await backend.close();
  }
}

export interface Projection {
  /** min over nodes of its one-core capacity: the first node to fill its core caps the cluster. */
  bottleneckOpsPerSec: number;
  /** The same with the work spread evenly over the nodes (leaders and replicas balanced). */
  balancedOpsPerSec: number;
}

/** Writes/s the cluster could sustain with one core per node, from CPU per op alone (no network,
 *  disk or latency limits; per-op costs as measured at this load, which overstates them where
 *  the load was light and batches small). A node's idle CPU (ticks, heartbeats) is a fixed share
 *  of its core, not a cost per op: capacity = (1 - idle share) × 1e6 / (busy µs per op), where
 *  busy µs per op = measured µs per op - idle share × 1e6 / measured ops/s. */
export function projection(row: WriteRow): Projection {
  const ops = row.result.opsPerSec;
  const parts = row.perNode
    .filter((n) => Number.isFinite(n.usPerOp) && n.usPerOp > 0)
    .map((n) => {
      const idle = Number.isFinite(n.idleCpuShare) ? Math.min(Math.max(n.idleCpuShare, 0), 0.9) : 0;
      return { idle, busy: Math.max(n.usPerOp - (idle * 1e6) / Math.max(ops, 1e-9), 1e-3) };
    });
  if (parts.length === 0) return { bottleneckOpsPerSec: NaN, balancedOpsPerSec: NaN };
  const meanIdle = parts.reduce((s, p) => s + p.idle, 0) / parts.length;
  return {
    bottleneckOpsPerSec: Math.min(...parts.map((p) => ((1 - p.idle) * 1e6) / p.busy)),
    balancedOpsPerSec: (parts.length * (1 - meanIdle) * 1e6) / parts.reduce((s, p) => s + p.busy, 0),
  };
}
