// Raft paper §5.2/§5.3/§5.4.2/§8: what a server does at the moment it becomes leader. Every
// election — first or repeated, by the same node or another, in one group or in many groups of
// the same process — must (re)initialise the leader: append the empty entry of its term (which
// commits earlier entries and lets ReadIndex learn the commit index), reinitialise nextIndex /
// matchIndex for every follower (§5.3 "When a leader first comes to power, it initializes all
// nextIndex values to the index just after the last one in its log"), and start fresh timers and
// leases. Nothing may be skipped because the node (or any node) led before.
import { expect } from 'chai';
import { EntryType, MessageType, NONE, ProgressState, type Raft, StateRole } from '../../src/raft/index.js';
import { Network } from './harness/network.js';
import { msg, newRaft, storageWith } from './harness/helpers.js';

/** Asserts the state of `r` right after it became leader, before any follower answered. */
function expectFreshLeader(r: Raft, lastBefore: number): void {
  expect(r.role).to.equal(StateRole.Leader);
  const last = r.log.lastIndex();
  expect(last, 'exactly one new entry').to.equal(lastBefore + 1);
  const [noop] = r.log.slice(last, last + 1, Number.MAX_SAFE_INTEGER);
  expect([noop!.term, noop!.type, noop!.data.length], 'the empty entry of its term').to.deep.equal([r.term, EntryType.Normal, 0]);
  for (const [id, pr] of r.tracker.progress) {
    if (id === r.id) {
      expect(pr.match).to.equal(last);
      continue;
    }
    expect([pr.match, pr.next, pr.state, pr.leaseAckTick], `progress of ${id}`).to.deep.equal([0, lastBefore + 1, ProgressState.Probe, Number.NEGATIVE_INFINITY]);
  }
  expect([r.electionElapsed, r.heartbeatElapsed, r.leaderTicks, r.leaseRevoked, r.leadTransferee, r.readOnly.size]).to.deep.equal([0, 0, 0, false, NONE, 0]);
  expect(r.pendingConfIndex).to.equal(lastBefore);
}

/** Makes bare Raft `r` (a voter of {1,2,3}) win an election without PreVote. */
function winElection(r: Raft): void {
  r.step(msg({ type: MessageType.Hup, from: r.id }));
  expect(r.role).to.equal(StateRole.Candidate);
  const other = r.id === 2 ? 3 : 2;
  r.step(msg({ type: MessageType.VoteResp, from: other, to: r.id, term: r.term }));
}

describe('Raft §5.2–§8 leader initialisation on every election', () => {
  it('on election a leader appends an empty entry of its term and commits it, with every earlier entry, without any client request', () => {
    const net = new Network([1, 2, 3], { preVote: false, checkQuorum: false });
    // The same node leads several times, with other leaders in between.
    for (const id of [1, 2, 1, 3, 1]) {
      const before = net.raft(id).log.lastIndex();
      net.campaign(id);
      const r = net.raft(id);
      expect(r.role).to.equal(StateRole.Leader);
      const last = r.log.lastIndex();
      expect(last).to.equal(before + 1);
      expect(r.log.termOf(last)).to.equal(r.term);
      expect(r.log.committed, `leader ${id} term ${r.term}`).to.equal(last);
      net.tickAll(1);
      for (const f of [1, 2, 3]) expect(net.raft(f).log.committed).to.equal(last);
      net.propose(id, `by ${id}@${r.term}`);
    }
    expect(net.appliedStrings(2)).to.deep.equal(['by 1@2', 'by 2@3', 'by 1@4', 'by 3@5', 'by 1@6']);
  });

  it('every group gets its empty leader entry even when many groups in one process elect leaders in the same term', () => {
    // One node hosts many groups: a leader initialisation must not be keyed on the term alone.
    const nets = Array.from({ length: 4 }, (_, i) => new Network([1, 2, 3], {}, i + 1));
    for (const [i, net] of nets.entries()) net.campaign((i % 3) + 1);
    for (const [i, net] of nets.entries()) {
      const r = net.raft((i % 3) + 1);
      expect([r.role, r.term], `group ${i}`).to.deep.equal([StateRole.Leader, 2]);
      expect(r.log.lastIndex(), `group ${i}`).to.equal(2);
      expect(r.log.termOf(2)).to.equal(2);
      expect(r.log.committed, `group ${i}`).to.equal(2);
    }
  });

  it('a leader comes to power with nextIndex just after its log, matchIndex 0, and fresh timers, leases and reads — also when it led before', () => {
    const r = newRaft(1, [1, 2, 3], storageWith([1, 2, 3], [1, 1], 1, 2), { preVote: false, readOnlyOption: 'lease' });
    winElection(r);
    expectFreshLeader(r, 2);
    // Lead for a while: followers match, lease acks, a transfer and a pending read.
    r.readMessages();
    for (const f of [2, 3]) r.step(msg({ type: MessageType.AppResp, from: f, to: 1, term: r.term, index: 3 }));
    r.step(msg({ type: MessageType.Prop, from: 1, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array([1]) }] }));
    for (let i = 0; i < 3; i++) r.tick();
    for (const f of [2, 3]) r.step(msg({ type: MessageType.HeartbeatResp, from: f, to: 1, term: r.term, tick: r.leaderTicks }));
    expect(r.tracker.progress.get(2)!.match).to.equal(3);
    expect(r.log.committed).to.equal(3);
    // Deposed by a higher term, then elected again two terms later.
    r.step(msg({ type: MessageType.App, from: 2, to: 1, term: r.term + 1, index: 3, logTerm: r.term, commit: 3 }));
    expect(r.role).to.equal(StateRole.Follower);
    for (let i = 0; i < 5; i++) r.tick();
    const lastBefore = r.log.lastIndex();
    winElection(r);
    expect(r.term).to.equal(4);
    expectFreshLeader(r, lastBefore);
    expect(r.log.committed, 'nothing of the new term is committed before a follower acknowledges it').to.equal(3);
  });

  it('a leader elected after campaigning for a while gets a full election timeout before CheckQuorum can depose it', () => {
    const r = newRaft(1, [1, 2, 3], undefined, { preVote: false, electionTick: 10 });
    r.step(msg({ type: MessageType.Hup, from: 1 }));
    // Campaign for most of an election timeout (no new election starts before 10 ticks).
    for (let i = 0; i < 9; i++) r.tick();
    expect(r.role).to.equal(StateRole.Candidate);
    r.step(msg({ type: MessageType.VoteResp, from: 2, to: 1, term: r.term }));
    expect(r.role).to.equal(StateRole.Leader);
    expect(r.electionElapsed).to.equal(0);
    for (let i = 0; i < 9; i++) r.tick();
    expect(r.role, 'no follower answered yet, but the quorum check is a full timeout away').to.equal(StateRole.Leader);
    r.tick();
    expect(r.role, 'no follower answered within an election timeout').to.equal(StateRole.Follower);
  });

  it('a lease is never valid at the start of a term, even for a node whose followers acknowledged it in its previous term', () => {
    const net = new Network([1, 2, 3], { readOnlyOption: 'lease' });
    net.campaign(1);
    net.tickAll(3);
    expect(net.get(1).node.hasValidLease()).to.equal(true);
    net.get(1).node.transferLeader(2);
    net.stabilize();
    expect(net.leader()).to.equal(2);
    net.tickAll(3);
    // Back to node 1, whose followers' answers (append and heartbeat responses, both of which
    // acknowledge a lease) do not reach it now: it led before, but has no lease.
    net.filter = (m) => !(m.to === 1 && (m.type === MessageType.AppResp || m.type === MessageType.HeartbeatResp));
    net.get(2).node.transferLeader(1);
    net.stabilize();
    expect([net.leader(), net.raft(1).term]).to.deep.equal([1, 4]);
    expect(net.get(1).node.hasValidLease()).to.equal(false);
    net.tickAll(2);
    expect(net.get(1).node.hasValidLease()).to.equal(false);
    net.filter = undefined;
    net.tickAll(2);
    expect(net.get(1).node.hasValidLease()).to.equal(true);
  });
});
