import { expect } from 'chai';
import { promises as fsp, readdirSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { LsmEngine } from '../../src/lsm/index.js';
import type { WriteOp } from '../../src/lsm/types.js';
import { KvError, CorruptionError } from '../../src/util/errors.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { Rng } from '../helpers/rng.js';

const b = (s: string): Buffer => Buffer.from(s);
const str = (v: Buffer | undefined): string | undefined => v?.toString();

async function collect(it: AsyncIterable<[Buffer, Buffer]>): Promise<string[]> {
  const out: string[] = [];
  for await (const [k, v] of it) out.push(`${k}=${v}`);
  return out;
}

/** Small sizes so a few thousand writes exercise flushes and compactions. */
const SMALL = { memtableBytes: 32 * 1024, targetFileBytes: 16 * 1024, l1MaxBytes: 64 * 1024, blockBytes: 1024, walSync: 'off' as const };

describe('lsm: engine', () => {
  afterEach(cleanupTempDirs);

  it('put, get, delete, overwrite', async () => {
    const db = await LsmEngine.open(tempDir());
    await db.put(b('a'), b('1'));
    await db.put(b('b'), b('2'));
    await db.put(b('a'), b('3'));
    await db.delete(b('b'));
    expect(str(await db.get(b('a')))).to.equal('3');
    expect(await db.get(b('b'))).to.equal(undefined);
    expect(await db.get(b('zz'))).to.equal(undefined);
    await db.close();
  });

  it('write() is atomic and ordered within the batch', async () => {
    const db = await LsmEngine.open(tempDir());
    await db.write([
      { type: 'put', key: b('x'), value: b('1') },
      { type: 'put', key: b('y'), value: b('2') },
      { type: 'del', key: b('x') },
    ]);
    expect(await db.get(b('x'))).to.equal(undefined);
    expect(str(await db.get(b('y')))).to.equal('2');
    await db.close();
  });

  it('scans forward and backward with gte/gt/lte/lt/limit', async () => {
    const db = await LsmEngine.open(tempDir(), SMALL);
    for (let i = 0; i < 10; i++) await db.put(b(`k${i}`), b(`v${i}`));
    await db.delete(b('k5'));
    expect(await collect(db.scan({ gte: b('k2'), lt: b('k7') }))).to.deep.equal(['k2=v2', 'k3=v3', 'k4=v4', 'k6=v6']);
    expect(await collect(db.scan({ gt: b('k2'), lte: b('k7'), reverse: true }))).to.deep.equal(['k7=v7', 'k6=v6', 'k4=v4', 'k3=v3']);
    expect(await collect(db.scan({ limit: 2 }))).to.deep.equal(['k0=v0', 'k1=v1']);
    expect(await collect(db.scan({ reverse: true, limit: 1 }))).to.deep.equal(['k9=v9']);
    await db.flush();
    expect(await collect(db.scan({ gte: b('k2'), lt: b('k7') }))).to.deep.equal(['k2=v2', 'k3=v3', 'k4=v4', 'k6=v6']);
    expect(await collect(db.scan({ gt: b('k2'), lte: b('k7'), reverse: true }))).to.deep.equal(['k7=v7', 'k6=v6', 'k4=v4', 'k3=v3']);
    await db.close();
  });

  it('an iterator sees the snapshot of its creation, across flushes and compactions', async () => {
    const db = await LsmEngine.open(tempDir(), SMALL);
    for (let i = 0; i < 500; i++) await db.put(b(`key${String(i).padStart(4, '0')}`), b(`old${i}`));
    const scan = db.scan({});
    const snap = db.snapshot();
    for (let i = 0; i < 500; i++) await db.put(b(`key${String(i).padStart(4, '0')}`), b(`new${i}`.padEnd(100, '.')));
    for (let i = 0; i < 500; i += 3) await db.delete(b(`key${String(i).padStart(4, '0')}`));
    await db.compact();
    const rows = await collect(scan);
    expect(rows.length).to.equal(500);
    expect(rows.every((r) => r.includes('=old'))).to.equal(true);
    expect(str(await db.get(b('key0003'), { snapshot: snap }))).to.equal('old3');
    expect(await db.get(b('key0003'))).to.equal(undefined);
    snap.release();
    expect(db.stats().liveSnapshots).to.equal(0);
    await db.close();
  });

  it('memtableJitter freezes each memtable at its own random size below memtableBytes; 0 freezes them alike', async () => {
    const flushSizes = async (memtableJitter: number): Promise<number[]> => {
      const sizes: number[] = [];
      const db = await LsmEngine.open(tempDir(), { ...SMALL, memtableJitter, onEvent: (e) => (e.type === 'flush-begin' ? sizes.push(e.entries) : undefined) });
      const v = Buffer.alloc(512, 7);
      for (let i = 0; i < 800; i++) await db.put(b(`k${String(i).padStart(5, '0')}`), v);
      for (let i = 0; i < 800; i += 97) expect((await db.get(b(`k${String(i).padStart(5, '0')}`)))?.equals(v)).to.equal(true);
      await db.close();
      return sizes;
    };
    const exact = await flushSizes(0);
    expect(exact.length).to.be.greaterThan(5);
    expect(new Set(exact).size).to.equal(1);
    const jittered = await flushSizes(0.5);
    expect(jittered.length).to.be.greaterThan(exact.length);
    expect(Math.max(...jittered)).to.be.at.most(exact[0]!);
    expect(Math.min(...jittered)).to.be.lessThan(exact[0]! * 0.9);
    let err: unknown;
    try {
      await LsmEngine.open(tempDir(), { memtableJitter: 1 });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(KvError);
  });

  it('recovers the memtable from the WAL and flushed tables from the manifest', async () => {
    const dir = tempDir();
    let db = await LsmEngine.open(dir, SMALL);
    for (let i = 0; i < 2000; i++) await db.put(b(`k${i}`), b(`v${i}`));
    for (let i = 0; i < 2000; i += 2) await db.delete(b(`k${i}`));
    const before = db.stats();
    expect(before.flushes).to.be.greaterThan(0);
    await db.close();
    db = await LsmEngine.open(dir, SMALL);
    for (let i = 0; i < 2000; i++) expect(str(await db.get(b(`k${i}`))), `k${i}`).to.equal(i % 2 ? `v${i}` : undefined);
    expect((await collect(db.scan({}))).length).to.equal(1000);
    await db.close();
  });

  it('disableWal writes: visible at once, kept by a flush, lost (alone) by a close without one; never visible ahead of an earlier WAL write', async () => {
    const dir = tempDir();
    let db = await LsmEngine.open(dir, { walSync: 'always' });
    await db.put(b('wal1'), b('1'));
    await db.write([{ type: 'put', key: b('nowal1'), value: b('x') }], { disableWal: true });
    await db.flush();
    await db.write([{ type: 'put', key: b('nowal2'), value: b('y') }], { disableWal: true });
    await db.put(b('wal2'), b('2'));
    // a disableWal write right behind a WAL write still waiting for its fsync resolves only
    // after it: visibility stays in sequence order
    const order: string[] = [];
    const p1 = db.put(b('wal3'), b('3')).then(() => order.push('wal3'));
    const p2 = db.write([{ type: 'put', key: b('nowal3'), value: b('z') }], { disableWal: true }).then(() => order.push('nowal3'));
    await Promise.all([p1, p2]);
    expect(order).to.deep.equal(['wal3', 'nowal3']);
    expect(str(await db.get(b('nowal2')))).to.equal('y');
    try {
      await db.write([{ type: 'put', key: b('x'), value: b('1') }], { disableWal: true, sync: true });
      expect.fail('disableWal with sync accepted');
    } catch (err) {
      expect((err as KvError).code).to.equal('INVALID_ARGUMENT');
    }
    await db.close(); // no flush: the memtable's disableWal writes are gone, the WAL ones replay
    db = await LsmEngine.open(dir, { walSync: 'always' });
    expect(str(await db.get(b('wal1')))).to.equal('1');
    expect(str(await db.get(b('nowal1')))).to.equal('x'); // flushed before the close
    expect(await db.get(b('nowal2'))).to.equal(undefined);
    expect(await db.get(b('nowal3'))).to.equal(undefined);
    expect(str(await db.get(b('wal2')))).to.equal('2');
    expect(str(await db.get(b('wal3')))).to.equal('3');
    await db.close();
  });

  it('a put with a valuePrefix stores prefix ++ value, through the WAL and in tables; the limit counts both', async () => {
    const dir = tempDir();
    let db = await LsmEngine.open(dir, { walSync: 'always', maxValueBytes: 16 });
    await db.write([
      { type: 'put', key: b('p1'), value: b('payload'), valuePrefix: b('hdr:') },
      { type: 'put', key: b('p2'), value: b(''), valuePrefix: b('only') },
      { type: 'put', key: b('p3'), value: b('plain') },
    ]);
    expect(str(db.getSync(b('p1')))).to.equal('hdr:payload');
    try {
      await db.write([{ type: 'put', key: b('p4'), value: Buffer.alloc(10), valuePrefix: Buffer.alloc(7) }]);
      expect.fail('17 stored bytes accepted under a 16-byte limit');
    } catch (err) {
      expect((err as KvError).code).to.equal('VALUE_TOO_LARGE');
    }
    await db.close(); // replayed from the WAL
    db = await LsmEngine.open(dir, { walSync: 'always', maxValueBytes: 16 });
    expect(str(db.getSync(b('p1')))).to.equal('hdr:payload');
    await db.flush();
    expect(await collect(db.scan())).to.deep.equal(['p1=hdr:payload', 'p2=only', 'p3=plain']);
    await db.close();
  });

  it('lazy puts: read at once, kept out of the memtable until it freezes, superseded by later writes, need disableWal', async () => {
    const dir = tempDir();
    let db = await LsmEngine.open(dir, { walSync: 'always' });
    const lazy = (k: string, v: string): Promise<void> => db.write([{ type: 'put', key: b(k), value: b(v), lazy: true }], { disableWal: true });
    await db.put(b('m1'), b('old'));
    await lazy('m1', 'a');
    await lazy('m1', 'b');
    expect(str(db.getSync(b('m1')))).to.equal('b');
    // iterators see the memtable only: the lazy value is not in it yet
    expect(await collect(db.scan({ gte: b('m'), lt: b('n') }))).to.deep.equal(['m1=old']);
    await db.write([{ type: 'put', key: b('m2'), value: b('x'), lazy: true }], { disableWal: true });
    await db.delete(b('m2')); // an ordinary write supersedes a lazy one
    expect(db.getSync(b('m2'))).to.equal(undefined);
    await lazy('m3', 'c');
    await db.write([{ type: 'put', key: b('m3'), value: b('d') }], { disableWal: true });
    expect(str(db.getSync(b('m3')))).to.equal('d');
    try {
      await db.write([{ type: 'put', key: b('m4'), value: b('1'), lazy: true }]);
      expect.fail('lazy put through the WAL accepted');
    } catch (err) {
      expect((err as KvError).code).to.equal('INVALID_ARGUMENT');
    }
    await db.flush(); // the freeze moves them into the memtable, the flush into a table
    expect(await collect(db.scan({ gte: b('m'), lt: b('n') }))).to.deep.equal(['m1=b', 'm3=d']);
    await lazy('m1', 'unflushed');
    await db.close(); // no flush: lost like every disableWal write
    db = await LsmEngine.open(dir, { walSync: 'always' });
    expect(str(db.getSync(b('m1')))).to.equal('b');
    expect(db.getSync(b('m2'))).to.equal(undefined);
    expect(str(db.getSync(b('m3')))).to.equal('d');
    await db.close();
  });

  it('lazy puts always land in the same table as the writes made before them (random freezes, flushes and restarts)', async () => {
    // The Raft store's invariant: a shard's applied-index marker (lazy) never claims more or less
    // than the data written with it. Here data key d<i> and marker m<i> get the same counter in
    // one disableWal write; after any restart without a final flush, both must agree.
    const seed = Number(process.env['TEST_SEED'] ?? Date.now() % 1_000_000);
    const rng = new Rng(seed);
    const dir = tempDir();
    const opts = { ...SMALL, memtableBytes: 8 * 1024 };
    let db = await LsmEngine.open(dir, opts);
    const counter = new Map<number, number>();
    for (let round = 0; round < 6; round++) {
      const writes = 200 + rng.int(400);
      for (let w = 0; w < writes; w++) {
        const ops: WriteOp[] = [];
        for (let j = 1 + rng.int(3); j > 0; j--) {
          const i = rng.int(12);
          const n = (counter.get(i) ?? 0) + 1;
          counter.set(i, n);
          ops.push({ type: 'put', key: b(`d${i}`), value: Buffer.alloc(100 + rng.int(300), n % 256) });
          ops.push({ type: 'put', key: b(`m${i}`), value: b(String(n)), lazy: true });
        }
        await db.write(ops, { disableWal: true });
        if (rng.int(150) === 0) await db.flush();
      }
      for (const [i, n] of counter) expect(str(db.getSync(b(`m${i}`))), `seed ${seed}`).to.equal(String(n));
      await db.close(); // crash-like for disableWal data: whatever was not flushed is gone
      db = await LsmEngine.open(dir, opts);
      for (let i = 0; i < 12; i++) {
        const m = db.getSync(b(`m${i}`));
        const d = db.getSync(b(`d${i}`));
        if (m === undefined) {
          expect(d, `seed ${seed}: d${i} without its marker`).to.equal(undefined);
          counter.delete(i);
        } else {
          const n = Number(m.toString());
          expect(d?.[0], `seed ${seed}: d${i} against marker ${n}`).to.equal(n % 256);
          counter.set(i, n);
        }
      }
    }
    await db.close();
  });

  it('leveled compaction bounds L0 and drops overwritten data and bottom-level tombstones', async () => {
    const dir = tempDir();
    const db = await LsmEngine.open(dir, SMALL);
    const value = Buffer.alloc(200, 7);
    for (let round = 0; round < 5; round++) for (let i = 0; i < 1000; i++) await db.put(b(`k${i % 300}`), value);
    await db.flush();
    const st = db.stats();
    expect(st.levels[0]!.files).to.be.lessThan(SMALL.memtableBytes); // sanity
    expect(st.compactions).to.be.greaterThan(0);
    expect(st.writeAmplification).to.be.greaterThan(0);
    for (let i = 0; i < 300; i++) await db.delete(b(`k${i}`));
    await db.compact();
    const after = db.stats();
    const totalBytes = after.levels.reduce((s, l) => s + l.bytes, 0);
    expect(totalBytes, 'all data deleted and compacted away').to.equal(0);
    const ssts = readdirSync(dir).filter((n) => n.endsWith('.sst'));
    expect(ssts).to.deep.equal([]);
    await db.close();
  });

  it('checkpoint() is a consistent, openable copy while writes continue', async () => {
    const dir = tempDir();
    const db = await LsmEngine.open(dir, SMALL);
    for (let i = 0; i < 1000; i++) await db.put(b(`k${i}`), b(`v${i}`));
    const target = path.join(tempDir(), 'cp');
    const writes = (async () => {
      for (let i = 1000; i < 1500; i++) await db.put(b(`k${i}`), b(`v${i}`));
    })();
    const cp = await db.checkpoint(target);
    await writes;
    expect(cp.sequence).to.be.at.least(1000);
    const copy = await LsmEngine.open(target);
    const rows = await collect(copy.scan({}));
    expect(rows.length).to.equal(cp.sequence); // one put per sequence: the copy is exactly a prefix
    for (let i = 0; i < 1000; i++) expect(str(await copy.get(b(`k${i}`)))).to.equal(`v${i}`);
    await copy.put(b('only-in-copy'), b('1'));
    expect(await db.get(b('only-in-copy'))).to.equal(undefined);
    await copy.close();
    await db.close();
  });

  it('rejects oversize keys and values with typed errors and keeps serving', async () => {
    const db = await LsmEngine.open(tempDir(), { maxKeyBytes: 16, maxValueBytes: 64 });
    await db.put(b('ok'), b('fine'));
    const err1 = await db.put(Buffer.alloc(17), b('v')).catch((e: unknown) => e);
    expect(err1).to.be.instanceOf(KvError);
    expect((err1 as KvError).code).to.equal('KEY_TOO_LARGE');
    const err2 = await db.put(b('k'), Buffer.alloc(65)).catch((e: unknown) => e);
    expect((err2 as KvError).code).to.equal('VALUE_TOO_LARGE');
    const err3 = await db.write([{ type: 'put', key: b('a'), value: b('1') }, { type: 'put', key: Buffer.alloc(99), value: b('2') }]).catch((e: unknown) => e);
    expect((err3 as KvError).code).to.equal('KEY_TOO_LARGE');
    expect(await db.get(b('a')), 'a rejected batch applies nothing').to.equal(undefined);
    const err4 = await db.put('str' as unknown as Buffer, b('v')).catch((e: unknown) => e);
    expect((err4 as KvError).code).to.equal('INVALID_ARGUMENT');
    expect(str(await db.get(b('ok')))).to.equal('fine');
    await db.close();
  });

  it('refuses a second open of the same directory and reopens after close', async () => {
    const dir = tempDir();
    const db = await LsmEngine.open(dir);
    const err = await LsmEngine.open(dir).catch((e: unknown) => e);
    expect((err as KvError).code).to.equal('LOCKED');
    await db.put(b('still'), b('works'));
    await db.close();
    const again = await LsmEngine.open(dir);
    expect(str(await again.get(b('still')))).to.equal('works');
    await again.close();
    const closedErr = await again.get(b('x')).catch((e: unknown) => e);
    expect((closedErr as KvError).code).to.equal('CLOSED');
  });

  it('a truncated SSTable gives a CorruptionError naming the file; other data stays readable', async () => {
    const dir = tempDir();
    let db = await LsmEngine.open(dir, SMALL);
    for (let i = 0; i < 100; i++) await db.put(b(`a${i}`), b(`v${i}`));
    await db.flush();
    await db.close();
    const sst = readdirSync(dir).filter((n) => n.endsWith('.sst'))[0]!;
    truncateSync(path.join(dir, sst), Math.floor(statSync(path.join(dir, sst)).size / 2));
    db = await LsmEngine.open(dir, SMALL);
    await db.put(b('fresh'), b('ok'));
    const err = await db.get(b('a5')).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(CorruptionError);
    expect((err as CorruptionError).file).to.contain(sst);
    expect(str(await db.get(b('fresh')))).to.equal('ok');
    await db.close();
    await fsp.rm(dir, { recursive: true });
  });

  it('slows down, then stalls writes when L0 fills, and never lets L0 grow past the stop trigger', async () => {
    const stopTrigger = 6;
    const events: string[] = [];
    const db = await LsmEngine.open(tempDir(), {
      ...SMALL,
      memtableBytes: 4 * 1024,
      maxImmutableMemtables: 1,
      l0CompactionTrigger: 2,
      l0SlowdownTrigger: 4,
      l0StopTrigger: stopTrigger,
      onEvent: (e) => events.push(e.type),
    });
    let maxL0 = 0;
    const value = Buffer.alloc(300, 1);
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 300; i++) {
          await db.put(b(`w${w}-${i}`), value);
          maxL0 = Math.max(maxL0, db.stats().levels[0]!.files);
        }
      }),
    );
    const st = db.stats();
    expect(st.writeStalls + st.writeSlowdowns, 'back-pressure was applied').to.be.greaterThan(0);
    expect(maxL0).to.be.at.most(stopTrigger);
    expect(events).to.include('flush-end');
    expect(events).to.include('compaction-end');
    for (let w = 0; w < 8; w++) expect(await db.get(b(`w${w}-299`))).to.not.equal(undefined);
    await db.close();
  });

  it('deletes compacted-away tables only after the last iterator reading them closes', async () => {
    const dir = tempDir();
    const db = await LsmEngine.open(dir, SMALL);
    for (let i = 0; i < 300; i++) await db.put(b(`k${String(i).padStart(4, '0')}`), Buffer.alloc(100, 2));
    await db.flush();
    const before = readdirSync(dir).filter((n) => n.endsWith('.sst'));
    expect(before.length).to.be.greaterThan(0);
    const it = db.iterator({});
    expect(it.next()?.[0].toString()).to.equal('k0000');
    for (let i = 0; i < 300; i++) await db.put(b(`k${String(i).padStart(4, '0')}`), Buffer.alloc(100, 3));
    await db.compact();
    const during = readdirSync(dir).filter((n) => n.endsWith('.sst'));
    for (const f of before) expect(during, `${f} still pinned by the open iterator`).to.include(f);
    let n = 1;
    for (let e = it.next(); e; e = it.next()) {
      expect(e[1][0], 'iterator reads its snapshot').to.equal(2);
      n++;
    }
    expect(n).to.equal(300);
    it.close();
    await new Promise((r) => setTimeout(r, 20));
    const after = readdirSync(dir).filter((n) => n.endsWith('.sst'));
    for (const f of before) expect(after, `${f} deleted once unpinned`).to.not.include(f);
    await db.close();
  });

  it('is importable as distcache/lsm from the package exports', async () => {
    const mod = (await import('distcache/lsm')) as { LsmEngine: unknown };
    expect(mod.LsmEngine).to.equal(LsmEngine);
  });
});
