// The part of the key space a shard's state machine owns, as replicated state of the shard
// itself (ring/routing.ts explains slots and sub-hashes). Split and merge move a piece of the key
// space from one shard to another through both shards' Raft logs (see apply.ts "range moves");
// this file holds the record that says, at every applied index, which keys a shard may serve.
//
// Why in the shard's own state (not only in the cluster placement): routing tables lag, so a
// write can reach a shard after the keys moved away. The owner check runs at APPLY time, in log
// order, on every replica: a write ordered after the move's release is rejected (WRONG_SHARD,
// not applied, the client re-routes), never silently written where no one will read it.
//
// Stored as one engine key inside the shard's own key range, at u16be(shard) 00 00 (no encoded
// user key starts with 00 00: see ring/keys.ts), so Raft snapshots and replica destruction carry
// it along with the data. Absent record: the shard's initial ownership, which is the whole slot
// `shardId` for shard ids below the cluster's slot count and nothing for higher ids (shards
// created by splits) — and the metadata shard, never hashed, is never checked.
// Layout: ./FORMAT-COMMANDS.md ("Shard range record").
import type { LsmEngine } from '../lsm/db.js';
import { META_SHARD_ID, SUB_SPACE, decodeKey, keyPosition, type ShardRange } from '../ring/index.js';
import { KvError } from '../util/errors.js';

export const RANGE_RECORD_FORMAT_V1 = 1;

/** Encoded-key suffix of the range record inside a shard's key range. */
export const RANGE_RECORD_KEY = Buffer.from([0x00, 0x00]);

/** A move of sub-hashes [lo, hi) in progress. */
export interface MoveMark {
  moveId: string;
  lo: number;
  hi: number;
}

export interface RangeState {
  /** owned key space; lo === hi owns nothing (slot is then meaningless) */
  range: ShardRange;
  /** outgoing move: keys still owned and readable, writes rejected (RANGE_MOVING) */
  frozen: MoveMark | null;
  /** incoming move: keys being copied in (not owned, not served) */
  incoming: MoveMark | null;
  /** added to the Raft index when versions are assigned, so versions of keys that moved in from
   *  another shard keep growing (apply.ts versionOf) */
  versionOffset: number;
  /** bumped on every ownership change */
  epoch: number;
}

export function encodeRangeState(s: RangeState): Buffer {
  return Buffer.from(JSON.stringify({ format: RANGE_RECORD_FORMAT_V1, ...s }));
}

export function decodeRangeState(buf: Uint8Array, shardId: number): RangeState {
  try {
    const o = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('utf8')) as RangeState & { format: unknown };
    if (o.format !== RANGE_RECORD_FORMAT_V1 || typeof o.range?.slot !== 'number' || typeof o.versionOffset !== 'number') throw new Error(`unknown format ${String(o.format)}`);
    return { range: o.range, frozen: o.frozen ?? null, incoming: o.incoming ?? null, versionOffset: o.versionOffset, epoch: o.epoch ?? 0 };
  } catch (err) {
    throw new KvError('CORRUPTION', `shard ${shardId}: bad range record: ${(err as Error).message}`);
  }
}

export function rangeRecordStorageKey(shardId: number): Buffer {
  const k = Buffer.allocUnsafe(4);
  k.writeUInt16BE(shardId, 0);
  RANGE_RECORD_KEY.copy(k, 2);
  return k;
}

/** Whether a storage-key suffix (without the shard prefix) is the range record. */
export function isRangeRecordKey(suffix: Uint8Array): boolean {
  return suffix.length === 2 && suffix[0] === 0 && suffix[1] === 0;
}

export type OwnerCheck = 'ok' | 'WRONG_SHARD' | 'RANGE_MOVING';

/**
 * Range records of a node's shards, cached (one engine read per shard, then memory). The cache
 * is the truth for the apply step: ApplyBatch updates it as it applies, the engine write of the
 * same turn follows. `slotCount` 0 disables every check (stores without split support: tests of
 * the store alone, where shard ids are not slots).
 */
export class ShardRanges {
  /** shard -> record, or null when the shard has none (its initial ownership) */
  private readonly cache = new Map<number, RangeState | null>();

  constructor(
    private readonly engine: LsmEngine,
    readonly slotCount: number,
  ) {}

  /** The shard's record, or null when it has its initial ownership (checked only if an id above
   *  the slots: see initial()). */
  record(shardId: number): RangeState | null {
    let r = this.cache.get(shardId);
    if (r === undefined) {
      const raw = this.engine.getSync(rangeRecordStorageKey(shardId));
      r = raw ? decodeRangeState(raw, shardId) : null;
      this.cache.set(shardId, r);
    }
    return r;
  }

  /** The ownership a shard has without a record. */
  initial(shardId: number): RangeState {
    const owns = shardId < this.slotCount;
    return { range: { slot: owns ? shardId : 0, lo: 0, hi: owns ? SUB_SPACE : 0 }, frozen: null, incoming: null, versionOffset: 0, epoch: 0 };
  }

  /** The shard's state (record or initial). */
  state(shardId: number): RangeState {
    return this.record(shardId) ?? this.initial(shardId);
  }

  /** Whether keys of the shard need an owner check: a record exists or the id is above the slots. */
  checked(shardId: number): boolean {
    if (this.slotCount === 0 || shardId === META_SHARD_ID) return false;
    return this.record(shardId) !== null || shardId >= this.slotCount;
  }

  /** Sets the shard's record as the apply step wrote it (null: the shard has none any more: its
   *  keys were destroyed or replaced by a snapshot without one). The engine write follows in the
   *  same turn, so the cache must not be re-read from the engine before it lands. */
  set(shardId: number, s: RangeState | null): void {
    this.cache.set(shardId, s);
  }

  /** May the shard apply a write of this encoded key? */
  checkWrite(shardId: number, encodedKey: Uint8Array): OwnerCheck {
    if (!this.checked(shardId)) return 'ok';
    const st = this.state(shardId);
    const { slot, sub } = keyPosition(decodeKey(encodedKey).primary, this.slotCount);
    if (slot !== st.range.slot || sub < st.range.lo || sub >= st.range.hi) return 'WRONG_SHARD';
    if (st.frozen && sub >= st.frozen.lo && sub < st.frozen.hi) return 'RANGE_MOVING';
    return 'ok';
  }

  /** May the shard serve a read of this encoded key? (Frozen keys are still readable: nothing
   *  else may write them until the move releases them.) */
  checkRead(shardId: number, encodedKey: Uint8Array): OwnerCheck {
    if (!this.checked(shardId)) return 'ok';
    const st = this.state(shardId);
    const { slot, sub } = keyPosition(decodeKey(encodedKey).primary, this.slotCount);
    return slot === st.range.slot && sub >= st.range.lo && sub < st.range.hi ? 'ok' : 'WRONG_SHARD';
  }

  /** Sub-hash of an encoded key's primary (for the apply step's move handling). */
  position(encodedKey: Uint8Array): { slot: number; sub: number } {
    return keyPosition(decodeKey(encodedKey).primary, this.slotCount);
  }
}
