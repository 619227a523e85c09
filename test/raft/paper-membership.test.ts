// Raft paper §6 (cluster membership changes): joint consensus, single-server changes, learners,
// the one-change-at-a-time rule and removal of the leader. Each test is named after its claim.
import { expect } from 'chai';
import { ConfChangeType, MemoryStorage, MessageType, RaftError, StateRole } from '../../src/raft/index.js';
import { Network } from './harness/network.js';

const add = (nodeId: number) => ({ type: ConfChangeType.AddVoter, nodeId });
const learner = (nodeId: number) => ({ type: ConfChangeType.AddLearner, nodeId });
const remove = (nodeId: number) => ({ type: ConfChangeType.RemoveNode, nodeId });

describe('Raft §6 cluster membership changes', () => {
  it('a learner receives the log but neither votes nor counts toward commitment', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.addNode(4, new MemoryStorage());
    net.proposeConfChange(1, { changes: [learner(4)] });
    net.propose(1, 'a');
    net.tickAll(3);
    expect(net.appliedStrings(4)).to.deep.equal(['a']);
    expect(net.get(1).confState.learners).to.deep.equal([4]);
    net.cut(1, 2);
    net.cut(1, 3);
    net.propose(1, 'b'); // only the learner has it
    expect(net.appliedStrings(1)).to.deep.equal(['a']);
    expect(net.raft(1).tracker.committed()).to.be.lessThan(net.raft(1).log.lastIndex());
  });

  it('a single-server change adds a voter in one step, and the new voter counts in the quorum', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.addNode(4, new MemoryStorage());
    net.proposeConfChange(1, { changes: [add(4)] });
    net.tickAll(3);
    expect(net.get(1).confState.voters).to.deep.equal([1, 2, 3, 4]);
    expect(net.get(4).confState.voters).to.deep.equal([1, 2, 3, 4]);
    // With 4 voters a majority is 3: leader + 4 + one more.
    net.cut(1, 2);
    net.cut(1, 3);
    net.propose(1, 'x');
    expect(net.appliedStrings(1)).to.deep.equal([]);
    net.recover();
    net.cut(1, 3);
    net.tickAll(2);
    expect(net.appliedStrings(1)).to.deep.equal(['x']);
  });

  it('joint consensus: while in C_old,new every decision needs majorities of both C_old and C_new', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.addNode(4, new MemoryStorage());
    net.addNode(5, new MemoryStorage());
    net.cut(1, 4);
    net.cut(1, 5);
    // C_old = {1,2,3}, C_new = {1,4,5}: the joint entry itself commits under C_old.
    net.proposeConfChange(1, { changes: [add(4), add(5), remove(2), remove(3)] });
    const cs = net.get(1).confState;
    expect(cs.voters).to.deep.equal([1, 4, 5]);
    expect(cs.votersOutgoing).to.deep.equal([1, 2, 3]);
    // The leave entry (and anything else) now needs {4,5} too: stuck while they are cut off.
    net.propose(1, 'joint');
    net.tickAll(3);
    expect(net.appliedStrings(1)).to.deep.equal([]);
    expect(net.get(1).confState.votersOutgoing).to.deep.equal([1, 2, 3]);
    net.recover();
    net.tickAll(10);
    expect(net.appliedStrings(1)).to.deep.equal(['joint']);
    // The leader left the joint configuration automatically.
    expect(net.get(1).confState.votersOutgoing).to.deep.equal([]);
    expect(net.get(1).confState.voters).to.deep.equal([1, 4, 5]);
    expect(net.get(4).confState.voters).to.deep.equal([1, 4, 5]);
  });

  it('only one membership change may be pending at a time', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.isolate(1);
    net.proposeConfChange(1, { changes: [learner(4)] });
    expect(() => net.proposeConfChange(1, { changes: [learner(5)] })).to.throw(RaftError, /PROPOSAL_DROPPED/);
    net.recover();
    net.tickAll(3);
    net.proposeConfChange(1, { changes: [learner(5)] });
    net.tickAll(3);
    expect(net.get(1).confState.learners).to.deep.equal([4, 5]);
  });

  it('a new leader accepts no membership change before it has applied the entries of earlier terms', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    const r = net.raft(1);
    expect(r.pendingConfIndex).to.be.at.least(1);
    // Applied everything, so a change is accepted.
    net.proposeConfChange(1, { changes: [learner(4)] });
    expect(net.get(1).confState.learners).to.deep.equal([4]);
  });

  it('a leader that removes itself steps down once the change is applied, and the rest elect a leader at once', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.propose(1, 'before');
    net.proposeConfChange(1, { changes: [remove(1)] });
    expect(net.raft(1).role).to.equal(StateRole.Follower);
    const l = net.leader();
    expect(l === 2 || l === 3, `leader ${l}`).to.equal(true);
    net.propose(l!, 'after');
    net.tickAll(3);
    const other = l === 2 ? 3 : 2;
    expect(net.appliedStrings(other)).to.deep.equal(['before', 'after']);
    expect(net.get(l!).confState.voters).to.deep.equal([2, 3]);
    // The removed node never campaigns.
    net.tick(1, 100);
    expect(net.raft(1).role).to.equal(StateRole.Follower);
  });

  it('a voter can be demoted to a learner through joint consensus and leaves the quorum', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.proposeConfChange(1, { changes: [learner(3), add(4)], joint: true });
    net.addNode(4, new MemoryStorage());
    net.tickAll(10);
    const cs = net.get(1).confState;
    expect(cs.voters).to.deep.equal([1, 2, 4]);
    expect(cs.learners).to.deep.equal([3]);
    expect(cs.votersOutgoing).to.deep.equal([]);
  });

  it('messages from a removed node are ignored by the group', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.proposeConfChange(1, { changes: [remove(3)] });
    net.tickAll(2);
    const r1 = net.raft(1);
    const term = r1.term;
    net.get(1).node.step({ type: MessageType.AppResp, from: 3, to: 1, term, logTerm: 0, index: 1000, entries: [], commit: 0, reject: false, rejectHint: 0 });
    expect(r1.tracker.progress.has(3)).to.equal(false);
  });
});
