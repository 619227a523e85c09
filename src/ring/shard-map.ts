// Versioned shard placement: epoch + (shardId -> replicas, leaderHint), computed from a HashRing,
// and the difference between two placements as replica moves.
//
// Contract:
// - A ShardMap is plain, deeply frozen data (JSON-serialisable as is), so it can be stored in the
//   cluster metadata group and compared across nodes. The epoch orders placements: a node acts
//   on the map with the highest epoch it has seen; the producer bumps it on every change.
// - shards[i].shardId === i for i in 0..shardCount-1; replicas are distinct, preferred leader
//   first; leaderHint === replicas[0] (where a client should try first; the real leader is
//   whoever the shard's Raft group elected, and redirects correct a stale hint).
// - diff(old, new) lists, per shard, members leaving the replica set (`from`) paired with members
//   joining it (`to`), in shard order. Unpaired halves (the replication factor changed) have
//   `to: null` (a replica is dropped) or `from: null` (a replica is added).
// - No I/O.
import { invalidArgument } from '../util/errors.js';
import { MAX_SHARD_COUNT } from './hash.js';
import type { HashRing } from './ring.js';
import type { ShardRange } from './routing.js';

export interface ShardAssignment {
  readonly shardId: number;
  /** Distinct node ids, preferred leader first. */
  readonly replicas: readonly string[];
  readonly leaderHint: string;
  /** The key space it owns (routing.ts); absent: all of slot `shardId`. */
  readonly range?: ShardRange;
  /** Merged into another shard: owns nothing, has no replicas. */
  readonly retired?: boolean;
}

export interface ShardMap {
  /** Placement version; higher wins. A non-negative safe integer. */
  readonly epoch: number;
  readonly shardCount: number;
  /** Requested replication factor (replica lists are shorter when there are fewer members). */
  readonly replicationFactor: number;
  readonly vnodesPerNode: number;
  /** Ring members, sorted. */
  readonly members: readonly string[];
  /** Indexed by shard id. */
  readonly shards: readonly ShardAssignment[];
}

/** One replica of one shard changing hands (see the file comment for nulls). */
export interface ReplicaMove {
  readonly shardId: number;
  readonly from: string | null;
  readonly to: string | null;
}

export interface LeaderHintChange {
  readonly shardId: number;
  readonly from: string;
  readonly to: string;
}

export interface ShardMapDiff {
  readonly fromEpoch: number;
  readonly toEpoch: number;
  readonly moves: readonly ReplicaMove[];
  readonly leaderHintChanges: readonly LeaderHintChange[];
  /** Members present only in the new / only in the old map. */
  readonly addedMembers: readonly string[];
  readonly removedMembers: readonly string[];
}

/** The placement the ring gives `shardCount` shards, stamped with `epoch`. */
export function computeShardMap(ring: HashRing, shardCount: number, epoch: number): ShardMap {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > MAX_SHARD_COUNT) {
    throw invalidArgument(`shardCount must be an integer in 1..${MAX_SHARD_COUNT}, got ${shardCount}`);
  }
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw invalidArgument(`epoch must be a non-negative safe integer, got ${epoch}`);
  const shards: ShardAssignment[] = new Array(shardCount);
  for (let s = 0; s < shardCount; s++) {
    const replicas = ring.replicasFor(s);
    shards[s] = Object.freeze({ shardId: s, replicas, leaderHint: replicas[0]! });
  }
  return Object.freeze({
    epoch,
    shardCount,
    replicationFactor: ring.replicationFactor,
    vnodesPerNode: ring.vnodesPerNode,
    members: ring.members,
    shards: Object.freeze(shards),
  });
}

/** The placement after `prev` for a changed ring: same shard count, epoch + 1. */
export function nextShardMap(prev: ShardMap, ring: HashRing): ShardMap {
  return computeShardMap(ring, prev.shardCount, prev.epoch + 1);
}

/** Replica moves and leader-hint changes from `oldMap` to `newMap` (same shard count). */
export function diff(oldMap: ShardMap, newMap: ShardMap): ShardMapDiff {
  if (oldMap.shardCount !== newMap.shardCount) {
    throw invalidArgument(`cannot diff shard maps of different shard counts (${oldMap.shardCount} vs ${newMap.shardCount}); the shard count of a cluster is fixed`);
  }
  const moves: ReplicaMove[] = [];
  const leaderHintChanges: LeaderHintChange[] = [];
  for (let s = 0; s < oldMap.shardCount; s++) {
    const a = oldMap.shards[s]!;
    const b = newMap.shards[s]!;
    const leaving = a.replicas.filter((r) => !b.replicas.includes(r));
    const joining = b.replicas.filter((r) => !a.replicas.includes(r));
    const n = Math.max(leaving.length, joining.length);
    for (let i = 0; i < n; i++) moves.push({ shardId: s, from: leaving[i] ?? null, to: joining[i] ?? null });
    if (a.leaderHint !== b.leaderHint) leaderHintChanges.push({ shardId: s, from: a.leaderHint, to: b.leaderHint });
  }
  return {
    fromEpoch: oldMap.epoch,
    toEpoch: newMap.epoch,
    moves,
    leaderHintChanges,
    addedMembers: newMap.members.filter((m) => !oldMap.members.includes(m)),
    removedMembers: oldMap.members.filter((m) => !newMap.members.includes(m)),
  };
}

/** Number of shard replicas each member holds (members holding none are listed with 0). */
export function replicaCounts(map: ShardMap): Map<string, number> {
  const counts = new Map<string, number>(map.members.map((m) => [m, 0]));
  for (const sh of map.shards) for (const r of sh.replicas) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** Number of shards each member is the preferred leader of. */
export function leaderCounts(map: ShardMap): Map<string, number> {
  const counts = new Map<string, number>(map.members.map((m) => [m, 0]));
  for (const sh of map.shards) counts.set(sh.leaderHint, (counts.get(sh.leaderHint) ?? 0) + 1);
  return counts;
}

/** Shard ids `nodeId` holds a replica of, ascending. */
export function shardsOf(map: ShardMap, nodeId: string): number[] {
  const out: number[] = [];
  for (const sh of map.shards) if (sh.replicas.includes(nodeId)) out.push(sh.shardId);
  return out;
}
