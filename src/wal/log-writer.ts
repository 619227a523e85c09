// Encodes records into the block/fragment framing of ./FORMAT.md. Pure encoding into memory:
// the caller decides when the produced bytes reach the file (see wal.ts for group commit and
// manifest.ts for the manifest's use). Keeps the position within the current 32 KiB block.
import { crc32c, maskCrc } from '../util/crc32c.js';
import { writeU64 } from '../util/bytes.js';
import {
  BLOCK_SIZE,
  FILE_HEADER_PAYLOAD_SIZE,
  FILE_MAGIC,
  FORMAT_VERSION,
  FORMAT_VERSION_RECYCLABLE,
  HEADER_SIZE,
  RecordType,
  typeCrcs,
} from './format.js';

const PLAIN_TYPE_CRC = typeCrcs();

export class LogEncoder {
  /** Offset within the current block of the next byte to be produced. */
  private blockOffset: number;
  private chunks: Buffer[] = [];
  private pending = 0;
  /** checksum seeds of the fragments after the file header */
  private typeCrc = PLAIN_TYPE_CRC;

  /** `fileOffset` is the length of the file the produced bytes will be appended to. */
  constructor(fileOffset = 0) {
    this.blockOffset = fileOffset % BLOCK_SIZE;
  }

  /** Bytes produced and not yet taken. */
  get pendingBytes(): number {
    return this.pending;
  }

  /** Frames the file header record; must be the first record of a new file. With `recyclable`
   *  the file is version 2: the header itself is checksummed as in version 1 (readable before
   *  the number is known), every later fragment with a checksum seeded by `fileNumber`. */
  addFileHeader(fileNumber: number, recyclable = false): void {
    const payload = Buffer.alloc(FILE_HEADER_PAYLOAD_SIZE);
    FILE_MAGIC.copy(payload, 0);
    payload.writeUInt32LE(recyclable ? FORMAT_VERSION_RECYCLABLE : FORMAT_VERSION, 8);
    writeU64(payload, fileNumber, 12);
    this.typeCrc = PLAIN_TYPE_CRC;
    this.emit(RecordType.FileHeader, payload, 0, payload.length);
    if (recyclable) this.typeCrc = typeCrcs(fileNumber);
  }

  /** Frames the SEGMENT_END record of a recyclable file: nothing after it belongs to this file. */
  addSegmentEnd(): void {
    this.padBlockTail();
    this.emit(RecordType.SegmentEnd, Buffer.alloc(0), 0, 0);
  }

  /** Frames one logical record, fragmenting it across blocks as needed. With `owned`, the
   *  caller promises never to modify `record` again, and its bytes are not copied. */
  add(record: Uint8Array, owned = false): void {
    let left = record.length;
    let pos = 0;
    let first = true;
    do {
      this.padBlockTail();
      const avail = BLOCK_SIZE - this.blockOffset - HEADER_SIZE;
      const fragment = Math.min(left, avail);
      const last = fragment === left;
      const type = first && last ? RecordType.Full : first ? RecordType.First : last ? RecordType.Last : RecordType.Middle;
      this.emit(type, record, pos, fragment, owned);
      pos += fragment;
      left -= fragment;
      first = false;
    } while (left > 0);
  }

  /** Too little room left in the block for a header: pad the block trailer with zeros. */
  private padBlockTail(): void {
    const leftover = BLOCK_SIZE - this.blockOffset;
    if (leftover < HEADER_SIZE) {
      if (leftover > 0) this.push(Buffer.alloc(leftover));
      this.blockOffset = 0;
    }
  }

  /** Takes the bytes produced so far as the framing's pieces, in order (headers and record
   *  bodies; a writev hands them to the file without concatenating them first). */
  takeChunks(): Buffer[] {
    const out = this.chunks;
    this.chunks = [];
    this.pending = 0;
    return out;
  }

  /** Takes the bytes produced so far, as one Buffer. */
  take(): Buffer {
    const out = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.pending);
    this.chunks = [];
    this.pending = 0;
    return out;
  }

  private emit(type: RecordType, data: Uint8Array, start: number, length: number, owned = false): void {
    const header = Buffer.allocUnsafe(HEADER_SIZE);
    const body = data.subarray(start, start + length);
    const crc = crc32c(body, this.typeCrc[type]!);
    header.writeUInt32LE(maskCrc(crc), 0);
    header.writeUInt16LE(length, 4);
    header[6] = type;
    this.push(header);
    // Copy unless owned: the caller may reuse its buffer once add() returns.
    if (length > 0) this.push(owned ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : Buffer.from(body));
    this.blockOffset += HEADER_SIZE + length;
  }

  private push(b: Buffer): void {
    this.chunks.push(b);
    this.pending += b.length;
  }
}
