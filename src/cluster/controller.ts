// ClusterController: the periodic cluster work of one node.
//
// On every node, each round:
//   - the rebalancer moves the groups this node leads toward the placement (rebalancer.ts);
//   - a draining node that holds no shard replica any more asks to be removed (`leave`).
// Only on the leader of the metadata group:
//   - records the client addresses members advertise (learned from their Raft traffic);
//   - liveness: a member not heard from for downAfterMs is marked down (its replicas are
//     re-created elsewhere), a down member heard from again is marked up;
//   - placement: recomputed from the eligible members whenever membership changed, and written
//     with a new epoch; shard leaders then move replicas (rebalancer.ts).
import { META_SHARD_ID } from '../ring/index.js';
import type { MultiRaftHost } from '../store/host.js';
import type { MetaManager } from './meta-manager.js';
import type { ClusterRecord, MemberState } from './meta-state.js';
import { desiredPlacement } from './placement.js';
import { Rebalancer } from './rebalancer.js';
import { StateRole } from '../raft/index.js';

/** Rounds between checks for replicas removed while this node was away. */
const STALE_CHECK_EVERY = 4;

export interface ControllerDeps {
  host: MultiRaftHost;
  meta: MetaManager;
  raftId: number;
  nodeId: string;
  /** the client address this node knows for a member ('' = unknown) */
  clientAddressOf: (raftId: number) => string;
  /** asks the metadata leader to mark this (draining, now empty) node removed */
  requestLeave: () => Promise<void>;
  /** what a member's replica of a shard knows (undefined: unreachable / no answer) */
  replicaInfo: (nodeId: string, shardId: number) => Promise<{ hasReplica: boolean; leader: boolean; term: number; voters: number[]; learners: number[] } | undefined>;
  downAfterMs: number;
  maxConcurrentMoves: number;
  log: (line: string) => void;
  intervalMs?: number;
}

export class ClusterController {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly firstSeen = new Map<number, number>();
  private rounds = 0;
  readonly rebalancer: Rebalancer;

  constructor(private readonly d: ControllerDeps) {
    this.rebalancer = new Rebalancer({ host: d.host, meta: d.meta, raftId: d.raftId, maxConcurrentMoves: d.maxConcurrentMoves, log: d.log });
  }

  start(): void {
    this.timer = setInterval(() => void this.round(), this.d.intervalMs ?? 500);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Runs one round now (POST /api/cluster/rebalance). */
  async trigger(): Promise<void> {
    await this.round();
  }

  private async round(): Promise<void> {
    if (this.busy || !this.d.meta.current) return;
    this.busy = true;
    try {
      if (this.d.host.hasReplica(META_SHARD_ID) && this.d.host.isLeader(META_SHARD_ID)) {
        await this.recordClientAddresses();
        await this.updateLiveness();
        await this.updatePlacement();
      }
      this.rebalancer.round();
      if (++this.rounds % STALE_CHECK_EVERY === 0) await this.removeStaleReplicas();
      await this.maybeLeave();
    } catch (err) {
      this.d.log(`cluster controller: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  private async recordClientAddresses(): Promise<void> {
    const stale = (c: ClusterRecord): boolean => c.members.some((m) => m.state !== 'removed' && this.d.clientAddressOf(m.raftId) !== '' && this.d.clientAddressOf(m.raftId) !== m.clientAddress);
    if (!stale(this.d.meta.current!.cluster)) return;
    await this.d.meta.update((v) => {
      if (!stale(v.cluster)) return undefined;
      const members = v.cluster.members.map((m) => {
        const a = m.state === 'removed' ? '' : this.d.clientAddressOf(m.raftId);
        return a !== '' ? { ...m, clientAddress: a } : m;
      });
      return { cluster: { ...v.cluster, members } };
    });
  }

  /** The state liveness says a member should have, or undefined for no change. */
  private livenessState(m: { raftId: number; state: MemberState }): MemberState | undefined {
    if (m.raftId === this.d.raftId) return m.state === 'up' || m.state === 'draining' ? undefined : m.state === 'removed' ? undefined : 'up';
    const since = this.d.host.sinceHeardMs(m.raftId);
    // a freshly elected metadata leader, or a member just admitted, has not been heard from
    // yet: give everyone a full period from when this node first saw them
    let seen = this.firstSeen.get(m.raftId);
    if (seen === undefined) this.firstSeen.set(m.raftId, (seen = Date.now()));
    const silent = Math.min(since, Date.now() - seen) >= this.d.downAfterMs;
    if (m.state === 'up' && silent) return 'down';
    if (m.state === 'down' && since < this.d.downAfterMs / 4) return 'up';
    return undefined;
  }

  private async updateLiveness(): Promise<void> {
    const changes = (c: ClusterRecord): boolean => c.members.some((m) => this.livenessState(m) !== undefined);
    if (!changes(this.d.meta.current!.cluster)) return;
    await this.d.meta.update((v) => {
      if (!changes(v.cluster)) return undefined;
      const members = v.cluster.members.map((m) => {
        const s = this.livenessState(m);
        if (s === undefined) return m;
        this.d.log(`member ${m.nodeId} (raft id ${m.raftId}) is now ${s}`);
        return { ...m, state: s };
      });
      return { cluster: { ...v.cluster, members } };
    });
  }

  /** The (cluster, placement) records last found settled: desiredPlacement is pure in them, and
   *  recomputing it (a hash ring and every shard's replicas) each round is not free. */
  private settled: { cluster: unknown; placement: unknown } | undefined;

  private async updatePlacement(): Promise<void> {
    const v = this.d.meta.current!;
    if (this.settled?.cluster === v.cluster && this.settled.placement === v.placement) return;
    if (!desiredPlacement(v.cluster, v.placement)) {
      this.settled = { cluster: v.cluster, placement: v.placement };
      return;
    }
    await this.d.meta.update((cur) => {
      const next = desiredPlacement(cur.cluster, cur.placement);
      if (!next) return undefined;
      this.d.log(`placement epoch ${next.epoch}: ${next.shards.length} shards over ${new Set(next.shards.flatMap((s) => s.replicas)).size} members`);
      return { placement: next };
    });
  }

  /**
   * Replicas the placement no longer gives this node and that their group removed (moved away
   * by the rebalancer, or removed while this node was down and never applied here). Destroyed
   * only on the word of the group's current leader: a replica's own applied configuration is
   * not proof (a new replica replays configurations from before it was added).
   */
  private async removeStaleReplicas(): Promise<void> {
    const v = this.d.meta.current!;
    for (const shardId of this.d.host.shardIds()) {
      if (shardId === META_SHARD_ID) continue;
      const placed = v.placement.shards[shardId];
      if (!placed || placed.replicas.includes(this.d.nodeId)) continue;
      const mine = this.d.host.replicaStatus(shardId);
      if (mine.role === StateRole.Leader) continue;
      for (const nodeId of placed.replicas) {
        const info = await this.d.replicaInfo(nodeId, shardId);
        if (!info?.leader || info.term < mine.term) continue;
        if (info.voters.includes(this.d.raftId) || info.learners.includes(this.d.raftId)) break; // still a member: the leader will remove it
        this.d.log(`shard ${shardId}: the group (leader ${nodeId}, term ${info.term}) removed this replica while the node was away; destroying it`);
        await this.d.host.destroyRemovedReplica(shardId);
        break;
      }
    }
  }

  private async maybeLeave(): Promise<void> {
    const me = this.d.meta.current!.cluster.members.find((m) => m.raftId === this.d.raftId);
    if (me?.state !== 'draining') return;
    if (this.d.host.shardIds().some((s) => s !== META_SHARD_ID)) return;
    await this.d.requestLeave();
  }
}
