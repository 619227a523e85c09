// The Raft state machine of one group member: term/vote bookkeeping, role transitions, and the
// term-level message filter. Role-specific handling lives in leader.ts / candidate.ts /
// follower.ts and is swapped in by become*(), as are the tick functions.
//
// Contract: single-threaded and deterministic. Inputs are step() and tick(); outputs accumulate
// in `msgs` and `readStates` and in the RaftLog's unstable tail, and are collected by RawNode.
// Nothing here reads a clock or does IO; randomness comes from config.random.
import { type ValidConfig, validateConfig, type RaftConfig } from './config.js';
import { Changer, decodeConfChange, restoreConfig, type ChangeResult } from './confchange.js';
import { RaftError, invariant } from './errors.js';
import { stepCandidate } from './candidate.js';
import { stepFollower } from './follower.js';
import { bcastAppend, stepLeader, maybeSendAppend } from './leader.js';
import { RaftLog } from './log.js';
import type { Progress } from './progress.js';
import { ReadOnly } from './read-only.js';
import { ProgressTracker, confStateOf } from './tracker.js';
import {
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type ReadState,
  type Snapshot,
  type SoftState,
  EntryType,
  MessageType,
  NONE,
  StateRole,
  makeMessage,
} from './types.js';
import { VoteResult } from './quorum.js';

/** Vote context marking an election triggered by TimeoutNow: voters ignore their lease. */
export const CAMPAIGN_TRANSFER = new Uint8Array([0x74, 0x72]); // "tr"

export type CampaignType = 'pre' | 'election' | 'transfer';

export interface IncomingSnapshot {
  index: number;
  term: number;
  chunks: Uint8Array[];
  received: number;
}

export class Raft {
  readonly id: number;
  readonly cfg: ValidConfig;
  term = 0;
  vote = NONE;
  lead = NONE;
  role = StateRole.Follower;
  isLearner = false;
  readonly log: RaftLog;
  readonly tracker: ProgressTracker;
  msgs: Message[] = [];
  readStates: ReadState[] = [];

  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  /** Ticks since this node object was created: a restarted follower may have promised a lease. */
  ticksSinceStart = 0;
  /** Restarted with a non-zero term: may have acknowledged a leader just before the restart. */
  private readonly restarted: boolean;
  /** Leader: ticks since becoming leader (the lease clock). */
  leaderTicks = 0;
  /** Leader: a TimeoutNow was sent this term, so another node may already lead: no lease reads. */
  leaseRevoked = false;
  leadTransferee = NONE;
  /** Leader: index of the latest ConfChange entry; no new one until it is applied. */
  pendingConfIndex = 0;
  readOnly = new ReadOnly();
  /** Leader: ReadIndex requests waiting for the first commit of this term. */
  pendingReadIndexMessages: Message[] = [];
  /** Leader: new proposals not yet sent; flushed by flushBroadcast() (RawNode.ready). */
  pendingBroadcast = false;
  /** Follower: a chunked snapshot being received. */
  incomingSnapshot: IncomingSnapshot | undefined;

  stepRole: (r: Raft, m: Message) => void = stepFollower;
  tickRole: () => void = () => this.tickElection();

  constructor(config: RaftConfig) {
    this.cfg = validateConfig(config);
    this.id = this.cfg.id;
    this.log = new RaftLog(this.cfg.storage, this.cfg.maxCommittedSizePerReady);
    this.tracker = new ProgressTracker(this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    const { hardState, confState } = this.cfg.storage.initialState();
    // Term 1 is the bootstrap term (MemoryStorage.bootstrapWithLog); leases start at term 2.
    this.restarted = hardState.term > 1;
    const cr = restoreConfig(confState, this.log.lastIndex(), this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    this.switchToConfig(cr);
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) this.loadState(hardState);
    if (this.cfg.applied > 0) this.log.appliedTo(Math.min(this.cfg.applied, this.log.committed));
    this.becomeFollower(this.term, NONE);
  }

  private loadState(h: HardState): void {
    invariant(h.commit >= this.log.committed && h.commit <= this.log.lastIndex(), `hard state commit ${h.commit} out of range [${this.log.committed}, ${this.log.lastIndex()}]`);
    this.log.committed = h.commit;
    this.term = h.term;
    this.vote = h.vote;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { lead: this.lead, role: this.role };
  }

  logger() {
    return this.cfg.logger;
  }

  // ---- sending -----------------------------------------------------------------------------

  send(m: Message): void {
    if (m.from === NONE) m.from = this.id;
    if (m.type === MessageType.Vote || m.type === MessageType.VoteResp || m.type === MessageType.PreVote || m.type === MessageType.PreVoteResp) {
      invariant(m.term !== 0, `term should be set when sending ${MessageType[m.type]}`);
    } else if (m.type === MessageType.Prop || m.type === MessageType.ReadIndex || m.type === MessageType.TransferLeader) {
      // Forwarded requests carry term 0 and are treated like local messages by the leader.
    } else {
      m.term = this.term;
    }
    this.msgs.push(m);
  }

  // ---- role transitions ----------------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.tracker.resetVotes();
    const last = this.log.lastIndex();
    for (const [id, pr] of this.tracker.progress) {
      pr.match = 0;
      pr.becomeProbe();
      pr.next = last + 1;
      pr.leaseAckTick = Number.NEGATIVE_INFINITY;
      pr.recentActive = false;
      if (id === this.id) pr.match = last;
    }
    this.pendingConfIndex = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
    this.leaderTicks = 0;
    this.leaseRevoked = false;
    this.pendingBroadcast = false;
  }

  resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.cfg.electionTick + this.cfg.random.int(this.cfg.electionTick);
  }

  becomeFollower(term: number, lead: number): void {
    this.reset(term);
    this.stepRole = stepFollower;
    this.tickRole = () => this.tickElection();
    this.lead = lead;
    this.role = StateRole.Follower;
  }

  becomePreCandidate(): void {
    invariant(this.role !== StateRole.Leader, 'invalid transition [leader -> pre-candidate]');
    // A pre-candidate changes neither term nor vote.
    this.stepRole = stepCandidate;
    this.tickRole = () => this.tickElection();
    this.tracker.resetVotes();
    this.lead = NONE;
    this.role = StateRole.PreCandidate;
  }

  becomeCandidate(): void {
    invariant(this.role !== StateRole.Leader, 'invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.stepRole = stepCandidate;
    this.tickRole = () => this.tickElection();
    this.vote = this.id;
    this.role = StateRole.Candidate;
  }

  becomeLeader(): void {
    invariant(this.role !== StateRole.Follower, 'invalid transition [follower -> leader]');
    this.reset(this.term);
    this.stepRole = stepLeader;
    this.tickRole = () => this.tickHeartbeat();
    this.lead = this.id;
    this.role = StateRole.Leader;
    const self = this.tracker.progress.get(this.id);
    if (self) self.becomeReplicate();
    // No conf change may be proposed until everything up to here is applied (the new leader may
    // hold an unapplied one from an earlier term).
    this.pendingConfIndex = this.log.lastIndex();
    // §5.4.2 / §8: an empty entry of the new term commits everything before it and lets the
    // leader learn the commit index for ReadIndex.
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }]);
    this.logger().info(`node ${this.id} became leader at term ${this.term}`);
  }

  // ---- ticks ---------------------------------------------------------------------------------

  tick(): void {
    this.ticksSinceStart++;
    this.tickRole();
  }

  promotable(): boolean {
    const pr = this.tracker.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.log.hasPendingSnapshot();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(makeMessage({ type: MessageType.Hup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    this.leaderTicks++;
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) this.step(makeMessage({ type: MessageType.CheckQuorum, from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.role === StateRole.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.role !== StateRole.Leader) return;
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.step(makeMessage({ type: MessageType.Beat, from: this.id }));
    }
  }

  // ---- elections -----------------------------------------------------------------------------

  /** True if a committed but unapplied entry is a ConfChange: campaigning could use a stale config. */
  private hasUnappliedConfChanges(): boolean {
    if (this.log.applied >= this.log.committed) return false;
    const lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    const ents = this.log.slice(lo, this.log.committed + 1, Number.MAX_SAFE_INTEGER);
    return ents.some((e) => e.type === EntryType.ConfChange);
  }

  hup(t: CampaignType): void {
    if (this.role === StateRole.Leader) return;
    if (!this.promotable()) {
      this.logger().debug(`node ${this.id} is not promotable; ignoring campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.logger().debug(`node ${this.id} has unapplied conf changes; not campaigning`);
      return;
    }
    this.campaign(t);
  }

  campaign(t: CampaignType): void {
    let term: number;
    let voteType: MessageType;
    if (t === 'pre') {
      this.becomePreCandidate();
      voteType = MessageType.PreVote;
      term = this.term + 1; // the term we would campaign in; our own term is unchanged
    } else {
      this.becomeCandidate();
      voteType = MessageType.Vote;
      term = this.term;
    }
    const respType = voteType === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
    if (this.poll(this.id, respType, true) === VoteResult.Won) {
      // Single voter: won immediately.
      if (t === 'pre') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.tracker.voterIds()) {
      if (id === this.id) continue;
      const m = makeMessage({ type: voteType, to: id, term, index: lastIndex, logTerm: lastTerm });
      if (t === 'transfer') m.context = CAMPAIGN_TRANSFER;
      this.send(m);
    }
  }

  poll(id: number, t: MessageType, granted: boolean): VoteResult {
    this.logger().debug(`node ${this.id} received ${MessageType[t]} ${granted ? 'grant' : 'rejection'} from ${id} at term ${this.term}`);
    this.tracker.recordVote(id, granted);
    return this.tracker.tallyVotes().result;
  }

  /** Whether this node currently honours a leader lease (CheckQuorum's vote suppression). */
  inLease(): boolean {
    if (!this.cfg.checkQuorum) return false;
    // After a restart we cannot know whether we acknowledged a leader within the last election
    // timeout, so behave as if we had.
    if (this.restarted && this.ticksSinceStart < this.cfg.electionTick) return true;
    return this.lead !== NONE && this.electionElapsed < this.cfg.electionTick;
  }

  // ---- step ----------------------------------------------------------------------------------

  step(m: Message): void {
    if (m.term === 0) {
      // local message, or a forwarded request
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context !== undefined && sameBytes(m.context, CAMPAIGN_TRANSFER);
        if (!force && this.inLease()) {
          // §6 of the thesis / CheckQuorum: we heard from a live leader recently; ignore, do not
          // even bump the term, so a partitioned node cannot depose a healthy leader.
          this.logger().debug(`node ${this.id} ignored ${MessageType[m.type]} from ${m.from}: in lease`);
          return;
        }
      }
      if (m.type === MessageType.PreVote) {
        // Never change term for a pre-vote.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A granted pre-vote response carries the future term; we bump it when we win.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A stale leader (e.g. one we stopped voting for because of PreVote) must learn our term,
        // or it would never step down.
        this.send(makeMessage({ type: MessageType.AppResp, to: m.from }));
      } else if (m.type === MessageType.PreVote) {
        this.send(makeMessage({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true }));
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.cfg.preVote ? 'pre' : 'election');
        return;
      case MessageType.Vote:
      case MessageType.PreVote: {
        const canVote =
          this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === MessageType.PreVote && m.term > this.term);
        const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
        if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
          // For a pre-vote, answer in the candidate's future term so it can count the grant.
          this.send(makeMessage({ type: respType, to: m.from, term: m.term }));
          if (m.type === MessageType.Vote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send(makeMessage({ type: respType, to: m.from, term: this.term, reject: true }));
        }
        return;
      }
      default:
        this.stepRole(this, m);
    }
  }

  // ---- log helpers shared by roles -----------------------------------------------------------

  appendEntries(es: Entry[]): void {
    let li = this.log.lastIndex();
    for (const e of es) {
      e.term = this.term;
      e.index = ++li;
    }
    this.log.append(es);
    const self = this.tracker.progress.get(this.id);
    if (self) self.maybeUpdate(this.log.lastIndex());
    this.maybeCommit();
  }

  maybeCommit(): boolean {
    const mci = this.tracker.committed();
    if (!Number.isFinite(mci)) return false;
    return this.log.maybeCommit(mci, this.term);
  }

  committedEntryInCurrentTerm(): boolean {
    return this.log.termOf(this.log.committed) === this.term;
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  /** Follower/candidate side: install a snapshot received in full. Returns false if ignored. */
  restore(s: Snapshot): boolean {
    const md = s.metadata;
    if (md.index <= this.log.committed) return false;
    if (this.role !== StateRole.Follower) {
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    if (this.log.matchTerm(md.index, md.term)) {
      // We already have the entries: just fast-forward the commit index.
      this.log.commitTo(md.index);
      return false;
    }
    this.log.restore(s);
    const cr = restoreConfig(md.confState, this.log.lastIndex(), this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    this.switchToConfig(cr);
    this.logger().info(`node ${this.id} restored snapshot ${md.index}@${md.term}`);
    return true;
  }

  // ---- membership ----------------------------------------------------------------------------

  applyConfChange(cc: ConfChange): ConfState {
    const ch = new Changer(this.tracker.config, this.tracker.progress, this.log.lastIndex(), this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    return this.switchToConfig(ch.apply(cc));
  }

  confState(): ConfState {
    return confStateOf(this.tracker.config);
  }

  private switchToConfig(cr: ChangeResult): ConfState {
    this.tracker.config = cr.config;
    this.tracker.progress = cr.progress;
    const cs = confStateOf(cr.config);
    const pr = this.tracker.progress.get(this.id);
    this.isLearner = pr !== undefined && pr.isLearner;
    if ((pr === undefined || this.isLearner) && this.role === StateRole.Leader) {
      this.stepDownAfterRemoval();
      return cs;
    }
    if (this.role !== StateRole.Leader || cs.voters.length === 0) return cs;
    // The quorum may have changed: try to commit, and probe new members right away.
    if (this.maybeCommit()) bcastAppend(this);
    else bcastAppend(this);
    if (this.leadTransferee !== NONE && !this.tracker.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  /** The leader applied its own removal: hand leadership to the most caught-up voter that has
   *  the whole log (so the group need not wait for an election timeout), then step down. */
  private stepDownAfterRemoval(): void {
    let best: Progress | undefined;
    let bestId = NONE;
    for (const id of this.tracker.voterIds()) {
      if (id === this.id) continue;
      const p = this.tracker.progress.get(id);
      if (p && (!best || p.match > best.match)) {
        best = p;
        bestId = id;
      }
    }
    if (best && best.match === this.log.lastIndex()) {
      this.send(makeMessage({ type: MessageType.TimeoutNow, to: bestId }));
    }
    this.logger().info(`node ${this.id} removed from the configuration; stepping down (handing off to ${bestId})`);
    this.becomeFollower(this.term, NONE);
  }

  /** Called by RawNode.advance() after the application applied up to `index`. */
  appliedTo(index: number): void {
    const old = this.log.applied;
    this.log.appliedTo(Math.max(index, old));
    const cfg = this.tracker.config;
    if (cfg.autoLeave && cfg.voters.isJoint() && this.role === StateRole.Leader && index >= this.pendingConfIndex) {
      // The joint config is applied: propose leaving it.
      const data = new Uint8Array([1, 0, 0]); // encodeConfChange({changes: []})
      try {
        this.step(makeMessage({ type: MessageType.Prop, from: this.id, entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data }] }));
        this.logger().info(`node ${this.id} proposed leaving the joint configuration`);
      } catch (err) {
        if (!(err instanceof RaftError && err.code === 'PROPOSAL_DROPPED')) throw err;
      }
    }
  }

  /** Decodes a ConfChange entry for the application (convenience). */
  static decodeConfChange(e: Entry): ConfChange {
    return decodeConfChange(e.data);
  }

  /** Sends the appends for proposals batched since the last flush. */
  flushBroadcast(): void {
    if (!this.pendingBroadcast) return;
    this.pendingBroadcast = false;
    if (this.role === StateRole.Leader) bcastAppend(this);
  }

  /** Used by tests: drains and returns the outgoing messages. */
  readMessages(): Message[] {
    this.flushBroadcast();
    const m = this.msgs;
    this.msgs = [];
    return m;
  }

  sendAppendTo(id: number): void {
    maybeSendAppend(this, id, true);
  }
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
