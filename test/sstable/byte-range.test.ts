// Tests for src/util/byte-range.ts (added for the sstable hot paths; kept beside its user).
import { expect } from 'chai';
import fc from 'fast-check';
import { compareRange, copyRange, bufferView, viewOf } from '../../src/util/byte-range.js';

describe('util/byte-range (sstable hot-path helpers)', () => {
  it('compareRange orders like Buffer.compare on the sub-ranges', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), fc.nat(), fc.nat(), (a, b, i, j) => {
        const as = a.length === 0 ? 0 : i % a.length;
        const bs = b.length === 0 ? 0 : j % b.length;
        const want = Math.sign(Buffer.compare(a.subarray(as), b.subarray(bs)));
        expect(Math.sign(compareRange(a, as, a.length, b, bs, b.length))).to.equal(want);
      }),
      { numRuns: 500 },
    );
    const long = Buffer.alloc(200, 1);
    const long2 = Buffer.from(long);
    long2[150] = 2;
    expect(compareRange(long, 0, 200, long2, 0, 200)).to.be.lessThan(0);
    expect(compareRange(long, 0, 200, long, 0, 199)).to.be.greaterThan(0);
  });

  it('copyRange copies short and long ranges', () => {
    for (const n of [0, 5, 32, 33, 100]) {
      const src = Buffer.from(Array.from({ length: n + 4 }, (_, i) => i));
      const dst = Buffer.alloc(n + 10);
      copyRange(src, 2, 2 + n, dst, 3);
      expect(dst.subarray(3, 3 + n).equals(src.subarray(2, 2 + n))).to.equal(true);
      copyRange(src, 0, src.length, dst, 0);
      expect(dst.subarray(0, src.length).equals(src)).to.equal(true);
    }
  });

  it('bufferView / viewOf give real Buffers aliasing the source', () => {
    const b = Buffer.from('hello world');
    const v = viewOf(b, 6, 11);
    expect(Buffer.isBuffer(v)).to.equal(true);
    expect(v.toString()).to.equal('world');
    expect(v.equals(Buffer.from('world'))).to.equal(true);
    expect(v.subarray(1, 3).toString()).to.equal('or');
    b[6] = 0x57;
    expect(v.toString()).to.equal('World');
    const w = bufferView(b.buffer as ArrayBuffer, b.byteOffset, 5);
    expect(w.toString('hex')).to.equal(Buffer.from('hello').toString('hex'));
    expect(Buffer.compare(w, Buffer.from('hello'))).to.equal(0);
  });
});
