// SSTable on-disk constants and the small fixed structures: BlockHandle, Footer, block trailer,
// compression types, and the one function that turns stored block bytes into verified contents.
// The byte layout is specified in ./FORMAT.md; every constant here that reaches disk is frozen:
// DO NOT CHANGE THESE VALUES (add new ones, bump FORMAT_VERSION only for incompatible changes).
import { compressSync, uncompressSync } from 'lz4-napi';
import { crc32c, maskCrc, unmaskCrc } from '../util/crc32c.js';
import { CorruptionError } from '../util/errors.js';
import { writeVarint, DecodeError, readVarint } from '../util/bytes.js';

/** Format version written by this code. Readers reject larger versions. */
export const FORMAT_VERSION = 1;

/** The last 8 bytes of every table: "\x89DCSST\r\n" (PNG style: high bit, name, CRLF). */
export const MAGIC = Buffer.from([0x89, 0x44, 0x43, 0x53, 0x53, 0x54, 0x0d, 0x0a]);

/** Max encoded size of one BlockHandle: two varint64s of up to 10 bytes each. */
export const MAX_HANDLE_LENGTH = 20;

/** Footer: metaindex handle, index handle, zero padding to 40 bytes, version u32, crc u32, magic. */
export const FOOTER_HANDLES_LENGTH = 2 * MAX_HANDLE_LENGTH; // 40
export const FOOTER_SIZE = FOOTER_HANDLES_LENGTH + 4 + 4 + 8; // 56

/** Block trailer: 1 byte compression type + 4 byte masked crc32c over (stored contents, type). */
export const BLOCK_TRAILER_SIZE = 5;

/** Per-block compression. Values are written to disk: never renumber, never reuse. */
export enum CompressionType {
  None = 0,
  /** u32 LE uncompressed length, then one LZ4 *block* (not frame) as produced by lz4-napi. */
  Lz4 = 1,
}

/** Compress a block only if it saves at least 1/8 (12.5%) of its size. */
export const MIN_COMPRESSION_SAVING_SHIFT = 3;

/** Sanity bound on a decompressed block (a block holds one or more entries; values are bounded
 *  far below this by the engine). Larger claims are treated as corruption. */
export const MAX_UNCOMPRESSED_BLOCK = 1 << 30;

/** Metaindex keys (bytewise-sorted UTF-8). Readers skip names they do not know. */
export const META_FILTER_KEY = 'distcache.bloom.xxh32';
export const META_PROPERTIES_KEY = 'distcache.properties';

export interface BlockHandle {
  /** File offset of the block's first byte. */
  offset: number;
  /** Stored length of the block contents, excluding the 5-byte trailer. */
  size: number;
}

export function encodeHandle(h: BlockHandle, out: Buffer = Buffer.allocUnsafe(MAX_HANDLE_LENGTH)): Buffer {
  const end = writeVarint(out, h.size, writeVarint(out, h.offset, 0));
  return out.subarray(0, end);
}

/** Decodes a handle at buf[off..end); returns the handle and the offset after it. Throws
 *  DecodeError on malformed input (callers add file and offset). */
export function decodeHandle(buf: Buffer, off: number, end: number): [BlockHandle, number] {
  const [offset, p] = readVarint(buf, off, end);
  const [size, q] = readVarint(buf, p, end);
  return [{ offset, size }, q];
}

export interface Footer {
  metaindex: BlockHandle;
  index: BlockHandle;
  version: number;
}

export function encodeFooter(f: Footer): Buffer {
  const out = Buffer.alloc(FOOTER_SIZE); // zero padding is part of the format
  let p = writeVarint(out, f.metaindex.offset, 0);
  p = writeVarint(out, f.metaindex.size, p);
  p = writeVarint(out, f.index.offset, p);
  writeVarint(out, f.index.size, p);
  out.writeUInt32LE(f.version, FOOTER_HANDLES_LENGTH);
  out.writeUInt32LE(maskCrc(crc32c(out.subarray(0, FOOTER_HANDLES_LENGTH + 4))), FOOTER_HANDLES_LENGTH + 4);
  MAGIC.copy(out, FOOTER_HANDLES_LENGTH + 8);
  return out;
}

/** Decodes and checks the footer; `fileOffset` is where it starts in the file (for errors). */
export function decodeFooter(buf: Buffer, file: string, fileOffset: number): Footer {
  if (buf.length !== FOOTER_SIZE) throw new CorruptionError(file, fileOffset, `footer is ${buf.length} bytes, want ${FOOTER_SIZE}`);
  if (!buf.subarray(FOOTER_HANDLES_LENGTH + 8).equals(MAGIC)) {
    throw new CorruptionError(file, fileOffset + FOOTER_HANDLES_LENGTH + 8, 'bad magic number: not an sstable or truncated');
  }
  const stored = unmaskCrc(buf.readUInt32LE(FOOTER_HANDLES_LENGTH + 4));
  if (stored !== crc32c(buf.subarray(0, FOOTER_HANDLES_LENGTH + 4))) {
    throw new CorruptionError(file, fileOffset, 'footer checksum mismatch');
  }
  const version = buf.readUInt32LE(FOOTER_HANDLES_LENGTH);
  if (version < 1 || version > FORMAT_VERSION) {
    throw new CorruptionError(file, fileOffset + FOOTER_HANDLES_LENGTH, `unsupported table format version ${version}`);
  }
  try {
    const [metaindex, p] = decodeHandle(buf, 0, FOOTER_HANDLES_LENGTH);
    const [index] = decodeHandle(buf, p, FOOTER_HANDLES_LENGTH);
    return { metaindex, index, version };
  } catch (err) {
    if (err instanceof DecodeError) throw new CorruptionError(file, fileOffset, `bad footer handle: ${err.message}`);
    throw err;
  }
}

const typeByte = Buffer.alloc(1);

/** Masked crc32c of (stored contents || type byte), as kept in the block trailer. */
export function blockChecksum(stored: Uint8Array, type: number): number {
  typeByte[0] = type;
  return maskCrc(crc32c(typeByte, crc32c(stored)));
}

/** Picks the stored form of a block: LZ4 when allowed and it saves >= 12.5%, else raw.
 *  Returns the stored bytes (which may alias `raw`) and the type. */
export function compressBlock(raw: Buffer, allowCompression: boolean): [stored: Buffer, type: CompressionType] {
  if (allowCompression && raw.length >= 32) {
    const c = compressSync(raw);
    if (c.length <= raw.length - (raw.length >>> MIN_COMPRESSION_SAVING_SHIFT)) return [c, CompressionType.Lz4];
  }
  return [raw, CompressionType.None];
}

/** Verifies the trailer of `buf` (stored contents + trailer, as read from `offset`) and returns
 *  the block contents, decompressed. The result may alias `buf`. */
export function decodeBlockContents(buf: Buffer, file: string, offset: number, verifyChecksum: boolean): Buffer {
  const size = buf.length - BLOCK_TRAILER_SIZE;
  if (size < 0) throw new CorruptionError(file, offset, 'block shorter than its trailer');
  const stored = buf.subarray(0, size);
  const type = buf[size]!;
  if (verifyChecksum) {
    const want = buf.readUInt32LE(size + 1);
    if (blockChecksum(stored, type) !== want) throw new CorruptionError(file, offset, `block checksum mismatch (size ${size})`);
  }
  switch (type) {
    case CompressionType.None:
      return stored;
    case CompressionType.Lz4: {
      if (size < 4) throw new CorruptionError(file, offset, 'lz4 block shorter than its length prefix');
      const ulen = stored.readUInt32LE(0);
      if (ulen > MAX_UNCOMPRESSED_BLOCK) throw new CorruptionError(file, offset, `lz4 block claims ${ulen} bytes`);
      let out: Buffer;
      try {
        out = uncompressSync(stored);
      } catch (err) {
        throw new CorruptionError(file, offset, `lz4 decompression failed: ${(err as Error).message}`);
      }
      if (out.length !== ulen) throw new CorruptionError(file, offset, `lz4 block decompressed to ${out.length} bytes, want ${ulen}`);
      return out;
    }
    default:
      throw new CorruptionError(file, offset, `unknown block compression type ${type}`);
  }
}
