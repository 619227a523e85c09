// Seeded simulation of Raft groups under loss, delay, reordering, duplication, partitions
// (incl. asymmetric, and cutting off the leader), crashes/restarts, drifting tick rates and
// membership changes; safety invariants (sim/checker.ts: election safety, committed entries,
// state machine safety, linearizable reads, membership = config implied by the applied
// log/snapshot, fresh leader initialisation, the commit rule, lease exclusivity) are checked after
// every event, then liveness after healing (sim/simulator.ts).
// SIM_SEEDS=A..B / SIM_STEPS=N override the range; a failure prints the seed and a trace.
import { expect } from 'chai';
import { runSeed } from './sim/simulator.js';

const [from, to] = (process.env.SIM_SEEDS ?? '1..500').split('..').map(Number) as [number, number];
const steps = Number(process.env.SIM_STEPS ?? 2000);

describe(`raft simulation (seeds ${from}..${to}, ${steps} steps)`, function () {
  this.timeout(120_000);
  it('no safety or liveness violation for any seed', () => {
    const failures: string[] = [];
    let writes = 0;
    let reads = 0;
    for (let seed = from; seed <= to; seed++) {
      const res = runSeed(seed, steps);
      writes += res.stats.writes;
      reads += res.stats.reads;
      if (res.violations.length > 0) {
        failures.push(`seed ${seed}:\n  ${res.violations.join('\n  ')}\n  trace:\n    ${res.trace.join('\n    ')}`);
      }
    }
    expect(failures, failures.join('\n')).to.deep.equal([]);
    // The runs did real work: writes committed and reads served.
    expect(writes).to.be.greaterThan((to - from + 1) * 10);
    expect(reads).to.be.greaterThan(to - from + 1);
  });
});
