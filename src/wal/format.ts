// Constants (and the checksum seeds) of the log record format shared by every append-only log in distcache (LSM WAL,
// manifest, node-wide Raft log, audit log). Byte layout: see ./FORMAT.md.
// These values reach disk: DO NOT CHANGE THEM; retire numbers, never reuse them.
import { writeU64 } from '../util/bytes.js';
import { crc32c } from '../util/crc32c.js';

/** Logs are a sequence of 32 KiB blocks; a record never straddles a block without fragmenting. */
export const BLOCK_SIZE = 32 * 1024;

/** checksum u32 | length u16 | type u8 */
export const HEADER_SIZE = 7;

export const enum RecordType {
  /** Zero bytes: preallocated or never-written space. Never written deliberately. */
  Zero = 0,
  Full = 1,
  First = 2,
  Middle = 3,
  Last = 4,
  /** The first record of every log file: magic, format version, file number. */
  FileHeader = 5,
  /** Version 2 (recyclable) files only: the segment ends here; the bytes after it are left
   *  over from the file's earlier life. Written when the segment is retired or the log closed. */
  SegmentEnd = 6,
}

/** "DCLOG" + 0x00 0x0d 0x0a: the file header payload's leading magic. */
export const FILE_MAGIC = Buffer.from([0x44, 0x43, 0x4c, 0x4f, 0x47, 0x00, 0x0d, 0x0a]);
/** Plain log files: every fragment's checksum covers its type and data. */
export const FORMAT_VERSION = 1;
/** Recyclable log files (a retired segment's file reused for a new one, overwritten in place):
 *  fragments after the file header have checksums seeded with the file number, so records left
 *  over from the file's earlier life never verify. */
export const FORMAT_VERSION_RECYCLABLE = 2;
/** magic(8) | version u32 | file number u64 */
export const FILE_HEADER_PAYLOAD_SIZE = 20;

/**
 * Where each record type's checksum starts: crc32c of the type byte, preceded for a recyclable
 * file by its number (8 bytes, little-endian). One native call fewer per fragment.
 */
export function typeCrcs(recycledNumber?: number): number[] {
  let seed = 0;
  if (recycledNumber !== undefined) {
    const n = Buffer.alloc(8);
    writeU64(n, recycledNumber, 0);
    seed = crc32c(n);
  }
  return [0, 1, 2, 3, 4, 5, 6].map((t) => crc32c(Buffer.from([t]), seed));
}
