// Replicated commands of one shard: what a Raft entry of a shard group carries, and the results
// the apply step hands back. Byte layout: see ./FORMAT-COMMANDS.md ("Entry payload").
//
// Contract:
//  - One Raft entry = one ENTRY payload = the commands of one or more proposals (the host batches
//    concurrent proposals of a shard into one entry per loop turn).
//  - A command is atomic: its ops apply all together or not at all (a failed putIfVersionMatch
//    aborts the whole command; see apply.ts).
//  - Keys are opaque bytes inside the shard (the caller passes ring/encodeKey output); the apply
//    step prefixes them with the shard (ring/encodeShardKey layout).
//  - Decoding is strict: an unknown format byte or op type throws a CorruptionError-like
//    KvError CORRUPTION, never skipped, because replicas must apply identical state changes.
import { BufReader, BufWriter, DecodeError } from '../util/bytes.js';
import { KvError } from '../util/errors.js';

/** Format byte of an entry payload. DO NOT CHANGE the meaning of a written value. */
export const ENTRY_FORMAT_V1 = 1;

/** Op types, written to disk (inside Raft entries): never renumber or reuse. */
export enum OpType {
  Put = 1,
  Delete = 2,
  PutIfVersionMatch = 3,
  // reserved: 4 WriteIntent, 5 ResolveIntent (cross-shard transactions)
  /** a key copied in by a range move, with its stored value (header and version) as is */
  Ingest = 6,
  /** a step of a range move (split/merge): JSON RangeOp in the value, see apply.ts */
  Range = 7,
}

/** Max ops in one entry: versions are (raft index * 2^16 + op ordinal), see apply.ts. */
export const MAX_OPS_PER_ENTRY = 0xffff;

export type Op =
  /** expiresAt: unix ms decided by the leader (0/absent = never). Reserved: stored, not yet enforced. */
  | { type: 'put'; key: Uint8Array; value: Uint8Array; expiresAt?: number }
  | { type: 'delete'; key: Uint8Array }
  /** expectedVersion 0 = the key must not exist. */
  | { type: 'putIfVersionMatch'; key: Uint8Array; value: Uint8Array; expectedVersion: number; expiresAt?: number }
  /** internal (range moves): `value` is a stored value (apply.ts encodeStoredValue) written as is */
  | { type: 'ingest'; key: Uint8Array; value: Uint8Array }
  /** internal (range moves): `value` is the JSON of a RangeOp; `key` is RANGE_OP_KEY */
  | { type: 'range'; key: Uint8Array; value: Uint8Array };

/** The key a 'range' op carries (a command needs a non-empty key; this one is never stored). */
export const RANGE_OP_KEY = Buffer.from([0x00, 0x00]);

/** A step of moving sub-hashes [lo, hi) of a slot from one shard to another (apply.ts). */
export type RangeOp =
  | { kind: 'freeze'; moveId: string; lo: number; hi: number }
  | { kind: 'release'; moveId: string; lo: number; hi: number }
  | { kind: 'beginIngest'; moveId: string; slot: number; lo: number; hi: number }
  | { kind: 'acquire'; moveId: string; lo: number; hi: number; floor: number };

/** A client command: ops of one shard applied atomically. */
export interface Command {
  ops: Op[];
}

/** A command tagged with who proposed it, so the proposer recognises it when applied. */
export interface TaggedCommand extends Command {
  /** node id of the proposing host */
  proposer: number;
  /** proposer-local sequence number; its base is clock-derived (ms x 1000) so it stays unique across restarts of the proposer */
  seq: number;
}

export type OpResult =
  | { type: 'put'; version: number }
  | { type: 'delete'; found: boolean }
  | { type: 'putIfVersionMatch'; ok: true; version: number }
  | { type: 'putIfVersionMatch'; ok: false; currentVersion: number }
  /** the command was aborted by another op's failed condition; this op did nothing */
  | { type: 'aborted' }
  | { type: 'ingest' }
  /** floor: freeze only, every version the shard assigned so far is below it */
  | { type: 'range'; ok: boolean; message: string; floor: number };

export interface CommandResult {
  /** false when a putIfVersionMatch failed or the shard refused the keys: nothing was applied */
  applied: boolean;
  results: OpResult[];
  /** set when the shard does not (or not now) own a key of the command: see shard-range.ts */
  rejected?: { code: 'WRONG_SHARD' | 'RANGE_MOVING'; message: string };
}

const FLAG_EXPIRES = 1;

function checkU(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new KvError('INVALID_ARGUMENT', `${what} must be a non-negative safe integer, got ${n}`);
}

/** Validates a command before it is proposed (bad input must never reach the log). */
export function validateCommand(c: Command, maxKeyBytes = 64 * 1024, maxValueBytes = 64 * 1024 * 1024): void {
  if (!c || !Array.isArray(c.ops) || c.ops.length === 0) throw new KvError('INVALID_ARGUMENT', 'a command needs at least one op');
  if (c.ops.length > MAX_OPS_PER_ENTRY) throw new KvError('INVALID_ARGUMENT', `a command holds at most ${MAX_OPS_PER_ENTRY} ops`);
  for (const op of c.ops) {
    if (!(op.key instanceof Uint8Array) || op.key.length === 0) throw new KvError('INVALID_ARGUMENT', 'key must be a non-empty Uint8Array');
    if (op.key.length > maxKeyBytes) throw new KvError('KEY_TOO_LARGE', `key of ${op.key.length} bytes exceeds ${maxKeyBytes}`);
    if (op.type === 'put' || op.type === 'putIfVersionMatch') {
      if (!(op.value instanceof Uint8Array)) throw new KvError('INVALID_ARGUMENT', 'value must be a Uint8Array');
      if (op.value.length > maxValueBytes) throw new KvError('VALUE_TOO_LARGE', `value of ${op.value.length} bytes exceeds ${maxValueBytes}`);
      if (op.expiresAt !== undefined) checkU(op.expiresAt, 'expiresAt');
      if (op.type === 'putIfVersionMatch') checkU(op.expectedVersion, 'expectedVersion');
    } else if (op.type === 'ingest' || op.type === 'range') {
      if (!(op.value instanceof Uint8Array)) throw new KvError('INVALID_ARGUMENT', 'value must be a Uint8Array');
      if (c.ops.some((o) => o.type !== op.type)) throw new KvError('INVALID_ARGUMENT', `${op.type} ops cannot share a command with other op types`);
      if (op.type === 'range' && c.ops.length !== 1) throw new KvError('INVALID_ARGUMENT', 'a range op is a command of its own');
    } else if (op.type !== 'delete') {
      throw new KvError('INVALID_ARGUMENT', `unknown op type ${String((op as { type: unknown }).type)}`);
    }
  }
}

export function commandBytes(c: Command): number {
  let n = 16;
  for (const op of c.ops) n += op.key.length + 24 + (op.type === 'delete' ? 0 : op.value.length);
  return n;
}

// Format: format u8 (=1) | count varint | count * command
//   command := proposer varint | seq varint | nops varint | nops * op
//   op      := type u8 | key lenBytes | (Put|PutIfVersionMatch: flags u8 | value lenBytes |
//              [expiresAt varint if flags&1] | [expected varint if PutIfVersionMatch] |
//              Ingest, Range: value lenBytes)
export function encodeEntry(cmds: readonly TaggedCommand[]): Buffer {
  let size = 8;
  for (const c of cmds) size += commandBytes(c);
  const w = new BufWriter(size);
  w.u8(ENTRY_FORMAT_V1).varint(cmds.length);
  for (const c of cmds) {
    w.varint(c.proposer).varint(c.seq).varint(c.ops.length);
    for (const op of c.ops) {
      switch (op.type) {
        case 'put':
        case 'putIfVersionMatch': {
          w.u8(op.type === 'put' ? OpType.Put : OpType.PutIfVersionMatch).lenBytes(op.key);
          const exp = op.expiresAt ?? 0;
          w.u8(exp > 0 ? FLAG_EXPIRES : 0).lenBytes(op.value);
          if (exp > 0) w.varint(exp);
          if (op.type === 'putIfVersionMatch') w.varint(op.expectedVersion);
          break;
        }
        case 'delete':
          w.u8(OpType.Delete).lenBytes(op.key);
          break;
        case 'ingest':
        case 'range':
          w.u8(op.type === 'ingest' ? OpType.Ingest : OpType.Range).lenBytes(op.key).lenBytes(op.value);
          break;
      }
    }
  }
  return w.finish();
}

/** Decodes an entry payload. Returned keys/values alias `data` (owned by the Raft entry). */
export function decodeEntry(data: Uint8Array): TaggedCommand[] {
  try {
    const r = new BufReader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    const fmt = r.u8();
    if (fmt !== ENTRY_FORMAT_V1) throw new DecodeError(`unknown entry format ${fmt}`);
    const n = r.varint();
    const out: TaggedCommand[] = [];
    for (let i = 0; i < n; i++) {
      const proposer = r.varint();
      const seq = r.varint();
      const nops = r.varint();
      const ops: Op[] = [];
      for (let j = 0; j < nops; j++) {
        const t = r.u8();
        const key = r.lenBytes();
        if (t === OpType.Delete) {
          ops.push({ type: 'delete', key });
          continue;
        }
        if (t === OpType.Ingest || t === OpType.Range) {
          ops.push({ type: t === OpType.Ingest ? 'ingest' : 'range', key, value: r.lenBytes() });
          continue;
        }
        if (t !== OpType.Put && t !== OpType.PutIfVersionMatch) throw new DecodeError(`unknown op type ${t}`);
        const flags = r.u8();
        const value = r.lenBytes();
        const expiresAt = flags & FLAG_EXPIRES ? r.varint() : 0;
        if (t === OpType.Put) {
          ops.push(expiresAt > 0 ? { type: 'put', key, value, expiresAt } : { type: 'put', key, value });
        } else {
          const expectedVersion = r.varint();
          ops.push(expiresAt > 0 ? { type: 'putIfVersionMatch', key, value, expectedVersion, expiresAt } : { type: 'putIfVersionMatch', key, value, expectedVersion });
        }
      }
      out.push({ proposer, seq, ops });
    }
    return out;
  } catch (err) {
    if (err instanceof DecodeError || err instanceof RangeError) throw new KvError('CORRUPTION', `bad shard command entry: ${err.message}`);
    throw err;
  }
}
