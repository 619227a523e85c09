// Cross-check against a brute-force reference on tiny arbitrary histories (mostly NOT produced by
// a register, so both verdicts occur): the reference tries every order that respects real time,
// lets unknown-outcome ops apply or not, and picks concrete versions for writes whose version
// was not reported. Verdicts must agree exactly.
import { expect } from 'chai';
import fc from 'fast-check';
import { checkHistory, type CheckOptions, type Operation, type OpOutput } from '../../src/testing/linearizability.js';

interface Conc {
  present: boolean;
  value: string;
  version: number;
}

function reference(h: Operation[], plusOne: boolean, delWrites: boolean): boolean {
  const ops = h.filter((o) => !(o.output === 'unknown' && o.kind === 'get') && !(o.output !== 'unknown' && !o.output.ok && o.kind !== 'cas'));
  let vmax = 1;
  for (const o of ops) {
    if (o.output !== 'unknown' && o.output.version !== undefined) vmax = Math.max(vmax, o.output.version);
    if (o.input.expectedVersion !== undefined) vmax = Math.max(vmax, o.input.expectedVersion);
  }
  vmax += ops.length + 1;
  const writeVersions = (s: Conc, reported: number | undefined): number[] => {
    if (reported !== undefined) return (plusOne ? reported === s.version + 1 : reported > s.version) ? [reported] : [];
    if (plusOne) return [s.version + 1];
    const out: number[] = [];
    for (let v = s.version + 1; v <= vmax; v++) out.push(v);
    return out;
  };
  /** Possible next states after applying o (unknown outcome: with effect only). */
  const apply = (s: Conc, o: Operation): Conc[] => {
    const out: OpOutput | undefined = o.output === 'unknown' ? undefined : o.output;
    switch (o.kind) {
      case 'get': {
        const found = out!.found ?? out!.value !== undefined;
        if (found !== s.present) return [];
        if (found && (out!.value !== s.value || (out!.version !== undefined && out!.version !== s.version))) return [];
        return [s];
      }
      case 'put':
        return writeVersions(s, out?.version).map((version) => ({ present: true, value: o.input.value!, version }));
      case 'delete': {
        if (out?.found !== undefined && out.found !== s.present) return [];
        if (!s.present) return [s];
        if (!delWrites) return [{ present: false, value: '', version: s.version }];
        return writeVersions(s, out?.version).map((version) => ({ present: false, value: '', version }));
      }
      case 'cas': {
        const observed = s.present ? s.version : 0;
        const match = o.input.expectedVersion === observed;
        if (out === undefined || out.ok) {
          if (!match) return [];
          return writeVersions(s, out?.version).map((version) => ({ present: true, value: o.input.value!, version }));
        }
        if (match || (out.version !== undefined && out.version !== observed)) return [];
        return [s];
      }
    }
  };
  const rec = (remaining: Operation[], s: Conc): boolean => {
    if (remaining.every((o) => o.output === 'unknown')) return true;
    for (const o of remaining) {
      // o may come next unless some other remaining op returned before o was invoked.
      if (remaining.some((r) => r !== o && r.returnTime < o.invokeTime)) continue;
      const rest = remaining.filter((r) => r !== o);
      for (const ns of apply(s, o)) if (rec(rest, ns)) return true;
    }
    return false;
  };
  // Unknown-outcome ops that never apply are simply never picked (rec succeeds without them).
  return rec(ops, { present: false, value: '', version: 0 });
}

const opArb: fc.Arbitrary<Operation> = fc
  .record({
    client: fc.nat(3),
    kind: fc.constantFrom<Operation['kind']>('put', 'get', 'get', 'delete', 'cas'),
    value: fc.constantFrom('a', 'b'),
    inv: fc.nat(20),
    dur: fc.nat(12),
    unknown: fc.nat(99).map((x) => x < 15),
    ok: fc.nat(99).map((x) => x < 80),
    found: fc.option(fc.boolean(), { nil: undefined }),
    version: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
    expected: fc.integer({ min: 0, max: 3 }),
  })
  .map((r): Operation => {
    const input: Operation['input'] = {};
    let output: OpOutput;
    switch (r.kind) {
      case 'put':
        input.value = r.value;
        output = { ok: true, version: r.version };
        break;
      case 'get':
        output = r.found === false ? { ok: true, found: false } : { ok: true, found: true, value: r.value, version: r.version };
        break;
      case 'delete':
        output = { ok: true, found: r.found, version: r.version };
        break;
      case 'cas':
        input.value = r.value;
        input.expectedVersion = r.expected;
        output = { ok: r.ok, version: r.version };
        break;
    }
    const output2: Operation['output'] = r.unknown ? 'unknown' : output;
    return { clientId: r.client, key: 'k', kind: r.kind, input, output: output2, invokeTime: r.inv, returnTime: r.unknown ? Infinity : r.inv + r.dur };
  });

describe('linearizability checker: agrees with a brute-force reference', () => {
  const variants: [boolean, boolean][] = [
    [false, true],
    [true, true],
    [true, false],
  ];
  for (const [plusOne, delWrites] of variants) {
    it(`random tiny histories (${plusOne ? 'plusOne' : 'increasing'} versions, deleteAdvancesVersion ${delWrites})`, () => {
      const opts: CheckOptions = { versions: { step: plusOne ? 'plusOne' : 'increasing', deleteAdvancesVersion: delWrites } };
      let accepted = 0;
      let rejected = 0;
      fc.assert(
        fc.property(fc.array(opArb, { maxLength: 7 }), (h) => {
          const expected = reference(h, plusOne, delWrites);
          const r = checkHistory(h, opts);
          expect(r.ok, r.ok === false ? r.explanation : '').to.equal(expected);
          if (expected) accepted++;
          else rejected++;
        }),
        { numRuns: Number(process.env.LIN_REF_RUNS ?? 3000) },
      );
      console.log(`      ${accepted} accepted, ${rejected} rejected`);
      expect(accepted).to.be.greaterThan(20);
      expect(rejected).to.be.greaterThan(200);
    });
  }
});
