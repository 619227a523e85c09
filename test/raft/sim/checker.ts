// Safety invariants of a simulated Raft group, checked as the simulation runs:
//  1. Election Safety: at most one leader per term.
//  2. Committed entries are never lost or changed: every applied entry at index i has the same
//     (term, type, data) everywhere, and every new leader's log holds every entry known committed.
//  3. State Machine Safety: every node applies the same sequence — each apply extends a prefix
//     (checked with a hash chain, which also validates state restored from snapshots).
//  4. Linearizable reads: a read served by ReadIndex or lease has a read index >= every commit
//     index any node knew when the read began (so it reflects every write completed before).
//  5. Membership: after every Ready cycle a node's configuration equals the one implied by its
//     applied log/snapshot — computed here by an independent model of the ConfChange rules from
//     the committed ConfChange entries (so a snapshot or restart that loses the ConfState, or a
//     wrong configuration switch, is caught even when the group keeps making progress).
//  6. Leader initialisation: a node observed as leader for the first time in a term has just
//     appended the empty entry of its term and starts from fresh state: no follower progress,
//     lease acks, timers, reads or transfer carried over from an earlier term.
//  7. Commit rule (§5.3/§5.4.2): a leader only advances its commit index to an entry of its
//     current term, and only once that entry is durable on a quorum of its configuration.
//  8. Leases: while a leader considers its lease valid, no leader of a higher term exists or has
//     existed.
import { type ConfChange, type ConfState, type Entry, type Raft, ConfChangeType, EntryType, NONE, decodeConfChange } from '../../../src/raft/index.js';

export function entryKey(e: Entry): string {
  return `${e.term}:${e.type}:${Buffer.from(e.data).toString('latin1')}`;
}

/** 32-bit FNV-1a style chain: hash(prev, key). */
export function chain(prev: number, key: string): number {
  let h = (prev ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

// ---- an independent model of the membership rules (confchange.ts must agree) -------------------

function sortedIds(s: Set<number>): number[] {
  return [...s].sort((a, b) => a - b);
}

export function confKey(cs: ConfState): string {
  const ids = (a: number[]): string => [...a].sort((x, y) => x - y).join(',');
  return `voters=[${ids(cs.voters)}] out=[${ids(cs.votersOutgoing)}] learners=[${ids(cs.learners)}] next=[${ids(cs.learnersNext)}] auto=${cs.autoLeave}`;
}

/** The configuration after applying cc to cs, or undefined if the change is illegal (ignored). */
export function modelConfChange(cs: ConfState, cc: ConfChange): ConfState | undefined {
  const incoming = new Set(cs.voters);
  const outgoing = new Set(cs.votersOutgoing);
  const learners = new Set(cs.learners);
  const next = new Set(cs.learnersNext);
  const joint = outgoing.size > 0;
  if (cc.changes.length === 0) {
    if (!joint) return undefined;
    for (const id of next) learners.add(id);
    return { voters: sortedIds(incoming), votersOutgoing: [], learners: sortedIds(learners), learnersNext: [], autoLeave: false };
  }
  const after = new Set(incoming);
  for (const c of cc.changes) {
    if (c.type === ConfChangeType.AddVoter) after.add(c.nodeId);
    else after.delete(c.nodeId);
  }
  let diff = 0;
  for (const id of after) if (!incoming.has(id)) diff++;
  for (const id of incoming) if (!after.has(id)) diff++;
  const enter = cc.joint === true || (incoming.size > 0 && diff > 1);
  if (joint) return undefined; // only "leave" is legal in a joint configuration
  if (enter) {
    if (incoming.size === 0) return undefined;
    for (const id of incoming) outgoing.add(id);
  }
  for (const c of cc.changes) {
    if (!Number.isSafeInteger(c.nodeId) || c.nodeId <= 0) return undefined;
    if (c.type === ConfChangeType.AddVoter) {
      learners.delete(c.nodeId);
      next.delete(c.nodeId);
      incoming.add(c.nodeId);
    } else if (c.type === ConfChangeType.AddLearner) {
      if (learners.has(c.nodeId)) continue;
      incoming.delete(c.nodeId);
      if (outgoing.has(c.nodeId)) next.add(c.nodeId);
      else learners.add(c.nodeId);
    } else if (c.type === ConfChangeType.RemoveNode) {
      incoming.delete(c.nodeId);
      learners.delete(c.nodeId);
      next.delete(c.nodeId);
    } else {
      return undefined;
    }
  }
  if (incoming.size === 0) return undefined;
  return { voters: sortedIds(incoming), votersOutgoing: sortedIds(outgoing), learners: sortedIds(learners), learnersNext: sortedIds(next), autoLeave: enter };
}

/** Whether `has` holds for a majority of `ids` (an empty set agrees with anything). */
function majority(ids: readonly number[], has: (id: number) => boolean): boolean {
  if (ids.length === 0) return true;
  let n = 0;
  for (const id of ids) if (has(id)) n++;
  return n > ids.length / 2;
}

export class Checker {
  readonly violations: string[] = [];
  private readonly leaderOfTerm = new Map<number, number>();
  /** index -> entry key of every applied (hence committed) entry */
  private readonly committed = new Map<number, string>();
  /** index -> state hash after applying index */
  private readonly hashAt = new Map<number, number>();
  maxCommitted = 0;
  /** highest commit index any node has reported */
  maxKnownCommit = 0;
  readsServed = 0;
  writesApplied = 0;
  /** Highest term in which a leader was observed. */
  maxLeaderTerm = 0;
  /** (index, configuration after the ConfChange entry at index), ascending; index 0 = empty. */
  private readonly confAt: Array<{ index: number; cs: ConfState }> = [
    { index: 0, cs: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
  ];

  fail(msg: string): void {
    if (this.violations.length < 20) this.violations.push(msg);
  }

  onLeader(id: number, r: Raft): void {
    const prev = this.leaderOfTerm.get(r.term);
    if (prev !== undefined && prev !== id) this.fail(`two leaders in term ${r.term}: ${prev} and ${id}`);
    this.leaderOfTerm.set(r.term, id);
    if (r.term > this.maxLeaderTerm) this.maxLeaderTerm = r.term;
    this.checkFreshLeader(id, r);
    // Leader Completeness: the new leader holds every committed entry it has not compacted.
    const first = r.log.firstIndex();
    for (let i = Math.max(first, 1); i <= this.maxCommitted; i++) {
      const want = this.committed.get(i);
      if (want === undefined) continue;
      const t = r.log.termOf(i);
      const wantTerm = Number(want.slice(0, want.indexOf(':')));
      if (t !== wantTerm) {
        this.fail(`leader ${id} (term ${r.term}) lacks committed entry ${i} (term ${wantTerm}), has term ${t}`);
        return;
      }
    }
    if (r.log.lastIndex() < this.maxCommitted && first - 1 < this.maxCommitted) {
      this.fail(`leader ${id} (term ${r.term}) log ends at ${r.log.lastIndex()} before committed ${this.maxCommitted}`);
    }
  }

  /**
   * Invariant 6, called on the first observation of a leader in a term, which the simulator makes
   * right after the input that made it leader (before any response could arrive).
   */
  private checkFreshLeader(id: number, r: Raft): void {
    const where = `new leader ${id} (term ${r.term})`;
    const last = r.log.lastIndex();
    if (r.log.termOf(last) !== r.term) {
      this.fail(`${where} has no entry of its term: last entry ${last} has term ${r.log.termOf(last)}`);
      return;
    }
    let first = last;
    while (first - 1 >= r.log.firstIndex() && r.log.termOf(first - 1) === r.term) first--;
    if (first >= r.log.firstIndex()) {
      const e = r.log.slice(first, first + 1, Number.MAX_SAFE_INTEGER)[0]!;
      if (e.type !== EntryType.Normal || e.data.length !== 0) this.fail(`${where}: first entry ${first} of its term is not the empty leader entry`);
    }
    for (const [pid, pr] of r.tracker.progress) {
      if (pid === id) {
        if (pr.match !== last) this.fail(`${where}: own progress match ${pr.match} != last index ${last}`);
        continue;
      }
      if (pr.match !== 0 || pr.next !== first || pr.leaseAckTick !== Number.NEGATIVE_INFINITY) {
        this.fail(`${where}: progress of ${pid} not reset (match ${pr.match}, next ${pr.next} (want ${first}), leaseAck ${pr.leaseAckTick})`);
      }
    }
    if (r.leaderTicks !== 0 || r.electionElapsed !== 0 || r.heartbeatElapsed !== 0 || r.leaseRevoked || r.leadTransferee !== NONE || r.readOnly.size !== 0 || r.pendingReadIndexMessages.length !== 0) {
      this.fail(
        `${where}: state carried over (leaderTicks ${r.leaderTicks}, electionElapsed ${r.electionElapsed}, heartbeatElapsed ${r.heartbeatElapsed}, leaseRevoked ${r.leaseRevoked}, transferee ${r.leadTransferee}, reads ${r.readOnly.size}+${r.pendingReadIndexMessages.length})`,
      );
    }
    if (r.pendingConfIndex < first - 1) this.fail(`${where}: pendingConfIndex ${r.pendingConfIndex} below the start of its term ${first - 1}`);
  }

  /**
   * Invariant 7: leader `id` advanced its commit index to `commit`. `durable(node, index, term)`
   * tells whether a node's persisted storage holds that entry (or a snapshot covering it).
   */
  onLeaderCommit(id: number, r: Raft, commit: number, durable: (node: number, index: number, term: number) => boolean): void {
    const t = r.log.termOf(commit);
    if (t !== r.term) {
      this.fail(`leader ${id} (term ${r.term}) committed ${commit} of term ${t} by counting (only current-term entries may be)`);
      return;
    }
    const cs = r.confState();
    const has = (n: number): boolean => (n === id ? true : durable(n, commit, t));
    if (!majority(cs.voters, has) || !majority(cs.votersOutgoing, has)) {
      this.fail(`leader ${id} (term ${r.term}) committed ${commit} but it is not durable on a quorum of ${confKey(cs)}`);
    }
  }

  /** Invariant 8: called for every leader that currently considers its lease valid. */
  onValidLease(id: number, r: Raft): void {
    if (this.maxLeaderTerm > r.term) {
      this.fail(`leader ${id} (term ${r.term}) holds a valid lease but node ${this.leaderOfTerm.get(this.maxLeaderTerm)} became leader in term ${this.maxLeaderTerm}`);
    }
  }

  /** The configuration implied by the committed log up to and including `index`. */
  confAtIndex(index: number): ConfState {
    let lo = 0;
    let hi = this.confAt.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.confAt[mid]!.index <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.confAt[lo]!.cs;
  }

  /** Invariant 5: node `id` has applied up to `applied` and its Raft uses configuration `cs`. */
  checkConf(id: number, applied: number, cs: ConfState, what: string): void {
    const want = this.confAtIndex(applied);
    if (confKey(cs) !== confKey(want)) this.fail(`node ${id} ${what} at applied ${applied}: configuration ${confKey(cs)}, log implies ${confKey(want)}`);
  }

  private recordConfChange(e: Entry): void {
    const last = this.confAt[this.confAt.length - 1]!;
    if (e.index <= last.index) return; // already recorded (the first applier did)
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch {
      this.fail(`undecodable ConfChange entry ${e.index}`);
      return;
    }
    const next = modelConfChange(last.cs, cc);
    if (next) this.confAt.push({ index: e.index, cs: next });
  }

  onCommitKnown(commit: number): void {
    if (commit > this.maxKnownCommit) this.maxKnownCommit = commit;
  }

  /** A node applied entry e on top of state hash `prevHash`; returns the new hash. */
  onApply(id: number, e: Entry, prevIndex: number, prevHash: number): number {
    if (e.index !== prevIndex + 1) this.fail(`node ${id} applied ${e.index} after ${prevIndex} (gap or repeat)`);
    const key = entryKey(e);
    const have = this.committed.get(e.index);
    if (have === undefined) {
      this.committed.set(e.index, key);
      if (e.data.length > 0 && e.type === EntryType.Normal) this.writesApplied++;
      if (e.type === EntryType.ConfChange) this.recordConfChange(e);
    } else if (have !== key) {
      this.fail(`node ${id} applied ${e.index} as ${key}, another node applied ${have}`);
    }
    const h = chain(prevHash, key);
    const hh = this.hashAt.get(e.index);
    if (hh === undefined) this.hashAt.set(e.index, h);
    else if (hh !== h) this.fail(`node ${id} state after ${e.index} diverges (hash ${h} vs ${hh})`);
    if (e.index > this.maxCommitted) this.maxCommitted = e.index;
    this.onCommitKnown(e.index);
    return h;
  }

  /** A node restored a snapshot of state (index, hash). */
  onSnapshot(id: number, index: number, hash: number): void {
    const hh = this.hashAt.get(index);
    if (hh === undefined) this.hashAt.set(index, hash);
    else if (hh !== hash) this.fail(`node ${id} restored snapshot ${index} with hash ${hash}, expected ${hh}`);
  }

  onReadServed(id: number, ctx: string, readIndex: number, commitAtStart: number, lease: boolean): void {
    this.readsServed++;
    if (readIndex < commitAtStart) {
      this.fail(`stale read ${ctx} on node ${id}${lease ? ' (lease)' : ''}: read index ${readIndex} < commit ${commitAtStart} known when the read began`);
    }
  }
}
