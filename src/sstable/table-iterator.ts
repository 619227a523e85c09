// TableIterator: the synchronous two-level cursor over a table (./FORMAT.md): an index block
// iterator whose values are BlockHandles, and a data block iterator over the block the index
// points at. Empty stretches (a separator that sorts past a block's last key) are skipped.
//
// Contract (as LevelDB's iterator.h): positioning calls leave the iterator either at an entry or
// not valid(). key()/value() REQUIRE valid(), and return views valid only until the iterator
// moves (key() may alias a reusable key buffer, value() aliases the block): copy to keep.
// A corrupt or unreadable block throws CorruptionError from the positioning call, which leaves
// the iterator not valid. Not safe to share between concurrent users; close() when done.
import { CorruptionError, KvError } from '../util/errors.js';
import { readVarint } from '../util/bytes.js';
import { Block, BlockIterator, EMPTY_BLOCK } from './block.js';
import { releaseReadAhead, type ReadAhead, type TableReader } from './table-reader.js';

export class TableIterator {
  private readonly index: BlockIterator;
  private readonly data: BlockIterator;
  /** File offset of the data block loaded into `data`, or -1. */
  private blockOffset = -1;
  private closed = false;

  /** @internal Use TableReader.iterator(). */
  /** set for a scan (TableReader.iterator({ scan })): its read-ahead chunk */
  private readonly readAhead: ReadAhead | undefined;

  constructor(
    private readonly reader: TableReader,
    private readonly indexBlock: Block,
    scan = false,
  ) {
    this.readAhead = scan ? { buf: undefined, start: 0, chunk: undefined } : undefined;
    this.index = new BlockIterator(reader.compare).reset(indexBlock);
    this.data = new BlockIterator(reader.compare).reset(EMPTY_BLOCK);
    reader.retain();
  }

  valid(): boolean {
    return this.data.valid();
  }

  /** REQUIRES: valid(). A view valid until the iterator moves. */
  key(): Buffer {
    return this.data.key();
  }

  /** REQUIRES: valid(). A view of the block, valid until the iterator moves; never mutate. */
  value(): Buffer {
    return this.data.value();
  }

  seekToFirst(): void {
    this.checkOpen();
    this.index.seekToFirst();
    if (this.loadBlock()) this.data.seekToFirst();
    this.skipEmptyForward();
  }

  seekToLast(): void {
    this.checkOpen();
    this.index.seekToLast();
    if (this.loadBlock()) this.data.seekToLast();
    this.skipEmptyBackward();
  }

  /** First entry with key >= target. */
  seek(target: Buffer): void {
    this.checkOpen();
    this.index.seek(target);
    if (this.loadBlock()) this.data.seek(target);
    this.skipEmptyForward();
  }

  /** Last entry with key <= target. */
  seekForPrev(target: Buffer): void {
    this.seek(target);
    if (!this.valid()) this.seekToLast();
    else if (this.data.compareCurrent(target) > 0) this.prev();
  }

  /** REQUIRES: valid(). */
  next(): void {
    this.data.next();
    if (!this.data.valid()) this.skipEmptyForward();
  }

  /** REQUIRES: valid(). */
  prev(): void {
    this.data.prev();
    if (!this.data.valid()) this.skipEmptyBackward();
  }

  /** Releases the reader (its fd may close now). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.data.reset(EMPTY_BLOCK);
    this.index.reset(EMPTY_BLOCK);
    this.blockOffset = -1;
    if (this.readAhead !== undefined) releaseReadAhead(this.readAhead);
    this.reader.release();
  }

  private checkOpen(): void {
    if (this.closed) throw new KvError('CLOSED', `iterator over ${this.reader.path} is closed`);
  }

  private skipEmptyForward(): void {
    while (!this.data.valid()) {
      if (!this.index.valid()) return;
      this.index.next();
      if (this.loadBlock()) this.data.seekToFirst();
    }
  }

  private skipEmptyBackward(): void {
    while (!this.data.valid()) {
      if (!this.index.valid()) return;
      this.index.prev();
      if (this.loadBlock()) this.data.seekToLast();
    }
  }

  /** Loads the block the index points at; false (and data not valid) if the index is not valid.
   *  Reuses the loaded block when the handle is unchanged; callers reposition `data`. */
  private loadBlock(): boolean {
    if (!this.index.valid()) {
      this.data.reset(EMPTY_BLOCK);
      this.blockOffset = -1;
      return false;
    }
    const d = this.index.blockData;
    let p = this.index.valueStart;
    const end = this.index.valueEnd;
    let offset: number;
    let size: number;
    if (end - p === 2 && (d[p]! | d[p + 1]!) < 0x80) {
      offset = d[p]!;
      size = d[p + 1]!;
    } else {
      try {
        [offset, p] = readVarint(d, p, end);
        [size, p] = readVarint(d, p, end);
        if (p !== end) throw new Error('trailing bytes');
      } catch (err) {
        this.data.reset(EMPTY_BLOCK);
        this.blockOffset = -1;
        throw new CorruptionError(this.reader.path, this.indexBlock.offset, `bad block handle in index: ${(err as Error).message}`);
      }
    }
    if (offset === this.blockOffset) return true;
    try {
      this.data.reset(this.readAhead ? this.reader.scanBlock(offset, size, this.readAhead) : this.reader.dataBlock(offset, size));
      this.blockOffset = offset;
    } catch (err) {
      this.data.reset(EMPTY_BLOCK);
      this.blockOffset = -1;
      throw err;
    }
    return true;
  }
}
