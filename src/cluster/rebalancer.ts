// Rebalancer: on every node, moves the shard groups THIS node leads toward the placement in the
// cluster metadata, one membership step per group at a time (replica-plan.ts decides the step),
// with at most `maxConcurrentMoves` replicas streaming in at once. Shard leaders do the work
// because only a leader can change its group's membership; the metadata leader only decides the
// placement. The metadata group is reconciled the same way (its desired replicas come from
// placement.ts).
import { META_SHARD_ID } from '../ring/index.js';
import { ConfChangeType, StateRole } from '../raft/index.js';
import type { MultiRaftHost } from '../store/host.js';
import type { MetaManager } from './meta-manager.js';
import { desiredMetaReplicas } from './placement.js';
import { type Desired, type Step, isMoving, nextStep, settled } from './replica-plan.js';

const MAX_TRANSFERS_PER_ROUND = 8;
const ALIVE_WITHIN_MS = 1000;

export interface RebalancerDeps {
  host: MultiRaftHost;
  meta: MetaManager;
  raftId: number;
  maxConcurrentMoves: number;
  log: (line: string) => void;
}

export class Rebalancer {
  private readonly busy = new Set<number>();
  private idOfFor: unknown;
  private idOf = new Map<string, number>();
  readonly stats = { learnersAdded: 0, promotions: 0, removals: 0, transfers: 0, failures: 0 };

  constructor(private readonly d: RebalancerDeps) {}

  /** Desired replicas of a shard in raft ids, from the local metadata view. */
  desired(shardId: number): Desired | undefined {
    const v = this.d.meta.current;
    if (!v) return undefined;
    // raft ids by node id, rebuilt only when the cluster record changes (rounds run every
    // 500 ms over every shard this node leads)
    if (this.idOfFor !== v.cluster) {
      this.idOfFor = v.cluster;
      this.idOf = new Map(v.cluster.members.map((m) => [m.nodeId, m.raftId]));
    }
    const idOf = this.idOf;
    if (shardId === META_SHARD_ID) {
      const cur = this.d.host.replicaStatus(META_SHARD_ID).confState.voters;
      const { voters, learners } = desiredMetaReplicas(v.cluster, cur);
      return { voters, learners, leader: 0 };
    }
    const s = v.placement.shards[shardId];
    if (!s) return undefined;
    const voters = s.replicas.map((r) => idOf.get(r)).filter((x): x is number => x !== undefined);
    if (voters.length !== s.replicas.length || voters.length === 0) return undefined;
    return { voters, leader: idOf.get(s.leaderHint) ?? 0 };
  }

  /** One pass over the groups this node leads; returns how many steps it started. */
  round(): number {
    const h = this.d.host;
    let moving = 0;
    const plans: Array<{ shardId: number; desired: Desired }> = [];
    for (const shardId of h.shardIds()) {
      if (!h.isLeader(shardId)) continue;
      const desired = this.desired(shardId);
      if (!desired || settled(h.confStateOf(shardId), desired, this.d.raftId)) continue;
      // a move in progress: a desired replica is in the group but still a learner
      if (shardId !== META_SHARD_ID && isMoving(h.replicaStatus(shardId).confState, desired)) moving++;
      plans.push({ shardId, desired });
    }
    let started = 0;
    let transfers = 0;
    for (const { shardId, desired } of plans) {
      if (this.busy.has(shardId)) continue;
      const st = h.replicaStatus(shardId);
      if (st.role !== StateRole.Leader) continue;
      // the metadata group is tiny and new members need it first (their placement view comes
      // from it): never held back by the budget
      const mayStart = shardId === META_SHARD_ID || moving < this.d.maxConcurrentMoves;
      // Raft's recentActive can be stale right after an election; a replica also has to have
      // been heard from by this node lately to count as caught up (no transfers to the dead)
      const progress = new Map([...st.progress].map(([id, p]) => [id, { ...p, recentActive: p.recentActive && (id === this.d.raftId || h.sinceHeardMs(id) < ALIVE_WITHIN_MS) }]));
      const step = nextStep({ self: this.d.raftId, confState: st.confState, commit: st.commit, progress }, desired, mayStart);
      if (!step) continue;
      // leadership moves are cheap but each costs its shard an election's worth of latency
      if (step.kind === 'transfer' && ++transfers > MAX_TRANSFERS_PER_ROUND) continue;
      if (step.kind === 'addLearner' && shardId !== META_SHARD_ID) moving++;
      started++;
      this.run(shardId, step);
    }
    return started;
  }

  private run(shardId: number, step: Step): void {
    const h = this.d.host;
    if (step.kind === 'transfer') {
      this.stats.transfers++;
      h.transferLeader(shardId, step.node);
      return;
    }
    const type = step.kind === 'addLearner' ? ConfChangeType.AddLearner : step.kind === 'promote' ? ConfChangeType.AddVoter : ConfChangeType.RemoveNode;
    this.busy.add(shardId);
    h.changeReplicas(shardId, { changes: [{ type, nodeId: step.node }] })
      .then(() => {
        if (step.kind === 'addLearner') this.stats.learnersAdded++;
        else if (step.kind === 'promote') this.stats.promotions++;
        else this.stats.removals++;
      })
      .catch((err: unknown) => {
        this.stats.failures++;
        this.d.log(`rebalance shard ${shardId}: ${step.kind} ${step.node} failed: ${(err as Error).message}`);
      })
      .finally(() => this.busy.delete(shardId));
  }
}
