// ShardRouter: random sequences of splits and merges keep every slot covered exactly once, and
// every key is routed to the one shard whose piece holds its (slot, sub-hash); bad tables are
// refused with the slot and the gap or overlap named.
import { expect } from 'chai';
import fc from 'fast-check';
import { type RoutedShard, ShardRouter, SUB_SPACE, keyPosition, shardOf, splitPoint, wholeSlot } from '../../src/ring/index.js';

describe('ring: ShardRouter (second routing level for split and merge)', () => {
  it('an unsplit router is shardOf', () => {
    const r = ShardRouter.unsplit(64);
    for (let i = 0; i < 2000; i++) {
      const k = Buffer.from(`key-${i}`);
      expect(r.locate(k)).to.equal(shardOf(k, 64));
    }
    expect(r.splitSlots).to.equal(0);
  });

  it('random splits and merges: every key goes to the shard whose piece holds it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.tuple(fc.boolean(), fc.nat(), fc.nat()), { maxLength: 40 }), fc.array(fc.string(), { minLength: 1, maxLength: 50 }), (slots, steps, keys) => {
        let shards: RoutedShard[] = Array.from({ length: slots }, (_, s) => ({ shardId: s, range: wholeSlot(s) }));
        let next = slots;
        for (const [split, a, b] of steps) {
          if (split) {
            const i = a % shards.length;
            const s = shards[i]!;
            if (s.range.hi - s.range.lo < 2) continue;
            const mid = splitPoint(s.range);
            shards = [...shards.slice(0, i), { shardId: s.shardId, range: { ...s.range, hi: mid } }, { shardId: next++, range: { ...s.range, lo: mid } }, ...shards.slice(i + 1)];
          } else {
            // merge a piece with its right neighbour in the same slot
            const i = a % shards.length;
            const s = shards[i]!;
            const j = shards.findIndex((x) => x.range.slot === s.range.slot && x.range.lo === s.range.hi);
            if (j < 0) continue;
            const merged = { shardId: b % 2 === 0 ? s.shardId : shards[j]!.shardId, range: { ...s.range, hi: shards[j]!.range.hi } };
            shards = shards.filter((_, k) => k !== i && k !== j).concat([merged]);
          }
        }
        const router = new ShardRouter(slots, shards);
        for (const key of keys) {
          const k = Buffer.from(key);
          const { slot, sub } = keyPosition(k, slots);
          const owner = shards.filter((s) => s.range.slot === slot && sub >= s.range.lo && sub < s.range.hi);
          expect(owner).to.have.length(1);
          expect(router.locate(k)).to.equal(owner[0]!.shardId);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a table with a gap or an overlap, naming the slot', () => {
    expect(() => new ShardRouter(2, [{ shardId: 0, range: wholeSlot(0) }])).to.throw(/slot 1: sub-hashes \[0, 65536\) are owned by no shard/);
    expect(() => new ShardRouter(1, [{ shardId: 0, range: { slot: 0, lo: 0, hi: 100 } }, { shardId: 1, range: { slot: 0, lo: 50, hi: SUB_SPACE } }])).to.throw(/slot 0.*owned twice/);
    expect(() => new ShardRouter(1, [{ shardId: 0, range: { slot: 0, lo: 0, hi: 100 } }, { shardId: 1, range: { slot: 0, lo: 200, hi: SUB_SPACE } }])).to.throw(/slot 0.*owned by no shard/);
    // an empty piece (a merged-away shard) is ignored
    expect(new ShardRouter(1, [{ shardId: 0, range: wholeSlot(0) }, { shardId: 5, range: { slot: 0, lo: 7, hi: 7 } }]).locate(Buffer.from('x'))).to.equal(0);
  });

  it('sub-hashes spread over the slot: a split halves a shard\'s keys (within 10% at 20k keys)', () => {
    let upper = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) if (keyPosition(Buffer.from(`user:${i}`), 16).sub >= SUB_SPACE / 2) upper++;
    expect(Math.abs(upper / n - 0.5)).to.be.lessThan(0.05);
  });
});
