// The decoders hand out small integers as V8 small integers (Smis), not heap numbers: a heap
// number stored into a field that held Smis deprecates the hidden class of every object built
// at that site, and V8 then aborts the optimization of the code that embedded it (see
// util/bytes.ts smallInt). Checked with V8's own %IsSmi.
import { expect } from 'chai';
import v8 from 'node:v8';
import { BufReader, BufWriter, DOUBLE_ZERO, readU64, readVarint, smallInt, writeU64 } from '../../src/util/bytes.js';

// (left on: the function body is compiled lazily, at its first call, and again after V8 flushes
// its bytecode; the flag changes nothing for code that does not use the % syntax)
v8.setFlagsFromString('--allow-natives-syntax');
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const isSmi = new Function('v', 'return %IsSmi(v)') as (v: number) => boolean;
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

describe('util: small integers stay Smis through the decoders', () => {
  it('%IsSmi tells them apart (a float computation gives a heap number even for 5)', () => {
    const viaFloat = new Float64Array([5])[0]!;
    expect(isSmi(5)).to.equal(true);
    expect(isSmi(viaFloat)).to.equal(false);
    expect(isSmi(smallInt(viaFloat))).to.equal(true);
  });

  it('smallInt keeps the value and leaves values past the Smi range alone', () => {
    for (const v of [0, 1, 127, 2 ** 29, 2 ** 30 - 1, 2 ** 30, 2 ** 31, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER]) {
      expect(smallInt(new Float64Array([v])[0]!)).to.equal(v);
    }
    expect(isSmi(smallInt(new Float64Array([2 ** 30 - 1])[0]!))).to.equal(true);
  });

  it('BufReader.varint and readU64 return Smis for small values, also after values past 2^30 went through them', () => {
    const w = new BufWriter(64);
    const values = [5, 300, 2 ** 40 + 7, 70000, 1];
    for (const v of values) w.varint(v);
    const buf = w.finish();
    const u64 = Buffer.alloc(16);
    writeU64(u64, 2 ** 45 + 1, 0);
    writeU64(u64, 9, 8);
    // many rounds: the optimizing compiler gets to these functions too
    for (let round = 0; round < 20000; round++) {
      const r = new BufReader(buf);
      for (const v of values) {
        const got = r.varint();
        expect(got).to.equal(v);
        if (v < 2 ** 30 && !isSmi(got)) expect.fail(`BufReader.varint gave a heap number for ${v} in round ${round}`);
      }
      let off = 0;
      for (const v of values) {
        const [got, next] = readVarint(buf, off);
        off = next;
        expect(got).to.equal(v); // (Smi or not: its tuple's site may hold doubles by now)
      }
      expect(readU64(u64, 0)).to.equal(2 ** 45 + 1);
      const small = readU64(u64, 8);
      if (small !== 9 || !isSmi(small)) expect.fail(`readU64 gave ${small} (Smi: ${isSmi(small)}) in round ${round}`);
    }
  });

  it('DOUBLE_ZERO: a counter that starts there keeps its hidden class when it takes a fraction; one that starts at 0 does not', () => {
    // two literal sites (objects of one site share their hidden classes)
    const makeSmi = (): { n: number; ms: number } => ({ n: 0, ms: 0 });
    const makeDouble = (): { n: number; mx: number } => ({ n: 0, mx: DOUBLE_ZERO });
    const fromSmi = makeSmi();
    const fromDouble = makeDouble();
    const before = { smi: makeSmi(), dbl: makeDouble() };
    fromSmi.ms += 1.5;
    fromDouble.mx += 1.5;
    expect(haveSameMap(fromDouble, before.dbl), 'double counter: same class after a fractional add').to.equal(true);
    expect(haveSameMap(fromSmi, before.smi), 'Smi counter: its class changed (deprecated) on the first fraction').to.equal(false);
    expect(fromDouble.mx).to.equal(1.5);
    expect(DOUBLE_ZERO === 0 && JSON.stringify({ v: DOUBLE_ZERO }) === '{"v":0}' && String(DOUBLE_ZERO) === '0').to.equal(true);
    expect(isSmi(DOUBLE_ZERO)).to.equal(false);
  });
});
