// Byte-level encoding helpers: varints, fixed-width little-endian integers, and a growable
// writer / bounds-checked reader over Buffers. All multi-byte integers on disk are little-endian.
// u64 values are JS numbers guarded by Number.isSafeInteger (sequence numbers, offsets and
// versions never exceed 2^53 in practice); they are written as two u32 halves, never shifted.

export const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const EMPTY_BUFFER = Buffer.alloc(0);

export class BufWriter {
  private buf: Buffer;
  private pos = 0;

  /** A writer over a new buffer of `initial` bytes, or over `initial` itself (a buffer reused
   *  from an earlier writer: see buffer()). */
  constructor(initial: number | Buffer = 256) {
    this.buf = typeof initial === 'number' ? Buffer.allocUnsafe(initial) : initial;
  }

  /** The buffer written into now (a larger one after growth); for reuse once every view of it
   *  is dead. */
  buffer(): Buffer {
    return this.buf;
  }

  get length(): number {
    return this.pos;
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let cap = Math.max(this.buf.length * 2, 64);
    while (cap < this.pos + extra) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  u64(v: number): this {
    this.ensure(8);
    writeU64(this.buf, v, this.pos);
    this.pos += 8;
    return this;
  }

  varint(v: number): this {
    this.ensure(10);
    this.pos = writeVarint(this.buf, v, this.pos);
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** varint length followed by the bytes. */
  lenBytes(b: Uint8Array): this {
    this.varint(b.length);
    return this.bytes(b);
  }

  reset(): void {
    this.pos = 0;
  }

  /** A view of the written bytes; valid until the next write or reset. */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** A view of the bytes written from `start` on. Later writes never change them (growth copies
   *  into a new buffer and leaves this one be); a reset does. */
  viewFrom(start: number): Buffer {
    return this.buf.subarray(start, this.pos);
  }

  /**
   * The written bytes, owned by the caller; the writer starts over empty. When the bytes fill
   * the writer's buffer but for a little slack, the buffer itself is handed over: writers of
   * hot records (Raft entries, log records) are sized from the record's length up front, and a
   * copy of a 4 KiB value per record was pure allocation and memcpy. Otherwise they are copied,
   * so a result never pins a mostly-empty buffer.
   */
  finish(): Buffer {
    const slack = this.buf.length - this.pos;
    let out: Buffer;
    if (slack <= 64 + (this.pos >>> 4)) {
      out = this.buf.subarray(0, this.pos);
      this.buf = EMPTY_BUFFER;
    } else {
      out = Buffer.from(this.buf.subarray(0, this.pos));
    }
    this.pos = 0;
    return out;
  }
}

/** Thrown by BufReader on malformed input; callers translate it to CorruptionError with a file
 *  name and offset, or to an INVALID_ARGUMENT error for network input. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

export class BufReader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new DecodeError(`need ${n} bytes at ${this.pos}, have ${this.end - this.pos}`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): number {
    this.need(8);
    const v = readU64(this.buf, this.pos);
    this.pos += 8;
    return v;
  }

  /** Ids, terms and indexes of every Raft message and log record come through here: decoded
   *  without readVarint's tuple (see decodeVarint). */
  varint(): number {
    const v = decodeVarint(this.buf, this.pos, this.end);
    this.pos = varintEnd;
    return v;
  }

  /** A view into the underlying buffer (aliases it: copy before keeping). */
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  lenBytes(): Buffer {
    return this.bytes(this.varint());
  }
}

export function writeU64(buf: Buffer, v: number, off: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 out of safe range: ${v}`);
  buf.writeUInt32LE(v % 0x1_0000_0000, off);
  buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), off + 4);
}

export function readU64(buf: Buffer, off: number): number {
  const lo = buf.readUInt32LE(off);
  const hi = buf.readUInt32LE(off + 4);
  if (hi > 0x1fffff) throw new DecodeError(`u64 exceeds 2^53 at ${off}`);
  return hi === 0 ? lo : hi * 0x1_0000_0000 + lo;
}

/**
 * `v`, a non-negative integer, in the form V8 keeps small integers in (a Smi) where it fits.
 * A number computed in floating point (a product with 2^32, a readDoubleBE, an element of a
 * double array) is a heap number even when it is 5. Stored into an object field that held
 * small integers, it changes ("deprecates") the hidden class of every object built at that
 * site, and V8 throws away the optimized code that embedded the old class: under load that
 * kept the host loop's hottest functions from ever being optimized (each attempt, ~100-250 ms
 * of compiler thread, aborted with "Maps became deprecated during optimization").
 */
export function smallInt(v: number): number {
  return v < 0x40000000 ? v | 0 : v;
}

/**
 * The other side of smallInt: a zero that V8 stores as a double. A field that starts as 0 (a
 * Smi) and later takes a fraction (milliseconds) or grows past 2^30 (byte counters) changes the
 * hidden class of its object at that moment, mid-run, and every optimized function that embedded
 * the old one is thrown away. Counters of that kind start at DOUBLE_ZERO. (-0 === 0, and it
 * prints and serializes as 0.)
 */
export const DOUBLE_ZERO = -0;

/** LEB128 unsigned varint, up to 2^53. Returns the offset after the value. */
export function writeVarint(buf: Uint8Array, v: number, off: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of safe range: ${v}`);
  while (v >= 0x80) {
    buf[off++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[off++] = v;
  return off;
}

export function readVarint(buf: Uint8Array, off: number, end = buf.length): [value: number, next: number] {
  const v = decodeVarint(buf, off, end);
  return [v, varintEnd];
}

/** The offset after the varint decodeVarint read last (set before it returns). */
let varintEnd = 0;

/**
 * Decodes the varint at `off` and returns its value (a Smi where it fits: see smallInt); the
 * offset after it is left in `varintEnd`. No [value, next] tuple: once one value past the Smi
 * range went through a tuple literal, its allocation site makes double arrays for good, and
 * every value read back from one is a heap number.
 */
function decodeVarint(buf: Uint8Array, off: number, end: number): number {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (off >= end) throw new DecodeError(`truncated varint at ${off}`);
    const b = buf[off++]!;
    result += (b & 0x7f) * mul;
    if (b < 0x80) {
      if (!Number.isSafeInteger(result)) throw new DecodeError('varint exceeds 2^53');
      varintEnd = off;
      return smallInt(result);
    }
    mul *= 0x80;
  }
  throw new DecodeError(`varint too long at ${off}`);
}

export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** Bytewise comparison (memcmp order), the order of all user keys. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

export function toBuffer(v: Uint8Array | string): Buffer {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (Buffer.isBuffer(v)) return v;
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
