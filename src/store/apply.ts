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
import { type CommandResult, type OpResult, MAX_OPS_PER_ENTRY, type RangeOp, decodeEntry, type TaggedCommand } from './commands.js';
import { type RangeState, type ShardRanges, decodeRangeState, encodeRangeState, isRangeRecordKey, rangeRecordStorageKey } from './shard-range.js';

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
  const header = encodeStoredHeader(version, expiresAt);
  const out = Buffer.allocUnsafe(header.length + value.length);
  header.copy(out, 0);
  out.set(value, header.length);
  return out;
}

/** The header encodeStoredValue puts before the user value (format, flags, version, expiry). */
export function encodeStoredHeader(version: number, expiresAt = 0): Buffer {
  const out = Buffer.allocUnsafe(VALUE_HEADER_BYTES + (expiresAt > 0 ? 8 : 0));
  out[0] = VALUE_FORMAT_V1;
  out[1] = expiresAt > 0 ? VALUE_FLAG_EXPIRES : 0;
  writeU64(out, version, 2);
  if (expiresAt > 0) writeU64(out, expiresAt, VALUE_HEADER_BYTES);
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

/**
 * Per engine, the applied index each shard's state shows, as of the last apply write that
 * resolved (ApplyBatch.commit keeps it current; the engine makes writes visible in the order
 * they were issued, and that is the order they resolve in). Why: a truncation round reads every
 * shard's applied index, and after a memtable flush an idle shard's applied key lives only in
 * an SSTable: 1024 table lookups on the loop's thread held every node's loop ~40 ms at once.
 */
const appliedIndexes = new WeakMap<LsmEngine, Map<number, number>>();

function appliedIndexesOf(engine: LsmEngine): Map<number, number> {
  let m = appliedIndexes.get(engine);
  if (!m) appliedIndexes.set(engine, (m = new Map()));
  return m;
}

export function readApplied(engine: LsmEngine, shardId: number): number {
  const known = appliedIndexesOf(engine);
  const cached = known.get(shardId);
  if (cached !== undefined) return cached;
  const v = engine.getSync(appliedKey(shardId));
  let index = 0;
  if (v) {
    if (v.length !== 9 || v[0] !== 1) throw new KvError('CORRUPTION', `applied index of shard ${shardId}: bad record`);
    index = readU64(v, 1);
  }
  known.set(shardId, index);
  return index;
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
  /** shard -> applied index this batch writes (0: deletes it), for readApplied once written */
  private readonly appliedWrites = new Map<number, number>();
  entries = 0;

  /** `ranges`: owner checks and range moves (split/merge); absent, every shard owns every key */
  constructor(
    private readonly engine: LsmEngine,
    private readonly ranges?: ShardRanges,
  ) {}

  private currentVersion(skey: Buffer): number {
    const o = this.overlay.get(skey.toString('latin1'));
    if (o !== undefined) return o;
    const raw = this.engine.getSync(skey);
    return raw ? decodeStoredValue(raw).version : 0;
  }

  /** `header`: the stored value's header when `value` is the bare user value (the engine joins
   *  them in its batch record: no copy of the value here) */
  private put(skey: Buffer, value: Uint8Array, version: number, header?: Buffer): void {
    this.ops.push(header === undefined ? { type: 'put', key: skey, value } : { type: 'put', key: skey, value, valuePrefix: header });
    this.overlay.set(skey.toString('latin1'), version);
  }

  private del(skey: Buffer): void {
    this.ops.push({ type: 'del', key: skey });
    this.overlay.set(skey.toString('latin1'), 0);
  }

  setApplied(shardId: number, index: number): void {
    // Lazy: the engine inserts it into the memtable when it freezes that memtable, not on every
    // turn (a skiplist insert per shard per turn, half of all inserts under small puts); it is
    // still flushed in the same table as the effects it describes.
    this.ops.push({ type: 'put', key: appliedKey(shardId), value: encodeApplied(index), lazy: true });
    this.appliedWrites.set(shardId, index);
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
    const kind = cmd.ops[0]!.type;
    if (kind === 'range') return this.applyRange(shardId, index, cmd);
    if (kind === 'ingest') return this.applyIngest(shardId, cmd);
    const ranges = this.ranges;
    let versionOffset = 0;
    if (ranges && ranges.checked(shardId)) {
      for (const op of cmd.ops) {
        const c = ranges.checkWrite(shardId, op.key);
        if (c !== 'ok') return rejected(cmd, c, c === 'WRONG_SHARD' ? `shard ${shardId} does not own the key (moved by a split or merge; refresh the routing)` : `the key's range of shard ${shardId} is moving to another shard; retry`);
      }
      versionOffset = ranges.state(shardId).versionOffset;
    }
    index += versionOffset;
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
        case 'ingest':
        case 'range':
          throw new KvError('CORRUPTION', `shard ${shardId} entry ${index}: ${op.type} op mixed with client ops`);
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
      else if (op.type === 'put' || op.type === 'putIfVersionMatch') {
        const r = results[i] as { version: number };
        this.put(keys[i]!, op.value, r.version, encodeStoredHeader(r.version, op.expiresAt ?? 0));
      }
    });
    return { applied: true, results };
  }

  // ------------------------------------------------------------------ range moves
  //
  // Moving sub-hashes [lo, hi) of a slot from shard A to shard B (a split: B is new; a merge: A
  // gives all it has), each step a command in one of the two logs, in this order:
  //   A freeze      A keeps serving reads of the range; writes to it are refused (RANGE_MOVING)
  //                 from this index on, so A's data for it is final. Returns A's version floor.
  //   B beginIngest B marks the range incoming (still not owned: client ops on it refused).
  //   B ingest*     A's keys (copied by the coordinator from A's leader) written as they are.
  //   A release     A gives the range up and deletes its keys; from here the range is nobody's
  //                 for a moment (client ops refused, WRONG_SHARD, retried after a re-route).
  //   B acquire     B owns the range; its versions continue above A's floor.
  // Every step is idempotent (the coordinator may repeat it after a failure) and refuses to run
  // out of order. Both shards check ownership at apply time, so a write routed with a stale
  // table can never land in a shard that no longer (or not yet) owns its key.

  private applyRange(shardId: number, index: number, cmd: TaggedCommand): CommandResult {
    const op = cmd.ops[0]!;
    const ranges = this.ranges;
    const res = (ok: boolean, message: string, floor = 0): CommandResult => ({ applied: ok, results: [{ type: 'range', ok, message, floor }] });
    if (!ranges || ranges.slotCount === 0) return res(false, 'this store does not support range moves');
    let r: RangeOp;
    try {
      if (op.type !== 'range') throw new Error('not a range op');
      r = JSON.parse(Buffer.from(op.value).toString('utf8')) as RangeOp;
    } catch (err) {
      throw new KvError('CORRUPTION', `shard ${shardId} entry ${index}: bad range op: ${(err as Error).message}`);
    }
    const st: RangeState = structuredClone(ranges.state(shardId));
    const own = st.range;
    const save = (): void => {
      ranges.set(shardId, st);
      this.ops.push({ type: 'put', key: rangeRecordStorageKey(shardId), value: encodeRangeState(st) });
    };
    switch (r.kind) {
      case 'freeze': {
        const floor = (index + st.versionOffset + 1) * 0x10000;
        if (st.frozen) return st.frozen.moveId === r.moveId ? res(true, 'already frozen', floor) : res(false, `shard ${shardId} is already moving [${st.frozen.lo}, ${st.frozen.hi}) (move ${st.frozen.moveId})`);
        if (st.incoming) return res(false, `shard ${shardId} is receiving [${st.incoming.lo}, ${st.incoming.hi}) (move ${st.incoming.moveId})`);
        if (!(r.lo < r.hi && r.lo >= own.lo && r.hi <= own.hi && (r.lo === own.lo || r.hi === own.hi))) return res(false, `[${r.lo}, ${r.hi}) is not an end of shard ${shardId}'s range [${own.lo}, ${own.hi})`);
        st.frozen = { moveId: r.moveId, lo: r.lo, hi: r.hi };
        save();
        return res(true, 'frozen', floor);
      }
      case 'release': {
        if (st.frozen?.moveId !== r.moveId) {
          const overlaps = own.lo < r.hi && r.lo < own.hi;
          return overlaps ? res(false, `shard ${shardId} has not frozen [${r.lo}, ${r.hi}) for move ${r.moveId}`) : res(true, 'already released');
        }
        st.range = r.lo === own.lo ? { slot: own.slot, lo: r.hi, hi: own.hi } : { slot: own.slot, lo: own.lo, hi: r.lo };
        st.frozen = null;
        st.epoch++;
        this.deleteSubRange(shardId, r.lo, r.hi);
        save();
        return res(true, 'released');
      }
      case 'beginIngest': {
        if (st.incoming?.moveId === r.moveId) return res(true, 'already receiving');
        if (own.lo < own.hi && r.slot === own.slot && r.lo >= own.lo && r.hi <= own.hi) return res(true, 'already owned');
        if (st.incoming || st.frozen) return res(false, `shard ${shardId} is in another move`);
        const empty = own.lo === own.hi;
        if (!(r.lo < r.hi) || (!empty && (r.slot !== own.slot || !(r.hi === own.lo || r.lo === own.hi)))) return res(false, `[${r.lo}, ${r.hi}) of slot ${r.slot} is not adjacent to shard ${shardId}'s range [${own.lo}, ${own.hi}) of slot ${own.slot}`);
        if (empty) st.range = { slot: r.slot, lo: r.lo, hi: r.lo };
        st.incoming = { moveId: r.moveId, lo: r.lo, hi: r.hi };
        save();
        return res(true, 'receiving');
      }
      case 'acquire': {
        if (st.incoming?.moveId !== r.moveId) {
          const covered = r.lo >= own.lo && r.hi <= own.hi;
          return covered ? res(true, 'already acquired') : res(false, `shard ${shardId} is not receiving [${r.lo}, ${r.hi}) for move ${r.moveId}`);
        }
        st.range = { slot: own.slot, lo: Math.min(own.lo, r.lo), hi: Math.max(own.hi, r.hi) };
        st.incoming = null;
        st.epoch++;
        // versions from here on (index + offset) * 2^16 + ordinal, above every version the
        // source ever assigned (its floor): per-key versions never repeat or go back
        const needed = Math.floor(r.floor / 0x10000) + 1 - index;
        if (needed > st.versionOffset) st.versionOffset = needed;
        save();
        return res(true, 'acquired');
      }
      default:
        throw new KvError('CORRUPTION', `shard ${shardId} entry ${index}: unknown range op ${(r as { kind: unknown }).kind as string}`);
    }
  }

  private applyIngest(shardId: number, cmd: TaggedCommand): CommandResult {
    const ranges = this.ranges;
    const st = ranges?.state(shardId);
    const inc = st?.incoming;
    for (const op of cmd.ops) {
      const pos = inc && ranges!.position(op.key);
      if (!inc || !pos || pos.slot !== st.range.slot || pos.sub < inc.lo || pos.sub >= inc.hi) return rejected(cmd, 'WRONG_SHARD', `shard ${shardId} is not receiving this key`);
    }
    for (const op of cmd.ops) {
      if (op.type !== 'ingest') throw new KvError('CORRUPTION', `shard ${shardId}: ingest command with a ${op.type} op`);
      const v = Buffer.from(op.value);
      this.put(storageKey(shardId, op.key), v, decodeStoredValue(v).version);
    }
    return { applied: true, results: cmd.ops.map(() => ({ type: 'ingest' })) };
  }

  /** Deletes every key of the shard whose primary's sub-hash is in [lo, hi). */
  private deleteSubRange(shardId: number, lo: number, hi: number): void {
    const ranges = this.ranges!;
    const range = shardKeyRange(shardId);
    const doomed: Buffer[] = [];
    const consider = (skey: Buffer): void => {
      const suffix = skey.subarray(SHARD_PREFIX_BYTES);
      if (isRangeRecordKey(suffix)) return;
      const { sub } = ranges.position(suffix);
      if (sub >= lo && sub < hi) doomed.push(skey);
    };
    const it = this.engine.iterator({ gte: range.gte, lt: range.lt });
    try {
      for (let e = it.next(); e; e = it.next()) consider(e[0]);
    } finally {
      it.close();
    }
    // keys written earlier in this same turn are not in the engine yet
    for (const [k, version] of this.overlay) {
      if (version === 0) continue;
      const skey = Buffer.from(k, 'latin1');
      if (skey.readUInt16BE(0) === shardId) consider(skey);
    }
    for (const k of doomed) this.del(k);
  }

  /** Replaces the shard's whole key range with snapshot data (see buildSnapshotData). */
  /** Deletes every key of a shard and its applied index (the replica left the shard's group). */
  destroyShard(shardId: number): void {
    // The group is already gone from the Raft log, so nothing would re-apply a lost destroy: the
    // shard's data and applied index would outlive the replica and mislead a later one.
    this.durable = true;
    const range = shardKeyRange(shardId);
    const it = this.engine.iterator({ gte: range.gte, lt: range.lt });
    try {
      for (let e = it.next(); e; e = it.next()) this.del(e[0]);
    } finally {
      it.close();
    }
    this.del(appliedKey(shardId));
    this.appliedWrites.set(shardId, 0);
    this.ranges?.set(shardId, null);
  }

  applySnapshot(shardId: number, index: number, data: Uint8Array): void {
    const range = shardKeyRange(shardId);
    const it = this.engine.iterator({ gte: range.gte, lt: range.lt });
    try {
      for (let e = it.next(); e; e = it.next()) this.del(e[0]);
    } finally {
      it.close();
    }
    let record: RangeState | null = null;
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
          const suffix = r.lenBytes();
          const k = Buffer.concat([prefix, suffix]);
          const v = Buffer.from(r.lenBytes());
          // the shard's range record travels with its data (shard-range.ts)
          if (isRangeRecordKey(suffix)) {
            this.ops.push({ type: 'put', key: k, value: v });
            record = decodeRangeState(v, shardId);
          } else this.put(k, v, decodeStoredValue(v).version);
        }
      } catch (err) {
        if (err instanceof DecodeError) throw new KvError('CORRUPTION', `shard ${shardId} snapshot ${index}: ${err.message}`);
        throw err;
      }
    }
    this.ranges?.set(shardId, record);
    this.setApplied(shardId, index);
  }

  get empty(): boolean {
    return this.ops.length === 0;
  }

  /** Synced through the engine's WAL (destroyShard); otherwise the write skips it. */
  private durable = false;

  /**
   * One engine write for the whole turn. Applied entries and snapshots skip the engine's WAL:
   * the Raft log already holds them durably, and after a crash the host re-applies whatever
   * the engine lost (recovery: the log's snapshot record if the engine's applied index is behind
   * it, then Raft hands out the committed entries after the engine's applied index again).
   */
  async commit(): Promise<void> {
    if (this.ops.length === 0) return;
    if (this.durable) {
      // through the WAL, applied indexes included: a replayed write must bring its own
      await this.engine.write(this.ops.map((op) => (op.type === 'put' && op.lazy ? { ...op, lazy: false } : op)), { sync: true });
    } else await this.engine.write(this.ops, { disableWal: true });
    if (this.appliedWrites.size > 0) {
      const known = appliedIndexesOf(this.engine);
      for (const [shardId, index] of this.appliedWrites) known.set(shardId, index);
    }
  }
}

/** The result of a command the shard refused (it does not, or not now, own a key). */
function rejected(cmd: TaggedCommand, code: 'WRONG_SHARD' | 'RANGE_MOVING', message: string): CommandResult {
  return { applied: false, results: cmd.ops.map(() => ({ type: 'aborted' })), rejected: { code, message } };
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

/** Bytes of keys and stored values of a shard in the engine's current state. */
export function shardDataBytes(engine: LsmEngine, shardId: number): number {
  const range = shardKeyRange(shardId);
  let n = 0;
  const it = engine.iterator({ gte: range.gte, lt: range.lt });
  try {
    for (let e = it.next(); e; e = it.next()) n += e[0].length + e[1].length;
  } finally {
    it.close();
  }
  return n;
}
