// Block (parsed, verified block contents: entries + restart array) and BlockIterator, the
// synchronous cursor over one block. Layout: ./FORMAT.md "Block contents"; writer: ./block-builder.ts.
//
// Ownership: key() and value() return views, valid only until the iterator moves; callers that
// keep a key or value copy it first. value() aliases the block (which may be shared through
// the block cache: never mutate it). key() is a view of the iterator's reusable key buffer,
// which the next positioning call overwrites; to avoid an allocation per key, the same Buffer
// object is handed out again for later keys of the same length.
//
// Every structural check failure (bad varint, entry crossing the restart array, shared prefix
// longer than the previous key, restart entry with shared != 0, bad restart array) throws
// CorruptionError(file, blockOffset, detail). Bytes that fail a check are never returned.
import { readVarint, DecodeError, compareBytes } from '../util/bytes.js';
import { CorruptionError } from '../util/errors.js';
import { compareRange, copyRange, bufferView } from '../util/byte-range.js';

export type Compare = (a: Buffer, b: Buffer) => number;

export const bytewiseCompare: Compare = compareBytes;

/** Per-entry bookkeeping charged to the block cache on top of the contents. */
const BLOCK_OVERHEAD = 96;

export class Block {
  /** Offset of the restart array = end of the last entry. */
  readonly limit: number;
  readonly restarts: Uint32Array;

  /** `data` = decompressed, checksum-verified contents; `file`/`offset` name it in errors. */
  constructor(
    readonly data: Buffer,
    readonly file: string,
    readonly offset: number,
  ) {
    const len = data.length;
    if (len < 4) throw new CorruptionError(file, offset, `block of ${len} bytes has no restart count`);
    const n = data.readUInt32LE(len - 4);
    if (n > (len - 4) / 4) throw new CorruptionError(file, offset, `block restart count ${n} too large for ${len} bytes`);
    const limit = len - 4 - 4 * n;
    if (n === 0 && limit !== 0) throw new CorruptionError(file, offset, 'block with entries but no restart points');
    const restarts = new Uint32Array(n);
    let prev = -1;
    for (let i = 0; i < n; i++) {
      const r = data.readUInt32LE(limit + 4 * i);
      if (r <= prev || r >= limit || (i === 0 && r !== 0)) throw new CorruptionError(file, offset, `bad restart point ${i} = ${r}`);
      restarts[i] = r;
      prev = r;
    }
    this.limit = limit;
    this.restarts = restarts;
  }

  /** Bytes charged to the block cache. */
  get charge(): number {
    return this.data.length + this.restarts.byteLength + BLOCK_OVERHEAD;
  }

  iterator(compare: Compare = bytewiseCompare): BlockIterator {
    return new BlockIterator(compare).reset(this);
  }
}

const EMPTY = Buffer.alloc(0);
const EMPTY_BLOCK_DATA = Buffer.alloc(4);
const EMPTY_PLACEHOLDER = new Block(EMPTY_BLOCK_DATA, '<empty>', 0);

/** Keys up to this length get a cached view of the key buffer (no allocation per key()). */
const MAX_CACHED_VIEW = 256;

/** Cursor over one block. Not safe to share; see the ownership note at the top of the file. */
export class BlockIterator {
  private block: Block = EMPTY_PLACEHOLDER;
  private data: Buffer = EMPTY;
  // data.buffer / data.byteOffset, cached: these getters cost more than building a view.
  private dataAb: ArrayBuffer = EMPTY.buffer as ArrayBuffer;
  private dataBase = 0;
  private restarts: Uint32Array = new Uint32Array(0);
  private limit = 0;
  private readonly bytewise: boolean;

  /** Offset of the current entry; === limit when not valid. */
  private cur = 0;
  private nextOff = 0;
  private restartIndex = 0;

  /** The current key is keyBuf[0, kLen); keyViews[n] is a cached view of keyBuf[0, n). */
  private keyBuf = Buffer.allocUnsafeSlow(128);
  private keyViews: (Buffer | undefined)[] = [];
  private kLen = 0;
  private valOff = 0;
  private valLen = 0;

  constructor(private readonly compare: Compare = bytewiseCompare) {
    this.bytewise = compare === bytewiseCompare || compare === Buffer.compare;
  }

  /** Points this iterator (and its key buffer) at another block; leaves it not valid. */
  reset(block: Block): this {
    this.block = block;
    this.data = block.data;
    this.dataAb = block.data.buffer as ArrayBuffer;
    this.dataBase = block.data.byteOffset;
    this.restarts = block.restarts;
    this.limit = block.limit;
    this.invalidate();
    return this;
  }

  valid(): boolean {
    return this.cur < this.limit;
  }

  /** REQUIRES: valid(). A view of the iterator's key buffer: its bytes change when the
   *  iterator moves, and the same Buffer object may be returned again for a later key of the
   *  same length. Copy to keep. */
  key(): Buffer {
    const n = this.kLen;
    if (n > MAX_CACHED_VIEW) return bufferView(this.keyBuf.buffer as ArrayBuffer, this.keyBuf.byteOffset, n);
    let v = this.keyViews[n];
    if (v === undefined) {
      v = bufferView(this.keyBuf.buffer as ArrayBuffer, this.keyBuf.byteOffset, n);
      this.keyViews[n] = v;
    }
    return v;
  }

  /** REQUIRES: valid(). Aliases the block: copy before keeping, never mutate. */
  value(): Buffer {
    return bufferView(this.dataAb, this.dataBase + this.valOff, this.valLen);
  }

  /** @internal Raw value location, for allocation-free decoding of index entries. */
  get valueStart(): number {
    return this.valOff;
  }
  /** @internal */
  get valueEnd(): number {
    return this.valOff + this.valLen;
  }
  /** @internal The block contents the value offsets refer to. */
  get blockData(): Buffer {
    return this.data;
  }

  seekToFirst(): void {
    if (this.restarts.length === 0) return this.invalidate();
    this.seekToRestart(0);
  }

  seekToLast(): void {
    const n = this.restarts.length;
    if (n === 0) return this.invalidate();
    this.seekToRestart(n - 1);
    while (this.nextOff < this.limit) this.decode(this.nextOff);
  }

  /** Positions at the first entry with key >= target, or not valid if there is none. */
  seek(target: Buffer): void {
    const restarts = this.restarts;
    if (restarts.length === 0) return this.invalidate();
    // Binary search for the last restart point whose key is < target.
    let left = 0;
    let right = restarts.length - 1;
    while (left < right) {
      const mid = (left + right + 1) >>> 1;
      if (this.compareRestartKey(mid, target) < 0) left = mid;
      else right = mid - 1;
    }
    this.seekToRestart(left);
    // Linear scan within the restart interval.
    for (;;) {
      if (this.compareCurrent(target) >= 0) return;
      if (this.nextOff >= this.limit) return this.invalidate();
      this.stepForward();
    }
  }

  /** Positions at the last entry with key <= target, or not valid if there is none. */
  seekForPrev(target: Buffer): void {
    this.seek(target);
    if (!this.valid()) this.seekToLast();
    else if (this.compareCurrent(target) > 0) this.prev();
  }

  /** REQUIRES: valid(). */
  next(): void {
    if (this.nextOff >= this.limit) return this.invalidate();
    this.stepForward();
  }

  /** REQUIRES: valid(). Decodes forward from the restart point before the current entry. */
  prev(): void {
    const original = this.cur;
    const restarts = this.restarts;
    while (restarts[this.restartIndex]! >= original) {
      if (this.restartIndex === 0) return this.invalidate();
      this.restartIndex--;
    }
    this.seekToRestart(this.restartIndex);
    while (this.nextOff < original) this.decode(this.nextOff);
  }

  /** REQUIRES: valid(). compare(key(), target), without allocating for bytewise order. */
  compareCurrent(target: Buffer): number {
    if (this.bytewise) return compareRange(this.keyBuf, 0, this.kLen, target, 0, target.length);
    return this.compare(this.key(), target);
  }

  private invalidate(): void {
    this.cur = this.limit;
    this.nextOff = this.limit;
    this.restartIndex = this.restarts.length;
    this.kLen = 0;
  }

  private stepForward(): void {
    this.decode(this.nextOff);
    const restarts = this.restarts;
    while (this.restartIndex + 1 < restarts.length && restarts[this.restartIndex + 1]! <= this.cur) this.restartIndex++;
  }

  private seekToRestart(i: number): void {
    this.restartIndex = i;
    this.kLen = 0; // a restart entry must not share a prefix: decode() rejects shared > 0
    this.decode(this.restarts[i]!);
  }

  private compareRestartKey(i: number, target: Buffer): number {
    const d = this.data;
    const off = this.restarts[i]!;
    let p = off;
    let shared: number;
    let unshared: number;
    if (p + 3 <= this.limit && (d[p]! | d[p + 1]! | d[p + 2]!) < 0x80) {
      shared = d[p]!;
      unshared = d[p + 1]!;
      p += 3;
    } else {
      [shared, p] = this.varint(p, off);
      [unshared, p] = this.varint(p, off);
      [, p] = this.varint(p, off);
    }
    if (shared !== 0) this.corrupt(off, 'restart entry has a shared key prefix');
    if (p + unshared > this.limit) this.corrupt(off, 'restart key crosses the restart array');
    if (this.bytewise) return compareRange(d, p, p + unshared, target, 0, target.length);
    return this.compare(bufferView(this.dataAb, this.dataBase + p, unshared), target);
  }

  /** Decodes the entry at `off` into the current position; keyBuf must hold the previous key. */
  private decode(off: number): void {
    const d = this.data;
    const limit = this.limit;
    let p = off;
    let shared: number;
    let unshared: number;
    let vlen: number;
    if (p + 3 <= limit && (d[p]! | d[p + 1]! | d[p + 2]!) < 0x80) {
      shared = d[p]!;
      unshared = d[p + 1]!;
      vlen = d[p + 2]!;
      p += 3;
    } else {
      [shared, p] = this.varint(p, off);
      [unshared, p] = this.varint(p, off);
      [vlen, p] = this.varint(p, off);
    }
    if (p + unshared + vlen > limit) this.corrupt(off, 'entry crosses the restart array');
    if (shared > this.kLen) this.corrupt(off, `shared prefix ${shared} longer than the previous key (${this.kLen})`);
    const total = shared + unshared;
    if (total > this.keyBuf.length) this.growKeyBuf(total, shared);
    copyRange(d, p, p + unshared, this.keyBuf, shared);
    this.kLen = total;
    this.cur = off;
    this.valOff = p + unshared;
    this.valLen = vlen;
    this.nextOff = this.valOff + vlen;
  }

  /** Replaces keyBuf by one of at least `size` bytes, keeping its first `keep` bytes. */
  private growKeyBuf(size: number, keep: number): void {
    const nb = Buffer.allocUnsafeSlow(Math.max(size, this.keyBuf.length * 2));
    copyRange(this.keyBuf, 0, keep, nb, 0);
    this.keyBuf = nb;
    this.keyViews = [];
  }

  private varint(p: number, entryOff: number): [number, number] {
    try {
      return readVarint(this.data, p, this.limit);
    } catch (err) {
      if (err instanceof DecodeError) this.corrupt(entryOff, `bad varint in entry: ${err.message}`);
      throw err;
    }
  }

  private corrupt(entryOff: number, detail: string): never {
    const b = this.block;
    this.invalidate();
    throw new CorruptionError(b.file, b.offset, `${detail} (entry at block offset ${entryOff})`);
  }
}

/** An empty block, for iterators that have not loaded one yet. */
export const EMPTY_BLOCK = EMPTY_PLACEHOLDER;

