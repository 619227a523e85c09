// Property tests: histories produced by simulating a real sequential register under random
// concurrency (sim.ts) are always accepted; the same histories with one read's output replaced
// by an impossible one are always rejected. Plus the performance bound on a large history.
import { expect } from 'chai';
import fc from 'fast-check';
import { Rng } from '../../src/util/rng.js';
import { checkHistory, type CheckOptions, type Operation, type OpOutput } from '../../src/testing/linearizability.js';
import { simulate, type SimConfig, type SimStep } from './sim.js';

function stepArb(opts: { clients: number; keys: number; lostRate: number }): fc.Arbitrary<SimStep> {
  return fc.record({
    client: fc.nat(opts.clients - 1),
    key: fc.nat(opts.keys - 1),
    kind: fc.constantFrom<SimStep['kind']>('put', 'get', 'get', 'delete', 'cas'),
    value: fc.nat(1000),
    pre: fc.nat(40),
    post: fc.nat(40),
    gap: fc.nat(3),
    versionGap: fc.nat(2),
    casMode: fc.nat(3),
    lost: fc.nat(999).map((x) => x < opts.lostRate * 1000),
    applied: fc.boolean(),
  });
}

const POOL = ['a', 'b', 'c', 'd'];

function reads(h: Operation[]): number[] {
  const out: number[] = [];
  h.forEach((o, i) => {
    if (o.kind === 'get' && o.output !== 'unknown' && o.output.found) out.push(i);
  });
  return out;
}

function withOutput(h: Operation[], i: number, output: OpOutput): Operation[] {
  return h.map((o, j) => (j === i ? { ...o, output } : o));
}

function explainOnFail(r: ReturnType<typeof checkHistory>): string {
  return r.ok === false ? r.explanation : r.ok === 'unknown' ? r.reason : '';
}

describe('linearizability checker: properties', () => {
  const variants: { name: string; sim: Omit<SimConfig, 'keys'>; check: CheckOptions }[] = [
    { name: 'increasing versions, small value pool', sim: { clients: 5, valuePool: POOL }, check: {} },
    { name: 'plusOne versions, unique values', sim: { clients: 8, plusOne: true }, check: { versions: { step: 'plusOne' } } },
  ];
  for (const v of variants) {
    it(`simulated register histories are accepted (${v.name})`, () => {
      fc.assert(
        fc.property(fc.array(stepArb({ clients: v.sim.clients, keys: 2, lostRate: 0.08 }), { maxLength: 120 }), (steps) => {
          const h = simulate(steps, { ...v.sim, keys: ['x', 'y'] });
          const r = checkHistory(h, v.check);
          expect(r.ok, explainOnFail(r)).to.equal(true);
        }),
        { numRuns: 300 },
      );
    });
  }

  it('a read mutated to a value never written is rejected', () => {
    fc.assert(
      fc.property(
        fc.array(stepArb({ clients: 6, keys: 2, lostRate: 0.08 }), { minLength: 1, maxLength: 120 }),
        fc.nat(),
        fc.boolean(),
        (steps, pick, keepVersion) => {
          const h = simulate(steps, { clients: 6, keys: ['x', 'y'], valuePool: POOL });
          const rs = reads(h);
          fc.pre(rs.length > 0);
          const i = rs[pick % rs.length]!;
          const old = h[i]!.output as OpOutput;
          const bad = withOutput(h, i, { ok: true, found: true, value: 'never-written', version: keepVersion ? old.version : undefined });
          const r = checkHistory(bad);
          expect(r.ok).to.equal(false);
          if (r.ok === false) {
            expect(r.key).to.equal(h[i]!.key);
            expect(r.explanation).to.include('"never-written"');
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a read mutated to an impossible version is rejected', () => {
    fc.assert(
      fc.property(fc.array(stepArb({ clients: 6, keys: 2, lostRate: 0.08 }), { minLength: 1, maxLength: 120 }), fc.nat(), (steps, pick) => {
        const h = simulate(steps, { clients: 6, keys: ['x', 'y'], valuePool: POOL });
        const rs = reads(h);
        fc.pre(rs.length > 0);
        const i = rs[pick % rs.length]!;
        const old = h[i]!.output as OpOutput;
        expect(checkHistory(withOutput(h, i, { ...old, version: 0 })).ok).to.equal(false);
      }),
      { numRuns: 200 },
    );
  });

  it('a read mutated to a value written only after it returned is rejected', () => {
    fc.assert(
      fc.property(fc.array(stepArb({ clients: 6, keys: 1, lostRate: 0.05 }), { minLength: 1, maxLength: 120 }), fc.nat(), (steps, pick) => {
        const h = simulate(steps, { clients: 6, keys: ['x'] }); // unique values
        const pairs: [number, number][] = [];
        h.forEach((g, i) => {
          if (g.kind !== 'get' || g.output === 'unknown') return;
          h.forEach((p, j) => {
            if (p.kind === 'put' && p.invokeTime > g.returnTime) pairs.push([i, j]);
          });
        });
        fc.pre(pairs.length > 0);
        const [i, j] = pairs[pick % pairs.length]!;
        const p = h[j]!;
        const version = p.output === 'unknown' ? undefined : p.output.version;
        const r = checkHistory(withOutput(h, i, { ok: true, found: true, value: p.input.value, version }));
        expect(r.ok).to.equal(false);
      }),
      { numRuns: 200 },
    );
  });
});

describe('linearizability checker: performance', () => {
  function bigHistory(seed: number, lostRate: number): Operation[] {
    const rng = new Rng(seed);
    const steps: SimStep[] = [];
    const kinds: SimStep['kind'][] = ['put', 'get', 'get', 'delete', 'cas'];
    for (let i = 0; i < 10_000; i++) {
      steps.push({
        client: rng.int(8),
        key: i % 5, // exactly 2000 ops per key
        kind: rng.pick(kinds),
        value: rng.int(4),
        pre: rng.int(60),
        post: rng.int(60),
        gap: rng.int(3),
        versionGap: rng.int(3),
        casMode: rng.int(4),
        lost: rng.chance(lostRate),
        applied: rng.chance(0.5),
      });
    }
    return simulate(steps, { clients: 8, keys: ['k0', 'k1', 'k2', 'k3', 'k4'], valuePool: POOL });
  }

  for (const lostRate of [0, 0.01]) {
    it(`5 keys x 2000 ops, 8 concurrent clients, ${lostRate * 100}% unknown outcomes: < 2 s`, () => {
      const h = bigHistory(12345 + lostRate * 1000, lostRate);
      expect(h).to.have.length(10_000);
      const r = checkHistory(h);
      console.log(`      checked ${r.stats.ops} ops / ${r.stats.keys} keys in ${r.stats.ms.toFixed(1)} ms (${r.stats.states} states)`);
      expect(r.ok, explainOnFail(r)).to.equal(true);
      expect(r.stats.ms).to.be.lessThan(2000);
      // A single corrupted read in the middle is found and explained, also quickly.
      const i = reads(h).find((j) => j > 5000)!;
      const t0 = performance.now();
      const bad = checkHistory(withOutput(h, i, { ok: true, found: true, value: 'never-written' }));
      const ms = performance.now() - t0;
      console.log(`      corrupted read found and explained in ${ms.toFixed(1)} ms`);
      expect(bad.ok).to.equal(false);
      expect(ms).to.be.lessThan(5000); // includes ~12 re-checks of cuts for the minimized explanation
    });
  }
});
