import { expect } from 'chai';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { TableCache } from '../../src/sstable/table-cache.js';
import { SCAN_READAHEAD, TableReader } from '../../src/sstable/table-reader.js';
import { Block } from '../../src/sstable/block.js';
import { CorruptionError, KvError } from '../../src/util/errors.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { Rng } from '../helpers/rng.js';
import { buildTable, tablePath, type Entry } from './helpers.js';

/** A valid one-entry block of about `size` bytes. */
function rawBlock(size: number): Block {
  const value = Buffer.alloc(Math.max(0, size - 16));
  return new Block(Buffer.concat([Buffer.from([0, 1]), varint(value.length), Buffer.from('k'), value, Buffer.alloc(4), Buffer.from([1, 0, 0, 0])]), 'mem', 0);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

function entries(n: number, tag: string): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) out.push([Buffer.from(`${tag}-${String(i).padStart(5, '0')}`), Buffer.alloc(64, i)]);
  return out;
}

describe('sstable: block cache', () => {
  afterEach(cleanupTempDirs);

  it('stays within its byte bound and evicts least recently used first', () => {
    const b = rawBlock(1000);
    const charge = b.charge;
    const cache = new BlockCache(charge * 3);
    cache.insert(1, 0, rawBlock(1000));
    cache.insert(1, 1000, rawBlock(1000));
    cache.insert(2, 0, rawBlock(1000));
    expect(cache.usedBytes).to.equal(3 * charge);
    expect(cache.get(1, 0)).to.not.equal(undefined); // 1:0 becomes most recent
    cache.insert(3, 0, rawBlock(1000)); // evicts 1:1000, the LRU
    expect(cache.usedBytes).to.be.at.most(cache.capacityBytes);
    expect(cache.get(1, 1000)).to.equal(undefined);
    expect(cache.get(1, 0)).to.not.equal(undefined);
    expect(cache.get(2, 0)).to.not.equal(undefined);
    expect(cache.get(3, 0)).to.not.equal(undefined);
    expect(cache.hits).to.equal(4);
    expect(cache.misses).to.equal(1);
    expect(cache.evictions).to.equal(1);
    // Too big for the whole cache: not kept, nothing else evicted.
    cache.insert(4, 0, rawBlock(10_000));
    expect(cache.get(4, 0)).to.equal(undefined);
    expect(cache.size).to.equal(3);
    cache.evictFile(1);
    expect(cache.get(1, 0)).to.equal(undefined);
    expect(cache.size).to.equal(2);
    expect(cache.usedBytes).to.equal(2 * charge);
    // Replacing a key does not double-charge.
    cache.insert(2, 0, rawBlock(1000));
    expect(cache.usedBytes).to.equal(2 * charge);
  });

  it('serves repeated reads of a table without touching the file', async () => {
    const dir = tempDir();
    await buildTable(tablePath(dir), entries(2000, 'a'), { compression: true, blockSize: 1024 });
    const cache = new BlockCache(8 << 20);
    const r = TableReader.open(tablePath(dir), 1, { blockCache: cache });
    const it = r.iterator();
    let n = 0;
    for (it.seekToFirst(); it.valid(); it.next()) n++;
    const reads = r.blockReads;
    expect(reads).to.equal(r.properties.dataBlocks);
    for (it.seekToLast(); it.valid(); it.prev()) n--;
    expect(n).to.equal(0);
    expect(r.blockReads).to.equal(reads);
    expect(cache.hits).to.be.greaterThan(0);
    expect(cache.usedBytes).to.be.greaterThan(r.properties.dataBlocks * 1024);
    it.close();
    r.close();
  });
});

describe('sstable: scanning iterator (compaction input)', () => {
  afterEach(cleanupTempDirs);

  it('reads the same entries with read-ahead, leaves the block cache alone, and still names a corrupt block', async () => {
    const dir = tempDir();
    const rng = new Rng(11);
    const model: Entry[] = entries(3000, 's').map(([k]) => [k, Buffer.from(rng.bytes(200))]); // ~600 KB: several read-ahead chunks
    await buildTable(tablePath(dir), model, { compression: true, blockSize: 1024 });
    const cache = new BlockCache(8 << 20);
    const r = TableReader.open(tablePath(dir), 1, { blockCache: cache });
    const it = r.iterator({ scan: true });
    let i = 0;
    for (it.seekToFirst(); it.valid(); it.next(), i++) {
      expect(it.key().equals(model[i]![0]), `key ${i}`).to.equal(true);
      expect(it.value().equals(model[i]![1]), `value ${i}`).to.equal(true);
    }
    expect(i).to.equal(model.length);
    it.close();
    expect(r.blockReads).to.equal(r.properties.dataBlocks);
    expect(cache.usedBytes + cache.hits + cache.misses).to.equal(0);
    r.close();

    // a flipped byte in a block past the first read-ahead chunk
    const file = tablePath(dir);
    const bytes = readFileSync(file);
    const at = SCAN_READAHEAD + 100;
    expect(at).to.be.lessThan(bytes.length - 4096);
    bytes[at] = bytes[at]! ^ 0xff;
    writeFileSync(file, bytes);
    const bad = TableReader.open(file, 1);
    const it2 = bad.iterator({ scan: true });
    let err: unknown;
    try {
      for (it2.seekToFirst(); it2.valid(); it2.next());
    } catch (e) {
      err = e;
    }
    it2.close();
    bad.close();
    expect(err).to.be.instanceOf(CorruptionError);
    expect((err as CorruptionError).message).to.include(file);
  });

  it('interleaved scans (a compaction merging several inputs) each read their own bytes while read-ahead chunks are reused', async () => {
    // Uncompressed blocks are views into the read-ahead chunk, so a chunk shared or reused too
    // early shows up here as another table's bytes.
    const dir = tempDir();
    const rng = new Rng(12);
    const models: Entry[][] = [];
    for (let t = 0; t < 3; t++) {
      models.push(entries(1500, `t${t}`).map(([k]) => [k, Buffer.from(rng.bytes(400))])); // ~600 KB each
      await buildTable(`${dir}/${t}.sst`, models[t]!, { compression: false, blockSize: 4096 });
    }
    for (let round = 0; round < 2; round++) {
      // round 1 starts with the chunks round 0's iterators handed back on close
      const readers = models.map((_, t) => TableReader.open(`${dir}/${t}.sst`, t + 1));
      const its = readers.map((r) => r.iterator({ scan: true }));
      for (const it of its) it.seekToFirst();
      const pos = models.map(() => 0);
      for (let step = 0; its.some((it) => it.valid()); step++) {
        const t = (step * 7 + round) % its.length; // uneven interleaving
        const it = its[t]!;
        if (!it.valid()) continue;
        const [k, v] = models[t]![pos[t]!]!;
        expect(it.key().equals(k), `round ${round} table ${t} key ${pos[t]}`).to.equal(true);
        expect(it.value().equals(v), `round ${round} table ${t} value ${pos[t]}`).to.equal(true);
        pos[t]!++;
        it.next();
      }
      expect(pos).to.deep.equal(models.map((m) => m.length));
      for (const it of its) it.close();
      for (const r of readers) r.close();
    }
  });
});

describe('sstable: table cache', () => {
  afterEach(cleanupTempDirs);

  it('bounds open readers, and an evicted reader closes only after its last iterator', async () => {
    const dir = tempDir();
    for (let f = 1; f <= 4; f++) await buildTable(tablePath(dir, f), entries(300, `f${f}`), { blockSize: 512 });
    const blockCache = new BlockCache(1 << 20);
    const tc = new TableCache({ capacity: 2, pathFor: (n) => tablePath(dir, n), readerOptions: { blockCache } });
    const r1 = tc.get(1);
    const r2 = tc.get(2);
    expect(tc.get(1)).to.equal(r1); // hit; 2 is now LRU
    const it2 = r2.iterator();
    it2.seek(Buffer.from('f2-00100'));
    expect(it2.key().toString()).to.equal('f2-00100');
    tc.get(3); // evicts 2, which has an open iterator
    expect(tc.size).to.equal(2);
    expect(tc.has(2)).to.equal(false);
    expect(r2.isClosed).to.equal(false);
    expect(r2.openIterators).to.equal(1);
    // The evicted reader keeps working for its iterator (blocks read after eviction, too).
    let n = 0;
    for (; it2.valid(); it2.next()) n++;
    expect(n).to.equal(200);
    expect(() => r2.iterator()).to.throw(KvError, /closed/);
    it2.close();
    it2.close(); // idempotent
    expect(r2.isClosed).to.equal(true);
    tc.get(4); // evicts 1, no iterators: closed at once
    expect(r1.isClosed).to.equal(true);
    expect(tc.hits).to.equal(1);
    expect(tc.misses).to.equal(4);
    expect(tc.evictions).to.equal(2);
    // Reopened on demand as a fresh reader.
    const r1b = tc.get(1);
    expect(r1b).to.not.equal(r1);
    expect(r1b.properties.numEntries).to.equal(300);

    // evict(): the file is being deleted; its blocks leave the block cache too.
    const it4 = tc.get(4).iterator();
    it4.seekToFirst();
    expect(blockCache.get(4, 0)).to.not.equal(undefined);
    tc.evict(4);
    expect(blockCache.get(4, 0)).to.equal(undefined);
    unlinkSync(tablePath(dir, 4)); // POSIX: the open fd still reads the unlinked file
    let m = 0;
    for (; it4.valid(); it4.next()) m++;
    expect(m).to.equal(300);
    it4.close();

    tc.close();
    expect(r1b.isClosed).to.equal(true);
    expect(tc.size).to.equal(0);
  });

  it('does not cache a reader that failed to open', () => {
    const dir = tempDir();
    const tc = new TableCache({ capacity: 2, pathFor: (n) => tablePath(dir, n) });
    expect(() => tc.get(9)).to.throw(/ENOENT/);
    expect(tc.size).to.equal(0);
  });
});
