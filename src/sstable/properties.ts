// The properties block: table statistics written by TableBuilder.finish and read at open.
// Encoded as an ordinary block (./block-builder.ts) whose keys are UTF-8 property names in
// bytewise order and whose values are tagged (see ./FORMAT.md "Properties block").
// Built-in names start with "distcache."; caller-supplied ones are stored as "user.<name>".
import { writeVarint, readVarint, DecodeError } from '../util/bytes.js';
import { CorruptionError, invalidArgument } from '../util/errors.js';
import { BlockBuilder } from './block-builder.js';
import type { Block } from './block.js';

/** Property value tags. Written to disk: never renumber. Readers skip unknown tags. */
export enum PropTag {
  /** varint64 unsigned integer (< 2^53). */
  Uint = 1,
  /** IEEE-754 float64, little-endian (any other finite number). */
  Float64 = 2,
  /** raw bytes (the rest of the value). */
  Bytes = 3,
}

export interface TableProperties {
  numEntries: number;
  rawKeyBytes: number;
  rawValueBytes: number;
  dataBlocks: number;
  /** Bytes of all data blocks on disk, trailers included. */
  dataBytes: number;
  /** Bytes of the index block on disk, trailer included. */
  indexBytes: number;
  /** Bytes of the filter block on disk, trailer included (0 without a filter). */
  filterBytes: number;
  /** Number of distinct keys hashed into the filter. */
  filterKeys: number;
  /** Empty buffers for an empty table. */
  smallestKey: Buffer;
  largestKey: Buffer;
  /** Caller-supplied properties (e.g. minSeq, maxSeq, numDeletions from the LSM). */
  user: Record<string, number>;
}

const BUILTIN_NUMBERS = [
  'numEntries',
  'rawKeyBytes',
  'rawValueBytes',
  'dataBlocks',
  'dataBytes',
  'indexBytes',
  'filterBytes',
  'filterKeys',
] as const;
const BUILTIN_PREFIX = 'distcache.';
const USER_PREFIX = 'user.';

function numberValue(v: number): Buffer {
  if (Number.isSafeInteger(v) && v >= 0) {
    const b = Buffer.allocUnsafe(11);
    b[0] = PropTag.Uint;
    return b.subarray(0, writeVarint(b, v, 1));
  }
  if (!Number.isFinite(v)) throw invalidArgument(`table property must be a finite number, got ${v}`);
  const b = Buffer.allocUnsafe(9);
  b[0] = PropTag.Float64;
  b.writeDoubleLE(v, 1);
  return b;
}

function bytesValue(v: Buffer): Buffer {
  const b = Buffer.allocUnsafe(v.length + 1);
  b[0] = PropTag.Bytes;
  v.copy(b, 1);
  return b;
}

/** Encodes the block contents of a properties block. */
export function encodeProperties(p: TableProperties): Buffer {
  const entries: [Buffer, Buffer][] = [];
  for (const name of BUILTIN_NUMBERS) entries.push([Buffer.from(BUILTIN_PREFIX + name), numberValue(p[name])]);
  entries.push([Buffer.from(BUILTIN_PREFIX + 'smallestKey'), bytesValue(p.smallestKey)]);
  entries.push([Buffer.from(BUILTIN_PREFIX + 'largestKey'), bytesValue(p.largestKey)]);
  for (const [name, v] of Object.entries(p.user)) {
    if (typeof v !== 'number') throw invalidArgument(`user property ${name} must be a number`);
    entries.push([Buffer.from(USER_PREFIX + name), numberValue(v)]);
  }
  entries.sort((a, b) => Buffer.compare(a[0], b[0]));
  const bb = new BlockBuilder(16, 512);
  for (const [k, v] of entries) bb.add(k, v);
  return Buffer.from(bb.finish());
}

/** Decodes a parsed properties block. Unknown built-in names and unknown tags are skipped. */
export function decodeProperties(block: Block): TableProperties {
  const p: TableProperties = {
    numEntries: 0,
    rawKeyBytes: 0,
    rawValueBytes: 0,
    dataBlocks: 0,
    dataBytes: 0,
    indexBytes: 0,
    filterBytes: 0,
    filterKeys: 0,
    smallestKey: Buffer.alloc(0),
    largestKey: Buffer.alloc(0),
    user: {},
  };
  const it = block.iterator();
  for (it.seekToFirst(); it.valid(); it.next()) {
    const name = it.key().toString('utf8');
    const v = it.value();
    if (v.length < 1) throw new CorruptionError(block.file, block.offset, `empty value for property ${name}`);
    let value: number | Buffer;
    try {
      switch (v[0]) {
        case PropTag.Uint: {
          const [n, end] = readVarint(v, 1);
          if (end !== v.length) throw new DecodeError('trailing bytes');
          value = n;
          break;
        }
        case PropTag.Float64:
          if (v.length !== 9) throw new DecodeError('float64 value must be 8 bytes');
          value = v.readDoubleLE(1);
          break;
        case PropTag.Bytes:
          value = Buffer.from(v.subarray(1));
          break;
        default:
          continue;
      }
    } catch (err) {
      if (err instanceof DecodeError) throw new CorruptionError(block.file, block.offset, `bad value for property ${name}: ${err.message}`);
      throw err;
    }
    if (name.startsWith(USER_PREFIX)) {
      if (typeof value === 'number') p.user[name.slice(USER_PREFIX.length)] = value;
    } else if (name.startsWith(BUILTIN_PREFIX)) {
      const short = name.slice(BUILTIN_PREFIX.length);
      if (short === 'smallestKey' || short === 'largestKey') {
        if (Buffer.isBuffer(value)) p[short] = value;
      } else if ((BUILTIN_NUMBERS as readonly string[]).includes(short) && typeof value === 'number') {
        p[short as (typeof BUILTIN_NUMBERS)[number]] = value;
      }
    }
  }
  return p;
}
