// Golden values of the hash functions and of key -> shard: these decide where data lives, so a
// change here relocates every key of an existing cluster (see src/ring/hash.ts).
import { expect } from 'chai';
import fc from 'fast-check';
import { hash32, hash64, initHashing, MAX_SHARD_COUNT, shardOf } from '../../src/ring/index.js';
import { KvError } from '../../src/util/errors.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('ring/hash', () => {
  it('is ready on import; initHashing resolves', async () => {
    await initHashing();
    expect(typeof hash64(b('x'))).to.equal('bigint');
  });

  it('matches the reference XXH64 / XXH32 vectors', () => {
    expect(hash64(b(''))).to.equal(0xef46db3751d8e999n);
    expect(hash64(b('abc'))).to.equal(0x44bc2cf5ad770999n);
    expect(hash32(b('abc'))).to.equal(0x32d153ff);
  });

  it('hashes a view by its bytes, not its backing buffer', () => {
    const big = b('xxabcxx');
    expect(hash64(big.subarray(2, 5))).to.equal(hash64(b('abc')));
  });

  it('shardOf golden values (FROZEN placement of keys)', () => {
    expect(['user:1001', 'user:1002', '', 'a\u0000b'].map((k) => shardOf(b(k), 1024))).to.deep.equal([2, 637, 409, 193]);
  });

  it('shardOf depends only on the primary and stays in range', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 1, max: MAX_SHARD_COUNT }), (primary, n) => {
        const s = shardOf(primary, n);
        return Number.isInteger(s) && s >= 0 && s < n && s === shardOf(Buffer.from(primary), n);
      }),
    );
  });

  it('spreads keys evenly over 1024 shards (chi-square)', () => {
    const n = 1024;
    const keys = 200_000;
    const counts = new Uint32Array(n);
    for (let i = 0; i < keys; i++) counts[shardOf(b(`user:${i}`), n)]!++;
    const mean = keys / n;
    let chi2 = 0;
    for (const c of counts) chi2 += (c - mean) ** 2 / mean;
    // 1023 degrees of freedom: mean 1023, sd ~45; 1250 is ~5 sd out.
    expect(chi2).to.be.lessThan(1250);
  });

  it('rejects a bad shard count', () => {
    for (const n of [0, -1, 1.5, MAX_SHARD_COUNT + 1, NaN]) expect(() => shardOf(b('k'), n)).to.throw(KvError, /shardCount/);
  });
});
