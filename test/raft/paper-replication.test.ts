// Raft paper §5.3 (log replication) and §5.4 (safety), plus the replication optimisations of
// our implementation (conflict hints, pipelining, batching). Each test is named after its claim.
import { expect } from 'chai';
import { MessageType, StateRole, entrySize, type Message } from '../../src/raft/index.js';
import { Network, bytes } from './harness/network.js';
import { entriesWithTerms, msg, newRaft, ofType, storageWith } from './harness/helpers.js';

function terms(net: Network, id: number): number[] {
  return net.raft(id).log.allEntries().map((e) => e.term);
}

describe('Raft §5.3 log replication', () => {
  it('the leader appends a proposal to its log and sends AppendEntries to every follower in parallel', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.delivered.length = 0;
    net.propose(1, 'x');
    const apps = net.delivered.filter((m) => m.type === MessageType.App && m.entries.some((e) => e.data.length > 0));
    expect(apps.map((m) => m.to).sort()).to.deep.equal([2, 3]);
  });

  it('an entry is committed once the leader has replicated it on a majority, and only then applied', () => {
    const net = new Network([1, 2, 3, 4, 5]);
    net.campaign(1);
    net.cut(1, 4);
    net.cut(1, 5);
    net.propose(1, 'a'); // reaches 2,3: majority
    expect(net.appliedStrings(1)).to.deep.equal(['a']);
    net.cut(1, 3);
    net.propose(1, 'b'); // only 2: no majority
    expect(net.appliedStrings(1)).to.deep.equal(['a']);
    expect(net.raft(1).log.lastIndex()).to.be.greaterThan(net.raft(1).log.committed);
  });

  it('followers learn the commit index from the leader and apply committed entries in log order', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    for (const s of ['a', 'b', 'c']) net.propose(1, s);
    net.tickAll(2);
    for (const id of [2, 3]) expect(net.appliedStrings(id)).to.deep.equal(['a', 'b', 'c']);
  });

  it('a follower rejects AppendEntries whose prevLogIndex/prevLogTerm it does not hold (consistency check)', () => {
    const r = newRaft(2, [1, 2, 3], storageWith([1, 2, 3], [1, 1, 2], 2));
    r.step(msg({ type: MessageType.App, from: 1, to: 2, term: 3, index: 3, logTerm: 3, entries: entriesWithTerms([3], 4) }));
    const resp = ofType(r.readMessages(), MessageType.AppResp)[0]!;
    expect(resp.reject).to.equal(true);
    expect(r.log.lastIndex()).to.equal(3);
    // The hint names the follower's last index with term <= 3, and its term.
    expect([resp.rejectHint, resp.logTerm]).to.deep.equal([3, 2]);
  });

  // Figure 7: followers (a)-(f) against the leader's log; the leader (term 8) makes each match.
  const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers: Record<string, number[]> = {
    a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
    b: [1, 1, 1, 4],
    c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    e: [1, 1, 1, 4, 4, 4, 4],
    f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
  };
  for (const [name, flog] of Object.entries(followers)) {
    it(`the leader forces a conflicting follower log to duplicate its own (Figure 7 case ${name})`, () => {
      const net = new Network([], { preVote: false, checkQuorum: false });
      net.addNode(1, storageWith([1, 2, 3], leaderLog, 7, 0));
      net.addNode(2, storageWith([1, 2, 3], flog, 7, 0));
      net.addNode(3, storageWith([1, 2, 3], leaderLog, 7, 0));
      net.campaign(1);
      expect(net.raft(1).role).to.equal(StateRole.Leader);
      net.propose(1, 'z');
      net.tickAll(3);
      expect(terms(net, 2)).to.deep.equal(terms(net, 1));
      expect(net.raft(2).log.committed).to.equal(net.raft(1).log.committed);
    });
  }

  it('conflict hints let a diverged follower converge in a few round trips, not one per entry', () => {
    const net = new Network([], { preVote: false, checkQuorum: false });
    const lead = [1, ...Array(50).fill(3)];
    const fol = [1, ...Array(100).fill(2)];
    net.addNode(1, storageWith([1, 2, 3], lead, 3, 1));
    net.addNode(2, storageWith([1, 2, 3], fol, 3, 1));
    net.addNode(3, storageWith([1, 2, 3], lead, 3, 1));
    net.campaign(1);
    net.propose(1, 'x');
    const rejects = net.delivered.filter((m) => m.type === MessageType.AppResp && m.from === 2 && m.reject);
    expect(rejects.length).to.be.at.most(3);
    expect(terms(net, 2)).to.deep.equal(terms(net, 1));
  });

  it('pipelining: the leader keeps at most maxInflightMsgs appends in flight to a follower', () => {
    const net = new Network([1, 2, 3], { maxInflightMsgs: 3, maxSizePerMsg: 1 });
    net.campaign(1);
    net.filter = (m) => !(m.type === MessageType.AppResp && m.from === 2);
    net.delivered.length = 0;
    for (let i = 0; i < 10; i++) net.propose(1, `e${i}`);
    const toTwo = net.delivered.filter((m) => m.type === MessageType.App && m.to === 2 && m.entries.length > 0);
    expect(toTwo).to.have.length(3);
    const toThree = net.delivered.filter((m) => m.type === MessageType.App && m.to === 3 && m.entries.length > 0);
    expect(toThree.length).to.be.at.least(10);
  });

  it('pipelining: several appends are in flight before any response (no stop-and-wait)', () => {
    const net = new Network([1, 2, 3], { maxInflightMsgs: 8, maxSizePerMsg: 1 });
    net.campaign(1);
    const r1 = net.raft(1);
    for (let i = 0; i < 5; i++) net.get(1).node.propose(bytes(`p${i}`));
    net.processReady(1);
    // Nothing delivered yet, but the leader already sent one append per entry to each follower.
    const pending = (net as unknown as { queue: Message[] }).queue.filter((m) => m.type === MessageType.App && m.to === 2);
    expect(pending.length).to.equal(5);
    expect(r1.tracker.progress.get(2)!.next).to.equal(r1.log.lastIndex() + 1);
    net.stabilize();
  });

  it('batching: one append carries at most maxSizePerMsg bytes of entries (at least one entry)', () => {
    const max = 300;
    const net = new Network([1, 2, 3], { maxSizePerMsg: max });
    net.campaign(1);
    net.isolate(3);
    for (let i = 0; i < 40; i++) net.propose(1, 'x'.repeat(50));
    net.recover();
    net.delivered.length = 0;
    net.tickAll(5);
    const apps = net.delivered.filter((m) => m.type === MessageType.App && m.to === 3 && m.entries.length > 1);
    expect(apps.length).to.be.greaterThan(3);
    for (const m of apps) expect(m.entries.reduce((s, e) => s + entrySize(e), 0)).to.be.at.most(max);
    expect(net.appliedStrings(3)).to.have.length(40);
  });
});

describe('Raft §5.4 safety', () => {
  it('§5.4.1 a voter denies its vote to a candidate whose log is less up-to-date than its own', () => {
    const cases: Array<[index: number, logTerm: number, granted: boolean]> = [
      [3, 2, true], // same
      [4, 2, true], // longer, same last term
      [2, 2, false], // shorter, same last term
      [1, 3, true], // higher last term wins even if shorter
      [10, 1, false], // lower last term loses even if longer
    ];
    for (const [index, logTerm, granted] of cases) {
      const r = newRaft(1, [1, 2, 3], storageWith([1, 2, 3], [1, 1, 2], 2), { checkQuorum: false, preVote: false });
      r.step(msg({ type: MessageType.Vote, from: 2, to: 1, term: 3, index, logTerm }));
      const resp = ofType(r.readMessages(), MessageType.VoteResp)[0]!;
      expect(!resp.reject, `${index}/${logTerm}`).to.equal(granted);
    }
  });

  it('§5.4.2 a leader commits entries from previous terms only by committing an entry of its current term', () => {
    // Figure 8: index 2 (term 2) is on a majority {1,2} but must not be committed by counting.
    const net = new Network([], { preVote: false, checkQuorum: false });
    net.addNode(1, storageWith([1, 2, 3], [1, 2], 2, 1));
    net.addNode(2, storageWith([1, 2, 3], [1, 2], 2, 1));
    net.addNode(3, storageWith([1, 2, 3], [1], 2, 1));
    net.ignore(MessageType.App);
    net.campaign(1);
    const r = net.raft(1);
    expect(r.role).to.equal(StateRole.Leader);
    expect(r.term).to.equal(3);
    r.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 3, index: 2 }));
    expect(r.log.committed).to.equal(1);
    r.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 3, index: 3 }));
    expect(r.log.committed).to.equal(3);
  });

  it('Leader Completeness: a node missing a committed entry cannot be elected', () => {
    const net = new Network([1, 2, 3], { preVote: false, checkQuorum: false });
    net.campaign(1);
    net.cut(1, 3);
    net.propose(1, 'committed');
    expect(net.appliedStrings(1)).to.deep.equal(['committed']);
    net.recover();
    net.isolate(1);
    net.campaign(3);
    expect(net.raft(3).role).to.not.equal(StateRole.Leader);
    net.campaign(2);
    expect(net.raft(2).role).to.equal(StateRole.Leader);
    expect(net.raft(2).log.allEntries().some((e) => new TextDecoder().decode(e.data) === 'committed')).to.equal(true);
  });

  it('Leader Append-Only: a leader never overwrites or deletes entries in its own log', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.propose(1, 'a');
    const before = net.raft(1).log.allEntries();
    const r = net.raft(1);
    r.step(msg({ type: MessageType.App, from: 2, to: 1, term: r.term - 1, index: 0, logTerm: 0, entries: entriesWithTerms([1]) }));
    expect(r.log.allEntries()).to.deep.equal(before);
  });

  it('State Machine Safety: under random message loss every node applies the same sequence', () => {
    for (let seed = 1; seed <= 5; seed++) {
      const net = new Network([1, 2, 3, 4, 5], {}, seed);
      for (const a of [1, 2, 3, 4, 5]) for (const b of [1, 2, 3, 4, 5]) if (a !== b) net.drop(a, b, 0.2);
      let proposed = 0;
      for (let t = 0; t < 400; t++) {
        net.tickAll(1);
        const l = net.leader();
        if (l !== undefined && t % 3 === 0) {
          try {
            net.propose(l, `v${proposed++}`);
          } catch {
            /* dropped: fine */
          }
        }
      }
      const seqs = [1, 2, 3, 4, 5].map((id) => net.appliedStrings(id));
      const longest = seqs.reduce((a, b) => (a.length >= b.length ? a : b));
      expect(longest.length, `seed ${seed}`).to.be.greaterThan(10);
      for (const s of seqs) expect(s, `seed ${seed}`).to.deep.equal(longest.slice(0, s.length));
    }
  });
});
