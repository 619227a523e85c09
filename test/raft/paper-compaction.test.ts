// Raft paper §7 (log compaction): application snapshots, discarding the log behind them, and
// InstallSnapshot to lagging followers — chunked in our implementation.
import { expect } from 'chai';
import { type ConfState, ConfChangeType, MemoryStorage, MessageType, StateRole } from '../../src/raft/index.js';
import { Network, text } from './harness/network.js';
import { entriesWithTerms, msg, newRaft, ofType, storageWith } from './harness/helpers.js';

function lagBehindSnapshot(net: Network, data: Uint8Array): void {
  net.campaign(1);
  net.isolate(3);
  for (let i = 0; i < 20; i++) net.propose(1, `e${i}`);
  const s1 = net.get(1).storage;
  const applied = net.raft(1).log.applied;
  s1.createSnapshot(applied, net.get(1).confState, data);
  s1.compact(applied);
  net.recover();
}

describe('Raft §7 log compaction', () => {
  it('the application snapshots its state and the log before the snapshot is discarded', () => {
    const net = new Network([1, 2, 3]);
    lagBehindSnapshot(net, new TextEncoder().encode('S'));
    const s1 = net.get(1).storage;
    expect(s1.firstIndex()).to.equal(s1.snapshot().metadata.index + 1);
    expect(s1.snapshot().metadata.index).to.be.greaterThan(20);
  });

  it('the leader sends InstallSnapshot to a follower that needs entries it has discarded, then resumes appends', () => {
    const net = new Network([1, 2, 3]);
    lagBehindSnapshot(net, new TextEncoder().encode('SNAPDATA'));
    net.tickAll(3);
    const s3 = net.get(3).storage;
    expect(s3.snapshot().metadata.index).to.equal(net.get(1).storage.snapshot().metadata.index);
    expect(text(s3.snapshot().data)).to.equal('SNAPDATA');
    net.propose(1, 'after');
    net.tickAll(2);
    expect(net.appliedStrings(3)).to.deep.equal(['after']);
    expect(net.raft(3).log.committed).to.equal(net.raft(1).log.committed);
  });

  it('InstallSnapshot is chunked: no chunk exceeds snapshotChunkBytes and the data arrives byte-exact', () => {
    const net = new Network([1, 2, 3], { snapshotChunkBytes: 1000, snapshotWindow: 2 });
    const data = new Uint8Array(10_500);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    lagBehindSnapshot(net, data);
    net.tickAll(5);
    const chunks = net.delivered.filter((m) => m.type === MessageType.Snap);
    expect(chunks.length).to.be.at.least(11);
    for (const m of chunks) expect(m.snapshot!.data.length).to.be.at.most(1000);
    expect(Buffer.compare(Buffer.from(net.get(3).storage.snapshot().data), Buffer.from(data))).to.equal(0);
  });

  it('a lost snapshot chunk is retransmitted and the transfer completes', () => {
    const net = new Network([1, 2, 3], { snapshotChunkBytes: 100 });
    const data = new Uint8Array(1000).fill(7);
    let dropped = 0;
    net.filter = (m) => {
      if (m.type === MessageType.Snap && m.snapshot!.offset === 300 && dropped < 2) {
        dropped++;
        return false;
      }
      return true;
    };
    lagBehindSnapshot(net, data);
    net.tickAll(10);
    expect(dropped).to.equal(2);
    expect(net.get(3).storage.snapshot().data.length).to.equal(1000);
    expect(net.raft(3).log.committed).to.equal(net.raft(1).log.committed);
  });

  it('a follower whose log already contains the snapshot point keeps the entries that follow it', () => {
    const r = newRaft(2, [1, 2, 3], storageWith([1, 2, 3], [1, 1, 1, 1, 1], 1, 1));
    const snap = { metadata: { index: 3, term: 1, confState: r.confState() }, offset: 0, totalBytes: 1, data: new Uint8Array(1), done: true };
    r.step(msg({ type: MessageType.Snap, from: 1, to: 2, term: 1, snapshot: snap }));
    expect(r.log.lastIndex()).to.equal(5);
    expect(r.log.committed).to.equal(3);
    expect(r.log.hasPendingSnapshot()).to.equal(false);
  });

  it('a follower discards its entire log when the snapshot contains entries it lacks or that conflict', () => {
    const r = newRaft(2, [1, 2, 3], storageWith([1, 2, 3], [1, 1, 2, 2], 3, 1));
    const snap = { metadata: { index: 6, term: 3, confState: r.confState() }, offset: 0, totalBytes: 1, data: new Uint8Array(1), done: true };
    r.step(msg({ type: MessageType.Snap, from: 1, to: 2, term: 3, snapshot: snap }));
    expect(r.log.hasPendingSnapshot()).to.equal(true);
    expect(r.log.lastIndex()).to.equal(6);
    expect(r.log.committed).to.equal(6);
    const resp = ofType(r.readMessages(), MessageType.AppResp)[0]!;
    expect(resp.index).to.equal(6);
  });

  it('a follower does not campaign while a received snapshot is not yet persisted', () => {
    const r = newRaft(2, [1, 2, 3], storageWith([1, 2, 3], entriesWithTerms([1]).map((e) => e.term), 1, 1));
    const snap = { metadata: { index: 6, term: 1, confState: r.confState() }, offset: 0, totalBytes: 0, data: new Uint8Array(0), done: true };
    r.step(msg({ type: MessageType.Snap, from: 1, to: 2, term: 1, snapshot: snap }));
    r.step(msg({ type: MessageType.TimeoutNow, from: 1, to: 2, term: 1 }));
    expect(r.role).to.equal(StateRole.Follower);
  });
});

const add = (nodeId: number) => ({ type: ConfChangeType.AddVoter, nodeId });
const learner = (nodeId: number) => ({ type: ConfChangeType.AddLearner, nodeId });
const remove = (nodeId: number) => ({ type: ConfChangeType.RemoveNode, nodeId });

function conf(voters: number[], learners: number[] = [], votersOutgoing: number[] = [], autoLeave = false): ConfState {
  return { voters, learners, votersOutgoing, learnersNext: [], autoLeave };
}

/** Takes a snapshot of node `id` at its applied index with its current configuration, and
 *  discards the whole log up to there. */
function snapshotNow(net: Network, id: number): number {
  const tn = net.get(id);
  const applied = tn.node.raft.log.applied;
  tn.storage.createSnapshot(applied, tn.confState, new TextEncoder().encode(`state of ${id}@${applied}`));
  tn.storage.compact(applied);
  return applied;
}

/** {1,2,3} with leader 1 → learner 4 added, promoted, then 3 removed: {1,2,4}. */
function changeMembership(net: Network): void {
  net.campaign(1);
  net.addNode(4, new MemoryStorage());
  net.proposeConfChange(1, { changes: [learner(4)] });
  net.tickAll(3);
  net.proposeConfChange(1, { changes: [add(4)] });
  net.tickAll(3);
  net.proposeConfChange(1, { changes: [remove(3)] });
  net.tickAll(3);
  net.propose(1, 'x');
  net.tickAll(2);
  expect(net.get(1).confState).to.deep.equal(conf([1, 2, 4]));
}

describe('Raft §7 snapshots carry the latest configuration', () => {
  it('a snapshot records the configuration as of its last included index, and initialState returns it', () => {
    const s = MemoryStorage.bootstrapWithLog([1, 2, 3]);
    s.append([{ term: 1, index: 2, type: 0, data: new Uint8Array(0) }]);
    const cs: ConfState = { voters: [1, 4, 5], learners: [6], votersOutgoing: [1, 2, 3], learnersNext: [2], autoLeave: true };
    s.createSnapshot(2, cs, new Uint8Array([9]));
    expect(s.snapshot().metadata.confState).to.deep.equal(cs);
    expect(s.initialState().confState).to.deep.equal(cs);
    cs.voters.push(7); // the caller's object is not aliased
    expect(s.snapshot().metadata.confState.voters).to.deep.equal([1, 4, 5]);
  });

  it('a node restarted from a snapshot taken after membership changes uses the configuration recorded in it', () => {
    const net = new Network([1, 2, 3]);
    changeMembership(net);
    const at = snapshotNow(net, 2);
    expect(net.get(2).storage.firstIndex()).to.equal(at + 1); // nothing left to replay
    const tn = net.restart(2);
    expect(tn.node.raft.confState()).to.deep.equal(conf([1, 2, 4]));
    expect(tn.node.raft.promotable()).to.equal(true);
    // It acts on it: with the leader gone it asks 4 (not the removed 3) and wins with 4's vote.
    net.isolate(1);
    const from = net.delivered.length;
    for (let i = 0; i < 60 && net.raft(2).role !== StateRole.Leader; i++) net.tickAll(1);
    expect(net.raft(2).role).to.equal(StateRole.Leader);
    const asked = new Set(net.delivered.slice(from).filter((m) => m.from === 2 && (m.type === MessageType.Vote || m.type === MessageType.PreVote)).map((m) => m.to));
    expect([...asked], "cut off from 1; never asks the removed 3").to.deep.equal([4]);
  });

  it('a follower that catches up by InstallSnapshot adopts the configuration in the snapshot, and keeps it across a restart', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.isolate(2); // misses every change below
    net.addNode(4, new MemoryStorage());
    net.proposeConfChange(1, { changes: [learner(4)] });
    net.tickAll(3);
    net.proposeConfChange(1, { changes: [add(4)] });
    net.tickAll(3);
    net.addNode(5, new MemoryStorage());
    net.proposeConfChange(1, { changes: [learner(5)] });
    net.tickAll(3);
    const want = conf([1, 2, 3, 4], [5]);
    expect(net.get(1).confState).to.deep.equal(want);
    snapshotNow(net, 1);
    net.recover();
    net.tickAll(5);
    const s2 = net.get(2).storage.snapshot();
    expect(s2.metadata.index).to.equal(net.get(1).storage.snapshot().metadata.index);
    expect(s2.metadata.confState).to.deep.equal(want);
    expect(net.raft(2).confState()).to.deep.equal(want);
    expect(net.get(2).confState).to.deep.equal(want);
    // With 4 voters a majority is 3: the follower counts 4's vote.
    expect(net.raft(2).tracker.voterIds()).to.deep.equal([1, 2, 3, 4]);
    expect(net.restart(2).node.raft.confState()).to.deep.equal(want);
    net.tickAll(3);
    expect(net.raft(2).confState()).to.deep.equal(want);
  });

  it('a joint configuration (outgoing voters, auto-leave) survives a snapshot and a restart', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.addNode(4, new MemoryStorage());
    net.addNode(5, new MemoryStorage());
    net.cut(1, 4);
    net.cut(1, 5);
    // The joint entry commits under C_old; leaving needs {4,5}, which are cut off.
    net.proposeConfChange(1, { changes: [add(4), add(5), remove(2), remove(3)] });
    net.tickAll(2);
    const want = conf([1, 4, 5], [], [1, 2, 3], true);
    expect(net.get(2).confState).to.deep.equal(want);
    snapshotNow(net, 2);
    const tn = net.restart(2);
    expect(tn.node.raft.confState()).to.deep.equal(want);
    expect(tn.node.raft.tracker.voterIds()).to.deep.equal([1, 2, 3, 4, 5]);
  });
});
