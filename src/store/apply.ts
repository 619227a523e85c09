// The state machine of the shard groups: applies committed entries and snapshots of shards to the
// ONE node-wide LsmEngine. Layouts (stored value header, meta keys, snapshot data): see
// ./FORMAT-COMMANDS.md.
//
// Contracts:
//  - Keys of shard s live at ring/encodeShardKey layout: u16be(s) ++ key (the command's key,
//    itself ring/encodeKey output). Host-local metadata lives under the prefix 0xFFFF, which no
//    shard uses (shard ids are < MAX_SHARD_COUNT = 65535).
//  - Versions are assigned here, deterministically: version = raftIndex * 2^16 + ordinal, the
//    ordinal being the 1-based position of the op in its entry. Every replica computes the same
//    number with no read before a blind put; versions of a key grow with every write, also
//    across deletes (a per-key counter would need a read per put and would restart at 1 after a
//    delete, letting a stale putIfVersionMatch succeed); two writes to one key batched into one
//    entry still get distinct versions.
//  - One ApplyBatch collects everything a host-loop turn applies (entries of many groups, their
//    applied-index meta keys, installed snapshots) and commit() writes it with ONE engine
//    write(): atomic for the whole turn, hence for every entry, and the applied index of a shard
//    is always persisted together with the effects of the entries up to it (no double apply
//    after a restart). The engine write is not fsynced: the Raft log is the durability point; a
//    crash that loses the engine's tail loses the applied index with it and the host re-applies
//    from the log (or from the snapshot record, see host.ts recovery).
//  - Reads inside a batch see the batch's own earlier writes (overlay), so ops of later entries
//    check versions against earlier entries of the same turn.
import type { LsmEngine } from '../lsm/db.js';
import type { WriteOp } from '../lsm/types.js';
import { SHARD_PREFIX_BYTES, shardKeyPrefix, shardKeyRange } from '../ring/index.js';
import { BufReader, BufWriter, DecodeError, readU64, writeU64 } from '../util/bytes.js';
import { KvError } from '../util/errors.js';
import { type CommandResult, type OpResult, MAX_OPS_PER_ENTRY, decodeEntry, type TaggedCommand } from './commands.js';

/** Format byte of a stored value header. */
export const VALUE_FORMAT_V1 = 1;
/** value flag: an expiry (u64 unix ms) follows the version */
export const VALUE_FLAG_EXPIRES = 1;
/** value flag (reserved): the value is a write intent of a cross-shard transaction */
export const VALUE_FLAG_INTENT = 2;
const VALUE_HEADER_BYTES = 10;

/** Format byte of shard snapshot data. */
export const SNAPSHOT_FORMAT_V1 = 1;

const META_PREFIX = Buffer.from([0xff, 0xff]);
const META_APPLIED = 1;

export function versionOf(index: number, ordinal: number): number {
  const v = index * 0x10000 + ordinal;
  if (!Number.isSafeInteger(v)) throw new KvError('INVALID_ARGUMENT', `version overflow at raft index ${index}`);
  return v;
}

/** Storage key of the applied index of a shard: ff ff 01 | u16be shard. */
export function appliedKey(shardId: number): Buffer {
  const k = Buffer.allocUnsafe(5);
  META_PREFIX.copy(k, 0);
  k[2] = META_APPLIED;
  k.writeUInt16BE(shardId, 3);
  return k;
}

export function storageKey(shardId: number, key: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(SHARD_PREFIX_BYTES + key.length);
  out.writeUInt16BE(shardId, 0);
  out.set(key, SHARD_PREFIX_BYTES);
  return out;
}

// Format: format u8 (=1) | flags u8 | version u64le | [expiresAt u64le if flags&1] | user value
export function encodeStoredValue(version: number, value: Uint8Array, expiresAt = 0): Buffer {
  const extra = expiresAt > 0 ? 8 : 0;
  const out = Buffer.allocUnsafe(VALUE_HEADER_BYTES + extra + value.length);
  out[0] = VALUE_FORMAT_V1;
  out[1] = expiresAt > 0 ? VALUE_FLAG_EXPIRES : 0;
  writeU64(out, version, 2);
  if (extra) writeU64(out, expiresAt, VALUE_HEADER_BYTES);
  out.set(value, VALUE_HEADER_BYTES + extra);
  return out;
}

export interface StoredValue {
  version: number;
  expiresAt: number;
  flags: number;
  /** aliases the buffer passed in */
  value: Buffer;
}

export function decodeStoredValue(buf: Buffer): StoredValue {
  if (buf.length < VALUE_HEADER_BYTES || buf[0] !== VALUE_FORMAT_V1) throw new KvError('CORRUPTION', `stored value: bad header (format ${buf[0]}, ${buf.length} bytes)`);
  const flags = buf[1]!;
  const version = readU64(buf, 2);
  let off = VALUE_HEADER_BYTES;
  let expiresAt = 0;
  if (flags & VALUE_FLAG_EXPIRES) {
    expiresAt = readU64(buf, off);
    off += 8;
  }
  return { version, expiresAt, flags, value: buf.subarray(off) };
}

export function readApplied(engine: LsmEngine, shardId: number): number {
  const v = engine.getSync(appliedKey(shardId));
  if (!v) return 0;
  if (v.length !== 9 || v[0] !== 1) throw new KvError('CORRUPTION', `applied index of shard ${shardId}: bad record`);
  return readU64(v, 1);
}

function encodeApplied(index: number): Buffer {
  const b = Buffer.allocUnsafe(9);
  b[0] = 1;
  writeU64(b, index, 1);
  return b;
}

export interface ReadResult {
  found: boolean;
  value?: Buffer;
  version?: number;
}

/** Reads a key of a shard from the engine's current state (the caller ensures linearizability). */
export function readValue(engine: LsmEngine, shardId: number, key: Uint8Array): ReadResult {
  const raw = engine.getSync(storageKey(shardId, key));
  if (!raw) return { found: false };
  const sv = decodeStoredValue(raw);
  return { found: true, value: sv.value, version: sv.version };
}

/** Everything one host-loop turn applies; see the file comment. */
export class ApplyBatch {
  readonly ops: WriteOp[] = [];
  /** storage key (latin1) -> version written in this batch, or 0 when deleted */
  private readonly overlay = new Map<string, number>();
  entries = 0;

  constructor(private readonly engine: LsmEngine) {}

  private currentVersion(skey: Buffer): number {
    const o = this.overlay.get(skey.toString('latin1'));
    if (o !== undefined) return o;
    const raw = this.engine.getSync(skey);
    return raw ? decodeStoredValue(raw).version : 0;
  }

  private put(skey: Buffer, value: Buffer, version: number): void {
    this.ops.push({ type: 'put', key: skey, value });
    this.overlay.set(skey.toString('latin1'), version);
  }

  private del(skey: Buffer): void {
    this.ops.push({ type: 'del', key: skey });
    this.overlay.set(skey.toString('latin1'), 0);
  }

  setApplied(shardId: number, index: number): void {
    this.ops.push({ type: 'put', key: appliedKey(shardId), value: encodeApplied(index) });
  }

  /** Applies one normal entry; returns the decoded commands with their results. */
  applyEntry(shardId: number, index: number, data: Uint8Array): Array<{ cmd: TaggedCommand; result: CommandResult }> {
    this.entries++;
    if (data.length === 0) return []; // a leader's empty entry
    const cmds = decodeEntry(data);
    const out: Array<{ cmd: TaggedCommand; result: CommandResult }> = [];
    let ordinal = 0;
    for (const cmd of cmds) {
      const first = ordinal;
      ordinal += cmd.ops.length;
      if (ordinal > MAX_OPS_PER_ENTRY) throw new KvError('CORRUPTION', `entry ${index} of shard ${shardId} holds more than ${MAX_OPS_PER_ENTRY} ops`);
      out.push({ cmd, result: this.applyCommand(shardId, index, first, cmd) });
    }
    return out;
  }

  private applyCommand(shardId: number, index: number, firstOrdinal: number, cmd: TaggedCommand): CommandResult {
    const keys = cmd.ops.map((op) => storageKey(shardId, op.key));
    // Check every condition first (against the state as the earlier ops of this command leave
    // it): a command applies all or nothing.
    const local = new Map<string, number>();
    const cur = (i: number): number => {
      const s = keys[i]!.toString('latin1');
      const l = local.get(s);
      return l !== undefined ? l : this.currentVersion(keys[i]!);
    };
    const results: OpResult[] = [];
    let failed = false;
    cmd.ops.forEach((op, i) => {
      const version = versionOf(index, firstOrdinal + i + 1);
      const s = keys[i]!.toString('latin1');
      switch (op.type) {
        case 'put':
          local.set(s, version);
          results.push({ type: 'put', version });
          break;
        case 'delete':
          results.push({ type: 'delete', found: cur(i) !== 0 });
          local.set(s, 0);
          break;
        case 'putIfVersionMatch': {
          const c = cur(i);
          if (c !== op.expectedVersion) {
            failed = true;
            results.push({ type: 'putIfVersionMatch', ok: false, currentVersion: c });
          } else {
            local.set(s, version);
            results.push({ type: 'putIfVersionMatch', ok: true, version });
          }
          break;
        }
      }
    });
    if (failed) {
      return { applied: false, results: results.map((r) => (r.type === 'putIfVersionMatch' && !r.ok ? r : { type: 'aborted' })) };
    }
    cmd.ops.forEach((op, i) => {
      if (op.type === 'delete') this.del(keys[i]!);
      else {
        const r = results[i] as { version: number };
        this.put(keys[i]!, encodeStoredValue(r.version, op.value, op.expiresAt ?? 0), r.version);
      }
    });
    return { applied: true, results };
  }

  /** Replaces the shard's whole key range with snapshot data (see buildSnapshotData). */
  /** Deletes every key of a shard and its applied index (the replica left the shard's group). */
  destroyShard(shardId: number): void {
    const range = shardKeyRange(shardId);
    const it = this.engine.iterator({ gte: range.gte, lt: range.lt });
    try {
      for (let e = it.next(); e; e = it.next()) this.del(e[0]);
    } finally {
      it.close();
    }
    this.del(appliedKey(shardId));
  }

  applySnapshot(shardId: number, index: number, data: Uint8Array): void {
    const range = shardKeyRange(shardId);
    const it = this.engine.iterator({ gte: range.gte, lt: range.lt });
    try {
      for (let e = it.next(); e; e = it.next()) this.del(e[0]);
    } finally {
      it.close();
    }
    if (data.length > 0) {
      const prefix = shardKeyPrefix(shardId);
      try {
        const r = new BufReader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
        const fmt = r.u8();
        if (fmt !== SNAPSHOT_FORMAT_V1) throw new DecodeError(`unknown snapshot format ${fmt}`);
        const sid = r.varint();
        if (sid !== shardId) throw new DecodeError(`snapshot of shard ${sid} applied to shard ${shardId}`);
        r.varint(); // index the data was taken at (informational)
        while (r.remaining > 0) {
          const k = Buffer.concat([prefix, r.lenBytes()]);
          const v = Buffer.from(r.lenBytes());
          this.put(k, v, decodeStoredValue(v).version);
        }
      } catch (err) {
        if (err instanceof DecodeError) throw new KvError('CORRUPTION', `shard ${shardId} snapshot ${index}: ${err.message}`);
        throw err;
      }
    }
    this.setApplied(shardId, index);
  }

  get empty(): boolean {
    return this.ops.length === 0;
  }

  /** One engine write for the whole turn. */
  async commit(): Promise<void> {
    if (this.ops.length > 0) await this.engine.write(this.ops);
  }
}

// Format: format u8 (=1) | shard varint | index varint | { key lenBytes | stored value lenBytes }*
// (keys without the shard prefix, in key order; values with their header as stored)
/** Snapshot data of a shard from the engine's CURRENT state (call with the state at `index`). */
export function buildSnapshotData(engine: LsmEngine, shardId: number, index: number): Uint8Array {
  const range = shardKeyRange(shardId);
  const w = new BufWriter(4096);
  w.u8(SNAPSHOT_FORMAT_V1).varint(shardId).varint(index);
  const it = engine.iterator({ gte: range.gte, lt: range.lt });
  try {
    for (let e = it.next(); e; e = it.next()) w.lenBytes(e[0].subarray(SHARD_PREFIX_BYTES)).lenBytes(e[1]);
  } finally {
    it.close();
  }
  return w.finish();
}
