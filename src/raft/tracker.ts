// ProgressTracker: the active membership configuration, a Progress per member (voters and
// learners), and the votes of the current election.
import { Progress } from './progress.js';
import { JointConfig, VoteResult } from './quorum.js';
import type { ConfState } from './types.js';

export interface TrackerConfig {
  voters: JointConfig;
  /** Non-voting members. Disjoint from both voter sets. */
  learners: Set<number>;
  /** Members of voters.outgoing that turn into learners when the joint config is left. */
  learnersNext: Set<number>;
  autoLeave: boolean;
}

export function emptyTrackerConfig(): TrackerConfig {
  return { voters: new JointConfig(), learners: new Set(), learnersNext: new Set(), autoLeave: false };
}

export function cloneTrackerConfig(c: TrackerConfig): TrackerConfig {
  return { voters: c.voters.clone(), learners: new Set(c.learners), learnersNext: new Set(c.learnersNext), autoLeave: c.autoLeave };
}

export function confStateOf(c: TrackerConfig): ConfState {
  const sorted = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);
  return {
    voters: sorted(c.voters.incoming),
    learners: sorted(c.learners),
    votersOutgoing: sorted(c.voters.outgoing),
    learnersNext: sorted(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

export class ProgressTracker {
  config: TrackerConfig = emptyTrackerConfig();
  progress = new Map<number, Progress>();
  votes = new Map<number, boolean>();

  constructor(
    readonly maxInflight: number,
    readonly maxInflightBytes: number,
  ) {}

  isSingleton(): boolean {
    return this.config.voters.incoming.size === 1 && this.config.voters.outgoing.size === 0;
  }

  voterIds(): number[] {
    return [...this.config.voters.ids()].sort((a, b) => a - b);
  }

  isVoter(id: number): boolean {
    return this.config.voters.incoming.has(id) || this.config.voters.outgoing.has(id);
  }

  /** Highest index replicated on a quorum (joint-aware). */
  committed(): number {
    return this.config.voters.committed(this.matchOf);
  }

  /** (created once: committed() runs on every append ack) */
  private readonly matchOf = (id: number): number => this.progress.get(id)?.match ?? 0;

  /** True if a quorum of voters was heard from (recentActive) since the last reset. */
  quorumActive(selfId: number): boolean {
    const votes = new Map<number, boolean>();
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      votes.set(id, id === selfId || pr.recentActive);
    }
    return this.config.voters.vote(votes) === VoteResult.Won;
  }

  quorumHas(ids: ReadonlySet<number>): boolean {
    const votes = new Map<number, boolean>();
    for (const id of this.config.voters.ids()) votes.set(id, ids.has(id));
    return this.config.voters.vote(votes) === VoteResult.Won;
  }

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: number, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, v] of this.votes) {
      if (!this.isVoter(id)) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: this.config.voters.vote(this.votes) };
  }
}
