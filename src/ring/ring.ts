// Consistent-hash ring with virtual nodes: shard id -> ordered list of distinct replica nodes.
//
// Contract:
// - Pure and deterministic: the ring depends only on the SET of member ids, the number of
//   virtual nodes per member and the replication factor — never on the order members were given
//   in, a clock or randomness. Every node of a cluster computes the same placement.
// - Each member owns `vnodesPerNode` tokens: token(node, i) = top 53 bits of
//   XXH64(utf8(`${node}#${i}`), VNODE_SEED). A shard sits at position(shard) = top 53 bits of
//   XXH64(u32be(shardId), SHARD_POSITION_SEED). Its replicas are the first `replicationFactor`
//   DISTINCT owners met walking clockwise from its position (tokens sorted by (position, owner);
//   wrapping past the largest). The first replica is the preferred leader.
// - With fewer members than the replication factor every member is a replica
//   (effectiveReplicationFactor = min(replicationFactor, members)).
// - Minimal movement: adding a member X changes a shard's replica set only by putting X in and
//   dropping the set's last member (the walk's distinct-owner sequence is the old one with X
//   inserted); removing X only drops X and appends the next owner of the walk. Replicas never
//   move between two members that were there before and after. test/ring/ring.test.ts measures
//   balance and movement.
// - The hash seeds and token naming must agree across every node of one cluster (they are not on
//   disk: placements are recorded with their epoch in the cluster metadata group).
import { invalidArgument } from '../util/errors.js';
import { hash64, hash64String } from './hash.js';

/** Default virtual nodes per member. */
export const DEFAULT_VNODES_PER_NODE = 128;
/** Largest accepted vnodesPerNode. */
export const MAX_VNODES_PER_NODE = 4096;

const VNODE_SEED = 0x9e3779b97f4a7c15n;
const SHARD_POSITION_SEED = 0x5bd1e9955bd1e995n;

export interface RingOptions {
  /** Replicas per shard (>= 1). */
  replicationFactor: number;
  /** Tokens per member (1..MAX_VNODES_PER_NODE); default DEFAULT_VNODES_PER_NODE. */
  vnodesPerNode?: number;
}

/** Position on the ring (a 53-bit integer) of virtual node `i` of `nodeId`. */
export function tokenPosition(nodeId: string, i: number): number {
  return Number(hash64String(`${nodeId}#${i}`, VNODE_SEED) >> 11n);
}

const shardPosBuf = Buffer.alloc(4);
/** Position on the ring (a 53-bit integer) of `shardId`. */
export function shardPosition(shardId: number): number {
  shardPosBuf.writeUInt32BE(shardId >>> 0, 0);
  return Number(hash64(shardPosBuf, SHARD_POSITION_SEED) >> 11n);
}

function checkPositiveInt(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 1 || v > max) throw invalidArgument(`${name} must be an integer in 1..${max}, got ${v}`);
}

export class HashRing {
  /** Member ids, sorted by code unit order (no duplicates). */
  readonly members: readonly string[];
  readonly replicationFactor: number;
  readonly vnodesPerNode: number;
  /** Token positions, ascending; owners[i] is the member index owning positions[i]. */
  private readonly positions: Float64Array;
  private readonly owners: Uint32Array;
  private readonly cache = new Map<number, readonly string[]>();

  private constructor(members: readonly string[], replicationFactor: number, vnodesPerNode: number) {
    this.members = members;
    this.replicationFactor = replicationFactor;
    this.vnodesPerNode = vnodesPerNode;
    const n = members.length * vnodesPerNode;
    const pos = new Float64Array(n);
    const own = new Uint32Array(n);
    for (let m = 0; m < members.length; m++) {
      for (let i = 0; i < vnodesPerNode; i++) {
        pos[m * vnodesPerNode + i] = tokenPosition(members[m]!, i);
        own[m * vnodesPerNode + i] = m;
      }
    }
    // Sort token indexes by (position, owner index); members are sorted, so ties break by id.
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((a, b) => pos[a]! - pos[b]! || own[a]! - own[b]!);
    this.positions = new Float64Array(n);
    this.owners = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      this.positions[i] = pos[order[i]!]!;
      this.owners[i] = own[order[i]!]!;
    }
  }

  /** Builds the ring of `members` (any order; ids must be distinct non-empty strings). */
  static create(members: Iterable<string>, options: RingOptions): HashRing {
    const vnodes = options.vnodesPerNode ?? DEFAULT_VNODES_PER_NODE;
    checkPositiveInt('replicationFactor', options.replicationFactor, 1024);
    checkPositiveInt('vnodesPerNode', vnodes, MAX_VNODES_PER_NODE);
    const list = [...members];
    for (const m of list) {
      if (typeof m !== 'string' || m.length === 0) throw invalidArgument(`ring member ids must be non-empty strings, got ${JSON.stringify(m)}`);
    }
    const sorted = [...list].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i] === sorted[i - 1]) throw invalidArgument(`duplicate ring member ${JSON.stringify(sorted[i])}`);
    }
    if (sorted.length === 0) throw invalidArgument('a ring needs at least one member');
    return new HashRing(Object.freeze(sorted), options.replicationFactor, vnodes);
  }

  /** min(replicationFactor, number of members): the length of every replicasFor() answer. */
  get effectiveReplicationFactor(): number {
    return Math.min(this.replicationFactor, this.members.length);
  }

  has(nodeId: string): boolean {
    return this.members.includes(nodeId);
  }

  /** The same ring plus `nodeId` (same options). */
  withMember(nodeId: string): HashRing {
    if (this.has(nodeId)) throw invalidArgument(`${JSON.stringify(nodeId)} is already a ring member`);
    return HashRing.create([...this.members, nodeId], this.options());
  }

  /** The same ring without `nodeId` (same options). */
  withoutMember(nodeId: string): HashRing {
    if (!this.has(nodeId)) throw invalidArgument(`${JSON.stringify(nodeId)} is not a ring member`);
    return HashRing.create(this.members.filter((m) => m !== nodeId), this.options());
  }

  /** Distinct replica node ids of `shardId` (a non-negative integer), preferred leader first.
   *  The returned array is frozen and shared between calls. */
  replicasFor(shardId: number): readonly string[] {
    if (!Number.isInteger(shardId) || shardId < 0 || shardId > 0xffffffff) {
      throw invalidArgument(`shardId must be a non-negative 32-bit integer, got ${shardId}`);
    }
    const hit = this.cache.get(shardId);
    if (hit !== undefined) return hit;
    const want = this.effectiveReplicationFactor;
    const n = this.positions.length;
    let i = this.firstAtOrAfter(shardPosition(shardId));
    const seen = new Uint8Array(this.members.length);
    const out: string[] = [];
    for (let steps = 0; out.length < want && steps < n; steps++, i++) {
      if (i === n) i = 0;
      const m = this.owners[i]!;
      if (seen[m] === 0) {
        seen[m] = 1;
        out.push(this.members[m]!);
      }
    }
    const frozen = Object.freeze(out);
    this.cache.set(shardId, frozen);
    return frozen;
  }

  private firstAtOrAfter(p: number): number {
    let lo = 0;
    let hi = this.positions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.positions[mid]! < p) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private options(): RingOptions {
    return { replicationFactor: this.replicationFactor, vnodesPerNode: this.vnodesPerNode };
  }
}
