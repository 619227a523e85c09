import { expect } from 'chai';
import { readFileSync, writeFileSync, truncateSync, statSync } from 'node:fs';
import { TableReader } from '../../src/sstable/table-reader.js';
import { Block } from '../../src/sstable/block.js';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import {
  decodeFooter,
  decodeHandle,
  decodeBlockContents,
  blockChecksum,
  encodeHandle,
  FOOTER_SIZE,
  BLOCK_TRAILER_SIZE,
  encodeFooter,
  FORMAT_VERSION,
  type BlockHandle,
} from '../../src/sstable/format.js';
import { CorruptionError } from '../../src/util/errors.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { buildTable, tablePath, type Entry } from './helpers.js';

function entries(n: number): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) out.push([Buffer.from(`key-${String(i).padStart(5, '0')}`), Buffer.from(`value-${i}-`.repeat(3))]);
  return out;
}

/** Opens the table and scans it fully; returns the error thrown, if any. */
function openAndScan(file: string, verifyChecksums = true): unknown {
  let r: TableReader | undefined;
  try {
    r = TableReader.open(file, 1, { verifyChecksums });
    const it = r.iterator();
    let n = 0;
    for (it.seekToFirst(); it.valid(); it.next()) n++;
    for (it.seekToLast(); it.valid(); it.prev()) n--;
    it.close();
    return n === 0 ? undefined : new Error('scan mismatch');
  } catch (err) {
    return err;
  } finally {
    r?.close();
  }
}

function expectCorruption(err: unknown, file: string, offset?: number): CorruptionError {
  expect(err, 'expected a CorruptionError').to.be.instanceOf(CorruptionError);
  const c = err as CorruptionError;
  expect(c.code).to.equal('CORRUPTION');
  expect(c.file).to.equal(file);
  if (offset !== undefined) expect(c.offset).to.equal(offset);
  expect(c.message).to.contain(file);
  return c;
}

/** The data block handles listed in the table's index. */
function dataHandles(file: string): BlockHandle[] {
  const bytes = readFileSync(file);
  const { index } = footerOf(file);
  const contents = decodeBlockContents(bytes.subarray(index.offset, index.offset + index.size + BLOCK_TRAILER_SIZE), file, index.offset, true);
  const it = new Block(contents, file, index.offset).iterator();
  const out: BlockHandle[] = [];
  for (it.seekToFirst(); it.valid(); it.next()) out.push(decodeHandle(it.blockData, it.valueStart, it.valueEnd)[0]);
  return out;
}

function footerOf(file: string): ReturnType<typeof decodeFooter> {
  const bytes = readFileSync(file);
  return decodeFooter(bytes.subarray(bytes.length - FOOTER_SIZE), file, bytes.length - FOOTER_SIZE);
}

describe('sstable: corruption', () => {
  afterEach(cleanupTempDirs);

  for (const compression of [false, true]) {
    it(`detects a flipped byte in a data block (compression ${compression})`, async () => {
      const file = tablePath(tempDir());
      await buildTable(file, entries(500), { compression, blockSize: 512 });
      const bytes = readFileSync(file);
      const h = dataHandles(file)[1]!;
      bytes[h.offset + 7]! ^= 0x40;
      writeFileSync(file, bytes);
      const r = TableReader.open(file, 1); // data blocks are read lazily
      const ti = r.iterator();
      ti.seekToFirst();
      let err: unknown;
      try {
        while (ti.valid()) ti.next();
      } catch (e) {
        err = e;
      }
      expectCorruption(err, file, h.offset);
      expect((err as Error).message).to.match(/checksum/);
      expect(ti.valid()).to.equal(false);
      ti.close();
      r.close();
    });
  }

  it('detects a flipped byte in the index block at open', async () => {
    const file = tablePath(tempDir());
    await buildTable(file, entries(300), { compression: false, blockSize: 256 });
    const { index } = footerOf(file);
    const bytes = readFileSync(file);
    bytes[index.offset + 10]! ^= 1;
    writeFileSync(file, bytes);
    expectCorruption(openAndScan(file), file, index.offset);
  });

  it('detects truncation, a too-short file and a bad magic number', async () => {
    const dir = tempDir();
    const file = tablePath(dir);
    await buildTable(file, entries(100), {});
    const size = statSync(file).size;
    truncateSync(file, size - 1);
    expectCorruption(openAndScan(file), file, size - 1 - 8);
    truncateSync(file, 20);
    expectCorruption(openAndScan(file), file, 0);
    truncateSync(file, 0);
    expectCorruption(openAndScan(file), file, 0);
    writeFileSync(file, Buffer.alloc(4096, 7));
    const c = expectCorruption(openAndScan(file), file, 4096 - 8);
    expect(c.message).to.match(/magic/);
  });

  it('detects a block handle pointing outside the file, even with a valid checksum', async () => {
    const file = tablePath(tempDir());
    await buildTable(file, entries(20), { compression: false, blockSize: 64 });
    // Append a rewritten, correctly checksummed index whose first handle is 1 MiB long, and a
    // footer pointing at it.
    const bytes = readFileSync(file);
    const { index, metaindex } = footerOf(file);
    const handles = dataHandles(file);
    const bb = new BlockBuilder(1);
    handles.forEach((h, i) => bb.add(Buffer.from([i]), encodeHandle(i === 0 ? { offset: h.offset, size: 1 << 20 } : h)));
    const contents = Buffer.from(bb.finish());
    const trailer = Buffer.alloc(BLOCK_TRAILER_SIZE);
    trailer.writeUInt32LE(blockChecksum(contents, 0), 1);
    const blocksEnd = bytes.length - FOOTER_SIZE;
    const newIndex = { offset: blocksEnd, size: contents.length };
    writeFileSync(file, Buffer.concat([bytes.subarray(0, blocksEnd), contents, trailer, encodeFooter({ metaindex, index: newIndex, version: FORMAT_VERSION })]));
    void index;
    const c = expectCorruption(openAndScan(file), file, 0);
    expect(c.message).to.match(/past the block area/);
  });

  it('detects a malformed block whose checksum is valid', async () => {
    const file = tablePath(tempDir());
    await buildTable(file, entries(20), { compression: false, blockSize: 4096 });
    const bytes = readFileSync(file);
    // The only data block is at offset 0; its size is in the index. Break its restart count.
    const { index } = footerOf(file);
    const it = new Block(bytes.subarray(index.offset, index.offset + index.size), file, index.offset).iterator();
    it.seekToFirst();
    const [h] = decodeHandle(it.blockData, it.valueStart, it.valueEnd);
    bytes.writeUInt32LE(0xffff, h.size - 4);
    bytes.writeUInt32LE(blockChecksum(bytes.subarray(0, h.size), 0), h.size + 1);
    writeFileSync(file, bytes);
    const c = expectCorruption(openAndScan(file), file, 0);
    expect(c.message).to.match(/restart count/);
  });

  it('rejects an unknown format version and a damaged footer', async () => {
    const file = tablePath(tempDir());
    await buildTable(file, entries(5), {});
    const bytes = readFileSync(file);
    const f = footerOf(file);
    const footerAt = bytes.length - FOOTER_SIZE;
    encodeFooter({ ...f, version: FORMAT_VERSION + 1 }).copy(bytes, footerAt);
    writeFileSync(file, bytes);
    expect(expectCorruption(openAndScan(file), file).message).to.match(/version/);
    encodeFooter(f).copy(bytes, footerAt);
    bytes[footerAt + 30]! ^= 1; // zero padding is covered by the footer checksum
    writeFileSync(file, bytes);
    expect(expectCorruption(openAndScan(file), file, footerAt).message).to.match(/footer checksum/);
  });

  for (const compression of [false, true]) {
    it(`every single-byte flip anywhere in a small table is detected (compression ${compression})`, async () => {
      const file = tablePath(tempDir());
      await buildTable(file, entries(24), { compression, blockSize: 128, restartInterval: 4 });
      const good = readFileSync(file);
      expect(openAndScan(file)).to.equal(undefined);
      for (let i = 0; i < good.length; i++) {
        for (const mask of [i % 2 === 0 ? 0x01 : 0x80]) {
          const bad = Buffer.from(good);
          bad[i]! ^= mask;
          writeFileSync(file, bad);
          const err = openAndScan(file);
          expect(err, `flip ${mask} at ${i} of ${good.length}`).to.be.instanceOf(CorruptionError);
        }
      }
    });
  }

  it('BLOCK_TRAILER_SIZE and FOOTER_SIZE are frozen', () => {
    expect(BLOCK_TRAILER_SIZE).to.equal(5);
    expect(FOOTER_SIZE).to.equal(56);
  });
});
