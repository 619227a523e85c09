// A VersionEdit: one change to the engine's file set, as recorded in the MANIFEST log.
// Layout: a sequence of (tag: varint, fields) — see ./MANIFEST.md for the full grammar.
// Tags are written to disk: DO NOT CHANGE their numbers; retire, never reuse.
import { BufReader, BufWriter, DecodeError } from '../util/bytes.js';

export const enum Tag {
  Comparator = 1,
  LogNumber = 2,
  NextFileNumber = 3,
  LastSequence = 4,
  CompactPointer = 5,
  DeletedFile = 6,
  NewFile = 7,
}

export interface FileMeta {
  number: number;
  size: number;
  /** Smallest and largest internal keys in the file. */
  smallest: Buffer;
  largest: Buffer;
}

export interface VersionEdit {
  comparator?: string;
  /** WAL segments numbered below this hold nothing that is not in SSTables. */
  logNumber?: number;
  nextFileNumber?: number;
  lastSequence?: number;
  compactPointers: { level: number; key: Buffer }[];
  deletedFiles: { level: number; number: number }[];
  newFiles: { level: number; file: FileMeta }[];
}

export function emptyEdit(): VersionEdit {
  return { compactPointers: [], deletedFiles: [], newFiles: [] };
}

export function encodeEdit(e: VersionEdit): Buffer {
  const w = new BufWriter(128);
  if (e.comparator !== undefined) w.varint(Tag.Comparator).lenBytes(Buffer.from(e.comparator));
  if (e.logNumber !== undefined) w.varint(Tag.LogNumber).varint(e.logNumber);
  if (e.nextFileNumber !== undefined) w.varint(Tag.NextFileNumber).varint(e.nextFileNumber);
  if (e.lastSequence !== undefined) w.varint(Tag.LastSequence).varint(e.lastSequence);
  for (const p of e.compactPointers) w.varint(Tag.CompactPointer).varint(p.level).lenBytes(p.key);
  for (const d of e.deletedFiles) w.varint(Tag.DeletedFile).varint(d.level).varint(d.number);
  for (const { level, file } of e.newFiles) {
    w.varint(Tag.NewFile).varint(level).varint(file.number).varint(file.size).lenBytes(file.smallest).lenBytes(file.largest);
  }
  return w.finish();
}

/** Decodes an edit; throws DecodeError on malformed or unknown tags (a manifest is not
 *  allowed to hold what this version cannot interpret). Key buffers are copies. */
export function decodeEdit(record: Buffer): VersionEdit {
  const e = emptyEdit();
  const r = new BufReader(record);
  while (r.remaining > 0) {
    const tag = r.varint();
    switch (tag) {
      case Tag.Comparator:
        e.comparator = r.lenBytes().toString();
        break;
      case Tag.LogNumber:
        e.logNumber = r.varint();
        break;
      case Tag.NextFileNumber:
        e.nextFileNumber = r.varint();
        break;
      case Tag.LastSequence:
        e.lastSequence = r.varint();
        break;
      case Tag.CompactPointer:
        e.compactPointers.push({ level: r.varint(), key: Buffer.from(r.lenBytes()) });
        break;
      case Tag.DeletedFile:
        e.deletedFiles.push({ level: r.varint(), number: r.varint() });
        break;
      case Tag.NewFile: {
        const level = r.varint();
        const number = r.varint();
        const size = r.varint();
        const smallest = Buffer.from(r.lenBytes());
        const largest = Buffer.from(r.lenBytes());
        e.newFiles.push({ level, file: { number, size, smallest, largest } });
        break;
      }
      default:
        throw new DecodeError(`unknown version edit tag ${tag}`);
    }
  }
  return e;
}
