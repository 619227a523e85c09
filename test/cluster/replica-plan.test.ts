// The rebalancer's step rules (src/cluster/replica-plan.ts): learner first, promotion only when
// caught up, removal only when every desired replica votes, the leader hands over before it is
// removed, the move budget, leader balancing — and a model check that a random walk of steps
// from any configuration reaches the desired one without ever dropping below a safe quorum.
import { expect } from 'chai';
import fc from 'fast-check';
import type { ConfState } from '../../src/raft/index.js';
import { type Desired, type GroupView, nextStep, settled } from '../../src/cluster/replica-plan.js';

const conf = (voters: number[], learners: number[] = []): ConfState => ({ voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false });
const ok = { match: 100, isLearner: false, recentActive: true, replicating: true };

function view(self: number, c: ConfState, progress: Record<number, Partial<typeof ok>> = {}, commit = 100): GroupView {
  const p = new Map<number, typeof ok>();
  for (const id of [...c.voters, ...c.learners]) p.set(id, { ...ok, isLearner: c.learners.includes(id), ...progress[id] });
  return { self, confState: c, commit, progress: p };
}

describe('cluster: replica plan', () => {
  const want: Desired = { voters: [1, 2, 4], leader: 1 };

  it('adds a missing replica as a learner, only within the move budget', () => {
    expect(nextStep(view(1, conf([1, 2, 3])), want, true)).to.deep.equal({ kind: 'addLearner', node: 4 });
    expect(nextStep(view(1, conf([1, 2, 3])), want, false)).to.equal(undefined);
  });

  it('promotes a learner only once it replicates and is caught up', () => {
    const c = conf([1, 2, 3], [4]);
    expect(nextStep(view(1, c), want, false)).to.deep.equal({ kind: 'promote', node: 4 });
    // never reached (Probe, match 0): a "caught up" by slack alone would lose the quorum
    expect(nextStep(view(1, c, { 4: { match: 0, replicating: false } }, 8), want, true)).to.equal(undefined);
    expect(nextStep(view(1, c, { 4: { match: 20, replicating: false } }, 30), want, true)).to.equal(undefined);
    expect(nextStep(view(1, c, { 4: { match: 10 } }, 1000), want, true)).to.equal(undefined);
    expect(nextStep(view(1, c, { 4: { recentActive: false } }), want, true)).to.equal(undefined);
  });

  it('removes an undesired voter only when every desired replica votes', () => {
    expect(nextStep(view(1, conf([1, 2, 3, 4])), want, true)).to.deep.equal({ kind: 'remove', node: 3 });
  });

  it('an undesired leader hands leadership to a caught-up desired voter first', () => {
    const w: Desired = { voters: [2, 3, 4], leader: 2 };
    expect(nextStep(view(1, conf([1, 2, 3, 4])), w, true)).to.deep.equal({ kind: 'transfer', node: 2 });
    expect(nextStep(view(1, conf([1, 2, 3, 4]), { 2: { recentActive: false }, 3: { recentActive: false }, 4: { recentActive: false } }), w, true)).to.equal(undefined);
  });

  it('removes undesired learners, adds desired extra learners, then balances the leader', () => {
    expect(nextStep(view(1, conf([1, 2, 4], [7])), want, true)).to.deep.equal({ kind: 'remove', node: 7 });
    expect(nextStep(view(1, conf([1, 2, 4])), { voters: [1, 2, 4], learners: [5], leader: 0 }, false)).to.deep.equal({ kind: 'addLearner', node: 5 });
    expect(nextStep(view(2, conf([1, 2, 4])), want, true)).to.deep.equal({ kind: 'transfer', node: 1 });
    expect(nextStep(view(1, conf([1, 2, 4])), want, true)).to.equal(undefined);
  });

  it('model: from any configuration the steps reach the desired one, never below the quorum of the surviving voters', () => {
    const node = fc.integer({ min: 1, max: 6 });
    fc.assert(
      fc.property(fc.uniqueArray(node, { minLength: 1, maxLength: 5 }), fc.uniqueArray(node, { minLength: 1, maxLength: 5 }), fc.array(fc.boolean(), { maxLength: 64 }), (start, desiredVoters, budget) => {
        let c = conf([...start].sort());
        let leader = c.voters[0]!;
        const desired: Desired = { voters: desiredVoters, leader: desiredVoters[0]! };
        for (let i = 0; i < 64; i++) {
          const step = nextStep(view(leader, c), desired, budget[i] ?? true);
          if (!step) break;
          const voters = new Set(c.voters);
          const learners = new Set(c.learners);
          if (step.kind === 'addLearner') learners.add(step.node);
          else if (step.kind === 'promote') {
            learners.delete(step.node);
            voters.add(step.node);
          } else if (step.kind === 'remove') {
            expect(step.node).to.not.equal(leader);
            voters.delete(step.node);
            learners.delete(step.node);
            // a removal never takes the group below the desired size
            expect(voters.size).to.be.at.least(desired.voters.length);
          } else {
            expect(voters.has(step.node)).to.equal(true);
            leader = step.node;
          }
          c = conf([...voters].sort(), [...learners].sort());
        }
        if (budget.every((b) => b)) {
          expect([...c.voters].sort()).to.deep.equal([...desired.voters].sort());
          expect(c.learners).to.deep.equal([]);
        }
      }),
      { numRuns: 500 },
    );
  });
  it('settled (the rebalancer skips the group) only where nextStep has nothing to do, whatever the progress', () => {
    expect(settled(conf([1, 2, 4]), want, 1)).to.equal(true);
    expect(settled(conf([4, 2, 1]), { voters: [1, 2, 4], leader: 0 }, 2)).to.equal(true);
    expect(settled(conf([1, 2, 4]), want, 2)).to.equal(false); // leader should move
    expect(settled(conf([1, 2, 3]), want, 1)).to.equal(false);
    expect(settled(conf([1, 2, 4], [5]), want, 1)).to.equal(false);
    const node = fc.integer({ min: 1, max: 5 });
    const prog = fc.record({ match: fc.integer({ min: 0, max: 200 }), recentActive: fc.boolean(), replicating: fc.boolean() });
    fc.assert(
      fc.property(
        fc.uniqueArray(node, { minLength: 1, maxLength: 4 }),
        fc.uniqueArray(node, { maxLength: 2 }),
        fc.uniqueArray(node, { minLength: 1, maxLength: 4 }),
        fc.uniqueArray(node, { maxLength: 1 }),
        fc.integer({ min: 0, max: 5 }),
        fc.dictionary(fc.constantFrom('1', '2', '3', '4', '5'), prog),
        fc.boolean(),
        (voters, learnersRaw, desiredVoters, desiredLearners, preferred, progress, mayStart) => {
          const learners = learnersRaw.filter((n) => !voters.includes(n));
          const c = conf(voters, learners);
          const d: Desired = { voters: desiredVoters, learners: desiredLearners, leader: preferred };
          const self = voters[0]!;
          const step = nextStep(view(self, c, progress as Record<number, Partial<typeof ok>>), d, mayStart);
          if (settled(c, d, self)) expect(step).to.equal(undefined);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
