// TableReader: an open SSTable (./FORMAT.md). open() reads and verifies the footer, index,
// metaindex, filter and properties blocks; data blocks are read on demand, through the shared
// BlockCache when one is given.
//
// Design decision: all reads are SYNCHRONOUS positional reads (fs.readSync on an fd, i.e.
// pread). A pread served from the page cache costs a few microseconds, while an async libuv
// round trip (thread-pool hop + event-loop wake-up) costs more than the read itself; LevelDB
// likewise preads on the calling thread. This keeps point lookups and the block/table
// iterators synchronous, with no promise per block. A read that misses the page cache blocks
// the event loop for one disk access; the block cache and the OS cache keep that rare.
//
// Lifetime: close() is reference counted against open iterators. Each iterator() retains the
// reader and releases it on TableIterator.close(); the fd is closed when close() has been
// called and the last iterator is closed (so a TableCache can evict a reader that a scan is
// still using).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { DecodeError } from '../util/bytes.js';
import { CorruptionError, KvError } from '../util/errors.js';
import { Block, bytewiseCompare, type Compare } from './block.js';
import type { BlockCache } from './block-cache.js';
import { bloomMayContain } from './bloom.js';
import {
  BLOCK_TRAILER_SIZE,
  FOOTER_SIZE,
  META_FILTER_KEY,
  META_PROPERTIES_KEY,
  decodeBlockContents,
  decodeFooter,
  decodeHandle,
  type BlockHandle,
} from './format.js';
import { decodeProperties, type TableProperties } from './properties.js';
import { TableIterator } from './table-iterator.js';

export interface TableReaderOptions {
  /** Key order; must be the order the table was built with. Default bytewise. */
  compare?: Compare;
  /** Maps a key to its filter key, for mayContainKey(). Default identity. */
  filterKey?: (key: Buffer) => Uint8Array;
  /** Shared cache of decoded data blocks. */
  blockCache?: BlockCache;
  /** Verify block checksums on every read. Default true. */
  verifyChecksums?: boolean;
}

export class TableReader {
  /** mayContain() calls on a table with a filter. */
  bloomChecks = 0;
  /** mayContain() calls the filter answered "definitely absent". */
  bloomNegatives = 0;
  /** Data blocks read from the file (block cache misses, or every read without a cache). */
  blockReads = 0;

  readonly compare: Compare;
  readonly properties: TableProperties;
  private readonly filterKey: ((key: Buffer) => Uint8Array) | undefined;
  private readonly blockCache: BlockCache | undefined;
  private readonly verify: boolean;
  /** End of the block area: every block handle must lie below this. */
  private readonly blocksEnd: number;
  private readonly indexBlock: Block;
  private readonly filter: Buffer | null;
  private refs = 0;
  private closeRequested = false;
  private fdClosed = false;

  private constructor(
    readonly path: string,
    readonly fileNumber: number,
    private readonly fd: number,
    readonly fileSize: number,
    opts: TableReaderOptions,
    footerIndex: BlockHandle,
    footerMeta: BlockHandle,
  ) {
    this.compare = opts.compare ?? bytewiseCompare;
    this.filterKey = opts.filterKey;
    this.blockCache = opts.blockCache;
    this.verify = opts.verifyChecksums ?? true;
    this.blocksEnd = fileSize - FOOTER_SIZE;

    this.indexBlock = new Block(this.readBlock(footerIndex, 'index'), path, footerIndex.offset);
    const meta = new Block(this.readBlock(footerMeta, 'metaindex'), path, footerMeta.offset);
    let filterHandle: BlockHandle | null = null;
    let propsHandle: BlockHandle | null = null;
    const it = meta.iterator();
    for (it.seekToFirst(); it.valid(); it.next()) {
      const name = it.key().toString('latin1');
      if (name !== META_FILTER_KEY && name !== META_PROPERTIES_KEY) continue; // unknown meta block
      let h: BlockHandle;
      try {
        const [handle, end] = decodeHandle(it.blockData, it.valueStart, it.valueEnd);
        if (end !== it.valueEnd) throw new DecodeError('trailing bytes after handle');
        h = handle;
      } catch (err) {
        if (err instanceof DecodeError) throw new CorruptionError(path, footerMeta.offset, `bad handle for meta block ${name}: ${err.message}`);
        throw err;
      }
      if (name === META_FILTER_KEY) filterHandle = h;
      else propsHandle = h;
    }
    if (propsHandle === null) throw new CorruptionError(path, footerMeta.offset, 'metaindex has no properties block');
    this.filter = filterHandle ? Buffer.from(this.readBlock(filterHandle, 'filter')) : null;
    this.properties = decodeProperties(new Block(this.readBlock(propsHandle, 'properties'), path, propsHandle.offset));
  }

  /** Opens and verifies a table. Synchronous (see the top of the file). Throws CorruptionError
   *  naming the file and offset for a short file, bad magic, or any bad meta block. */
  static open(path: string, fileNumber: number, opts: TableReaderOptions = {}): TableReader {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < FOOTER_SIZE) throw new CorruptionError(path, 0, `file is ${size} bytes, shorter than the ${FOOTER_SIZE}-byte footer`);
      const footerBuf = Buffer.allocUnsafe(FOOTER_SIZE);
      preadFully(fd, footerBuf, size - FOOTER_SIZE, path);
      const footer = decodeFooter(footerBuf, path, size - FOOTER_SIZE);
      return new TableReader(path, fileNumber, fd, size, opts, footer.index, footer.metaindex);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Bloom probe with an already-mapped filter key. True when there is no filter. */
  mayContain(filterKeyBytes: Uint8Array): boolean {
    if (this.filter === null) return true;
    this.bloomChecks++;
    if (bloomMayContain(this.filter, filterKeyBytes)) return true;
    this.bloomNegatives++;
    return false;
  }

  /** mayContain(filterKey(key)). */
  mayContainKey(key: Buffer): boolean {
    return this.mayContain(this.filterKey ? this.filterKey(key) : key);
  }

  get hasFilter(): boolean {
    return this.filter !== null;
  }

  /** A new two-level iterator, initially not valid. Close it to release the reader. With
   *  `scan` (a compaction reading the whole file in order) it reads SCAN_READAHEAD bytes per
   *  read and leaves the block cache alone: one pread per many blocks, and blocks read once are
   *  not cached over the ones reads need. */
  iterator(opts?: { scan?: boolean }): TableIterator {
    if (this.closeRequested) throw new KvError('CLOSED', `table ${this.path} is closed`);
    return new TableIterator(this, this.indexBlock, opts?.scan === true);
  }

  /** @internal Pins the fd open (used by TableIterator). */
  retain(): void {
    this.refs++;
  }

  /** @internal */
  release(): void {
    this.refs--;
    if (this.refs === 0 && this.closeRequested) this.closeFd();
  }

  /** Number of open iterators holding this reader. */
  get openIterators(): number {
    return this.refs;
  }

  /** True once the file descriptor has been closed. */
  get isClosed(): boolean {
    return this.fdClosed;
  }

  /** Closes the file now, or when the last open iterator closes. Idempotent. */
  close(): void {
    this.closeRequested = true;
    if (this.refs === 0) this.closeFd();
  }

  private closeFd(): void {
    if (this.fdClosed) return;
    this.fdClosed = true;
    closeSync(this.fd);
  }

  /** @internal A decoded data block, from the block cache or the file. */
  dataBlock(offset: number, size: number): Block {
    const cache = this.blockCache;
    if (cache !== undefined) {
      const hit = cache.get(this.fileNumber, offset);
      if (hit !== undefined) return hit;
    }
    if (this.fdClosed) throw new KvError('CLOSED', `table ${this.path} is closed`);
    const block = new Block(this.readBlock({ offset, size }, 'data'), this.path, offset);
    this.blockReads++;
    cache?.insert(this.fileNumber, offset, block);
    return block;
  }

  /** @internal A decoded data block for a scan: from `ra` (the iterator's read-ahead chunk) when
   *  it holds the block, else from a new chunk read at the block. Not cached. */
  scanBlock(offset: number, size: number, ra: ReadAhead): Block {
    if (this.fdClosed) throw new KvError('CLOSED', `table ${this.path} is closed`);
    const end = offset + size + BLOCK_TRAILER_SIZE;
    if (end > this.blocksEnd) {
      throw new CorruptionError(this.path, offset, `data block handle (offset ${offset}, size ${size}) extends past the block area ending at ${this.blocksEnd}`);
    }
    if (ra.buf === undefined || offset < ra.start || end > ra.start + ra.buf.length) {
      const len = Math.max(end, Math.min(offset + SCAN_READAHEAD, this.blocksEnd)) - offset;
      // The chunk is overwritten in place: the block read from it before is being replaced, and
      // what the iterator handed out was a view valid only until it moved.
      if (ra.chunk === undefined || ra.chunk.length < len) {
        if (ra.chunk !== undefined) releaseChunk(ra.chunk);
        ra.chunk = takeChunk(len);
      }
      const buf = ra.chunk.subarray(0, len);
      preadFully(this.fd, buf, offset, this.path);
      ra.buf = buf;
      ra.start = offset;
    }
    this.blockReads++;
    const raw = ra.buf.subarray(offset - ra.start, end - ra.start);
    return new Block(decodeBlockContents(raw, this.path, offset, this.verify), this.path, offset);
  }

  /** Reads, verifies and decompresses the block at `h`. */
  private readBlock(h: BlockHandle, what: string): Buffer {
    if (h.offset + h.size + BLOCK_TRAILER_SIZE > this.blocksEnd) {
      throw new CorruptionError(this.path, h.offset, `${what} block handle (offset ${h.offset}, size ${h.size}) extends past the block area ending at ${this.blocksEnd}`);
    }
    const buf = Buffer.allocUnsafe(h.size + BLOCK_TRAILER_SIZE);
    preadFully(this.fd, buf, h.offset, this.path);
    return decodeBlockContents(buf, this.path, h.offset, this.verify);
  }
}

/** Bytes a scanning iterator reads at once (TableReader.iterator({ scan })). */
export const SCAN_READAHEAD = 256 * 1024;

/** A scanning iterator's current read-ahead chunk: bytes [start, start + buf.length) of the
 *  file, held in `chunk` (which the iterator owns until releaseReadAhead). */
export interface ReadAhead {
  buf: Buffer | undefined;
  start: number;
  chunk: Buffer | undefined;
}

/**
 * Spare read-ahead chunks. A compaction reads every input byte through one; a fresh 256 KiB
 * ArrayBuffer per read lived long enough under paced compactions to be promoted, and V8 starts
 * a full GC per 64 MB of such external memory (bench/RESULTS.md, session 14).
 */
const spareChunks: Buffer[] = [];
const MAX_SPARE_CHUNKS = 8;

function takeChunk(len: number): Buffer {
  if (len <= SCAN_READAHEAD) return spareChunks.pop() ?? Buffer.allocUnsafeSlow(SCAN_READAHEAD);
  return Buffer.allocUnsafeSlow(len);
}

function releaseChunk(chunk: Buffer): void {
  if (chunk.length === SCAN_READAHEAD && spareChunks.length < MAX_SPARE_CHUNKS) spareChunks.push(chunk);
}

/** Hands a closed scanning iterator's chunk back for the next one: call only once nothing read
 *  through it is in use (TableIterator.close: its views were valid until it moved). */
export function releaseReadAhead(ra: ReadAhead): void {
  if (ra.chunk !== undefined) releaseChunk(ra.chunk);
  ra.chunk = undefined;
  ra.buf = undefined;
}

function preadFully(fd: number, buf: Buffer, position: number, path: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw new CorruptionError(path, position + done, `unexpected end of file reading ${buf.length} bytes at ${position}`);
    done += n;
  }
}
