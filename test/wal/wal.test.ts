import { expect } from 'chai';
import { promises as fsp, readFileSync, readdirSync, writeFileSync, truncateSync, statSync, openSync, closeSync } from 'node:fs';
import path from 'node:path';
import { Wal, segmentFileName, listSegments, writeChunksSync } from '../../src/wal/wal.js';
import { LogEncoder } from '../../src/wal/log-writer.js';
import { decodeLog, readRecordAt } from '../../src/wal/log-reader.js';
import { BLOCK_SIZE, HEADER_SIZE } from '../../src/wal/format.js';
import { CorruptionError } from '../../src/util/errors.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { Rng, seedFromEnv } from '../helpers/rng.js';

async function recover(dir: string, opts: Parameters<typeof Wal.open>[1] = {}): Promise<{ wal: Wal; records: Buffer[] }> {
  const records: Buffer[] = [];
  const wal = await Wal.open(dir, { ...opts, onRecord: (r) => records.push(Buffer.from(r)) });
  return { wal, records };
}

/** Cuts the last byte of segment 1 and expects opening `dir` to fail with a CorruptionError
 *  naming that file (later segments were written to: the damage cannot be a torn append). */
async function expectTailDamageIsCorruption(dir: string): Promise<void> {
  const first = path.join(dir, segmentFileName(1));
  truncateSync(first, statSync(first).size - 1);
  let caught: unknown;
  await recover(dir).catch((e) => (caught = e));
  expect(caught).to.be.instanceOf(CorruptionError);
  expect((caught as CorruptionError).file).to.equal(first);
}

describe('wal: record framing', () => {
  it('round-trips records of every size class, including ones spanning many blocks', () => {
    const seed = seedFromEnv();
    const rng = new Rng(seed);
    const enc = new LogEncoder();
    enc.addFileHeader(7);
    const input: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const size = rng.pick([0, 1, 10, 100, BLOCK_SIZE - HEADER_SIZE, BLOCK_SIZE, 3 * BLOCK_SIZE + 5, rng.int(5000)]);
      const r = rng.bytes(size);
      input.push(r);
      enc.add(r);
    }
    const bytes = enc.take();
    const out = decodeLog(bytes, 'mem', { tolerateTornTail: false, expectFileNumber: 7 });
    expect(out.fileNumber, `seed ${seed}`).to.equal(7);
    expect(out.records.map((r) => r.data)).to.deep.equal(input);
    expect(out.validLength).to.equal(bytes.length);
  });

  it('pads a block trailer shorter than a header and resumes at the next block', () => {
    const enc = new LogEncoder();
    enc.addFileHeader(1);
    const headerLen = enc.pendingBytes;
    // Leave exactly 3 bytes in the first block.
    enc.add(Buffer.alloc(BLOCK_SIZE - headerLen - HEADER_SIZE - 3, 1));
    enc.add(Buffer.from('next'));
    const bytes = enc.take();
    expect(bytes.length).to.equal(BLOCK_SIZE + HEADER_SIZE + 4);
    const out = decodeLog(bytes, 'mem', { tolerateTornTail: false });
    expect(out.records[1]!.data.toString()).to.equal('next');
    expect(out.records[1]!.offset).to.equal(BLOCK_SIZE);
  });
});

describe('wal: recovery', () => {
  afterEach(cleanupTempDirs);

  it('a torn tail at ANY byte of the last segment keeps exactly the complete records before it', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'off' });
    const input: Buffer[] = [];
    const rng = new Rng(42);
    for (let i = 0; i < 40; i++) {
      const r = rng.bytes(rng.pick([5, 300, 40000]));
      input.push(r);
      await wal.append(r);
    }
    await wal.close();
    const file = path.join(dir, segmentFileName(1));
    const full = readFileSync(file);
    const decoded = decodeLog(full, file, { tolerateTornTail: false });
    const ends = decoded.records.map((r, i) => (decoded.records[i + 1]?.offset ?? full.length));
    // Cut at a sample of byte positions, including every record boundary +-1.
    const cuts = new Set<number>();
    for (const e of ends) for (const d of [-1, 0, 1]) cuts.add(Math.min(full.length, Math.max(1, e + d)));
    for (let i = 0; i < 60; i++) cuts.add(1 + rng.int(full.length - 1));
    for (const cut of cuts) {
      const d2 = tempDir();
      writeFileSync(path.join(d2, segmentFileName(1)), full.subarray(0, cut));
      const { wal: w2, records } = await recover(d2);
      const expectCount = ends.filter((e) => e <= cut).length;
      expect(records, `cut at ${cut}`).to.deep.equal(input.slice(0, expectCount));
      await w2.append(Buffer.from('after'));
      await w2.close();
      const { wal: w3, records: again } = await recover(d2);
      expect(again.length, `reopen after cut ${cut}`).to.equal(expectCount + 1);
      await w3.close();
    }
  });

  it('a checksum failure in the middle of the log is a CorruptionError naming file and offset', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'off' });
    for (let i = 0; i < 100; i++) await wal.append(Buffer.alloc(1000, i));
    await wal.close();
    const file = path.join(dir, segmentFileName(1));
    const bytes = readFileSync(file);
    const victim = decodeLog(bytes, file, { tolerateTornTail: false }).records[30]!;
    bytes[victim.offset + HEADER_SIZE + 10]! ^= 0xff;
    writeFileSync(file, bytes);
    try {
      await recover(dir);
      expect.fail('expected corruption');
    } catch (err) {
      expect(err).to.be.instanceOf(CorruptionError);
      const c = err as CorruptionError;
      expect(c.code).to.equal('CORRUPTION');
      expect(c.file).to.equal(file);
      expect(c.offset).to.equal(victim.offset);
      expect(c.message).to.contain('checksum mismatch');
    }
    // The store refused to open but changed nothing: the file is intact for an operator.
    expect(statSync(file).size).to.equal(bytes.length);
  });

  it('damage at the end of a segment that is NOT the last is corruption, not a torn tail', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'off' });
    await wal.append(Buffer.from('one'));
    wal.rotate();
    await wal.append(Buffer.from('two'));
    await wal.close();
    await expectTailDamageIsCorruption(dir);
  });

  it('a torn tail in the segment being written is recovered while the spare made ahead of it follows (header only)', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'always', prepareNextSegment: true });
    for (const r of ['a', 'b', 'c']) await wal.append(Buffer.from(r.repeat(100)));
    for (let i = 0; i < 200 && (await listSegments(dir)).length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(await listSegments(dir), 'the spare exists').to.deep.equal([1, 2]);
    await wal.close();
    // a crash between the writes of one batch: the last record reached the file only in part
    const first = path.join(dir, segmentFileName(1));
    truncateSync(first, statSync(first).size - 40);
    const torn: number[] = [];
    const records: string[] = [];
    const w2 = await Wal.open(dir, { prepareNextSegment: true, onRecord: (r) => records.push(String(r)), onTornTail: (n) => torn.push(n) });
    expect(records).to.deep.equal(['a'.repeat(100), 'b'.repeat(100)]);
    expect(torn).to.deep.equal([1]);
    await w2.append(Buffer.from('d'));
    await w2.close();
    const again: string[] = [];
    await (await Wal.open(dir, { onRecord: (r) => again.push(String(r)), onTornTail: () => expect.fail('the tail was cut durably') })).close();
    expect(again).to.deep.equal(['a'.repeat(100), 'b'.repeat(100), 'd']);
  });

  it('damage at the end of a segment is corruption when a later segment holds records, even past an empty one', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'off' });
    await wal.append(Buffer.from('one'));
    wal.rotate();
    wal.rotate(); // segment 2 stays empty (header only)
    await wal.append(Buffer.from('three'));
    await wal.close();
    await expectTailDamageIsCorruption(dir);
  });

  it('damage at the end of a segment is corruption when the next one holds even a torn record', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'off' });
    await wal.append(Buffer.from('one'));
    wal.rotate();
    await wal.append(Buffer.alloc(500, 2));
    await wal.close();
    const second = path.join(dir, segmentFileName(2));
    truncateSync(second, statSync(second).size - 100); // its only record cut short
    await expectTailDamageIsCorruption(dir);
  });

  it('a zero-length last segment (crash right after create) is dropped', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'off' });
    await wal.append(Buffer.from('kept'));
    await wal.close();
    writeFileSync(path.join(dir, segmentFileName(2)), Buffer.alloc(0));
    const { wal: w2, records } = await recover(dir);
    expect(records.map(String)).to.deep.equal(['kept']);
    await w2.close();
    const { wal: w3, records: again } = await recover(dir);
    expect(again.map(String)).to.deep.equal(['kept']);
    await w3.close();
  });
});

describe('wal: writing', () => {
  afterEach(cleanupTempDirs);

  it('group commit: 500 concurrent sync appends share far fewer fsyncs, all durable in order', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'always' });
    const n = 500;
    await Promise.all(Array.from({ length: n }, (_, i) => wal.append(Buffer.from(`rec-${i}`))));
    expect(wal.stats.records).to.equal(n);
    expect(wal.stats.syncs).to.be.lessThan(n / 5);
    await wal.close();
    const { wal: w2, records } = await recover(dir);
    expect(records.map(String)).to.deep.equal(Array.from({ length: n }, (_, i) => `rec-${i}`));
    await w2.close();
  });

  it('one appendMany of more pieces than one writev takes reaches the file whole and in order', async () => {
    // 700 records framed into ~1400 pieces (header + body each): writeChunksSync splits them
    // over several writev calls; a lost or reordered piece fails the replay's checksums.
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'always' });
    const recs = Array.from({ length: 700 }, (_, i) => Buffer.alloc(1 + (i % 97) * 53, i & 0xff));
    await wal.appendMany(recs, { sync: true, owned: true });
    await wal.close();
    const { wal: w2, records } = await recover(dir);
    expect(records.length).to.equal(recs.length);
    for (let i = 0; i < recs.length; i++) expect(Buffer.compare(records[i]!, recs[i]!), `record ${i}`).to.equal(0);
    await w2.close();
  });

  it('writeChunksSync writes every piece in order, zero-length ones included', () => {
    const dir = tempDir();
    const file = path.join(dir, 'chunks');
    writeFileSync(file, '');
    const chunks = Array.from({ length: 1300 }, (_, i) => Buffer.alloc(i % 7, i & 0xff));
    const fd = openSync(file, 'a');
    try {
      expect(writeChunksSync(fd, chunks)).to.equal(chunks.reduce((a, c) => a + c.length, 0));
    } finally {
      closeSync(fd);
    }
    expect(Buffer.compare(readFileSync(file), Buffer.concat(chunks))).to.equal(0);
  });

  it('batch policy acknowledges only after an fsync; off policy never fsyncs data', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'batch', batchDelayMs: 1 });
    const before = wal.stats.syncs;
    await wal.append(Buffer.from('x'));
    expect(wal.stats.syncs).to.be.greaterThan(before);
    await wal.close();

    const dir2 = tempDir();
    const { wal: off } = await recover(dir2, { sync: 'off' });
    await off.append(Buffer.from('x')); // creating the segment syncs once
    const afterCreate = off.stats.syncs;
    for (let i = 0; i < 20; i++) await off.append(Buffer.from('y'));
    expect(off.stats.syncs).to.equal(afterCreate);
    await off.append(Buffer.from('z'), { sync: true });
    expect(off.stats.syncs).to.equal(afterCreate + 1);
    await off.close();
  });

  it('noSync appends are never fsynced, whatever the policy, and a later synced append covers them', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'always' });
    await wal.append(Buffer.from('first'), { sync: true }); // creates the segment
    const before = wal.stats.syncs;
    const pending = [];
    for (let i = 0; i < 20; i++) pending.push(wal.append(Buffer.from(`lazy${i}`), { noSync: true }));
    await Promise.all(pending);
    expect(wal.stats.syncs).to.equal(before);
    await wal.append(Buffer.from('last'), { sync: true });
    expect(wal.stats.syncs).to.equal(before + 1);
    await wal.close();
    const { wal: again, records } = await recover(dir);
    expect(records.map((r) => r.toString())).to.deep.equal(['first', ...Array.from({ length: 20 }, (_, i) => `lazy${i}`), 'last']);
    await again.close();
  });

  it('rotate() splits records by call order even while writes are in flight', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'batch' });
    const p1 = wal.append(Buffer.from('a'));
    const seg = wal.rotate();
    const p2 = wal.append(Buffer.from('b'));
    await Promise.all([p1, p2]);
    await wal.close();
    expect(seg).to.equal(2);
    const seen: [string, number][] = [];
    const w2 = await Wal.open(dir, { onRecord: (r, s) => seen.push([String(r), s]) });
    expect(seen).to.deep.equal([['a', 1], ['b', 2]]);
    expect(w2.currentSegment).to.equal(3);
    await w2.deleteSegmentsBefore(2);
    expect(await listSegments(dir)).to.deep.equal([2]);
    await w2.close();
  });

  it('prepareNextSegment: the next segment file exists before rotate() (created in the background), takes the records after it in order, and a leftover empty spare replays as an empty segment', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'always', prepareNextSegment: true });
    await wal.append(Buffer.from('a'));
    for (let i = 0; i < 200 && (await listSegments(dir)).length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(await listSegments(dir), 'spare created ahead').to.deep.equal([1, 2]);
    const p1 = wal.append(Buffer.from('b'));
    expect(wal.rotate()).to.equal(2);
    const p2 = wal.append(Buffer.from('c'));
    // the rotation at once (synchronously) prepares the one after it
    const p3 = wal.append(Buffer.from('d'));
    await Promise.all([p1, p2, p3]);
    for (let i = 0; i < 200 && (await listSegments(dir)).length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    expect(await listSegments(dir)).to.deep.equal([1, 2, 3]);
    await wal.close();
    const seen: [string, number][] = [];
    const w2 = await Wal.open(dir, { onRecord: (r, s) => seen.push([String(r), s]), prepareNextSegment: true });
    expect(seen).to.deep.equal([['a', 1], ['b', 1], ['c', 2], ['d', 2]]);
    expect(w2.currentSegment, 'appends go after the leftover spare').to.equal(4);
    await w2.append(Buffer.from('e'));
    await w2.close();
    const again: string[] = [];
    await (await Wal.open(dir, { onRecord: (r) => again.push(String(r)) })).close();
    expect(again).to.deep.equal(['a', 'b', 'c', 'd', 'e']);
  });

  it('segmentBytes rotates automatically and minSegment skips obsolete segments', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'off', segmentBytes: 10_000 });
    for (let i = 0; i < 50; i++) await wal.append(Buffer.alloc(1000, i));
    await wal.close();
    const segs = await listSegments(dir);
    expect(segs.length).to.be.greaterThan(3);
    const { wal: w2, records } = await recover(dir, { minSegment: segs[2]! });
    expect(records.length).to.be.lessThan(50);
    expect(records[records.length - 1]![0]).to.equal(49);
    await w2.close();
    expect((await listSegments(dir))[0]).to.equal(segs[2]);
  });

  it('an append made while close() is under way is refused (CLOSED), never written after the segment\'s end', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'always', recycleSegments: 1 });
    await wal.append(Buffer.from('before'));
    const closing = wal.close();
    let code: string | undefined;
    await wal.append(Buffer.from('during')).catch((e: { code?: string }) => (code = e.code));
    await closing;
    expect(code).to.equal('CLOSED');
    const { wal: w2, records } = await recover(dir, { recycleSegments: 1 });
    expect(records.map(String)).to.deep.equal(['before']);
    await w2.close();
  });

  it('appends after close are rejected with a typed error', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir);
    await wal.close();
    let err: unknown;
    await wal.append(Buffer.from('x')).catch((e) => (err = e));
    expect((err as { code?: string }).code).to.equal('CLOSED');
    await fsp.rm(dir, { recursive: true });
  });

  it('appendMany reports where each record starts, and readRecordAt reads it back from there (across blocks, block tails and rotations)', async () => {
    const seed = seedFromEnv();
    const rng = new Rng(seed);
    const dir = tempDir();
    const wal = await Wal.open(dir, { sync: 'off', segmentBytes: 5 * BLOCK_SIZE, prepareNextSegment: true });
    const written: { seg: number; at: number; data: Buffer }[] = [];
    for (let batch = 0; batch < 60; batch++) {
      const records: Buffer[] = [];
      for (let i = rng.int(4); i >= 0; i--) {
        // sizes that end a block 0..6 bytes short of its end are the padded-tail case
        const size = rng.pick([0, 1, rng.int(100), BLOCK_SIZE - HEADER_SIZE - rng.int(8), BLOCK_SIZE + rng.int(50), rng.int(3 * BLOCK_SIZE)]);
        records.push(Buffer.from(rng.bytes(size)));
      }
      const positions: number[] = [];
      const p = wal.appendMany(records, { owned: true }, positions);
      const seg = wal.currentSegment;
      expect(positions.length).to.equal(records.length);
      records.forEach((data, i) => written.push({ seg, at: positions[i]!, data }));
      await p;
    }
    await wal.sync();
    expect(new Set(written.map((w) => w.seg)).size, 'rotated').to.be.greaterThan(3);
    for (const w of written) {
      const back = readRecordAt(path.join(dir, segmentFileName(w.seg)), w.at);
      expect(back.equals(w.data), `seed ${seed}: record of ${w.data.length} bytes at ${w.seg}:${w.at}`).to.equal(true);
    }
    await wal.close();
    // an offset that is not a record's start is a CorruptionError naming the file and offset
    const w = written.find((x) => x.data.length > 100)!;
    const file = path.join(dir, segmentFileName(w.seg));
    expect(() => readRecordAt(file, w.at + 9)).to.throw(CorruptionError).with.property('message').that.includes(file);
  });
});

describe('wal: recycled segments (recycleSegments)', () => {
  after(() => cleanupTempDirs());

  async function waitFor(cond: () => Promise<boolean>, what: string): Promise<void> {
    for (let i = 0; i < 400; i++) {
      if (await cond()) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  /** A log whose segment 1 (a long one: `oldRecords`) was deleted and whose file became
   *  segment 4, now holding `newRecords`; segments 2 and 3 hold one record each. Left open. */
  async function recycledLog(dir: string, oldRecords: Buffer[], newRecords: Buffer[]): Promise<{ wal: Wal; positions: number[]; oldPositions: number[]; ino: number; oldSize: number }> {
    const { wal } = await recover(dir, { sync: 'always', prepareNextSegment: true, recycleSegments: 1 });
    const oldPositions: number[] = [];
    await wal.appendMany(oldRecords, undefined, oldPositions);
    wal.rotate(); // -> 2; the spare for 3 is a new file: nothing is free yet
    await wal.append(Buffer.from('in 2'));
    await wal.deleteSegmentsBefore(2);
    const { ino, size: oldSize } = statSync(path.join(dir, '000001.free'));
    wal.rotate(); // -> 3; the spare for 4 reuses segment 1's file
    await wal.append(Buffer.from('in 3'));
    await waitFor(async () => (await listSegments(dir)).includes(4), 'the spare made of the free file');
    expect(wal.rotate()).to.equal(4);
    const positions: number[] = [];
    await wal.appendMany(newRecords, undefined, positions);
    return { wal, positions, oldPositions, ino, oldSize };
  }

  it('a deleted segment\'s file becomes a later segment, overwritten in place; reopening replays exactly the records written since, after a clean close and after a crash', async () => {
    const dir = tempDir();
    const rng = new Rng(7);
    const oldRecords = Array.from({ length: 30 }, () => rng.bytes(rng.pick([10, 3000, 40000])));
    const newRecords = [Buffer.from('new-1'), Buffer.from('new-2'), rng.bytes(5000)];
    const { wal, ino, oldSize } = await recycledLog(dir, oldRecords, newRecords);
    const file4 = path.join(dir, segmentFileName(4));
    expect(statSync(file4).ino, 'segment 4 is segment 1\'s file').to.equal(ino);
    expect(statSync(file4).size, 'written in place: the earlier life is still there past the new records').to.equal(oldSize);
    const expected = ['in 2', 'in 3', ...newRecords.map(String)];

    // crash: copy the files as they are while the log is open (every append was synced)
    const crashed = tempDir();
    for (const n of await listSegments(dir)) writeFileSync(path.join(crashed, segmentFileName(n)), readFileSync(path.join(dir, segmentFileName(n))));
    const torn: number[] = [];
    const { wal: w2, records } = await recover(crashed, { onTornTail: (s) => torn.push(s), recycleSegments: 1 });
    expect(records.map(String)).to.deep.equal(expected);
    expect(torn, 'the left-over bytes after the last record read as the unacknowledged tail').to.deep.equal([4]);
    await w2.close();

    await wal.close();
    const tornAfterClose: number[] = [];
    const { wal: w3, records: again } = await recover(dir, { onTornTail: (s) => tornAfterClose.push(s), recycleSegments: 1, prepareNextSegment: true });
    expect(again.map(String)).to.deep.equal(expected);
    expect(tornAfterClose, 'a closed segment ends with SEGMENT_END: nothing to truncate').to.deep.equal([]);
    await w3.append(Buffer.from('after reopen'));
    await w3.close();
    const { wal: w4, records: third } = await recover(dir, { recycleSegments: 1 });
    expect(third.map(String)).to.deep.equal([...expected, 'after reopen']);
    await w4.close();
  });

  it('a write torn at any byte of a recycled file keeps exactly the complete records before it (the earlier life\'s bytes never read as records)', async () => {
    const dir = tempDir();
    const seed = seedFromEnv();
    const rng = new Rng(seed);
    const oldRecords = Array.from({ length: 40 }, () => rng.bytes(rng.pick([5, 300, 40000])));
    const newRecords = Array.from({ length: 40 }, () => rng.bytes(rng.pick([5, 300, 40000])));
    const { wal } = await recycledLog(dir, oldRecords, newRecords);
    const file4 = path.join(dir, segmentFileName(4));
    const written = readFileSync(file4);
    await wal.close();
    const dec = decodeLog(written, file4, { tolerateTornTail: true });
    expect(dec.records.map((r) => r.data), `seed ${seed}`).to.deep.equal(newRecords);
    const ends = dec.records.map((r, i) => dec.records[i + 1]?.offset ?? dec.validLength);
    const headerEnd = dec.records[0]!.offset;
    // what the file held before: segment 1's bytes, under segment 4's header
    const cuts = new Set<number>();
    for (const e of ends) for (const d of [-1, 0, 1]) cuts.add(e + d);
    for (let i = 0; i < 60; i++) cuts.add(headerEnd + rng.int(dec.validLength - headerEnd));
    const seg1Image = Buffer.alloc(written.length);
    // rebuild segment 1's image from its records: the same bytes the file held before reuse
    const enc = new LogEncoder();
    enc.addFileHeader(1, true);
    for (const r of oldRecords) enc.add(r);
    enc.take().copy(seg1Image);
    for (const cut of [...cuts].filter((c) => c >= headerEnd && c <= dec.validLength)) {
      const d2 = tempDir();
      const image = Buffer.concat([written.subarray(0, cut), seg1Image.subarray(cut)]);
      writeFileSync(path.join(d2, segmentFileName(4)), image);
      // where the image really starts to differ: an old byte may equal the new one
      let differs = cut;
      while (differs < written.length && image[differs] === written[differs]) differs++;
      const { wal: w2, records } = await recover(d2, { recycleSegments: 1 });
      expect(records, `seed ${seed}, cut at ${cut}`).to.deep.equal(newRecords.slice(0, ends.filter((e) => e <= differs).length));
      await w2.close();
    }
  });

  it('damage inside a retired recycled segment is corruption: its SEGMENT_END follows the damage', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'always', recycleSegments: 1 });
    const positions: number[] = [];
    await wal.appendMany([Buffer.alloc(100, 1), Buffer.alloc(100, 2)], undefined, positions);
    wal.rotate();
    await wal.append(Buffer.from('in 2'));
    await wal.close();
    const file = path.join(dir, segmentFileName(1));
    const bytes = readFileSync(file);
    const at = positions[1]! + HEADER_SIZE + 50; // inside the last record before SEGMENT_END
    bytes[at] = bytes[at]! ^ 0xff;
    writeFileSync(file, bytes);
    let caught: unknown;
    await recover(dir, { recycleSegments: 1 }).catch((e) => (caught = e));
    expect(caught).to.be.instanceOf(CorruptionError);
    expect((caught as CorruptionError).file).to.equal(file);
    expect((caught as CorruptionError).offset).to.equal(positions[1]);
  });

  it('readRecordAt reads a recycled segment\'s records; at an offset of the file\'s earlier life it is a CorruptionError, not old data', async () => {
    const dir = tempDir();
    const rng = new Rng(11);
    const oldRecords = Array.from({ length: 60 }, () => rng.bytes(2000));
    const newRecords = [Buffer.from('x'), rng.bytes(70_000)];
    const { wal, positions, oldPositions } = await recycledLog(dir, oldRecords, newRecords);
    const file4 = path.join(dir, segmentFileName(4));
    expect(readRecordAt(file4, positions[0]!)).to.deep.equal(newRecords[0]);
    expect(readRecordAt(file4, positions[1]!)).to.deep.equal(newRecords[1]);
    const stale = oldPositions.find((p) => p > positions[1]! + 71_000)!;
    expect(stale).to.be.a('number');
    expect(() => readRecordAt(file4, stale)).to.throw(CorruptionError, /checksum mismatch/);
    await wal.close();
  });

  it('free files beyond the limit are deleted, and a log without recycling deletes them on open', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'always', recycleSegments: 2 });
    for (let i = 0; i < 4; i++) {
      await wal.append(Buffer.from(`r${i}`));
      wal.rotate();
    }
    await wal.sync();
    await wal.deleteSegmentsBefore(5);
    const names = () => readdirSync(dir).sort();
    expect(names()).to.deep.equal(['000001.free', '000002.free', '000005.log']);
    await wal.close();
    await (await Wal.open(dir, { recycleSegments: 1 })).close();
    expect(names().filter((n) => n.endsWith('.free'))).to.deep.equal(['000001.free']);
    await (await Wal.open(dir, {})).close();
    expect(names().filter((n) => n.endsWith('.free'))).to.deep.equal([]);
  });
});

describe('wal: pipelined fsyncs (maxSyncsInFlight)', () => {
  after(() => cleanupTempDirs());

  it('appends are acknowledged in call order, each after an fsync issued after its write, and all reach the file', async () => {
    const dir = tempDir();
    const { wal } = await recover(dir, { sync: 'always', maxSyncsInFlight: 3 });
    const order: number[] = [];
    const all: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      all.push(wal.append(Buffer.from(`r${i}`)).then(() => void order.push(i)));
      // let the writer loop take batches of different sizes while earlier fsyncs are in flight
      if (i % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    expect(order).to.deep.equal(Array.from({ length: 300 }, (_, i) => i));
    expect(wal.stats.syncs).to.be.greaterThan(1);
    await wal.close();
    const { wal: w2, records } = await recover(dir);
    expect(records.map(String)).to.deep.equal(Array.from({ length: 300 }, (_, i) => `r${i}`));
    await w2.close();
  });

  it('a synced append made while the pipeline is full and a rotation came is acknowledged only after an fsync of the new segment', async () => {
    const dir = tempDir();
    const probe = await fsp.open(path.join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: (this: { fd: number }) => Promise<void> };
    await probe.close();
    const realDatasync = proto.datasync;
    // slow fsyncs, so that the pipeline fills; each one remembers its file and when it started
    const syncs: { fd: number; started: number; done: number }[] = [];
    proto.datasync = async function (this: { fd: number }) {
      const rec = { fd: this.fd, started: performance.now(), done: Infinity };
      syncs.push(rec);
      await new Promise((r) => setTimeout(r, 15));
      await realDatasync.call(this);
      rec.done = performance.now();
    };
    try {
      const { wal } = await recover(dir, { sync: 'always', maxSyncsInFlight: 2, prepareNextSegment: true });
      await wal.append(Buffer.from('first'));
      await waitForSpare(dir);
      const inFirst = [wal.append(Buffer.from('a')), wal.append(Buffer.from('b'))];
      await new Promise((r) => setImmediate(r));
      const inFirst2 = wal.append(Buffer.from('c')); // waits for room in the pipeline
      expect(wal.rotate()).to.equal(2);
      const called = performance.now();
      await wal.append(Buffer.from('in 2'), { sync: true });
      const acked = performance.now();
      await Promise.all([...inFirst, inFirst2]);
      const fd2 = (wal as unknown as { segments: { number: number; file: { fd: number } }[] }).segments.find((x) => x.number === 2)!.file.fd;
      expect(syncs.some((x) => x.fd === fd2 && x.started >= called && x.done <= acked), 'an fsync of segment 2 issued after the append and ended before its ack').to.equal(true);
      await wal.close();
    } finally {
      proto.datasync = realDatasync;
    }
    const { wal: w2, records } = await recover(dir);
    expect(records.map(String)).to.deep.equal(['first', 'a', 'b', 'c', 'in 2']);
    await w2.close();
  });

  it('a failed write rejects the appends it carried (IO_ERROR) instead of leaving them pending', async () => {
    for (const maxSyncsInFlight of [1, 2]) {
      const dir = tempDir();
      const { wal } = await recover(dir, { sync: 'always', maxSyncsInFlight });
      await wal.append(Buffer.from('ok'));
      // make the next writev fail (EBADF): close the segment's descriptor under the log; nothing
      // opens a file before the append below fails, so the number is not reused meanwhile
      const seg = (wal as unknown as { segments: { file: { fd: number } }[] }).segments[0]!;
      closeSync(seg.file.fd);
      const outcome = await Promise.race([
        wal.append(Buffer.from('lost')).then(() => 'resolved', (e: { code?: string }) => e.code),
        new Promise((r) => setTimeout(() => r('still pending'), 2000)),
      ]);
      expect(outcome, `maxSyncsInFlight ${maxSyncsInFlight}`).to.equal('IO_ERROR');
      await wal.close();
    }
  });
});

/** Waits until segment 2, the spare made ahead, exists. */
async function waitForSpare(dir: string): Promise<void> {
  for (let i = 0; i < 400 && !(await listSegments(dir)).includes(2); i++) await new Promise((r) => setTimeout(r, 5));
}
