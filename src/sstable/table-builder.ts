// TableBuilder: writes one SSTable file (./FORMAT.md). add() is synchronous and buffers
// finished blocks in memory; flushPending() writes them with async fs writes; finish() writes
// the filter, index, properties and metaindex blocks and the footer, fsyncs and closes.
//
// Contract: create (add* flushPending?)* (finish | abandon). Keys must be strictly increasing
// under opts.compare. After finish() or abandon() the builder is unusable. If finish() or a
// flush throws, the caller must abandon() (which closes and deletes the file).
// The builder does not fsync the directory; the caller (the LSM, before it records the file
// in the manifest) owns that.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { KvError, invalidArgument, isErrno } from '../util/errors.js';
import { compareRange, copyRange, viewOf } from '../util/byte-range.js';
import { BlockBuilder } from './block-builder.js';
import { bytewiseCompare, type Compare } from './block.js';
import { BloomBuilder } from './bloom.js';
import {
  BLOCK_TRAILER_SIZE,
  FORMAT_VERSION,
  META_FILTER_KEY,
  META_PROPERTIES_KEY,
  blockChecksum,
  compressBlock,
  encodeFooter,
  encodeHandle,
  type BlockHandle,
} from './format.js';
import { encodeProperties, type TableProperties } from './properties.js';

export interface TableBuilderOptions {
  /** Target uncompressed size of a data block in bytes. Default 4096. */
  blockSize?: number;
  /** Keys between restart points in data blocks. Default 16. */
  restartInterval?: number;
  /** Try LZ4 per block, kept only when it saves >= 12.5%. Default true. */
  compression?: boolean;
  /** Bloom filter bits per key; 0 disables the filter. Default 10. */
  bloomBitsPerKey?: number;
  /** Key order. Default bytewise. */
  compare?: Compare;
  /** fdatasync the file each time this many bytes have been written since the last one (0:
   *  only at finish). Default 0. Why: a table written whole and synced once at the end leaves
   *  megabytes of dirty pages for that one fsync, and while the disk writes them back every
   *  other fsync on it (a WAL's, a Raft log's) waits behind them; synced in steps, writeback
   *  stays small (RocksDB's bytes_per_sync). */
  syncEveryBytes?: number;
  /** Maps a key to the bytes given to the bloom filter. Default identity. */
  filterKey?: (key: Buffer) => Uint8Array;
  /** A short key s with a <= s < b, for index entries. Default: bytewise shortening when
   *  compare is bytewise, else `a` itself. Results that break the rule are replaced by `a`. */
  shortestSeparator?: (a: Buffer, b: Buffer) => Buffer;
  /** A short key s >= a, for the last index entry. Default like shortestSeparator. */
  shortSuccessor?: (a: Buffer) => Buffer;
}

export interface FinishResult {
  fileSize: number;
  properties: TableProperties;
}

export const DEFAULT_BLOCK_SIZE = 4096;
export const DEFAULT_RESTART_INTERVAL = 16;
export const DEFAULT_BLOOM_BITS_PER_KEY = 10;

const MIN_SLAB_BYTES = 64 * 1024;
const MAX_SLAB_BYTES = 1024 * 1024;
/** Full-size slabs whose bytes are on disk, for the next builder's blocks: flushes and
 *  compactions write tens of MB/s of blocks, and a fresh ArrayBuffer for each MiB of them is
 *  that much external memory for V8 to account (its growth starts full GCs) and free. */
const spareSlabs: Buffer[] = [];
const SPARE_SLABS = 8;

function releaseSlabs(slabs: readonly Buffer[]): void {
  for (const s of slabs) if (spareSlabs.length < SPARE_SLABS) spareSlabs.push(s);
}

/** Max buffers handed to one writev (below IOV_MAX = 1024). */
const WRITEV_BATCH = 512;

/** LevelDB-style bytewise shortest separator: a <= result < b (requires a < b). */
export function bytewiseSeparator(a: Buffer, b: Buffer): Buffer {
  const min = Math.min(a.length, b.length);
  let i = 0;
  while (i < min && a[i] === b[i]) i++;
  if (i >= min) return a; // one is a prefix of the other: cannot shorten
  const byte = a[i]!;
  if (byte < 0xff && byte + 1 < b[i]!) {
    const out = Buffer.from(a.subarray(0, i + 1));
    out[i] = byte + 1;
    return out;
  }
  return a;
}

/** LevelDB-style bytewise short successor: result >= a. */
export function bytewiseSuccessor(a: Buffer): Buffer {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== 0xff) {
      const out = Buffer.from(a.subarray(0, i + 1));
      out[i] = a[i]! + 1;
      return out;
    }
  }
  return a;
}

const identitySeparator = (a: Buffer): Buffer => a;

type State = 'open' | 'finished' | 'abandoned';

/** Adaptive compression (tryCompression): failures in a row before sampling, sampling period. */
const SKIP_AFTER_FAILURES = 8;
const SAMPLE_EVERY = 16;

export class TableBuilder {
  private readonly blockSize: number;
  private readonly compression: boolean;
  private readonly compare: Compare;
  private readonly bytewise: boolean;
  private readonly filterKey: ((key: Buffer) => Uint8Array) | undefined;
  private readonly separator: (a: Buffer, b: Buffer) => Buffer;
  private readonly successor: (a: Buffer) => Buffer;
  private readonly data: BlockBuilder;
  private readonly index = new BlockBuilder(1, 4096);
  private readonly bloom: BloomBuilder | null;

  private state: State = 'open';
  /** Logical file offset of the next block (flushed + pending bytes). */
  private offset = 0;
  private flushedOffset = 0;
  private syncedOffset = 0;
  /** fdatasyncs issued before finish() (syncEveryBytes) */
  stepSyncs = 0;
  private readonly syncEveryBytes: number;
  /** finished bytes not yet handed to a write: views of slabs, in file order */
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Blocks are copied into slabs rather than each kept in a buffer of its own: with large
   *  values a block is one entry, and a flush of a few hundred thousand 4 KiB blocks otherwise
   *  allocates (and leaves V8 to account and sweep) as many ArrayBuffers. A slab's bytes from
   *  slabStart to slabPos are not in `pending` yet; a slab is never written into again below
   *  slabPos, so the views handed to writes stay valid. */
  private slab: Buffer = Buffer.alloc(0);
  private slabStart = 0;
  private slabPos = 0;
  /** full-size slabs done with, whose views are in `pending` or in a write on its way */
  private retired: Buffer[] = [];
  private writeChain: Promise<void> = Promise.resolve();
  private writeError: unknown = undefined;

  private lastKey = Buffer.allocUnsafe(256);
  private lastKeyLen = 0;
  private pendingHandle: BlockHandle | null = null;
  private readonly handleBuf = Buffer.allocUnsafe(20);

  private numEntries = 0;
  private rawKeyBytes = 0;
  private rawValueBytes = 0;
  private dataBlocks = 0;
  private dataBytes = 0;
  private smallestKey: Buffer | null = null;
  /** data blocks in a row whose compression was tried and not kept (see tryCompression) */
  private compressionFailures = 0;
  private blocksSinceSample = 0;
  private lastBlockCompressed = false;
  /** data blocks stored compressed / not tried because recent ones did not compress */
  compressedBlocks = 0;
  skippedCompressions = 0;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    opts: TableBuilderOptions,
  ) {
    const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    const restartInterval = opts.restartInterval ?? DEFAULT_RESTART_INTERVAL;
    const bits = opts.bloomBitsPerKey ?? DEFAULT_BLOOM_BITS_PER_KEY;
    this.blockSize = blockSize;
    this.syncEveryBytes = opts.syncEveryBytes ?? 0;
    this.compression = opts.compression ?? true;
    this.compare = opts.compare ?? bytewiseCompare;
    this.bytewise = this.compare === bytewiseCompare || this.compare === Buffer.compare;
    this.filterKey = opts.filterKey;
    this.separator = opts.shortestSeparator ?? (this.bytewise ? bytewiseSeparator : identitySeparator);
    this.successor = opts.shortSuccessor ?? (this.bytewise ? bytewiseSuccessor : identitySeparator);
    this.data = new BlockBuilder(restartInterval, Math.max(256, blockSize + (blockSize >>> 1)));
    this.bloom = bits > 0 ? new BloomBuilder(bits) : null;
  }

  static validateOptions(opts: TableBuilderOptions): void {
    const { blockSize, restartInterval, bloomBitsPerKey, syncEveryBytes } = opts;
    if (syncEveryBytes !== undefined && !(Number.isInteger(syncEveryBytes) && syncEveryBytes >= 0)) throw invalidArgument(`syncEveryBytes must be an integer >= 0, got ${syncEveryBytes}`);
    if (blockSize !== undefined && !(Number.isInteger(blockSize) && blockSize >= 1)) throw invalidArgument(`blockSize must be a positive integer, got ${blockSize}`);
    if (restartInterval !== undefined && !(Number.isInteger(restartInterval) && restartInterval >= 1)) {
      throw invalidArgument(`restartInterval must be a positive integer, got ${restartInterval}`);
    }
    if (bloomBitsPerKey !== undefined && !(bloomBitsPerKey >= 0 && bloomBitsPerKey <= 64)) throw invalidArgument(`bloomBitsPerKey must be in [0, 64], got ${bloomBitsPerKey}`);
  }

  /** Creates (truncating) the file at `path`. */
  static async create(path: string, opts: TableBuilderOptions = {}): Promise<TableBuilder> {
    TableBuilder.validateOptions(opts);
    const fh = await fsp.open(path, 'w');
    return new TableBuilder(path, fh, opts);
  }

  /** Entries added so far. */
  get entries(): number {
    return this.numEntries;
  }

  /** Bytes of finished blocks not yet written to the file. */
  get pendingBytes(): number {
    return this.pendingLen;
  }

  /** File size if finished now, excluding the index, filter, properties and footer. */
  get estimatedFileSize(): number {
    return this.offset + (this.data.empty ? 0 : this.data.estimatedSize);
  }

  private lastKeyView(): Buffer {
    return viewOf(this.lastKey, 0, this.lastKeyLen);
  }

  /** Adds an entry. Synchronous: finished blocks are buffered until flushPending/finish.
   *  Throws INVALID_ARGUMENT unless key > the previous key. Copies key and value. */
  add(key: Buffer, value: Buffer): void {
    if (this.state !== 'open') throw new KvError('CLOSED', `table builder for ${this.path} is ${this.state}`);
    if (this.numEntries > 0) {
      const c = this.bytewise ? compareRange(key, 0, key.length, this.lastKey, 0, this.lastKeyLen) : this.compare(key, this.lastKeyView());
      if (c <= 0) throw invalidArgument(`sstable keys must be strictly increasing: ${key.toString('hex')} after ${this.lastKeyView().toString('hex')}`);
    } else {
      this.smallestKey = Buffer.from(key);
    }
    if (this.pendingHandle !== null) this.addIndexEntry(this.separatorFor(key));
    if (this.bloom !== null) this.bloom.addKey(this.filterKey ? this.filterKey(key) : key);
    this.data.add(key, value);
    if (key.length > this.lastKey.length) this.lastKey = Buffer.allocUnsafe(Math.max(key.length, this.lastKey.length * 2));
    copyRange(key, 0, key.length, this.lastKey, 0);
    this.lastKeyLen = key.length;
    this.numEntries++;
    this.rawKeyBytes += key.length;
    this.rawValueBytes += value.length;
    if (this.data.estimatedSize >= this.blockSize) this.finishDataBlock();
  }

  private separatorFor(next: Buffer): Buffer {
    const last = this.lastKeyView();
    const s = this.separator(last, next);
    if (s !== last && (this.compare(last, s) > 0 || this.compare(s, next) >= 0)) return last;
    return s;
  }

  private successorFor(): Buffer {
    const last = this.lastKeyView();
    const s = this.successor(last);
    if (s !== last && this.compare(last, s) > 0) return last;
    return s;
  }

  private addIndexEntry(separator: Buffer): void {
    this.index.add(separator, encodeHandle(this.pendingHandle!, this.handleBuf));
    this.pendingHandle = null;
  }

  /** Whether to try compressing the next data block. Data that does not compress (encrypted,
   *  already compressed, random) costs an lz4 pass per block for nothing; after
   *  SKIP_AFTER_FAILURES blocks in a row that saved too little, only every SAMPLE_EVERY-th block
   *  is tried, and the first one that compresses turns every block back on. */
  private tryCompression(): boolean {
    if (!this.compression) return false;
    if (this.compressionFailures < SKIP_AFTER_FAILURES) return true;
    return ++this.blocksSinceSample >= SAMPLE_EVERY;
  }

  private finishDataBlock(): void {
    const tried = this.tryCompression();
    const handle = this.writeBlock(this.data.finish(), tried);
    if (tried) {
      this.blocksSinceSample = 0;
      this.compressionFailures = this.lastBlockCompressed ? 0 : this.compressionFailures + 1;
      if (this.lastBlockCompressed) this.compressedBlocks++;
    } else this.skippedCompressions++;
    this.data.reset();
    this.pendingHandle = handle;
    this.dataBlocks++;
    this.dataBytes += handle.size + BLOCK_TRAILER_SIZE;
  }

  /** Appends a block (contents + trailer) to the pending buffers; `raw` may be reused after. */
  private writeBlock(raw: Buffer, allowCompression: boolean): BlockHandle {
    const [stored, type] = compressBlock(raw, allowCompression);
    this.lastBlockCompressed = stored !== raw;
    const crc = blockChecksum(stored, type);
    const size = stored.length;
    const at = this.reserve(size + BLOCK_TRAILER_SIZE);
    const slab = this.slab;
    stored.copy(slab, at);
    slab[at + size] = type;
    slab.writeUInt32LE(crc, at + size + 1);
    const handle = { offset: this.offset, size };
    this.offset += size + BLOCK_TRAILER_SIZE;
    this.pendingLen += size + BLOCK_TRAILER_SIZE;
    return handle;
  }

  /** Room for `n` bytes at the returned offset of `this.slab`. */
  private reserve(n: number): number {
    if (this.slab.length - this.slabPos < n) {
      this.sealSlab();
      // slabs grow with the table: a small table does not hold a large one
      const size = Math.max(n, Math.min(MAX_SLAB_BYTES, Math.max(MIN_SLAB_BYTES, this.slab.length * 2)));
      if (this.slab.length === MAX_SLAB_BYTES) this.retired.push(this.slab);
      this.slab = size === MAX_SLAB_BYTES && spareSlabs.length > 0 ? spareSlabs.pop()! : Buffer.allocUnsafe(size);
      this.slabStart = 0;
      this.slabPos = 0;
    }
    const at = this.slabPos;
    this.slabPos += n;
    return at;
  }

  private sealSlab(): void {
    if (this.slabPos > this.slabStart) {
      this.pending.push(this.slab.subarray(this.slabStart, this.slabPos));
      this.slabStart = this.slabPos;
    }
  }

  /** Writes buffered blocks to the file. Writes are serialized; safe to call at any time. */
  flushPending(): Promise<void> {
    this.sealSlab();
    const bufs = this.pending;
    if (bufs.length === 0) return this.writeChain.then(() => this.throwWriteError());
    this.pending = [];
    this.pendingLen = 0;
    // every view of a retired slab is in `bufs` or in an earlier write, which this one follows
    const retired = this.retired;
    this.retired = [];
    const p = this.writeChain.then(async () => {
      this.throwWriteError();
      await this.writeAll(bufs);
      releaseSlabs(retired);
    });
    this.writeChain = p.catch((err: unknown) => {
      this.writeError ??= err;
    });
    return p;
  }

  private throwWriteError(): void {
    if (this.writeError !== undefined) throw this.writeError;
  }

  private async writeAll(bufs: Buffer[]): Promise<void> {
    for (let i = 0; i < bufs.length; i += WRITEV_BATCH) {
      const chunk = bufs.slice(i, i + WRITEV_BATCH);
      let total = 0;
      for (const b of chunk) total += b.length;
      const { bytesWritten } = await this.fh.writev(chunk, this.flushedOffset);
      if (bytesWritten < total) {
        // Rare short write: write the remainder from one contiguous copy.
        const rest = Buffer.concat(chunk).subarray(bytesWritten);
        let done = 0;
        while (done < rest.length) {
          const r = await this.fh.write(rest, done, rest.length - done, this.flushedOffset + bytesWritten + done);
          done += r.bytesWritten;
        }
      }
      this.flushedOffset += total;
    }
    if (this.syncEveryBytes > 0 && this.flushedOffset - this.syncedOffset >= this.syncEveryBytes) {
      this.syncedOffset = this.flushedOffset;
      this.stepSyncs++;
      await this.fh.datasync();
    }
  }

  /** Writes the rest of the table, fsyncs and closes the file. */
  async finish(userProps: Record<string, number> = {}): Promise<FinishResult> {
    if (this.state !== 'open') throw new KvError('CLOSED', `table builder for ${this.path} is ${this.state}`);
    this.state = 'finished';
    if (!this.data.empty) this.finishDataBlock();
    if (this.pendingHandle !== null) this.addIndexEntry(this.successorFor());

    let filterHandle: BlockHandle | null = null;
    let filterBytes = 0;
    if (this.bloom !== null) {
      filterHandle = this.writeBlock(this.bloom.finish(), false);
      filterBytes = filterHandle.size + BLOCK_TRAILER_SIZE;
    }
    const indexHandle = this.writeBlock(this.index.finish(), this.compression);

    const properties: TableProperties = {
      numEntries: this.numEntries,
      rawKeyBytes: this.rawKeyBytes,
      rawValueBytes: this.rawValueBytes,
      dataBlocks: this.dataBlocks,
      dataBytes: this.dataBytes,
      indexBytes: indexHandle.size + BLOCK_TRAILER_SIZE,
      filterBytes,
      filterKeys: this.bloom?.numKeys ?? 0,
      smallestKey: this.smallestKey ?? Buffer.alloc(0),
      largestKey: Buffer.from(this.lastKeyView()),
      user: { ...userProps },
    };
    const propsHandle = this.writeBlock(encodeProperties(properties), false);

    const meta = new BlockBuilder(1, 128);
    if (filterHandle !== null) meta.add(Buffer.from(META_FILTER_KEY), encodeHandle(filterHandle));
    meta.add(Buffer.from(META_PROPERTIES_KEY), encodeHandle(propsHandle));
    const metaHandle = this.writeBlock(meta.finish(), false);

    const footer = encodeFooter({ metaindex: metaHandle, index: indexHandle, version: FORMAT_VERSION });
    const at = this.reserve(footer.length);
    footer.copy(this.slab, at);
    this.pendingLen += footer.length;
    this.offset += footer.length;

    await this.flushPending();
    // everything is written: the last slab too is free
    if (this.slab.length === MAX_SLAB_BYTES) releaseSlabs([this.slab]);
    this.slab = Buffer.alloc(0);
    this.slabStart = this.slabPos = 0;
    await this.fh.sync();
    await this.fh.close();
    return { fileSize: this.offset, properties };
  }

  /** Closes and deletes the file. Safe after a failed finish() or flush; after a successful
   *  finish() it deletes the finished table (e.g. when recording it in the manifest failed). */
  async abandon(): Promise<void> {
    if (this.state === 'abandoned') return;
    this.state = 'abandoned';
    this.pending = [];
    this.pendingLen = 0;
    await this.writeChain;
    // May already be closed (finish failed after closing): closing again is harmless.
    await this.fh.close().catch(() => undefined);
    try {
      await fsp.unlink(this.path);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
  }
}
