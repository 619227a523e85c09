// BlockBuilder: encodes sorted key/value entries into one block with shared-prefix key
// compression and restart points. Used for data, index, metaindex and properties blocks.
// Layout (see ./FORMAT.md "Block contents"):
//   entry*   entry := shared:varint32 unshared:varint32 value_len:varint32 key_delta value
//   restart: u32 LE * num_restarts   (offset of each restart entry, whose shared = 0)
//   num_restarts: u32 LE
// Contract: (add*) finish, then reset() before reuse. Keys must be added in increasing order;
// BlockBuilder does not check that (TableBuilder does, with the table's comparator).
import { writeVarint } from '../util/bytes.js';
import { copyRange } from '../util/byte-range.js';

export class BlockBuilder {
  private buf: Buffer;
  private pos = 0;
  private restarts: number[] = [];
  private counter = 0;
  private lastKey: Buffer;
  private lastKeyLen = 0;
  private entries = 0;

  constructor(
    private readonly restartInterval: number,
    initialCapacity = 8192,
  ) {
    if (!Number.isInteger(restartInterval) || restartInterval < 1) throw new RangeError(`restartInterval must be >= 1, got ${restartInterval}`);
    this.buf = Buffer.allocUnsafe(initialCapacity);
    this.lastKey = Buffer.allocUnsafe(64);
  }

  get empty(): boolean {
    return this.entries === 0;
  }

  get numEntries(): number {
    return this.entries;
  }

  /** Size of the block if finished now (entries + restart array + count). */
  get estimatedSize(): number {
    return this.pos + 4 * this.restarts.length + 4;
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  add(key: Buffer, value: Buffer): void {
    let shared = 0;
    if (this.counter < this.restartInterval && this.entries > 0) {
      const lk = this.lastKey;
      const max = Math.min(this.lastKeyLen, key.length);
      while (shared < max && lk[shared] === key[shared]) shared++;
    } else {
      this.restarts.push(this.pos);
      this.counter = 0;
    }
    const unshared = key.length - shared;
    this.ensure(15 + unshared + value.length);
    const b = this.buf;
    let p = this.pos;
    // Single-byte varints are the common case; writeVarint handles the rest.
    if (shared < 0x80) b[p++] = shared;
    else p = writeVarint(b, shared, p);
    if (unshared < 0x80) b[p++] = unshared;
    else p = writeVarint(b, unshared, p);
    if (value.length < 0x80) b[p++] = value.length;
    else p = writeVarint(b, value.length, p);
    copyRange(key, shared, key.length, b, p);
    p += unshared;
    copyRange(value, 0, value.length, b, p);
    this.pos = p + value.length;

    if (key.length > this.lastKey.length) {
      const nk = Buffer.allocUnsafe(Math.max(key.length, this.lastKey.length * 2));
      this.lastKey = nk;
      copyRange(key, 0, key.length, nk, 0);
    } else {
      copyRange(key, shared, key.length, this.lastKey, shared);
    }
    this.lastKeyLen = key.length;
    this.counter++;
    this.entries++;
  }

  /** Appends the restart array and returns the block contents: a view valid until reset(). */
  finish(): Buffer {
    this.ensure(4 * this.restarts.length + 4);
    for (const r of this.restarts) {
      this.buf.writeUInt32LE(r, this.pos);
      this.pos += 4;
    }
    this.buf.writeUInt32LE(this.restarts.length, this.pos);
    this.pos += 4;
    return this.buf.subarray(0, this.pos);
  }

  reset(): void {
    this.pos = 0;
    this.restarts.length = 0;
    this.counter = 0;
    this.lastKeyLen = 0;
    this.entries = 0;
  }
}
