// Raft paper §8 (client interaction): forwarding, linearizable reads by ReadIndex (leader and
// follower), lease reads, and leadership transfer (thesis §3.10).
import { expect } from 'chai';
import { ConfChangeType, EntryType, MessageType, RaftError, type Raft, StateRole } from '../../src/raft/index.js';
import { Network, bytes, text } from './harness/network.js';
import { msg, newRaft, ofType, storageWith } from './harness/helpers.js';
import { leaseValid } from '../../src/raft/leader.js';

describe('Raft §8 client interaction', () => {
  it('a follower forwards client proposals to the leader', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.propose(2, 'via-follower');
    expect(net.appliedStrings(1)).to.deep.equal(['via-follower']);
  });

  it('a proposal with no known leader is rejected, not silently lost', () => {
    const net = new Network([1, 2, 3]);
    expect(() => net.propose(2, 'x')).to.throw(RaftError, /PROPOSAL_DROPPED/);
  });

  it('ReadIndex: the leader answers a read only after a heartbeat round confirms its leadership', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.propose(1, 'a');
    net.ignore(MessageType.HeartbeatResp);
    net.get(1).node.readIndex(bytes('r1'));
    net.stabilize();
    expect(net.get(1).readStates).to.have.length(0);
    net.recover();
    net.get(1).node.readIndex(bytes('r2'));
    net.stabilize();
    const rs = net.get(1).readStates;
    expect(rs.map((r) => text(r.context))).to.deep.equal(['r1', 'r2']);
    expect(rs.every((r) => r.index === net.raft(1).log.committed)).to.equal(true);
  });

  it('a new leader serves no read until it has committed an entry of its own term', () => {
    const net = new Network([1, 2, 3]);
    net.ignore(MessageType.AppResp);
    net.campaign(1);
    expect(net.raft(1).role).to.equal(StateRole.Leader);
    net.get(1).node.readIndex(bytes('early'));
    net.stabilize();
    net.tickAll(1);
    expect(net.get(1).readStates).to.have.length(0);
    net.recover();
    net.tickAll(2);
    expect(net.get(1).readStates.map((r) => text(r.context))).to.deep.equal(['early']);
    expect(net.raft(1).log.termOf(net.get(1).readStates[0]!.index)).to.equal(net.raft(1).term);
  });

  it('follower ReadIndex: the follower asks the leader and gets the leader commit index', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.propose(1, 'a');
    net.get(3).node.readIndex(bytes('f'));
    net.stabilize();
    const rs = net.get(3).readStates;
    expect(rs).to.have.length(1);
    expect(rs[0]!.index).to.equal(net.raft(1).log.committed);
    expect(net.raft(3).log.applied).to.be.at.least(rs[0]!.index);
  });

  it('a partitioned (deposed) leader cannot complete a ReadIndex', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.isolate(1);
    net.get(1).node.readIndex(bytes('stale'));
    net.tickAll(30);
    expect(net.get(1).readStates).to.have.length(0);
    // Meanwhile the majority elected a new leader.
    expect(net.leaders().filter((id) => id !== 1)).to.have.length(1);
  });

  it('lease reads: with a valid lease the leader answers without a heartbeat round', () => {
    const net = new Network([1, 2, 3], { readOnlyOption: 'lease' });
    net.campaign(1);
    net.propose(1, 'a');
    net.tickAll(2); // heartbeats acknowledged: lease established
    expect(net.get(1).node.hasValidLease()).to.equal(true);
    net.ignore(MessageType.HeartbeatResp);
    net.get(1).node.readIndex(bytes('lease'));
    net.stabilize();
    expect(net.get(1).readStates.map((r) => text(r.context))).to.deep.equal(['lease']);
  });

  it('lease reads: once no quorum has acknowledged within the lease, the leader falls back to a heartbeat round', () => {
    const net = new Network([1, 2, 3], { readOnlyOption: 'lease', electionTick: 10, leaseDriftTicks: 3 });
    net.campaign(1);
    net.tickAll(2);
    net.isolate(1);
    net.tick(1, 8); // lease = 7 ticks
    expect(net.get(1).node.hasValidLease()).to.equal(false);
    net.get(1).node.readIndex(bytes('x'));
    net.stabilize();
    expect(net.get(1).readStates).to.have.length(0);
  });

  it('lease reads: a restarted follower grants no vote for an election timeout (it may have acked a lease)', () => {
    const r = newRaft(2, [1, 2, 3], storageWith([1, 2, 3], [1, 2], 3, 2));
    r.step(msg({ type: MessageType.Vote, from: 3, to: 2, term: 4, index: 2, logTerm: 2 }));
    expect(r.term).to.equal(3);
    expect(ofType(r.readMessages(), MessageType.VoteResp)).to.have.length(0);
    for (let i = 0; i < 10; i++) r.tick();
    r.readMessages();
    r.step(msg({ type: MessageType.Vote, from: 3, to: 2, term: 4, index: 2, logTerm: 2 }));
    expect(ofType(r.readMessages(), MessageType.VoteResp).map((m) => m.reject)).to.deep.equal([false]);
  });

  it('lease reads: once the leader sent TimeoutNow it serves no lease read for the rest of its term', () => {
    const net = new Network([1, 2, 3], { readOnlyOption: 'lease' });
    net.campaign(1);
    net.tickAll(2);
    expect(net.get(1).node.hasValidLease()).to.equal(true);
    net.ignore(MessageType.TimeoutNow);
    net.get(1).node.transferLeader(2);
    net.stabilize();
    net.tickAll(12); // transfer aborted, heartbeats keep flowing
    expect(net.raft(1).role).to.equal(StateRole.Leader);
    expect(net.raft(1).leadTransferee).to.equal(0);
    expect(net.get(1).node.hasValidLease()).to.equal(false);
  });

  it('lease reads are disabled automatically when CheckQuorum is off', () => {
    const net = new Network([1, 2, 3], { readOnlyOption: 'lease', checkQuorum: false });
    net.campaign(1);
    net.tickAll(2);
    expect(net.get(1).node.hasValidLease()).to.equal(false);
    net.ignore(MessageType.HeartbeatResp);
    net.get(1).node.readIndex(bytes('x'));
    net.stabilize();
    expect(net.get(1).readStates).to.have.length(0);
  });
});

describe('Leadership transfer (thesis §3.10)', () => {
  it('the leader sends TimeoutNow to an up-to-date transferee, which wins at once without waiting for leases', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.propose(1, 'a');
    net.get(1).node.transferLeader(2);
    net.stabilize();
    expect(net.delivered.some((m) => m.type === MessageType.TimeoutNow && m.to === 2)).to.equal(true);
    expect(net.leader()).to.equal(2);
    expect(net.raft(1).role).to.equal(StateRole.Follower);
  });

  it('a transfer to a lagging follower first brings its log up to date', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.cut(1, 3);
    for (let i = 0; i < 5; i++) net.propose(1, `e${i}`);
    net.recover();
    net.get(1).node.transferLeader(3);
    net.stabilize();
    expect(net.leader()).to.equal(3);
    expect(net.raft(3).log.lastIndex()).to.be.at.least(7);
  });

  it('proposals are refused while a transfer is in progress', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, 'x');
    net.get(1).node.transferLeader(3);
    expect(() => net.get(1).node.propose(bytes('y'))).to.throw(RaftError, /PROPOSAL_DROPPED/);
  });

  it('a transfer that does not complete within an election timeout is aborted', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.get(1).node.transferLeader(3);
    expect(net.raft(1).leadTransferee).to.equal(3);
    net.tick(1, 11);
    net.stabilize();
    expect(net.raft(1).leadTransferee).to.equal(0);
    expect(net.raft(1).role).to.equal(StateRole.Leader);
    net.propose(1, 'ok');
    expect(net.appliedStrings(1)).to.deep.equal(['ok']);
  });

});

describe('Raft: skipHeartbeatAfterAppend (many busy groups per node)', () => {
  /** Leader 1 of {1,2,3} with both followers caught up and in Replicate state. */
  function busyLeader(skip: boolean): Raft {
    const r = newRaft(1, [1, 2, 3], undefined, { skipHeartbeatAfterAppend: skip, preVote: false });
    r.step(msg({ type: MessageType.Hup, from: 1 }));
    r.step(msg({ type: MessageType.VoteResp, from: 2, to: 1, term: r.term }));
    r.flushBroadcast();
    for (const f of [2, 3]) r.step(msg({ type: MessageType.AppResp, from: f, to: 1, term: r.term, index: r.log.lastIndex() }));
    r.tick(); // a first beat clears what the election's appends left behind
    r.msgs = [];
    return r;
  }
  const beatsTo = (r: Raft): number[] => ofType(r.msgs, MessageType.Heartbeat).map((m) => m.to).sort();

  it('a periodic beat skips a follower in Replicate that an append reached since the last beat', () => {
    const r = busyLeader(true);
    r.step(msg({ type: MessageType.Prop, from: 1, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: bytes('x') }] }));
    r.flushBroadcast();
    r.msgs = [];
    r.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: r.term, index: r.log.lastIndex() }));
    r.msgs = []; // (the commit broadcast: a second append to both)
    r.tick();
    expect(beatsTo(r)).to.deep.equal([]);
    r.tick(); // nothing was sent since: both get their beat again
    expect(beatsTo(r)).to.deep.equal([2, 3]);
  });

  it('never skips a follower in Probe state, a beat carrying a read, or when the option is off', () => {
    const r = busyLeader(true);
    r.tracker.progress.get(3)!.becomeProbe();
    r.step(msg({ type: MessageType.Prop, from: 1, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: bytes('x') }] }));
    r.flushBroadcast();
    r.msgs = [];
    r.tick();
    expect(beatsTo(r), 'only the probing follower').to.deep.equal([3]);
    r.msgs = [];
    r.step(msg({ type: MessageType.Prop, from: 1, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: bytes('y') }] }));
    r.flushBroadcast();
    r.step(msg({ type: MessageType.ReadIndex, from: 1, context: bytes('rd') }));
    expect(beatsTo(r), 'a ReadIndex round goes to everyone').to.deep.equal([2, 3]);

    const off = busyLeader(false);
    off.step(msg({ type: MessageType.Prop, from: 1, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: bytes('x') }] }));
    off.flushBroadcast();
    off.msgs = [];
    off.tick();
    expect(beatsTo(off)).to.deep.equal([2, 3]);
  });

  it('with lease reads, the skipped beat\'s lease renewal comes with the append\'s answer', () => {
    const r = newRaft(1, [1, 2, 3], undefined, { skipHeartbeatAfterAppend: true, readOnlyOption: 'lease', preVote: false });
    r.step(msg({ type: MessageType.Hup, from: 1 }));
    r.step(msg({ type: MessageType.VoteResp, from: 2, to: 1, term: r.term }));
    r.flushBroadcast();
    const apps = ofType(r.msgs, MessageType.App);
    expect(apps.map((m) => m.tick), 'appends carry the leader tick').to.deep.equal([0, 0]);
    r.msgs = [];
    expect(leaseValid(r), 'no answer yet').to.equal(false);
    // answers that echo no tick (an application that strips it) do not renew anything
    r.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: r.term, index: r.log.lastIndex() }));
    expect(leaseValid(r)).to.equal(false);
    r.step(msg({ type: MessageType.AppResp, from: 3, to: 1, term: r.term, index: r.log.lastIndex(), tick: 0 }));
    expect(leaseValid(r), 'self + follower 3 acknowledged tick 0').to.equal(true);
    // keep appending to 3 only: beats to it are skipped, its answers keep the lease alive
    for (let t = 1; t <= 20; t++) {
      r.tick();
      r.step(msg({ type: MessageType.Prop, from: 1, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: bytes(`e${t}`) }] }));
      r.flushBroadcast();
      const to3 = ofType(r.msgs, MessageType.App).filter((m) => m.to === 3);
      expect(to3.length).to.be.greaterThan(0);
      r.msgs = [];
      r.step(msg({ type: MessageType.AppResp, from: 3, to: 1, term: r.term, index: r.log.lastIndex(), tick: to3[to3.length - 1]!.tick! }));
      expect(leaseValid(r), `tick ${t}`).to.equal(true);
    }
    // follower 3 stops answering: the lease runs out after leaseTicks, not later
    for (let t = 0; t < r.cfg.leaseTicks - 1; t++) r.tick();
    expect(leaseValid(r)).to.equal(true);
    r.tick();
    expect(leaseValid(r)).to.equal(false);
  });

  it('a follower echoes the tick of an append in its answer, accepted or rejected', () => {
    const f = newRaft(2, [1, 2, 3]);
    f.step(msg({ type: MessageType.App, from: 1, to: 2, term: 1, index: 0, logTerm: 0, commit: 0, entries: [{ term: 1, index: 1, type: EntryType.Normal, data: bytes('a') }], tick: 7 }));
    f.step(msg({ type: MessageType.App, from: 1, to: 2, term: 1, index: 5, logTerm: 1, commit: 0, entries: [], tick: 8 }));
    const resps = ofType(f.msgs, MessageType.AppResp);
    expect(resps.map((m) => [m.reject, m.tick])).to.deep.equal([[false, 7], [true, 8]]);
  });

  it('replication, commit and leadership survive a long run with the option on', () => {
    const net = new Network([1, 2, 3], { skipHeartbeatAfterAppend: true });
    net.campaign(1);
    for (let i = 0; i < 50; i++) {
      net.propose(1, `v${i}`);
      net.tickAll(1);
      net.stabilize();
    }
    expect(net.raft(1).role).to.equal(StateRole.Leader);
    for (const id of [1, 2, 3]) expect(net.appliedStrings(id)).to.have.length(50);
  });
});

describe('Raft: lazyCommitBroadcast (followers learn a commit later)', () => {
  const commitApps = (net: Network, from: number): number => net.delivered.filter((m) => m.from === from && m.type === MessageType.App && m.entries.length === 0).length;

  it('a commit advance sends no empty appends; the followers apply once a heartbeat carries the commit', () => {
    const lazy = new Network([1, 2, 3], { lazyCommitBroadcast: true });
    lazy.campaign(1);
    lazy.tickAll(2);
    lazy.delivered.length = 0;
    lazy.propose(1, 'x');
    expect(lazy.appliedStrings(1), 'the leader applies (and would answer its client) at once').to.deep.equal(['x']);
    expect(lazy.appliedStrings(2), 'no commit broadcast reached follower 2').to.deep.equal([]);
    expect(commitApps(lazy, 1)).to.equal(0);
    lazy.tickAll(1); // heartbeatTick 1: the next beat carries the commit index
    for (const id of [2, 3]) expect(lazy.appliedStrings(id)).to.deep.equal(['x']);

    const eager = new Network([1, 2, 3]);
    eager.campaign(1);
    eager.tickAll(2);
    eager.delivered.length = 0;
    eager.propose(1, 'x');
    expect(eager.appliedStrings(2)).to.deep.equal(['x']);
    expect(commitApps(eager, 1)).to.equal(2);
  });

  it('still broadcasts the commit of a membership change: a replica it removes hears of it', () => {
    const net = new Network([1, 2, 3], { lazyCommitBroadcast: true });
    net.campaign(1);
    net.tickAll(2);
    net.proposeConfChange(1, { changes: [{ type: ConfChangeType.RemoveNode, nodeId: 3 }] });
    // no ticks: only the commit broadcast can have told node 3
    expect(net.get(3).confState.voters).to.deep.equal([1, 2]);
    expect(net.get(1).confState.voters).to.deep.equal([1, 2]);
  });

  it('learnCommit commits only for the follower of that leader, at that term, holding that entry', () => {
    const net = new Network([1, 2, 3], { lazyCommitBroadcast: true });
    net.campaign(1);
    net.tickAll(2);
    net.propose(1, 'x');
    const f = net.get(2).node;
    const { term } = net.raft(1);
    const last = net.raft(1).log.lastIndex();
    expect(f.raft.log.committed).to.be.lessThan(last);
    expect(f.learnCommit(3, term, last), 'not its leader').to.equal(false);
    expect(f.learnCommit(1, term + 1, last), 'another term').to.equal(false);
    expect(f.learnCommit(1, term, last + 1), 'an entry it does not hold').to.equal(false);
    expect(net.get(1).node.learnCommit(1, term, last), 'a leader learns nothing this way').to.equal(false);
    expect(f.raft.log.committed).to.be.lessThan(last);
    expect(f.learnCommit(1, term, last)).to.equal(true);
    expect(f.raft.log.committed).to.equal(last);
    net.stabilize();
    expect(net.appliedStrings(2)).to.deep.equal(['x']);
    expect(net.appliedStrings(3), 'no response or broadcast followed').to.deep.equal([]);
  });
});
