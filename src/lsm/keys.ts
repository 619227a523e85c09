// Internal keys: how the engine orders the many versions of one user key.
//
// An internal key is `user_key || trailer`, trailer = 8 bytes little-endian:
//   low  u32 = (seq mod 2^24) << 8 | kind
//   high u32 = floor(seq / 2^24)
// i.e. the u64 value seq * 256 + kind, written without 64-bit shifts. Order: user key ascending
// (bytewise), then sequence DESCENDING, then kind descending — so a seek to
// (key, snapshotSeq, KIND_SEEK) lands on the newest version visible at that snapshot.
// Sequence numbers stay below 2^53 (Number.isSafeInteger).

import { compareRange } from '../util/byte-range.js';

export const enum Kind {
  Delete = 0,
  Value = 1,
}
/** The largest kind: seeking with it finds every entry of seq <= the given one. */
export const KIND_SEEK = Kind.Value;
export const TRAILER_SIZE = 8;
export const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

export function makeInternalKey(userKey: Uint8Array, seq: number, kind: Kind): Buffer {
  const out = Buffer.allocUnsafe(userKey.length + TRAILER_SIZE);
  out.set(userKey, 0);
  writeTrailer(out, userKey.length, seq, kind);
  return out;
}

export function writeTrailer(buf: Buffer, off: number, seq: number, kind: Kind): void {
  buf.writeUInt32LE((((seq % 0x1000000) << 8) | kind) >>> 0, off);
  buf.writeUInt32LE(Math.floor(seq / 0x1000000), off + 4);
}

/** View of the user key part (aliases `ikey`). */
export function userKeyOf(ikey: Buffer): Buffer {
  return ikey.subarray(0, ikey.length - TRAILER_SIZE);
}

export function seqOf(ikey: Buffer): number {
  const off = ikey.length - TRAILER_SIZE;
  return ikey.readUInt32LE(off + 4) * 0x1000000 + (ikey.readUInt32LE(off) >>> 8);
}

export function kindOf(ikey: Buffer): Kind {
  return ikey[ikey.length - TRAILER_SIZE]! as Kind;
}

/** Internal-key order; the comparator given to SSTables. */
export function compareInternalKeys(a: Buffer, b: Buffer): number {
  const al = a.length - TRAILER_SIZE;
  const bl = b.length - TRAILER_SIZE;
  const c = compareRange(a, 0, al, b, 0, bl);
  if (c !== 0) return c;
  // Same user key: larger trailer (newer) first.
  const ah = a.readUInt32LE(al + 4);
  const bh = b.readUInt32LE(bl + 4);
  if (ah !== bh) return ah > bh ? -1 : 1;
  const alo = a.readUInt32LE(al);
  const blo = b.readUInt32LE(bl);
  return alo === blo ? 0 : alo > blo ? -1 : 1;
}

/** Orders (userKey, seq) pairs the way internal keys are ordered. */
export function compareKeySeq(ak: Uint8Array, aseq: number, bk: Uint8Array, bseq: number): number {
  const c = compareRange(ak, 0, ak.length, bk, 0, bk.length);
  if (c !== 0) return c;
  return aseq === bseq ? 0 : aseq > bseq ? -1 : 1;
}
