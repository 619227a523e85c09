// Order-preserving encoding of multi-level keys (primary + optional secondary) into one byte
// string for storage, and the shard-prefixed storage key.
//
// Format (FROZEN: it reaches disk):
//
//   encoded   = escaped(primary) 0x00 0x01 secondary
//   escaped(p): every 0x00 byte of p becomes 0x00 0xFF; every other byte is copied.
//   secondary: raw bytes, unescaped (it is the last component, so memcmp order is its order).
//
// Example: primary "user:1", secondary "a\0b" -> 75 73 65 72 3a 31 | 00 01 | 61 00 62
//          primary "a\0",    no secondary    -> 61 00 ff | 00 01
//
// Properties (property-tested in test/ring/keys.test.ts):
// - memcmp(encode(p1, s1), encode(p2, s2)) has the sign of compare((p1, s1), (p2, s2)), the
//   lexicographic order of byte tuples: primaries first, then secondaries.
// - Any bytes are allowed in both parts, ':' and 0x00 included.
// - All keys of one primary are contiguous: [primaryPrefixRange(p).gte, .lt) holds exactly them.
// - A key without a secondary IS the key with an empty secondary (as proto3 `bytes` and the
//   C++ API's `MultiLevelKey(p, "")` have it); it sorts first among its primary's keys.
//
// Why it sorts: inside the escaped primary a data byte is either non-zero (> 0x00) or 0x00
// followed by 0xFF, while the terminator is 0x00 0x01 — smaller than both. So a primary that is
// a proper prefix of another sorts first, and bytes that differ compare as they did raw.
//
// Storage key of the node-wide engine: shardKeyPrefix(shardId) (u16, big-endian) ++ encoded, so
// one shard is one contiguous range (shardKeyRange) and order within it is the key order.
import { invalidArgument } from '../util/errors.js';
import { MAX_SHARD_COUNT } from './hash.js';

/** A multi-level key, as decoded. Both Buffers are fresh copies owned by the caller. */
export interface DecodedKey {
  primary: Buffer;
  /** Empty when the key has no secondary. */
  secondary: Buffer;
}

/** Half-open range of encoded keys: gte <= k < lt. */
export interface KeyRange {
  gte: Buffer;
  lt: Buffer;
}

const ESC = 0x00;
const ESC_ZERO = 0xff;
const TERM = 0x01;

function escapedLength(primary: Uint8Array): number {
  let n = primary.length;
  for (let i = 0; i < primary.length; i++) if (primary[i] === ESC) n++;
  return n;
}

/** Writes escaped(primary) at out[0..]; returns the next offset. */
function writeEscaped(out: Buffer, primary: Uint8Array): number {
  let o = 0;
  for (let i = 0; i < primary.length; i++) {
    const b = primary[i]!;
    out[o++] = b;
    if (b === ESC) out[o++] = ESC_ZERO;
  }
  return o;
}

/** Encodes (primary, secondary) into a fresh Buffer; see the file comment for the format. An
 *  absent secondary encodes like an empty one. */
export function encodeKey(primary: Uint8Array, secondary?: Uint8Array): Buffer {
  const sec = secondary ?? EMPTY;
  const out = Buffer.allocUnsafe(escapedLength(primary) + 2 + sec.length);
  let o = writeEscaped(out, primary);
  out[o++] = ESC;
  out[o++] = TERM;
  out.set(sec, o);
  return out;
}

const EMPTY = new Uint8Array(0);

/** Decodes an encoded key. Throws KvError INVALID_ARGUMENT if `encoded` is not a valid encoding (a 0x00 in the
 *  primary not followed by 0xFF or 0x01, or no terminator). */
export function decodeKey(encoded: Uint8Array): DecodedKey {
  const n = encoded.length;
  const primary = Buffer.allocUnsafe(n);
  let p = 0;
  let i = 0;
  for (;;) {
    if (i >= n) throw invalidArgument('malformed encoded key: no primary terminator (0x00 0x01)');
    const b = encoded[i++]!;
    if (b !== ESC) {
      primary[p++] = b;
      continue;
    }
    const next = encoded[i++];
    if (next === ESC_ZERO) {
      primary[p++] = ESC;
    } else if (next === TERM) {
      break;
    } else {
      throw invalidArgument(`malformed encoded key: 0x00 followed by ${next === undefined ? 'end of key' : `0x${next.toString(16).padStart(2, '0')}`} at offset ${i - 2}`);
    }
  }
  return { primary: Buffer.from(primary.subarray(0, p)), secondary: Buffer.from(encoded.subarray(i)) };
}

/** The range holding every key of `primary`: the key without a secondary and all its
 *  secondaries, and nothing else. */
export function primaryPrefixRange(primary: Uint8Array): KeyRange {
  const gte = encodeKey(primary);
  const lt = Buffer.from(gte);
  lt[lt.length - 1] = TERM + 1;
  return { gte, lt };
}

/** Length of the shard prefix of a storage key. */
export const SHARD_PREFIX_BYTES = 2;

function checkShardId(shardId: number): void {
  if (!Number.isInteger(shardId) || shardId < 0 || shardId >= MAX_SHARD_COUNT) {
    throw invalidArgument(`shardId must be an integer in 0..${MAX_SHARD_COUNT - 1}, got ${shardId}`);
  }
}

/** The 2-byte big-endian prefix of every storage key of `shardId`. */
export function shardKeyPrefix(shardId: number): Buffer {
  checkShardId(shardId);
  const out = Buffer.allocUnsafe(SHARD_PREFIX_BYTES);
  out.writeUInt16BE(shardId, 0);
  return out;
}

/** Storage key of (primary, secondary) in `shardId`: shardKeyPrefix(shardId) ++ encodeKey(...).
 *  The caller passes the shard computed by `shardOf(primary, shardCount)`. */
export function encodeShardKey(shardId: number, primary: Uint8Array, secondary?: Uint8Array): Buffer {
  checkShardId(shardId);
  const sec = secondary ?? EMPTY;
  const out = Buffer.allocUnsafe(SHARD_PREFIX_BYTES + escapedLength(primary) + 2 + sec.length);
  out.writeUInt16BE(shardId, 0);
  let o = SHARD_PREFIX_BYTES + writeEscaped(out.subarray(SHARD_PREFIX_BYTES), primary);
  out[o++] = ESC;
  out[o++] = TERM;
  out.set(sec, o);
  return out;
}

/** Splits a storage key into its shard id and decoded key. */
export function decodeShardKey(storageKey: Uint8Array): { shardId: number } & DecodedKey {
  if (storageKey.length < SHARD_PREFIX_BYTES) throw invalidArgument('malformed storage key: shorter than the shard prefix');
  const shardId = (storageKey[0]! << 8) | storageKey[1]!;
  return { shardId, ...decodeKey(storageKey.subarray(SHARD_PREFIX_BYTES)) };
}

/** The range holding every storage key of `shardId`. */
export function shardKeyRange(shardId: number): KeyRange {
  checkShardId(shardId);
  const gte = Buffer.allocUnsafe(SHARD_PREFIX_BYTES);
  gte.writeUInt16BE(shardId, 0);
  const lt = Buffer.allocUnsafe(SHARD_PREFIX_BYTES);
  lt.writeUInt16BE(shardId + 1, 0);
  return { gte, lt };
}
