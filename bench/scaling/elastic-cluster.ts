// An elastic distcache cluster for the scaling bench, grown the way a user grows one: n1 started
// alone (single mode), every further node started with --seeds pointing at the running members.
// Each node is a cache-server child process on free 127.0.0.1 ports with its own temp data dir,
// both registered with bench/cluster/procs.ts so that Ctrl-C or an error stops them by PID and
// removes the dirs. Convergence is read from GET /api/cluster/nodes as the elastic test reads it:
// exactly the expected members, all `up`, each hosting what the placement gives it, at a
// placement epoch newer than the last convergence.
import { freePorts, http, rmDir, ServerProc, tmpDir } from '../../test/server/harness.js';
import { stopProcess, trackDir, trackProcess } from '../cluster/procs.js';
import { dirBytes } from './procstat.js';

export interface ScalingNode {
  id: string;
  /** Client gRPC address. */
  address: string;
  httpPort: number;
  dir: string;
  proc: ServerProc;
}

export interface NodeView {
  id: string;
  state: string;
  replicas: number | null;
  leaders: number | null;
  placement_replicas: number;
}

export interface ClusterOptions {
  shards: number;
  /** cluster.max_concurrent_moves; undefined: the server default. */
  maxMoves: number | undefined;
}

const RF = 3; // the server default, min(3, members): not set, so it grows with the cluster
const START_TIMEOUT_MS = 60_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class ElasticCluster {
  readonly nodes: ScalingNode[] = [];
  /** Placement epoch of the last convergence; the next one must be newer. */
  private epoch = 0;

  constructor(private readonly o: ClusterOptions) {}

  get endpoints(): string[] {
    return this.nodes.map((n) => n.address);
  }

  /** Spawns the next node (n1 alone, later ones with --seeds = every current member) and resolves
   *  once it printed its ready line, with Date.now() at spawn and at the ready line. */
  async addNode(): Promise<{ node: ScalingNode; spawnedAt: number; readyAt: number }> {
    const [client, peer, httpPort, metrics] = (await freePorts(4)) as [number, number, number, number];
    const id = `n${this.nodes.length + 1}`;
    const dir = tmpDir();
    trackDir(dir);
    const seeds = this.nodes.map((n) => n.address);
    const proc = new ServerProc({
      args: ['--node-id', id, '--port', String(client), '--peer-port', String(peer), '--http-port', String(httpPort), '--metrics-port', String(metrics), '--data-dir', dir, ...(seeds.length > 0 ? ['--seeds', seeds.join(',')] : [])],
      env: {
        DISTCACHE_CLUSTER_SHARD_COUNT: String(this.o.shards),
        DISTCACHE_SERVER_LISTEN_ADDRESS: '127.0.0.1',
        DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000',
        ...(this.o.maxMoves === undefined ? {} : { DISTCACHE_CLUSTER_MAX_CONCURRENT_MOVES: String(this.o.maxMoves) }),
      },
    });
    const node: ScalingNode = { id, address: `127.0.0.1:${client}`, httpPort, dir, proc };
    this.nodes.push(node);
    const spawnedAt = Date.now();
    const ready = proc.start(START_TIMEOUT_MS);
    trackProcess(proc.proc!);
    await ready;
    return { node, spawnedAt, readyAt: Date.now() };
  }

  async view(): Promise<{ epoch: number; nodes: NodeView[] }> {
    const r = await http(this.nodes[0]!.httpPort, 'GET', '/api/cluster/nodes');
    return { epoch: r.json['epoch'] as number, nodes: r.json['nodes'] as NodeView[] };
  }

  /** Waits until every started node is a member, up, holding exactly its placement, at a newer
   *  placement epoch than the last convergence. Resolves with the view and Date.now() at which it
   *  was seen (polled every `pollMs`, so up to that much late). */
  async converged(timeoutMs: number, pollMs = 250): Promise<{ at: number; nodes: NodeView[] }> {
    const ids = this.nodes.map((n) => n.id);
    const end = Date.now() + timeoutMs;
    let last: unknown = 'no answer yet';
    while (Date.now() < end) {
      try {
        const v = await this.view();
        last = v;
        const placed = v.nodes.reduce((a, n) => a + n.placement_replicas, 0);
        if (
          v.epoch > this.epoch &&
          v.nodes.length === ids.length &&
          // every member placed (an epoch bumped by a liveness flap must not pass for the join's)
          v.nodes.every((n) => ids.includes(n.id) && n.state === 'up' && n.placement_replicas > 0 && n.replicas === n.placement_replicas) &&
          placed === this.o.shards * Math.min(RF, ids.length)
        ) {
          this.epoch = v.epoch;
          return { at: Date.now(), nodes: v.nodes };
        }
      } catch (e) {
        last = e instanceof Error ? e.message : String(e); // the node is busy; ask again
      }
      await sleep(pollMs);
    }
    throw new Error(`cluster did not converge to ${ids.join(',')} in ${timeoutMs / 1000} s; last view: ${JSON.stringify(last)}`);
  }

  /** Starts n1, then joins nodes one at a time, waiting for convergence after each. */
  async grow(size: number, timeoutMs: number): Promise<void> {
    while (this.nodes.length < size) {
      await this.addNode();
      await this.converged(timeoutMs);
    }
  }

  /** Leader counts per node id as the cluster reports them now. */
  async leaders(): Promise<Map<string, number>> {
    const v = await this.view();
    return new Map(v.nodes.map((n) => [n.id, n.leaders ?? 0]));
  }

  /** Bytes under a node's data dir (engine + node-wide Raft log + metadata). */
  diskBytes(n: ScalingNode): number {
    return dirBytes(n.dir);
  }

  /** SIGTERM (then SIGKILL) every node by PID, then removes their data dirs (a GB-sized cluster
   *  should not sit on disk until the whole bench ends; stopAll() removes them too on errors). */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => (n.proc.proc === undefined ? Promise.resolve() : stopProcess(n.proc.proc))));
    for (const n of this.nodes) rmDir(n.dir);
  }
}
