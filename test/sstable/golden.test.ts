// Golden tables: tiny .sst files checked in under test/sstable/golden/, one without and one with
// compression. The test decodes them and checks that building the same input reproduces them
// byte for byte (so any format change shows up as a diff). Regenerate deliberately with
// REWRITE=1 (then review the hex diff and FORMAT.md). Note: the lz4 file also pins the output
// of the lz4-napi version in use; an lz4 upgrade that changes its encoder output would show here.
import { expect } from 'chai';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TableReader } from '../../src/sstable/table-reader.js';
import type { TableBuilderOptions } from '../../src/sstable/table-builder.js';
import { tempDir, cleanupTempDirs } from '../helpers/tmp.js';
import { buildTable, tablePath, type Entry } from './helpers.js';

// dist/test/sstable -> test/sstable/golden in the source tree.
const GOLDEN_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/sstable/golden');

export function goldenEntries(): Entry[] {
  const words = ['apple', 'apricot', 'avocado', 'banana', 'blackberry', 'blueberry', 'cherry', 'coconut', 'date', 'fig', 'grape', 'guava'];
  return words.map((w, i) => [Buffer.from(w), Buffer.from(w.slice(0, 2).repeat(6 + i))]);
}

const GOLDEN: { file: string; opts: TableBuilderOptions }[] = [
  { file: 'plain.sst', opts: { compression: false, blockSize: 128, restartInterval: 4, bloomBitsPerKey: 10 } },
  { file: 'lz4.sst', opts: { compression: true, blockSize: 128, restartInterval: 4, bloomBitsPerKey: 10 } },
];
const USER_PROPS = { minSeq: 1, maxSeq: 12, numDeletions: 0 };

describe('sstable: golden files', () => {
  afterEach(cleanupTempDirs);

  for (const g of GOLDEN) {
    it(`${g.file}: building the golden input reproduces it byte for byte`, async () => {
      const file = tablePath(tempDir());
      await buildTable(file, goldenEntries(), g.opts, USER_PROPS);
      const built = readFileSync(file);
      const goldenPath = path.join(GOLDEN_DIR, g.file);
      if (process.env['REWRITE'] === '1') {
        mkdirSync(GOLDEN_DIR, { recursive: true });
        writeFileSync(goldenPath, built);
      }
      const golden = readFileSync(goldenPath);
      expect(built.toString('hex'), `${g.file} differs from a fresh build (REWRITE=1 to accept)`).to.equal(golden.toString('hex'));
      expect(golden.length).to.be.lessThan(1024);
    });

    it(`${g.file}: decodes to the golden input`, () => {
      const goldenPath = path.join(GOLDEN_DIR, g.file);
      const r = TableReader.open(goldenPath, 1);
      const model = goldenEntries();
      const it = r.iterator();
      let i = 0;
      for (it.seekToFirst(); it.valid(); it.next(), i++) {
        expect(it.key().toString()).to.equal(model[i]![0].toString());
        expect(it.value().toString()).to.equal(model[i]![1].toString());
      }
      expect(i).to.equal(model.length);
      expect(r.properties.numEntries).to.equal(12);
      expect(r.properties.dataBlocks).to.be.greaterThan(1);
      expect(r.properties.user).to.deep.equal(USER_PROPS);
      expect(r.properties.smallestKey.toString()).to.equal('apple');
      expect(r.properties.largestKey.toString()).to.equal('guava');
      expect(r.mayContain(Buffer.from('fig'))).to.equal(true);
      it.close();
      r.close();
    });
  }

  it('lz4.sst really holds compressed blocks and is smaller', () => {
    const plain = readFileSync(path.join(GOLDEN_DIR, 'plain.sst'));
    const lz4 = readFileSync(path.join(GOLDEN_DIR, 'lz4.sst'));
    expect(lz4.length).to.be.lessThan(plain.length);
    // Type byte of the first data block's trailer is 1 (lz4) in lz4.sst: find it via the reader.
    const r = TableReader.open(path.join(GOLDEN_DIR, 'lz4.sst'), 1);
    expect(r.properties.dataBytes).to.be.lessThan(new Uint8Array(plain).length);
    r.close();
  });
});
