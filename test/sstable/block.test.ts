import { expect } from 'chai';
import fc from 'fast-check';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import { Block, BlockIterator } from '../../src/sstable/block.js';
import { CorruptionError } from '../../src/util/errors.js';

function buildBlock(entries: [Buffer, Buffer][], restartInterval: number): Block {
  const bb = new BlockBuilder(restartInterval, 16);
  for (const [k, v] of entries) bb.add(k, v);
  return new Block(Buffer.from(bb.finish()), 'mem', 0);
}

function sortedUnique(keys: Uint8Array[]): Buffer[] {
  const m = new Map<string, Buffer>();
  for (const k of keys) m.set(Buffer.from(k).toString('hex'), Buffer.from(k));
  return [...m.values()].sort(Buffer.compare);
}

describe('sstable: blocks', () => {
  it('encodes the documented worked example (FORMAT.md) byte for byte', () => {
    const bb = new BlockBuilder(2);
    bb.add(Buffer.from('apple'), Buffer.from('red'));
    bb.add(Buffer.from('apricot'), Buffer.from('or'));
    bb.add(Buffer.from('banana'), Buffer.from('y'));
    expect(bb.finish().toString('hex')).to.equal(
      '000503' + Buffer.from('applered').toString('hex') +
        '020502' + Buffer.from('ricotor').toString('hex') +
        '000601' + Buffer.from('bananay').toString('hex') +
        '00000000' + '15000000' + '02000000',
    );
  });

  it('matches a sorted model for seek/seekForPrev/next/prev (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 6 }), { maxLength: 80 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.uint8Array({ maxLength: 6 })), { maxLength: 60 }),
        (rawKeys, restart, ops) => {
          const keys = sortedUnique(rawKeys);
          const entries = keys.map((k, i): [Buffer, Buffer] => [k, Buffer.from(`v${i}`)]);
          const it = buildBlock(entries, restart).iterator();
          let pos = -1;
          for (const [op, t] of ops) {
            const target = Buffer.from(t);
            const lb = keys.findIndex((k) => Buffer.compare(k, target) >= 0);
            const lower = lb < 0 ? keys.length : lb;
            switch (op) {
              case 0: it.seekToFirst(); pos = 0; break;
              case 1: it.seekToLast(); pos = keys.length - 1; break;
              case 2: it.seek(target); pos = lower; break;
              case 3: it.seekForPrev(target); pos = lower < keys.length && keys[lower]!.equals(target) ? lower : lower - 1; break;
              case 4: if (!it.valid()) continue; it.next(); pos++; break;
              default: if (!it.valid()) continue; it.prev(); pos--;
            }
            if (pos < 0 || pos >= keys.length) {
              expect(it.valid()).to.equal(false);
            } else {
              expect(it.valid()).to.equal(true);
              expect(it.key().equals(keys[pos]!)).to.equal(true);
              expect(it.value().toString()).to.equal(`v${pos}`);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('handles an empty block', () => {
    const it = buildBlock([], 16).iterator();
    it.seekToFirst();
    expect(it.valid()).to.equal(false);
    it.seekToLast();
    expect(it.valid()).to.equal(false);
    it.seek(Buffer.from('a'));
    expect(it.valid()).to.equal(false);
  });

  it('rejects malformed blocks with CorruptionError', () => {
    const good = buildBlock([[Buffer.from('abc'), Buffer.from('1')], [Buffer.from('abd'), Buffer.from('2')]], 16).data;
    // Too short, restart count too large, bad restart offset.
    expect(() => new Block(Buffer.alloc(3), 'f', 7)).to.throw(CorruptionError, /no restart count/);
    const huge = Buffer.from(good);
    huge.writeUInt32LE(1000, huge.length - 4);
    expect(() => new Block(huge, 'f', 7)).to.throw(CorruptionError);
    const badRestart = Buffer.from(good);
    badRestart.writeUInt32LE(3, badRestart.length - 8);
    expect(() => new Block(badRestart, 'f', 7)).to.throw(CorruptionError, /restart point/);
    // Shared prefix longer than the previous key.
    const badShared = Buffer.from(good);
    badShared[3 + 3 + 1] = 9; // second entry's shared
    const it = new Block(badShared, 'f', 7).iterator();
    it.seekToFirst();
    let err: unknown;
    try {
      it.next();
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(CorruptionError);
    expect((err as CorruptionError).file).to.equal('f');
    expect((err as CorruptionError).offset).to.equal(7);
    expect(it.valid()).to.equal(false);
    // Entry length crossing the restart array.
    const badLen = Buffer.from(good);
    badLen[2] = 100;
    expect(() => new Block(badLen, 'f', 7).iterator().seekToFirst()).to.throw(CorruptionError, /crosses/);
  });

  it('reuses one iterator across blocks', () => {
    const it = new BlockIterator();
    for (let b = 0; b < 3; b++) {
      const entries: [Buffer, Buffer][] = [];
      for (let i = 0; i < 40; i++) entries.push([Buffer.from(`b${b}-key-${String(i).padStart(3, '0')}`), Buffer.from([i])]);
      it.reset(buildBlock(entries, 5));
      let n = 0;
      for (it.seekToLast(); it.valid(); it.prev()) expect(it.key().toString()).to.equal(`b${b}-key-${String(39 - n++).padStart(3, '0')}`);
      expect(n).to.equal(40);
    }
  });
});
