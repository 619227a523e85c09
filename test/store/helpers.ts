// A 3-host in-process cluster over LocalHub with real files, for the store tests.
import { MultiRaftHost, StoreError, type HostOptions } from '../../src/store/host.js';
import { type MoveDeps, scanFrozen } from '../../src/store/range-move.js';
import { LocalHub } from '../../src/store/transport.js';
import { tempDir } from '../helpers/tmp.js';

export async function waitFor(cond: () => boolean, timeoutMs = 10000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export class TestCluster {
  readonly hub = new LocalHub();
  readonly hosts = new Map<number, MultiRaftHost>();
  readonly dirs = new Map<number, string>();
  constructor(
    readonly nodeIds: number[],
    readonly shards: number[],
    readonly extra: Partial<HostOptions> = {},
  ) {
    for (const id of nodeIds) this.dirs.set(id, tempDir(`distcache-store-${id}-`));
  }

  async start(id: number): Promise<MultiRaftHost> {
    const h = await MultiRaftHost.open({ nodeId: id, dataDir: this.dirs.get(id)!, transport: this.hub.transport(id), tickMs: 10, electionTick: 10, heartbeatTick: 2, ...this.extra });
    await h.addShards(this.shards.map((shardId) => ({ shardId, replicas: this.nodeIds })));
    this.hosts.set(id, h);
    return h;
  }

  async startAll(): Promise<void> {
    for (const id of this.nodeIds) await this.start(id);
  }

  /** crash: close without flushing the engine, so it loses every applied write not yet in a
   *  table (applies skip the engine's WAL), as a killed process would */
  async stop(id: number, opts: { crash?: boolean } = {}): Promise<void> {
    const h = this.hosts.get(id);
    this.hosts.delete(id);
    await h?.close({ flushEngine: !opts.crash });
  }

  /** Spreads leadership: shard s is campaigned for on node nodeIds[s % n]. */
  campaignSpread(): void {
    for (const s of this.shards) {
      const id = this.nodeIds[s % this.nodeIds.length]!;
      this.hosts.get(id)?.campaign(s);
    }
  }

  leader(shardId: number): MultiRaftHost | undefined {
    for (const h of this.hosts.values()) if (h.isLeader(shardId)) return h;
    return undefined;
  }

  async waitLeaders(timeoutMs = 10000): Promise<void> {
    await waitFor(() => this.shards.every((s) => {
      const l = this.leader(s);
      return l !== undefined && [...this.hosts.values()].every((h) => h.leaderOf(s) === l.nodeId);
    }), timeoutMs, 'leaders');
  }

  /** waitLeaders, then a barrier at every shard's leader: each leader has committed and applied
   *  an entry of its own term, so its appliedIndex covers everything committed before (right
   *  after waitLeaders a new leader may not have applied its predecessors' last entries yet). */
  async settle(timeoutMs = 10000): Promise<void> {
    await this.waitLeaders(timeoutMs);
    await Promise.all(this.shards.map((s) => this.leader(s)!.barrier(s)));
  }

  async closeAll(): Promise<void> {
    for (const id of [...this.hosts.keys()]) await this.stop(id);
  }
}

/** Range-move steps run at each shard's current leader in the cluster (what the metadata
 *  leader's RPCs do in a real cluster); `beforeCall` may throw to simulate a driver crash. */
export function leaderMoveDeps(c: TestCluster, beforeCall: () => void = () => {}): MoveDeps {
  const leader = (shard: number): MultiRaftHost => {
    const l = c.leader(shard);
    if (!l) throw new StoreError('UNAVAILABLE', `no leader of shard ${shard}`);
    return l;
  };
  return {
    propose: async (shard, ops) => {
      beforeCall();
      return leader(shard).propose(shard, { ops });
    },
    scan: async (shard, moveId, lo, hi, after, maxBytes) => {
      beforeCall();
      const l = leader(shard);
      await l.barrier(shard);
      return scanFrozen(l.engine, l.ranges, shard, moveId, lo, hi, after, maxBytes);
    },
  };
}
