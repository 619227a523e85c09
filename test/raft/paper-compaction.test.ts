// Raft paper §7 (log compaction): application snapshots, discarding the log behind them, and
// InstallSnapshot to lagging followers — chunked in our implementation.
import { expect } from 'chai';
import { MessageType, StateRole } from '../../src/raft/index.js';
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
