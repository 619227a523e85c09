// Membership changes under message loss (§6 + §7 together): a learner joins and catches up via
// a snapshot, is promoted, an old member is removed; and a leader removes itself. Every link
// drops a share of messages; seeds are printed on failure.
import { expect } from 'chai';
import { ConfChangeType, MemoryStorage, RaftError, StateRole } from '../../src/raft/index.js';
import { Network, text } from './harness/network.js';

function lossy(net: Network, rate: number): void {
  const ids = [...net.nodes.keys()];
  for (const a of ids) for (const b of ids) if (a !== b) net.drop(a, b, rate);
}

/** Ticks until cond holds; proposes nothing. Throws with the seed after maxTicks. */
function until(net: Network, seed: number, what: string, cond: () => boolean, maxTicks = 2000): void {
  for (let i = 0; i < maxTicks; i++) {
    if (cond()) return;
    net.tickAll(1);
  }
  throw new Error(`seed ${seed}: timed out waiting for ${what}`);
}

/** Proposes through the current leader until accepted (retrying drops). */
function proposeCC(net: Network, seed: number, changes: { type: ConfChangeType; nodeId: number }[], applied: () => boolean): void {
  until(net, seed, `conf change ${JSON.stringify(changes)} applied`, () => {
    if (applied()) return true;
    const l = net.leader();
    if (l !== undefined && net.get(l).node.raft.log.applied >= net.get(l).node.raft.pendingConfIndex) {
      try {
        net.get(l).node.proposeConfChange({ changes });
        net.stabilize();
      } catch (err) {
        if (!(err instanceof RaftError)) throw err;
      }
    }
    return applied();
  });
}

describe('membership changes under message loss', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`add learner -> catch up via snapshot -> promote -> remove old member (seed ${seed}, 10% loss)`, () => {
      const net = new Network([1, 2, 3], { snapshotChunkBytes: 16 }, seed);
      for (const id of [1, 2, 3]) net.get(id).snapshotEvery = 5;
      lossy(net, 0.1);
      const leaderApplied = (): string[] => net.appliedStrings(net.leader() ?? 1);
      // Build some history so the log is compacted behind a snapshot.
      for (let i = 0; i < 30; i++) {
        const l = net.leader();
        if (l !== undefined) {
          try {
            net.propose(l, `v${i}`);
          } catch {
            /* dropped */
          }
        }
        net.tickAll(2);
      }
      until(net, seed, 'entries applied', () => leaderApplied().length >= 10);
      const l0 = net.leader()!;
      expect(net.get(l0).storage.firstIndex(), `seed ${seed}`).to.be.greaterThan(1);
      net.addNode(4, new MemoryStorage());
      lossy(net, 0.1);
      proposeCC(net, seed, [{ type: ConfChangeType.AddLearner, nodeId: 4 }], () => net.get(net.leader() ?? 1).confState.learners.includes(4));
      until(net, seed, 'learner caught up', () => {
        const l = net.leader();
        return l !== undefined && net.raft(4).log.committed >= net.raft(l).log.committed && net.get(4).storage.snapshot().metadata.index > 0;
      });
      // It caught up through a snapshot (its log never had the compacted prefix).
      expect(net.get(4).storage.snapshot().metadata.index, `seed ${seed}`).to.be.greaterThan(0);
      proposeCC(net, seed, [{ type: ConfChangeType.AddVoter, nodeId: 4 }], () => net.get(net.leader() ?? 1).confState.voters.includes(4));
      const victim = [1, 2, 3].find((id) => id !== net.leader())!;
      proposeCC(net, seed, [{ type: ConfChangeType.RemoveNode, nodeId: victim }], () => !net.get(net.leader() ?? 4).confState.voters.includes(victim));
      const survivors = [1, 2, 3, 4].filter((id) => id !== victim);
      until(net, seed, 'survivors agree on membership', () => survivors.every((id) => net.get(id).confState.voters.join() === survivors.join()));
      // The new configuration commits writes, and all survivors apply the same sequence.
      const before = leaderApplied().length;
      until(net, seed, 'write after reconfiguration', () => {
        const l = net.leader();
        if (l === undefined) return false;
        try {
          net.propose(l, `after${seed}`);
        } catch {
          /* dropped */
        }
        return net.appliedStrings(l).includes(`after${seed}`);
      });
      net.recover();
      net.tickAll(20);
      // Founding members applied every entry; the joiner applied the suffix after its snapshot.
      const seqs = survivors.filter((id) => id !== 4).map((id) => net.appliedStrings(id));
      for (const s of seqs) expect(s, `seed ${seed}`).to.deep.equal(seqs[0]);
      // The joiner skipped what its snapshot(s) covered; what it applied matches index by index.
      const ref = new Map(net.get(survivors.find((id) => id !== 4)!).applied.map((e) => [e.index, text(e.data)]));
      const joined = net.get(4).applied;
      for (const e of joined) expect(text(e.data), `seed ${seed} index ${e.index}`).to.equal(ref.get(e.index));
      expect(joined.length, `seed ${seed}`).to.be.lessThan(seqs[0]!.length);
      expect(net.raft(4).log.applied, `seed ${seed}`).to.equal(net.raft(survivors[0]!).log.applied);
      expect(seqs[0]!.length, `seed ${seed}`).to.be.greaterThan(before);
    });

    it(`a leader removes itself under loss and the remaining members carry on (seed ${seed})`, () => {
      const net = new Network([1, 2, 3, 4, 5], {}, seed);
      lossy(net, 0.1);
      until(net, seed, 'leader', () => net.leader() !== undefined && net.leaders().length === 1);
      const old = net.leader()!;
      proposeCC(net, seed, [{ type: ConfChangeType.RemoveNode, nodeId: old }], () => !net.get(old).confState.voters.includes(old));
      expect(net.raft(old).role, `seed ${seed}`).to.not.equal(StateRole.Leader);
      until(net, seed, 'new leader among the rest', () => {
        const l = net.leader();
        return l !== undefined && l !== old;
      });
      const rest = [1, 2, 3, 4, 5].filter((id) => id !== old);
      until(net, seed, 'write by the new leader', () => {
        const l = net.leader();
        if (l === undefined || l === old) return false;
        try {
          net.propose(l, 'post-removal');
        } catch {
          /* dropped */
        }
        return rest.filter((id) => net.appliedStrings(id).includes('post-removal')).length >= 3;
      });
      // The removed node never leads again.
      net.tickAll(100);
      expect(net.raft(old).role, `seed ${seed}`).to.not.equal(StateRole.Leader);
    });
  }
});
