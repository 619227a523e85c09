// How long a new node takes to receive its share of the data. A 3-node cluster (grown by
// --seeds) is loaded with N GiB of distinct keys through the client (multiPut batches), then a
// 4th node is started with --seeds and timed from its spawn until the cluster has converged on a
// newer placement: every member up and hosting exactly its placement, which the rebalancer
// reaches only after each moved replica was added as a learner, caught up (snapshot and/or log),
// promoted, and the replica it replaces removed. A light foreground load (closed loop, put/get
// over the loaded keys) runs through the move and, for comparison, for a while before it.
import { CacheClient } from '../../src/client/index.js';
import { Rng } from '../../src/util/rng.js';
import { errorCode, openBackend } from '../cache-bench/backend.js';
import { runLoad, type RunResult } from '../cache-bench/driver.js';
import { keyName, UniformChooser } from '../cache-bench/keys.js';
import { http } from '../../test/server/harness.js';
import { ElasticCluster, type NodeView, type ScalingNode } from './elastic-cluster.js';
import { peakRssBytes } from './procstat.js';

export interface CatchupOptions {
  gib: number;
  shards: number;
  maxMoves: number | undefined;
  valueSize: number;
  loadBatch: number;
  loadConcurrency: number;
  fgConcurrency: number;
  fgBaselineSec: number;
  convergeTimeoutSec: number;
  seed: number;
  signal: AbortSignal;
  log: (s: string) => void;
}

export interface NodeDisk {
  id: string;
  bytes: number;
}

export interface CatchupResult {
  keys: number;
  loadedBytes: number;
  loadSec: number;
  /** multiPut batches re-sent during the load, by error code. */
  loadRetries: Record<string, number>;
  diskAfterLoad: NodeDisk[];
  /** Spawn of the 4th node -> its ready line. */
  readySec: number;
  /** False: the cluster had not converged when --converge-timeout ran out. */
  converged: boolean;
  /** Spawn of the 4th node -> convergence seen (polled every 250 ms), or -> giving up. */
  convergeSec: number;
  /** /api/cluster/nodes at convergence or when giving up. */
  lastView: NodeView[];
  newNodeReplicas: number;
  /** keys × valueSize × (new node's replicas / shards): the user data it should now hold. */
  shareBytes: number;
  /** Bytes under the new node's data dir at convergence (engine + Raft log). */
  newNodeDiskBytes: number;
  diskAfterMove: NodeDisk[];
  newNode: NewNodeDiagnostics;
  peakRss: NodeDisk[];
  fgBefore: RunResult | undefined;
  fgDuring: RunResult;
}

/** What the new node and the shard leaders say about the new node's replicas. */
export interface NewNodeDiagnostics {
  /** Host counters of the new node. */
  replicasCreated: number;
  replicasDestroyed: number;
  snapshotsApplied: number;
  /** Bytes its engine took in (snapshots + applied entries). */
  engineBytesWritten: number;
  /** Its shard replicas (metadata group excluded) with nothing applied. */
  emptyReplicas: number;
  /** Shards whose leader counts the new node as a voter while the new node's own replica of
   *  the shard has applied nothing: a voter that does not hold the data. */
  votersWithoutData: number[];
  /** Shards whose leader still has the new node as a learner. */
  learnerShards: number[];
}

interface ReplicaView {
  shard: number | 'meta';
  role: string;
  applied: number;
  voters: number[];
  learners: number[];
}

async function replicas(n: ScalingNode): Promise<ReplicaView[]> {
  return (await http(n.httpPort, 'GET', '/api/cluster/replicas')).json['replicas'] as ReplicaView[];
}

async function newNodeDiagnostics(cluster: ElasticCluster, n4: ScalingNode): Promise<NewNodeDiagnostics> {
  const stats = (await http(n4.httpPort, 'GET', '/api/stats')).json as { host: { replicasCreated: number; replicasDestroyed: number; snapshotsApplied: number }; engine: { userBytesWritten: number } };
  const raftId = ((await cluster.view()).nodes as Array<NodeView & { raft_id?: number }>).find((x) => x.id === n4.id)?.raft_id ?? -1;
  const own = new Map((await replicas(n4)).filter((r) => r.shard !== 'meta').map((r) => [r.shard, r]));
  const votersWithoutData: number[] = [];
  const learnerShards: number[] = [];
  for (const n of cluster.nodes) {
    if (n === n4) continue;
    for (const r of await replicas(n)) {
      if (r.shard === 'meta' || r.role !== 'Leader') continue;
      if (r.learners.includes(raftId)) learnerShards.push(r.shard);
      if (r.voters.includes(raftId) && (own.get(r.shard)?.applied ?? 0) === 0) votersWithoutData.push(r.shard);
    }
  }
  return {
    replicasCreated: stats.host.replicasCreated,
    replicasDestroyed: stats.host.replicasDestroyed,
    snapshotsApplied: stats.host.snapshotsApplied,
    engineBytesWritten: stats.engine.userBytesWritten,
    emptyReplicas: [...own.values()].filter((r) => r.applied === 0).length,
    votersWithoutData: votersWithoutData.sort((a, b) => a - b),
    learnerShards: learnerShards.sort((a, b) => a - b),
  };
}

/** Distinct value per key (its index in the first bytes) over one random buffer. */
function valueFor(base: Buffer, i: number): Buffer {
  const v = Buffer.from(base);
  v.writeUIntLE(i, 0, Math.min(6, v.length));
  return v;
}

const LOAD_ATTEMPTS = 20;

/** Writes keys [0, keys); resolves with the batch retries by error code. */
async function load(endpoints: string[], keys: number, base: Buffer, o: CatchupOptions): Promise<Record<string, number>> {
  const retries: Record<string, number> = {};
  const c = await CacheClient.connect(endpoints, { timeoutMs: 30_000 });
  let next = 0;
  let done = 0;
  const t0 = Date.now();
  const timer = setInterval(() => o.log(`  loaded ${done}/${keys} keys, ${Object.values(retries).reduce((a, b) => a + b, 0)} batch retries, ${((done * o.valueSize) / 2 ** 20 / ((Date.now() - t0) / 1000)).toFixed(1)} MiB/s`), 10_000);
  const worker = async (): Promise<void> => {
    while (next < keys && !o.signal.aborted) {
      const from = next;
      const to = Math.min(keys, from + o.loadBatch);
      next = to;
      const entries = [];
      for (let i = from; i < to; i++) entries.push({ key: keyName(i), value: valueFor(base, i) });
      // Loading writes fixed values, so re-sending a batch whose outcome is unknown (a leader
      // change drops proposals: PROPOSAL_DROPPED) is safe. Retries are counted and reported.
      for (let attempt = 1; ; attempt++) {
        try {
          await c.multiPut(entries); // the client retries inside; this covers what it gives up on
          break;
        } catch (e) {
          if (attempt >= LOAD_ATTEMPTS || o.signal.aborted) throw e;
          const code = errorCode(e);
          retries[code] = (retries[code] ?? 0) + 1;
          await new Promise((r) => setTimeout(r, 100 * attempt));
        }
      }
      done += to - from;
    }
  };
  try {
    await Promise.all(Array.from({ length: o.loadConcurrency }, worker));
  } finally {
    clearInterval(timer);
    c.close();
  }
  if (o.signal.aborted) throw new Error('aborted');
  return retries;
}

/** Light foreground load until `stop` aborts (or the bench is interrupted). */
async function foreground(endpoints: string[], keys: number, base: Buffer, o: CatchupOptions, stop: AbortSignal, durationMs: number): Promise<RunResult> {
  const rng = new Rng(o.seed + 1);
  const backend = await openBackend('distcache', endpoints, 5000);
  try {
    return await runLoad({ backend, concurrency: o.fgConcurrency, durationMs, mix: { put: 1, get: 1 }, chooser: new UniformChooser(keys, rng.fork()), value: base, rng: rng.fork(), signal: AbortSignal.any([stop, o.signal]) });
  } finally {
    await backend.close();
  }
}

export async function measureCatchup(o: CatchupOptions): Promise<CatchupResult> {
  const cluster = new ElasticCluster({ shards: o.shards, maxMoves: o.maxMoves });
  try {
    o.log(`catch-up: growing 1 -> 3 nodes by --seeds (${o.shards} shards)`);
    await cluster.grow(3, o.convergeTimeoutSec * 1000);
    const keys = Math.max(1, Math.round((o.gib * 2 ** 30) / o.valueSize));
    const base = Buffer.from(new Rng(o.seed).bytes(o.valueSize));
    o.log(`catch-up: loading ${keys} keys x ${o.valueSize} B (${o.gib} GiB) in multiPut batches of ${o.loadBatch}, ${o.loadConcurrency} in flight`);
    const t0 = Date.now();
    const loadRetries = await load(cluster.endpoints, keys, base, o);
    const loadSec = (Date.now() - t0) / 1000;
    const diskAfterLoad = cluster.nodes.map((n) => ({ id: n.id, bytes: cluster.diskBytes(n) }));
    o.log(`catch-up: loaded in ${loadSec.toFixed(1)} s; disk ${diskAfterLoad.map((d) => `${d.id} ${(d.bytes / 2 ** 20).toFixed(0)} MiB`).join(', ')}`);

    let fgBefore: RunResult | undefined;
    if (o.fgBaselineSec > 0) {
      o.log(`catch-up: foreground baseline, ${o.fgBaselineSec} s before the join`);
      fgBefore = await foreground(cluster.endpoints, keys, base, o, new AbortController().signal, o.fgBaselineSec * 1000);
    }
    const stopFg = new AbortController();
    const fg = foreground(cluster.endpoints, keys, base, o, stopFg.signal, 24 * 3600 * 1000);
    fg.catch(() => undefined); // awaited below; do not let an early rejection go unhandled
    let during: RunResult;
    let joined: Awaited<ReturnType<ElasticCluster['addNode']>>;
    let conv: Awaited<ReturnType<ElasticCluster['converged']>> | undefined;
    try {
      o.log('catch-up: starting n4 with --seeds');
      joined = await cluster.addNode();
      o.log(`catch-up: n4 ready after ${((Date.now() - joined.spawnedAt) / 1000).toFixed(1)} s; waiting for convergence`);
      try {
        conv = await cluster.converged(o.convergeTimeoutSec * 1000);
      } catch (e) {
        o.log(`catch-up: ${e instanceof Error ? e.message : String(e)}`);
        conv = undefined; // reported with the diagnostics below, not thrown: the numbers still matter
      }
    } finally {
      stopFg.abort();
      during = await fg;
    }
    const n4 = joined.node;
    const stoppedAt = Date.now();
    const view = conv?.nodes ?? (await cluster.view()).nodes;
    const newNodeReplicas = view.find((n) => n.id === n4.id)?.placement_replicas ?? 0;
    const result: CatchupResult = {
      keys,
      loadedBytes: keys * o.valueSize,
      loadSec,
      loadRetries,
      diskAfterLoad,
      readySec: (joined.readyAt - joined.spawnedAt) / 1000,
      converged: conv !== undefined,
      convergeSec: ((conv?.at ?? stoppedAt) - joined.spawnedAt) / 1000,
      lastView: view,
      newNodeReplicas,
      shareBytes: (keys * o.valueSize * newNodeReplicas) / o.shards,
      newNodeDiskBytes: cluster.diskBytes(n4),
      diskAfterMove: cluster.nodes.map((n) => ({ id: n.id, bytes: cluster.diskBytes(n) })),
      newNode: await newNodeDiagnostics(cluster, n4),
      peakRss: cluster.nodes.map((n) => ({ id: n.id, bytes: peakRssBytes(n.proc.pid) ?? NaN })),
      fgBefore,
      fgDuring: during,
    };
    return result;
  } finally {
    await cluster.stop();
  }
}
