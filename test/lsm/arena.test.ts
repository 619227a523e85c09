// The memtable arena: chunks go back to the pool only when nothing reads the memtable any more,
// and whatever the engine hands out is a copy, so reusing a chunk never changes data a reader holds.
import { expect } from 'chai';
import { Arena, ArenaPool, ARENA_CHUNK_BYTES } from '../../src/lsm/arena.js';
import { LsmEngine } from '../../src/lsm/index.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { Rng } from '../helpers/rng.js';

describe('lsm: memtable arena', () => {
  afterEach(cleanupTempDirs);

  it('packs copies into chunks, and a freed arena\'s chunks hold the next arena\'s bytes', () => {
    const pool = new ArenaPool(4 * ARENA_CHUNK_BYTES);
    const a = new Arena(pool);
    const src = Buffer.from('hello');
    const v = a.copy(src, Buffer.from(' world'));
    src.fill(0); // the arena holds a copy
    expect(v.toString()).to.equal('hello world');
    const w = a.copy(Buffer.from('next'));
    expect(w.buffer).to.equal(v.buffer); // same chunk
    const big = a.copy(Buffer.alloc(ARENA_CHUNK_BYTES / 2, 1));
    expect(big.buffer).to.not.equal(v.buffer); // big items get their own buffer
    a.free();
    expect(pool.spareBytes).to.equal(ARENA_CHUNK_BYTES);
    expect(() => a.copy(src)).to.throw(/after free/);
    const b = new Arena(pool);
    const x = b.copy(Buffer.from('XXXXXXXXXXX'));
    expect(x.buffer).to.equal(v.buffer); // reused: a view kept past free() would now read X's
    expect(v.toString()).to.equal('XXXXXXXXXXX');
    expect(pool.spareBytes).to.equal(0);
  });

  it('an iterator opened before many flushes still reads its snapshot; values handed out keep their bytes', async () => {
    const seed = Date.now() % 100000;
    const rng = new Rng(seed);
    // memtables of ~2 chunks, so each flush hands chunks back that the next memtable takes
    const db = await LsmEngine.open(tempDir(), { memtableBytes: 2 * ARENA_CHUNK_BYTES, walSync: 'off', blockBytes: 4096 });
    try {
      const model = new Map<string, Buffer>();
      const key = (i: number): Buffer => Buffer.from(`k${String(i).padStart(5, '0')}`);
      const put = async (i: number): Promise<void> => {
        const v = Buffer.from(rng.bytes(1000 + (i % 50)));
        model.set(key(i).toString(), v);
        // half through the store's path: a value prefix and no WAL
        if (i % 2 === 0) await db.write([{ type: 'put', key: key(i), value: v.subarray(8), valuePrefix: v.subarray(0, 8) }], { disableWal: true });
        else await db.put(key(i), v);
      };
      for (let i = 0; i < 1500; i++) await put(rng.int(2000));
      const snapshotModel = [...model.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const it = db.iterator();
      const seen: [Buffer, Buffer][] = [];
      for (let i = 0; i < 10; i++) seen.push(it.next()!);
      const heldGet = await db.get(key(Number(snapshotModel[20]![0].slice(1))));
      const flushesBefore = db.stats().flushes;
      for (let i = 0; i < 8000; i++) await put(rng.int(2000));
      await db.flush();
      expect(db.stats().flushes - flushesBefore, 'flushes while the iterator was open').to.be.greaterThan(3);
      for (let e = it.next(); e !== undefined; e = it.next()) seen.push(e);
      it.close();
      expect(seen.length, `seed ${seed}`).to.equal(snapshotModel.length);
      for (let i = 0; i < seen.length; i++) {
        expect(seen[i]![0].toString(), `seed ${seed} key ${i}`).to.equal(snapshotModel[i]![0]);
        expect(seen[i]![1].equals(snapshotModel[i]![1]), `seed ${seed} value of ${snapshotModel[i]![0]}`).to.equal(true);
      }
      expect(heldGet!.equals(snapshotModel[20]![1]), `seed ${seed} a get result held across flushes`).to.equal(true);
      for (const [k, v] of model) expect((await db.get(Buffer.from(k)))!.equals(v), `seed ${seed} ${k}`).to.equal(true);
    } finally {
      await db.close();
    }
  });
});
