import { expect } from 'chai';
import xxhash from 'xxhash-wasm';
import { xxh32, BLOOM_HASH_SEED, bloomK, bloomTheoreticalFpRate } from '../../src/sstable/bloom.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { Rng } from '../helpers/rng.js';
import { buildTable, tablePath, testSeed, type Entry } from './helpers.js';

describe('sstable: bloom filter', () => {
  afterEach(cleanupTempDirs);

  it('xxh32 is bit-identical to xxhash-wasm h32 for all length classes', async () => {
    const api = await xxhash();
    const rng = new Rng(42);
    for (let len = 0; len < 80; len++) {
      for (let r = 0; r < 5; r++) {
        const b = rng.bytes(len);
        expect(xxh32(b, BLOOM_HASH_SEED), `len ${len}`).to.equal(api.h32Raw(b, BLOOM_HASH_SEED));
        expect(xxh32(b, 0)).to.equal(api.h32Raw(b, 0));
      }
    }
    // Published test vector: XXH32("", 0) = 0x02cc5d05.
    expect(xxh32(Buffer.alloc(0), 0)).to.equal(0x02cc5d05);
    // Sub-ranges hash like copies.
    const big = rng.bytes(100);
    expect(xxh32(big, 7, 10, 50)).to.equal(xxh32(Buffer.from(big.subarray(10, 50)), 7));
  });

  for (const bits of [6, 10, 16]) {
    it(`false-positive rate is within 2x of theory (${bits} bits/key)`, async () => {
      const seed = testSeed();
      const rng = new Rng(seed);
      const dir = tempDir();
      const n = 20000;
      const model: Entry[] = [];
      for (let i = 0; i < n; i++) model.push([Buffer.from(`key:${String(i * 2).padStart(9, '0')}:${rng.int(10)}`), Buffer.alloc(0)]);
      const { properties } = await buildTable(tablePath(dir), model, { bloomBitsPerKey: bits, compression: false });
      const r = TableReader.open(tablePath(dir), 1);
      for (const [k] of model) expect(r.mayContain(k)).to.equal(true);
      const queries = 40000;
      let fp = 0;
      for (let i = 0; i < queries; i++) if (r.mayContain(Buffer.from(`key:${String(i * 2 + 1).padStart(9, '0')}:${rng.int(10)}`))) fp++;
      const m = (properties.filterBytes - 5 - 1) * 8;
      const theory = bloomTheoreticalFpRate(m, n, bloomK(bits));
      const rate = fp / queries;
      console.log(`      bits/key ${bits}, k ${bloomK(bits)}: fp ${(rate * 100).toFixed(3)}% vs theory ${(theory * 100).toFixed(3)}%`);
      expect(rate, `seed ${seed}`).to.be.lessThan(2 * theory);
      // The lower bound is only meaningful (not flaky) with enough expected false positives.
      if (theory * queries >= 100) expect(rate, `seed ${seed}`).to.be.greaterThan(theory / 2);
      expect(r.bloomChecks).to.equal(n + queries);
      expect(r.bloomNegatives).to.equal(queries - fp);
      r.close();
    });
  }

  it('bits/key 0 disables the filter (mayContain is always true, no counters)', async () => {
    const dir = tempDir();
    await buildTable(tablePath(dir), [[Buffer.from('a'), Buffer.from('1')]], { bloomBitsPerKey: 0 });
    const r = TableReader.open(tablePath(dir), 1);
    expect(r.hasFilter).to.equal(false);
    expect(r.mayContain(Buffer.from('zzz'))).to.equal(true);
    expect(r.bloomChecks).to.equal(0);
    expect(r.properties.filterBytes).to.equal(0);
    r.close();
  });
});
