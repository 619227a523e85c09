// Raft paper §5.1–5.2 (terms, leader election) plus PreVote and CheckQuorum (thesis §9.6, §6.2).
// Each test is named after the claim it checks.
import { expect } from 'chai';
import { MessageType, NONE, StateRole, RaftError, validateConfig, MemoryStorage } from '../../src/raft/index.js';
import { Rng } from '../../src/util/rng.js';
import { Network } from './harness/network.js';
import { msg, newRaft, ofType } from './harness/helpers.js';

describe('Raft §5.2 leader election', () => {
  it('a server remains a follower as long as it receives valid RPCs from a leader', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    const term = net.raft(1).term;
    net.tickAll(100);
    expect(net.leader()).to.equal(1);
    for (const id of [2, 3]) {
      expect(net.raft(id).role).to.equal(StateRole.Follower);
      expect(net.raft(id).term).to.equal(term);
    }
  });

  it('a follower that hears nothing for an election timeout starts an election: term+1, votes for itself, requests votes', () => {
    const r = newRaft(1, [1, 2, 3], undefined, { preVote: false });
    for (let i = 0; i < 20; i++) r.tick();
    expect(r.role).to.equal(StateRole.Candidate);
    expect(r.term).to.equal(1);
    expect(r.vote).to.equal(1);
    const votes = ofType(r.readMessages(), MessageType.Vote);
    expect(votes.map((m) => m.to).sort()).to.deep.equal([2, 3]);
    expect(votes.every((m) => m.term === 1)).to.equal(true);
  });

  it('a candidate wins an election if it receives votes from a majority of the full cluster', () => {
    const net = new Network([1, 2, 3, 4, 5], { preVote: false });
    net.cut(1, 4);
    net.cut(1, 5);
    net.campaign(1);
    expect(net.raft(1).role).to.equal(StateRole.Leader);
  });

  it('a candidate without votes from a majority does not become leader', () => {
    const net = new Network([1, 2, 3, 4, 5], { preVote: false });
    net.cut(1, 3);
    net.cut(1, 4);
    net.cut(1, 5);
    net.campaign(1);
    expect(net.raft(1).role).to.equal(StateRole.Candidate);
  });

  it('each server votes for at most one candidate in a given term, first-come-first-served', () => {
    const r = newRaft(1, [1, 2, 3], undefined, { checkQuorum: false });
    r.step(msg({ type: MessageType.Vote, from: 2, to: 1, term: 1, index: 0, logTerm: 0 }));
    r.step(msg({ type: MessageType.Vote, from: 3, to: 1, term: 1, index: 0, logTerm: 0 }));
    const resps = ofType(r.readMessages(), MessageType.VoteResp);
    expect(resps.map((m) => [m.to, m.reject])).to.deep.equal([
      [2, false],
      [3, true],
    ]);
    expect(r.vote).to.equal(2);
  });

  it('a candidate that receives AppendEntries from a leader of at least its term returns to follower', () => {
    const r = newRaft(1, [1, 2, 3], undefined, { preVote: false });
    r.becomeCandidate();
    expect(r.term).to.equal(1);
    r.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1 }));
    expect(r.role).to.equal(StateRole.Follower);
    expect(r.lead).to.equal(2);
  });

  it('election timeouts are chosen randomly from [electionTimeout, 2*electionTimeout)', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 50; seed++) {
      const r = newRaft(1, [1, 2, 3], undefined, { random: new Rng(seed) });
      expect(r.randomizedElectionTimeout).to.be.within(10, 19);
      seen.add(r.randomizedElectionTimeout);
    }
    expect(seen.size).to.be.greaterThan(3);
  });

  it('a server that sees a larger term updates its term and reverts to follower (§5.1)', () => {
    for (const role of ['candidate', 'leader'] as const) {
      const r = newRaft(1, [1, 2, 3], undefined, { preVote: false });
      r.becomeCandidate();
      if (role === 'leader') r.becomeLeader();
      r.step(msg({ type: MessageType.App, from: 2, to: 1, term: 5 }));
      expect(r.role, role).to.equal(StateRole.Follower);
      expect(r.term, role).to.equal(5);
    }
  });

  it('a server rejects requests with a stale term (§5.1)', () => {
    const r = newRaft(1, [1, 2, 3], undefined, { checkQuorum: false, preVote: false });
    r.becomeFollower(5, NONE);
    r.step(msg({ type: MessageType.Vote, from: 2, to: 1, term: 4, index: 10, logTerm: 4 }));
    expect(r.vote).to.equal(NONE);
    r.step(msg({ type: MessageType.App, from: 2, to: 1, term: 4, index: 0, logTerm: 0, entries: [{ term: 4, index: 1, type: 0, data: new Uint8Array(1) }] }));
    expect(r.log.lastIndex()).to.equal(0);
    expect(r.term).to.equal(5);
  });

  it('PreVote: a partitioned node that rejoins does not raise terms or disrupt the leader', () => {
    const net = new Network([1, 2, 3]);
    const l = net.electLeader();
    const term = net.raft(l).term;
    const other = [1, 2, 3].find((x) => x !== l)!;
    net.isolate(other);
    net.tick(other, 100);
    expect(net.raft(other).term).to.equal(term); // pre-votes fail, term unchanged
    net.recover();
    net.tickAll(30);
    expect(net.leader()).to.equal(l);
    expect(net.raft(l).term).to.equal(term);
  });

  it('without PreVote a partitioned node does inflate its term (contrast case)', () => {
    const net = new Network([1, 2, 3], { preVote: false, checkQuorum: false });
    net.campaign(1);
    net.isolate(3);
    net.tick(3, 100);
    expect(net.raft(3).term).to.be.greaterThan(net.raft(1).term);
  });

  it('CheckQuorum: a leader that hears from no quorum for an election timeout steps down', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    expect(net.raft(1).role).to.equal(StateRole.Leader);
    net.isolate(1);
    net.tick(1, 25);
    expect(net.raft(1).role).to.equal(StateRole.Follower);
  });

  it('CheckQuorum: a follower that heard from its leader within the election timeout ignores vote requests', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.tickAll(12); // past the post-restart guard
    const r2 = net.raft(2);
    const term = r2.term;
    r2.step(msg({ type: MessageType.Vote, from: 3, to: 2, term: term + 1, index: 100, logTerm: 100 }));
    expect(r2.term).to.equal(term);
    expect(r2.vote).to.equal(1);
  });

  it('a learner is never a candidate', () => {
    const s = MemoryStorage.bootstrap([1, 2], [3]);
    const r = newRaft(3, [1, 2], s);
    for (let i = 0; i < 100; i++) r.tick();
    expect(r.role).to.equal(StateRole.Follower);
    expect(r.term).to.equal(0);
    expect(r.readMessages()).to.have.length(0);
  });

  it('configuration is validated up front', () => {
    const base = { id: 1, storage: new MemoryStorage(), electionTick: 10, heartbeatTick: 1, random: new Rng(1) };
    const bad = [{ electionTick: 1 }, { id: 0 }, { heartbeatTick: 0 }, { maxInflightMsgs: 0 }, { random: undefined }, { readOnlyOption: 'lease', leaseDriftTicks: 10 }];
    for (const b of bad) {
      expect(() => validateConfig({ ...base, ...b } as never), JSON.stringify(b)).to.throw(RaftError, /CONFIG_INVALID/);
    }
    expect(validateConfig({ ...base, readOnlyOption: 'lease', checkQuorum: false }).leaseEnabled).to.equal(false);
    expect(validateConfig({ ...base, readOnlyOption: 'lease' }).leaseEnabled).to.equal(true);
  });
});
