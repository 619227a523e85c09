// Key -> shard once shards can be split and merged: the second routing level.
//
// Level 1 (FROZEN, hash.ts): slot = XXH64(primary) mod slotCount, slotCount being the cluster's
// configured shard count. A cluster starts with shard s owning all of slot s.
// Level 2 (this file): inside a slot, keys are ordered by their sub-hash, the top 16 bits of the
// same XXH64 (independent of the low bits the slot uses for power-of-two slot counts). A shard
// owns one contiguous piece [lo, hi) of one slot's sub-hash space [0, 65536). A split cuts a
// shard's piece in two (the upper half goes to a new shard id); a merge joins two adjacent
// pieces of one slot. New shard ids are allocated above the slot ids (below META_SHARD_ID).
//
// ShardRouter is the immutable lookup built from a placement's shard list: it checks that every
// slot is covered exactly once, so a router can never send a key to two shards or to none.
// Pure, no I/O.
import { invalidArgument } from '../util/errors.js';
import { SHARD_HASH_SEED, hash64 } from './hash.js';

/** Size of a slot's sub-hash space. */
export const SUB_SPACE = 0x10000;

/** The piece of the key space a shard owns: sub-hashes [lo, hi) of one slot. lo === hi: none. */
export interface ShardRange {
  readonly slot: number;
  readonly lo: number;
  readonly hi: number;
}

/** Slot and sub-hash of a primary key. */
export function keyPosition(primary: Uint8Array, slotCount: number): { slot: number; sub: number } {
  const h = hash64(primary, SHARD_HASH_SEED);
  return { slot: Number(h % BigInt(slotCount)), sub: Number(h >> 48n) };
}

/** The sub-hash of a primary key (top 16 bits of its XXH64). */
export function subHashOf(primary: Uint8Array): number {
  return Number(hash64(primary, SHARD_HASH_SEED) >> 48n);
}

export function wholeSlot(slot: number): ShardRange {
  return { slot, lo: 0, hi: SUB_SPACE };
}

export function rangeContains(r: ShardRange, sub: number): boolean {
  return sub >= r.lo && sub < r.hi;
}

export function isWholeSlot(r: ShardRange): boolean {
  return r.lo === 0 && r.hi === SUB_SPACE;
}

/** The split point of a range: its middle (a range narrower than 2 cannot be split). */
export function splitPoint(r: ShardRange): number {
  if (r.hi - r.lo < 2) throw invalidArgument(`shard range [${r.lo}, ${r.hi}) of slot ${r.slot} is too narrow to split`);
  return r.lo + Math.floor((r.hi - r.lo) / 2);
}

export interface RoutedShard {
  readonly shardId: number;
  readonly range: ShardRange;
}

export class ShardRouter {
  /** slot -> the shard owning all of it, or -1 when the slot is split */
  private readonly whole: Int32Array;
  /** split slots: pieces sorted by lo */
  private readonly pieces = new Map<number, RoutedShard[]>();

  /** Throws INVALID_ARGUMENT unless the shards cover every slot exactly once. */
  constructor(
    readonly slotCount: number,
    shards: readonly RoutedShard[],
  ) {
    if (!Number.isInteger(slotCount) || slotCount < 1) throw invalidArgument(`slotCount must be a positive integer, got ${slotCount}`);
    this.whole = new Int32Array(slotCount).fill(-1);
    const bySlot = new Map<number, RoutedShard[]>();
    for (const s of shards) {
      const r = s.range;
      if (r.lo === r.hi) continue; // owns nothing (a merged-away shard)
      if (!Number.isInteger(r.slot) || r.slot < 0 || r.slot >= slotCount || !(r.lo >= 0 && r.lo < r.hi && r.hi <= SUB_SPACE)) {
        throw invalidArgument(`shard ${s.shardId}: bad range slot ${r.slot} [${r.lo}, ${r.hi})`);
      }
      const l = bySlot.get(r.slot);
      if (l) l.push(s);
      else bySlot.set(r.slot, [s]);
    }
    for (let slot = 0; slot < slotCount; slot++) {
      const l = (bySlot.get(slot) ?? []).sort((a, b) => a.range.lo - b.range.lo);
      let at = 0;
      for (const s of l) {
        if (s.range.lo !== at) throw invalidArgument(`slot ${slot}: sub-hashes [${Math.min(at, s.range.lo)}, ${Math.max(at, s.range.lo)}) are ${s.range.lo > at ? 'owned by no shard' : 'owned twice'} (at shard ${s.shardId})`);
        at = s.range.hi;
      }
      if (at !== SUB_SPACE) throw invalidArgument(`slot ${slot}: sub-hashes [${at}, ${SUB_SPACE}) are owned by no shard`);
      if (l.length === 1) this.whole[slot] = l[0]!.shardId;
      else this.pieces.set(slot, l);
    }
  }

  /** The routing of a cluster whose shards were never split: shard s = slot s. */
  static unsplit(slotCount: number): ShardRouter {
    return new ShardRouter(slotCount, Array.from({ length: slotCount }, (_, s) => ({ shardId: s, range: wholeSlot(s) })));
  }

  /** The shard owning a primary key. */
  locate(primary: Uint8Array): number {
    const h = hash64(primary, SHARD_HASH_SEED);
    const slot = Number(h % BigInt(this.slotCount));
    const w = this.whole[slot]!;
    if (w >= 0) return w;
    const sub = Number(h >> 48n);
    const l = this.pieces.get(slot)!;
    let a = 0;
    let b = l.length - 1;
    while (a < b) {
      const m = (a + b + 1) >> 1;
      if (l[m]!.range.lo <= sub) a = m;
      else b = m - 1;
    }
    return l[a]!.shardId;
  }

  /** Number of slots cut into more than one shard. */
  get splitSlots(): number {
    return this.pieces.size;
  }
}
