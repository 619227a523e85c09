// RawNode: the application's handle on one Raft group member.
//
// Driving loop (single-threaded):
//   tick() on a timer; step(m) for every message from the transport; propose()/readIndex()/...
//   for client requests; then while hasReady(): rd = ready(); persist rd.snapshot, rd.entries,
//   rd.hardState (fsync if rd.mustSync); send rd.messages; apply rd.snapshot and
//   rd.committedEntries (applyConfChange for ConfChange entries); serve rd.readStates once
//   applied; advance().
// ready() and advance() must alternate: nothing handed out by ready() is repeated before advance().
import type { RaftConfig } from './config.js';
import { encodeConfChange } from './confchange.js';
import { RaftError, isRaftError } from './errors.js';
import { leaseValid } from './leader.js';
import type { Progress } from './progress.js';
import { Raft } from './raft.js';
import {
  type ConfChange,
  type ConfState,
  type HardState,
  type Message,
  type Ready,
  type SoftState,
  EntryType,
  MessageType,
  StateRole,
  hardStateEqual,
  isLocalMessage,
  isResponseMessage,
  makeMessage,
} from './types.js';

export interface Status {
  id: number;
  term: number;
  vote: number;
  commit: number;
  applied: number;
  lead: number;
  role: StateRole;
  lastIndex: number;
  leadTransferee: number;
  progress: Map<number, { match: number; next: number; state: string; learner: boolean }>;
}

export class RawNode {
  readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  /** What the last ready() handed out, consumed by advance(). */
  private pending: Ready | undefined;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoft = this.raft.softState();
    this.prevHard = this.raft.hardState();
  }

  get id(): number {
    return this.raft.id;
  }

  tick(): void {
    this.raft.tick();
  }

  /**
   * Tells the node that `ticks` ticks of real time passed without tick() calls (a group the
   * application stopped ticking, a stalled event loop). A leader moves its lease clock forward
   * by them, so a lease never outlives real time; nothing else (no election, no heartbeat) runs.
   */
  advanceLeaseClock(ticks: number): void {
    if (ticks > 0 && this.raft.role === StateRole.Leader) this.raft.leaderTicks += ticks;
  }

  /** Starts an election now (tests, or a node that knows it should lead). */
  campaign(): void {
    this.raft.step(makeMessage({ type: MessageType.Hup, from: this.raft.id }));
  }

  /** Proposes data for the log. Throws RaftError PROPOSAL_DROPPED if it cannot be accepted here
   *  (no leader known, transfer running, ...). Acceptance is not commitment: watch the applied
   *  entries (the caller tags data to recognise its own). */
  propose(data: Uint8Array): void {
    this.raft.step(makeMessage({ type: MessageType.Prop, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.Normal, data }] }));
  }

  proposeConfChange(cc: ConfChange): void {
    const data = encodeConfChange(cc);
    this.raft.step(makeMessage({ type: MessageType.Prop, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data }] }));
  }

  /** Applies a committed ConfChange (call when applying its entry). Returns the new ConfState,
   *  which the application stores with its next snapshot. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Steps a message received from the network. Local message types are refused. */
  step(m: Message): void {
    if (isLocalMessage(m.type)) throw new RaftError('INVALID_ARGUMENT', `cannot step local message ${MessageType[m.type]} from the network`);
    // Responses from nodes we no longer track are stale.
    if (isResponseMessage(m.type) && !this.raft.tracker.progress.has(m.from)) return;
    try {
      this.raft.step(m);
    } catch (err) {
      // A forwarded proposal or read that cannot be served here is simply dropped; its sender
      // retries after a timeout.
      if (isRaftError(err, 'PROPOSAL_DROPPED')) return;
      throw err;
    }
  }

  /** Requests a linearizable read; a ReadState with this context appears in a later Ready. */
  readIndex(context: Uint8Array): void {
    this.raft.step(makeMessage({ type: MessageType.ReadIndex, from: this.raft.id, context }));
  }

  transferLeader(to: number): void {
    this.raft.step(makeMessage({ type: MessageType.TransferLeader, from: to }));
  }

  reportUnreachable(id: number): void {
    this.raft.step(makeMessage({ type: MessageType.Unreachable, from: id }));
  }

  /** The application learned out of band (e.g. a host-level quiesce message, with
   *  lazyCommitBroadcast) that `leader`, leading at `term`, has committed its log up to `index`,
   *  its last entry. Commits here up to it, as a heartbeat would but without a response, if this
   *  is a follower of that leader at that term holding an entry of that term at that index (by
   *  Log Matching its log then equals the leader's up to there). Returns whether it did. */
  learnCommit(leader: number, term: number, index: number): boolean {
    const r = this.raft;
    if (r.role !== StateRole.Follower || r.term !== term || r.lead !== leader || r.log.termOf(index) !== term) return false;
    if (index > r.log.committed) r.log.commitTo(index);
    return true;
  }

  /** Whether the leader can currently serve reads from its lease. */
  hasValidLease(): boolean {
    return this.raft.role === StateRole.Leader && leaseValid(this.raft);
  }

  hasReady(): boolean {
    const r = this.raft;
    r.flushBroadcast();
    const soft = r.softState();
    if (soft.lead !== this.prevSoft.lead || soft.role !== this.prevSoft.role) return true;
    if (!hardStateEqual(r.hardState(), this.prevHard)) return true;
    if (r.log.hasPendingSnapshot()) return true;
    if (r.msgs.length > 0 || r.readStates.length > 0) return true;
    if (r.log.unstableEntries().length > 0) return true;
    return r.log.hasNextCommittedEnts();
  }

  ready(): Ready {
    if (this.pending) throw new RaftError('INVALID_ARGUMENT', 'ready() called twice without advance()');
    const r = this.raft;
    r.flushBroadcast();
    const entries = r.log.unstableEntries();
    const hard = r.hardState();
    const rd: Ready = {
      readStates: r.readStates,
      entries,
      committedEntries: r.log.nextCommittedEnts(),
      messages: r.msgs,
      mustSync: false,
    };
    r.readStates = [];
    r.msgs = [];
    const soft = r.softState();
    if (soft.lead !== this.prevSoft.lead || soft.role !== this.prevSoft.role) rd.softState = soft;
    if (!hardStateEqual(hard, this.prevHard)) rd.hardState = hard;
    const snap = r.log.unstableSnapshot();
    if (snap) rd.snapshot = snap;
    rd.mustSync = entries.length > 0 || hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote;
    this.pending = rd;
    return rd;
  }

  /** The application has persisted, sent and applied what the last ready() returned. */
  advance(): void {
    const rd = this.pending;
    if (!rd) throw new RaftError('INVALID_ARGUMENT', 'advance() without ready()');
    this.pending = undefined;
    const r = this.raft;
    if (rd.softState) this.prevSoft = rd.softState;
    if (rd.hardState) this.prevHard = rd.hardState;
    if (rd.snapshot) r.log.stableSnapTo(rd.snapshot.metadata.index);
    const last = rd.entries[rd.entries.length - 1];
    if (last) r.log.stableTo(last.index, last.term);
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted) r.appliedTo(lastCommitted.index);
    else if (rd.snapshot) r.appliedTo(rd.snapshot.metadata.index);
  }

  status(): Status {
    const r = this.raft;
    const progress = new Map<number, { match: number; next: number; state: string; learner: boolean }>();
    if (r.role === StateRole.Leader) {
      for (const [id, pr] of r.tracker.progress) progress.set(id, describe(pr));
    }
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      lead: r.lead,
      role: r.role,
      lastIndex: r.log.lastIndex(),
      leadTransferee: r.leadTransferee,
      progress,
    };
  }
}

function describe(pr: Progress): { match: number; next: number; state: string; learner: boolean } {
  return { match: pr.match, next: pr.next, state: pr.toString(), learner: pr.isLearner };
}
