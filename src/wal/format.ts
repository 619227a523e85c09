// Constants of the log record format shared by every append-only log in distcache (LSM WAL,
// manifest, node-wide Raft log, audit log). Byte layout: see ./FORMAT.md.
// These values reach disk: DO NOT CHANGE THEM; retire numbers, never reuse them.

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
}

/** "DCLOG" + 0x00 0x0d 0x0a: the file header payload's leading magic. */
export const FILE_MAGIC = Buffer.from([0x44, 0x43, 0x4c, 0x4f, 0x47, 0x00, 0x0d, 0x0a]);
export const FORMAT_VERSION = 1;
/** magic(8) | version u32 | file number u64 */
export const FILE_HEADER_PAYLOAD_SIZE = 20;
