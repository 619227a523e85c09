// Decodes a log file written by LogEncoder (layout: ./FORMAT.md) back into records, verifying
// every fragment's checksum. Recovery policy (the caller chooses per file):
//  - a damaged tail with NO valid record after it is a torn write: with `tolerateTornTail` the
//    records before it are returned and `torn` says where the valid prefix ends;
//  - damage followed by any valid record, or any damage when the tail is not tolerated, is a
//    CorruptionError naming the file and offset. Damage is never skipped silently.
import { closeSync, openSync, promises as fsp, readSync } from 'node:fs';
import { CorruptionError } from '../util/errors.js';
import { crc32c, unmaskCrc } from '../util/crc32c.js';
import { readU64 } from '../util/bytes.js';
import { BLOCK_SIZE, FILE_HEADER_PAYLOAD_SIZE, FILE_MAGIC, FORMAT_VERSION, FORMAT_VERSION_RECYCLABLE, HEADER_SIZE, RecordType, typeCrcs } from './format.js';

const PLAIN_TYPE_CRC = typeCrcs();

export interface LogRecord {
  /** The record's bytes (a view into the file buffer; stays valid, nothing reuses it). */
  data: Buffer;
  /** File offset of the record's first fragment header. */
  offset: number;
}

export interface TornTail {
  /** Where the valid prefix ends; the file should be truncated here. */
  offset: number;
  /** Bytes after `offset` that are dropped. */
  droppedBytes: number;
  reason: string;
}

export interface LogReadResult {
  fileNumber: number;
  /** the file header's format version (0 when the header itself is torn) */
  version: number;
  records: LogRecord[];
  /** End offset of the last complete record (the file header counts as a record). */
  validLength: number;
  torn?: TornTail;
}

export interface LogReadOptions {
  /** Treat damage at the end of the file, with nothing valid after it, as a torn write. */
  tolerateTornTail: boolean;
  /** When given, the file header must carry this number. */
  expectFileNumber?: number;
}

export async function readLogFile(path: string, options: LogReadOptions): Promise<LogReadResult> {
  const buf = await fsp.readFile(path);
  return decodeLog(buf, path, options);
}

interface Fragment {
  type: number;
  data: Buffer;
  end: number;
}

/** Parses the fragment at `pos`, or returns a reason it is not a valid fragment. `typeCrc`:
 *  the file's checksum seeds (typeCrcs). */
function parseFragment(buf: Buffer, pos: number, typeCrc: number[]): Fragment | string {
  const blockRemain = BLOCK_SIZE - (pos % BLOCK_SIZE);
  if (buf.length - pos < HEADER_SIZE) return 'truncated record header';
  const storedCrc = buf.readUInt32LE(pos);
  const length = buf.readUInt16LE(pos + 4);
  const type = buf[pos + 6]!;
  if (type === RecordType.Zero && length === 0 && storedCrc === 0) return 'zero-filled space';
  if (HEADER_SIZE + length > blockRemain) return `record length ${length} overruns its block`;
  const end = pos + HEADER_SIZE + length;
  if (end > buf.length) return 'truncated record body';
  if (type < RecordType.Full || type > RecordType.SegmentEnd) return `unknown record type ${type}`;
  const actual = crc32c(buf.subarray(pos + HEADER_SIZE, end), typeCrc[type]);
  if (unmaskCrc(storedCrc) !== actual) return 'checksum mismatch';
  return { type, data: buf.subarray(pos + HEADER_SIZE, end), end };
}

/**
 * Reads back the one record whose first fragment starts at `offset` of `file` (an offset the
 * writer reported: Wal.appendMany's `positions`), verifying every fragment. For logs that keep
 * an index of their records instead of their bytes (the Raft log's cold entries). Throws a
 * CorruptionError naming the file and offset when the bytes there are not a whole record.
 */
export function readRecordAt(file: string, offset: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const typeCrc = readTypeCrcs(fd, file);
    const parts: Buffer[] = [];
    let pos = offset;
    for (;;) {
      // fragments never straddle a block: read the block holding this one
      const blockStart = pos - (pos % BLOCK_SIZE);
      const block = Buffer.allocUnsafe(BLOCK_SIZE);
      const n = readSync(fd, block, 0, BLOCK_SIZE, blockStart);
      const f = parseFragment(block.subarray(0, n), pos - blockStart, typeCrc);
      if (typeof f === 'string') throw new CorruptionError(file, pos, `reading the record at ${offset}: ${f}`);
      const expected = parts.length === 0 ? [RecordType.Full, RecordType.First] : [RecordType.Middle, RecordType.Last];
      if (!expected.includes(f.type)) throw new CorruptionError(file, pos, `reading the record at ${offset}: fragment of type ${f.type} where ${parts.length === 0 ? 'a record starts' : 'one continues'}`);
      parts.push(f.data);
      if (f.type === RecordType.Full || f.type === RecordType.Last) break;
      pos = blockStart + BLOCK_SIZE; // a FIRST or MIDDLE fragment fills its block
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  } finally {
    closeSync(fd);
  }
}

/** The checksum seeds of the file open at `fd`, from its header (version 1 or 2). */
function readTypeCrcs(fd: number, file: string): number[] {
  const head = Buffer.alloc(HEADER_SIZE + FILE_HEADER_PAYLOAD_SIZE);
  const n = readSync(fd, head, 0, head.length, 0);
  const f = parseFragment(head.subarray(0, n), 0, PLAIN_TYPE_CRC);
  if (typeof f === 'string' || f.type !== RecordType.FileHeader) throw new CorruptionError(file, 0, `reading the file header: ${typeof f === 'string' ? f : `record of type ${f.type}`}`);
  const version = f.data.readUInt32LE(8);
  if (version === FORMAT_VERSION) return PLAIN_TYPE_CRC;
  if (version === FORMAT_VERSION_RECYCLABLE) return typeCrcs(readU64(f.data, 12));
  throw new CorruptionError(file, 0, `unsupported log format version ${version}`);
}

/** True when some valid fragment starts after `badPos`: then the damage is not a torn tail. */
function validDataFollows(buf: Buffer, badPos: number, typeCrc: number[]): boolean {
  // The fragment right after the damaged one, if its header's length is plausible...
  if (buf.length - badPos >= HEADER_SIZE) {
    const len = buf.readUInt16LE(badPos + 4);
    const next = badPos + HEADER_SIZE + len;
    if (next < buf.length && next > badPos && BLOCK_SIZE - (next % BLOCK_SIZE) >= HEADER_SIZE) {
      if (typeof parseFragment(buf, next, typeCrc) !== 'string') return true;
    }
  }
  // ...and the start of every later block: fragments never straddle blocks, so a writer that
  // went on past the damage left a header at a block boundary.
  for (let b = (Math.floor(badPos / BLOCK_SIZE) + 1) * BLOCK_SIZE; b < buf.length; b += BLOCK_SIZE) {
    if (typeof parseFragment(buf, b, typeCrc) !== 'string') return true;
  }
  return false;
}

export function decodeLog(buf: Buffer, file: string, options: LogReadOptions): LogReadResult {
  const records: LogRecord[] = [];
  let fileNumber = -1;
  let validLength = 0;
  let pos = 0;
  let fragments: Buffer[] | null = null;
  let fragmentsStart = 0;
  let version = 0;
  let typeCrc = PLAIN_TYPE_CRC;

  // `offset`: where the damaged record starts (reported); `at`: where the damage was found.
  const damaged = (offset: number, reason: string, at = offset): LogReadResult => {
    // In a recyclable file, left-over bytes from its earlier life follow the valid prefix; their
    // checksums are seeded with another number, so they never count as valid data here.
    const follows = validDataFollows(buf, at, typeCrc);
    if (options.tolerateTornTail && !follows && fileNumber >= 0) {
      return { fileNumber, version, records, validLength, torn: { offset: validLength, droppedBytes: buf.length - validLength, reason } };
    }
    if (options.tolerateTornTail && !follows && offset === 0) {
      // A file that never got its header written completely: an empty log.
      return { fileNumber: options.expectFileNumber ?? 0, version, records, validLength: 0, torn: { offset: 0, droppedBytes: buf.length, reason } };
    }
    throw new CorruptionError(file, offset, follows ? `${reason} (valid records follow: not a torn tail)` : reason);
  };

  while (pos < buf.length) {
    const blockRemain = BLOCK_SIZE - (pos % BLOCK_SIZE);
    if (blockRemain < HEADER_SIZE) {
      pos += blockRemain; // block trailer padding
      continue;
    }
    const frag = parseFragment(buf, pos, typeCrc);
    if (typeof frag === 'string') return damaged(fragments ? fragmentsStart : pos, frag, pos);

    if (fileNumber < 0) {
      if (frag.type !== RecordType.FileHeader || pos !== 0) {
        throw new CorruptionError(file, pos, 'log file does not start with a file header record');
      }
      if (frag.data.length !== FILE_HEADER_PAYLOAD_SIZE || !frag.data.subarray(0, 8).equals(FILE_MAGIC)) {
        throw new CorruptionError(file, pos, 'bad log file magic');
      }
      version = frag.data.readUInt32LE(8);
      if (version !== FORMAT_VERSION && version !== FORMAT_VERSION_RECYCLABLE) throw new CorruptionError(file, pos, `unsupported log format version ${version}`);
      fileNumber = readU64(frag.data, 12);
      if (version === FORMAT_VERSION_RECYCLABLE) typeCrc = typeCrcs(fileNumber);
      if (options.expectFileNumber !== undefined && fileNumber !== options.expectFileNumber) {
        throw new CorruptionError(file, pos, `file header says log ${fileNumber}, expected ${options.expectFileNumber}`);
      }
      validLength = frag.end;
      pos = frag.end;
      continue;
    }

    switch (frag.type) {
      case RecordType.Full:
        if (fragments) throw new CorruptionError(file, pos, 'FULL record inside a fragmented record');
        records.push({ data: frag.data, offset: pos });
        validLength = frag.end;
        break;
      case RecordType.First:
        if (fragments) throw new CorruptionError(file, pos, 'FIRST fragment inside a fragmented record');
        fragments = [frag.data];
        fragmentsStart = pos;
        break;
      case RecordType.Middle:
        if (!fragments) throw new CorruptionError(file, pos, 'MIDDLE fragment without FIRST');
        fragments.push(frag.data);
        break;
      case RecordType.Last:
        if (!fragments) throw new CorruptionError(file, pos, 'LAST fragment without FIRST');
        fragments.push(frag.data);
        records.push({ data: Buffer.concat(fragments), offset: fragmentsStart });
        fragments = null;
        validLength = frag.end;
        break;
      case RecordType.SegmentEnd:
        if (version !== FORMAT_VERSION_RECYCLABLE) throw new CorruptionError(file, pos, 'SEGMENT_END in a version 1 log file');
        if (fragments) throw new CorruptionError(file, pos, 'SEGMENT_END inside a fragmented record');
        // the rest of the file is left over from an earlier life
        return { fileNumber, version, records, validLength: frag.end };
      default:
        throw new CorruptionError(file, pos, `unexpected record type ${frag.type}`);
    }
    pos = frag.end;
  }
  if (fileNumber < 0) return damaged(0, 'empty log file');
  if (fragments) return damaged(fragmentsStart, 'log ends inside a fragmented record', buf.length);
  return { fileNumber, version, records, validLength };
}
