import { expect } from 'chai';
import { statSync, existsSync } from 'node:fs';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import type { TableIterator } from '../../src/sstable/table-iterator.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { KvError } from '../../src/util/errors.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { Rng } from '../helpers/rng.js';
import { buildTable, randomEntries, tablePath, testSeed, type Entry } from './helpers.js';

const cmpBuf = (a: Buffer, b: Buffer): number => Buffer.compare(a, b);

/** Index of the first entry >= target in the sorted model, or model.length. */
function lowerBound(model: readonly Entry[], target: Buffer, cmp = cmpBuf): number {
  let lo = 0;
  let hi = model.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cmp(model[mid]![0], target) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function expectAt(it: TableIterator, model: readonly Entry[], i: number, ctx: string): void {
  if (i < 0 || i >= model.length) {
    expect(it.valid(), `${ctx}: expected not valid`).to.equal(false);
    return;
  }
  expect(it.valid(), `${ctx}: expected valid at ${i}`).to.equal(true);
  expect(it.key().equals(model[i]![0]), `${ctx}: key at ${i}`).to.equal(true);
  expect(it.value().equals(model[i]![1]), `${ctx}: value at ${i}`).to.equal(true);
}

describe('sstable: build and read', function () {
  afterEach(cleanupTempDirs);

  const configs = [
    { name: 'defaults', opts: {} },
    { name: 'no compression, no bloom', opts: { compression: false, bloomBitsPerKey: 0 } },
    { name: 'tiny blocks, restart 1', opts: { blockSize: 64, restartInterval: 1 } },
    { name: 'small blocks, restart 3, lz4', opts: { blockSize: 300, restartInterval: 3, compression: true } },
    { name: 'big blocks, restart 128', opts: { blockSize: 64 * 1024, restartInterval: 128, bloomBitsPerKey: 4 } },
  ];

  for (const { name, opts } of configs) {
    it(`round-trips tables of many sizes (${name})`, async () => {
      const seed = testSeed();
      const rng = new Rng(seed);
      const dir = tempDir();
      for (const n of [0, 1, 2, 17, 300, 3000]) {
        const model = randomEntries(rng, n);
        const file = tablePath(dir, n + 1);
        const res = await buildTable(file, model, opts, { minSeq: 3, maxSeq: n, ratio: 0.5 }, 4096);
        expect(res.fileSize, `seed ${seed}`).to.equal(statSync(file).size);
        const r = TableReader.open(file, n + 1);
        try {
          expect(r.fileSize).to.equal(res.fileSize);
          expect(r.properties).to.deep.equal(res.properties);
          expect(r.properties.numEntries).to.equal(n);
          expect(r.properties.user).to.deep.equal({ minSeq: 3, maxSeq: n, ratio: 0.5 });
          if (n > 0) {
            expect(r.properties.smallestKey.equals(model[0]![0])).to.equal(true);
            expect(r.properties.largestKey.equals(model[n - 1]![0])).to.equal(true);
          }
          const it = r.iterator();
          let i = 0;
          for (it.seekToFirst(); it.valid(); it.next()) expectAt(it, model, i++, `seed ${seed} n ${n} forward`);
          expect(i, `seed ${seed}`).to.equal(n);
          i = n - 1;
          for (it.seekToLast(); it.valid(); it.prev()) expectAt(it, model, i--, `seed ${seed} n ${n} backward`);
          expect(i).to.equal(-1);
          for (const [k] of model) expect(r.mayContain(k), `seed ${seed}: bloom false negative`).to.equal(true);
          it.close();
        } finally {
          r.close();
        }
      }
    });
  }

  it('matches a sorted-array model under random seek/seekForPrev/next/prev', async () => {
    const seed = testSeed();
    const rng = new Rng(seed);
    const dir = tempDir();
    const cache = new BlockCache(64 * 1024);
    for (const opts of [{ blockSize: 200, restartInterval: 4 }, { blockSize: 4096, restartInterval: 16, compression: false }]) {
      const model = randomEntries(rng, 2000, 12, 40);
      const file = tablePath(dir, opts.blockSize);
      await buildTable(file, model, opts);
      const r = TableReader.open(file, opts.blockSize, { blockCache: cache });
      const it = r.iterator();
      let pos = -1; // model index, or -1 / model.length for not valid
      const randomTarget = (): Buffer => (rng.int(2) === 0 ? rng.pick(model)[0] : Buffer.concat([rng.pick(model)[0], rng.bytes(rng.int(3))]).subarray(0, 1 + rng.int(14)));
      for (let step = 0; step < 20000; step++) {
        const op = rng.int(10);
        const ctx = `seed ${seed} step ${step} op ${op}`;
        if (op === 0) {
          it.seekToFirst();
          pos = 0;
        } else if (op === 1) {
          it.seekToLast();
          pos = model.length - 1;
        } else if (op === 2) {
          const t = randomTarget();
          it.seek(t);
          pos = lowerBound(model, t);
        } else if (op === 3) {
          const t = randomTarget();
          it.seekForPrev(t);
          const lb = lowerBound(model, t);
          pos = lb < model.length && model[lb]![0].equals(t) ? lb : lb - 1;
        } else if (pos >= 0 && pos < model.length) {
          if (op < 7) {
            it.next();
            pos++;
          } else {
            it.prev();
            pos--;
          }
        } else continue;
        expectAt(it, model, pos, ctx);
      }
      it.close();
      r.close();
    }
    expect(cache.hits).to.be.greaterThan(0);
  });

  it('orders keys by a caller-supplied comparator and filters on filterKey(key)', async () => {
    const seed = testSeed();
    const rng = new Rng(seed);
    const dir = tempDir();
    // Keys: user key + 8-byte big-endian "sequence" trailer, ordered by user key asc, seq desc
    // (the LSM's internal key shape).
    const userCmp = (a: Buffer, b: Buffer): number => {
      const c = Buffer.compare(a.subarray(0, a.length - 8), b.subarray(0, b.length - 8));
      return c !== 0 ? c : Buffer.compare(b.subarray(b.length - 8), a.subarray(a.length - 8));
    };
    const strip = (k: Buffer): Buffer => k.subarray(0, k.length - 8);
    const model: Entry[] = [];
    for (let u = 0; u < 500; u++) {
      const user = Buffer.from(`user-${String(u * 7).padStart(6, '0')}`);
      for (let v = 0; v < 1 + rng.int(3); v++) {
        const trailer = Buffer.alloc(8);
        trailer.writeUInt32BE(rng.int(1e9), 4);
        model.push([Buffer.concat([user, trailer]), rng.bytes(rng.int(30))]);
      }
    }
    model.sort((a, b) => userCmp(a[0], b[0]));
    const dedup = model.filter((e, i) => i === 0 || userCmp(model[i - 1]![0], e[0]) !== 0);
    const file = tablePath(dir);
    const { properties } = await buildTable(file, dedup, { compare: userCmp, filterKey: strip, blockSize: 256 });
    expect(properties.filterKeys).to.equal(500);
    const r = TableReader.open(file, 1, { compare: userCmp, filterKey: strip });
    expect(r.mayContain(Buffer.from('user-000007'))).to.equal(true);
    expect(r.mayContainKey(dedup[3]![0])).to.equal(true);
    const it = r.iterator();
    let i = 0;
    for (it.seekToFirst(); it.valid(); it.next()) expectAt(it, dedup, i++, `seed ${seed}`);
    for (let q = 0; q < 500; q++) {
      const t = Buffer.concat([Buffer.from(`user-${String(rng.int(3600)).padStart(6, '0')}`), Buffer.alloc(8, rng.int(2) * 255)]);
      it.seek(t);
      expectAt(it, dedup, lowerBound(dedup, t, userCmp), `seed ${seed} seek ${t.toString('hex')}`);
    }
    it.close();
    r.close();
  });

  it('rejects keys that are not strictly increasing', async () => {
    const dir = tempDir();
    const b = await TableBuilder.create(tablePath(dir), {});
    b.add(Buffer.from('b'), Buffer.from('1'));
    expect(() => b.add(Buffer.from('b'), Buffer.from('2'))).to.throw(KvError, /strictly increasing/);
    expect(() => b.add(Buffer.from('a'), Buffer.from('2'))).to.throw(KvError, /strictly increasing/);
    b.add(Buffer.from('c'), Buffer.from('3'));
    await b.finish();
    expect(() => b.add(Buffer.from('d'), Buffer.from('4'))).to.throw(KvError);
  });

  it('flushes pending blocks incrementally and tracks the estimated size', async () => {
    const dir = tempDir();
    const file = tablePath(dir);
    const b = await TableBuilder.create(file, { compression: false, blockSize: 1024 });
    const v = Buffer.alloc(100, 1);
    let maxPending = 0;
    for (let i = 0; i < 20000; i++) {
      b.add(Buffer.from(`key${String(i).padStart(8, '0')}`), v);
      maxPending = Math.max(maxPending, b.pendingBytes);
      if (b.pendingBytes >= 64 * 1024) {
        await b.flushPending();
        expect(b.pendingBytes).to.equal(0);
      }
    }
    expect(maxPending).to.be.lessThan(64 * 1024 + 2048);
    const est = b.estimatedFileSize;
    expect(statSync(file).size).to.be.greaterThan(1024 * 1024);
    const { fileSize } = await b.finish();
    expect(fileSize).to.be.greaterThan(est);
    expect(fileSize).to.be.lessThan(est * 1.1);
    const r = TableReader.open(file, 1);
    expect(r.properties.numEntries).to.equal(20000);
    r.close();
  });

  it('fdatasyncs in steps of syncEveryBytes while it writes, and the table reads back whole', async () => {
    const v = Buffer.alloc(100, 7);
    const build = async (syncEveryBytes: number): Promise<{ b: TableBuilder; file: string }> => {
      const file = tablePath(tempDir());
      const b = await TableBuilder.create(file, { compression: false, syncEveryBytes });
      for (let i = 0; i < 20000; i++) {
        b.add(Buffer.from(`key${String(i).padStart(8, '0')}`), v);
        if (b.pendingBytes >= 64 * 1024) await b.flushPending();
      }
      await b.finish();
      return { b, file };
    };
    const stepped = await build(256 * 1024);
    const size = statSync(stepped.file).size;
    // one sync per 256 KiB written in 64 KiB flushes (the last partial step is finish()'s)
    expect(stepped.b.stepSyncs).to.be.within(Math.floor(size / (256 * 1024)) - 1, Math.floor(size / (256 * 1024)));
    const r = TableReader.open(stepped.file, 1);
    expect(r.properties.numEntries).to.equal(20000);
    const it = r.iterator();
    it.seek(Buffer.from('key00012345'));
    expect(it.valid()).to.equal(true);
    expect(it.value().equals(v)).to.equal(true);
    r.close();
    expect((await build(0)).b.stepSyncs).to.equal(0);
    let err: unknown;
    try {
      await TableBuilder.create(tablePath(tempDir()), { syncEveryBytes: -1 });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(KvError);
  });

  it('builders that reuse each other\'s written slabs leave every table intact', async () => {
    // Full-size slabs go back to a shared pool once written (table-builder.ts); a slab handed out
    // while a view of it still waited for its write would show here as a checksum error or a
    // wrong value. Two builders interleave (each picks up the other's released slabs), then a
    // third starts from the pool.
    const rng = new Rng(testSeed());
    const model = (tag: string, n: number): Entry[] => {
      const out: Entry[] = [];
      for (let i = 0; i < n; i++) out.push([Buffer.from(`${tag}${String(i).padStart(7, '0')}`), rng.bytes(1000 + (i % 3000))]);
      return out;
    };
    const dir = tempDir();
    const models = [model('a', 4000), model('b', 4000), model('c', 4000)]; // ~10 MiB each
    const build = async (m: Entry[], file: string, other?: () => Promise<void>): Promise<void> => {
      const b = await TableBuilder.create(file, { compression: false });
      for (let i = 0; i < m.length; i++) {
        b.add(m[i]![0], m[i]![1]);
        // several slabs' worth pending at once: a slab reused too early would be overwritten
        if (b.pendingBytes >= 2.5 * 1024 * 1024) {
          await b.flushPending();
          if (other) await other();
        }
      }
      await b.finish();
    };
    // b advances one step each time a flushes
    const bModel = models[1]!;
    let bi = 0;
    const bBuilder = await TableBuilder.create(tablePath(dir, 2), { compression: false });
    const stepB = async (): Promise<void> => {
      const until = Math.min(bModel.length, bi + 1200);
      for (; bi < until; bi++) bBuilder.add(bModel[bi]![0], bModel[bi]![1]);
      await bBuilder.flushPending();
    };
    await build(models[0]!, tablePath(dir, 1), stepB);
    while (bi < bModel.length) await stepB();
    await bBuilder.finish();
    await build(models[2]!, tablePath(dir, 3));
    for (let t = 0; t < 3; t++) {
      const r = TableReader.open(tablePath(dir, t + 1), t + 1);
      const it = r.iterator();
      it.seekToFirst();
      for (let i = 0; i < models[t]!.length; i++) {
        expectAt(it, models[t]!, i, `table ${t + 1}`);
        it.next();
      }
      expect(it.valid()).to.equal(false);
      it.close();
      r.close();
    }
  });

  it('compresses only blocks that shrink, and reads them back', async () => {
    const dir = tempDir();
    const model: Entry[] = [];
    for (let i = 0; i < 2000; i++) model.push([Buffer.from(`k${String(i).padStart(6, '0')}`), Buffer.alloc(200, i % 7)]);
    const a = await buildTable(tablePath(dir, 1), model, { compression: true });
    const b = await buildTable(tablePath(dir, 2), model, { compression: false });
    expect(a.fileSize).to.be.lessThan(b.fileSize / 4);
    // Random values do not compress: sizes match the uncompressed table.
    const rng = new Rng(1);
    const rand: Entry[] = model.map(([k]) => [k, rng.bytes(200)]);
    const c = await buildTable(tablePath(dir, 3), rand, { compression: true });
    const d = await buildTable(tablePath(dir, 4), rand, { compression: false });
    expect(c.properties.dataBytes).to.equal(d.properties.dataBytes);
    const r = TableReader.open(tablePath(dir, 1), 1);
    const it = r.iterator();
    let i = 0;
    for (it.seekToFirst(); it.valid(); it.next()) expectAt(it, model, i++, 'lz4');
    expect(i).to.equal(2000);
    it.close();
    r.close();
  });


  it('stops trying to compress blocks that do not compress, and resumes when data compresses again', async () => {
    const dir = tempDir();
    const rng = new Rng(7);
    const key = (i: number): Buffer => Buffer.from(`k${String(i).padStart(6, '0')}`);
    // 400 blocks of random bytes, then 400 blocks of a repeated byte (one entry per block)
    const model: Entry[] = [];
    for (let i = 0; i < 800; i++) model.push([key(i), i < 400 ? rng.bytes(4100) : Buffer.alloc(4100, i % 251)]);
    const b = await TableBuilder.create(tablePath(dir, 1), { compression: true, blockSize: 4096 });
    for (const [k, v] of model) b.add(k, v);
    const res = await b.finish();
    // most random blocks were not even tried; every compressible block after the first sampled
    // one was compressed
    expect(b.skippedCompressions).to.be.greaterThan(300);
    expect(b.compressedBlocks).to.be.greaterThan(400 - 16);
    const plain = await buildTable(tablePath(dir, 2), model, { compression: false, blockSize: 4096 });
    expect(res.fileSize).to.be.lessThan(plain.fileSize * 0.6);
    const r = TableReader.open(tablePath(dir, 1), 1);
    const it = r.iterator();
    let i = 0;
    for (it.seekToFirst(); it.valid(); it.next()) expectAt(it, model, i++, 'adaptive');
    expect(i).to.equal(800);
    it.close();
    r.close();
  });
  it('abandon() closes and deletes the file', async () => {
    const dir = tempDir();
    const file = tablePath(dir);
    const b = await TableBuilder.create(file, {});
    b.add(Buffer.from('a'), Buffer.from('b'));
    await b.flushPending();
    await b.abandon();
    expect(existsSync(file)).to.equal(false);
    await b.abandon();
  });

  it('handles large keys and values (multi-byte varints, blocks larger than blockSize)', async () => {
    const rng = new Rng(7);
    const dir = tempDir();
    const model: Entry[] = [];
    for (let i = 0; i < 50; i++) model.push([Buffer.concat([Buffer.from([i]), rng.bytes(300)]), rng.bytes(rng.int(3) === 0 ? 100_000 : 500)]);
    await buildTable(tablePath(dir), model, { restartInterval: 2 });
    const r = TableReader.open(tablePath(dir), 1);
    const it = r.iterator();
    let i = model.length - 1;
    for (it.seekToLast(); it.valid(); it.prev()) expectAt(it, model, i--, 'large');
    for (const [k] of model) {
      it.seek(k);
      expect(it.key().equals(k)).to.equal(true);
    }
    it.close();
    r.close();
  });
});
