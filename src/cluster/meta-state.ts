// The cluster metadata kept in its own Raft group (shard META_SHARD_ID): who the members are and
// where every shard's replicas live. Pure data + codec; meta-manager.ts reads and writes it
// through the multi-Raft store like any other shard's keys.
//
// Two records, each one key of the metadata shard, each updated as a whole with
// putIfVersionMatch (compare-and-set on the entry version), so concurrent writers (a join racing
// a rebalance step) cannot lose each other's change:
//   "cluster"   -> ClusterRecord  (cluster id, fixed parameters, members, next raft id)
//   "placement" -> PlacementRecord (epoch + per-shard replica list and preferred leader)
// Values are JSON with a format number: small (a few dozen bytes per member and per shard),
// readable with cache-cli, and easy to evolve. Layout: src/cluster/FORMAT.md.
import { encodeKey, type ShardMap, type ShardRange } from '../ring/index.js';
import type { RangeMove } from '../store/range-move.js';
import { KvError } from '../util/errors.js';

export const META_FORMAT_V1 = 1;
export const CLUSTER_KEY = encodeKey(Buffer.from('cluster'));
export const PLACEMENT_KEY = encodeKey(Buffer.from('placement'));

/** Stored member states. up: holds replicas per the placement; down: silent for longer than
 *  cluster.down_after_ms, its replicas are re-created elsewhere (up again when heard from);
 *  draining: decommissioned, replicas moving away; removed: gone for good (its raft id is never
 *  reused). The admin API also shows the observed states suspect (silent for an election
 *  timeout) and joining (up, but still receiving the replicas the placement gives it). */
export type MemberState = 'up' | 'down' | 'draining' | 'removed';

export interface MetaMember {
  nodeId: string;
  /** the id the Raft groups use; assigned once, never reused */
  raftId: number;
  /** host:port other nodes dial for Raft traffic (advertised) */
  peerAddress: string;
  /** host:port clients dial (advertised); '' until known */
  clientAddress: string;
  state: MemberState;
}

export interface ClusterRecord {
  format: number;
  clusterId: string;
  shardCount: number;
  replicationFactor: number;
  vnodesPerNode: number;
  nextRaftId: number;
  members: MetaMember[];
}

/** One shard of the placement. Shards of an unsplit cluster carry only replicas and leaderHint
 *  (shard s owns all of slot s); split and merge add the rest (src/server/reshard.ts). */
export interface PlacedShard {
  replicas: string[];
  leaderHint: string;
  /** the key space it owns (ring/routing.ts); absent: all of slot `shardId` */
  range?: ShardRange;
  /** raft ids a shard created by a split starts with: those members create its replica from
   *  the placement (all with this same configuration); cleared once the split is done */
  bootstrap?: number[];
  /** merged into another shard: owns nothing, its replicas are destroyed; the id is not reused */
  retired?: boolean;
}

export interface PlacementRecord {
  format: number;
  epoch: number;
  /** index = shard id */
  shards: PlacedShard[];
  /** a split or merge in progress (resumed by the metadata leader after a failure) */
  reshard?: ReshardRecord;
}

/** A split or merge in progress: the range move and the floor its freeze returned. */
export interface ReshardRecord extends RangeMove {
  op: 'split' | 'merge';
  /** version floor of the source (0 until the freeze returned it) */
  floor: number;
}

export function encodeRecord(r: ClusterRecord | PlacementRecord): Buffer {
  return Buffer.from(JSON.stringify(r));
}

export function decodeCluster(buf: Uint8Array): ClusterRecord {
  const r = parse(buf, 'cluster') as ClusterRecord;
  if (!Array.isArray(r.members) || typeof r.shardCount !== 'number' || typeof r.nextRaftId !== 'number') throw corrupt('cluster', 'missing fields');
  return r;
}

export function decodePlacement(buf: Uint8Array): PlacementRecord {
  const r = parse(buf, 'placement') as PlacementRecord;
  if (!Array.isArray(r.shards) || typeof r.epoch !== 'number') throw corrupt('placement', 'missing fields');
  return r;
}

function parse(buf: Uint8Array, what: string): { format?: unknown } {
  let r: { format?: unknown };
  try {
    r = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('utf8')) as { format?: unknown };
  } catch (err) {
    throw corrupt(what, (err as Error).message);
  }
  if (r.format !== META_FORMAT_V1) throw corrupt(what, `unknown format ${String(r.format)}`);
  return r;
}

function corrupt(what: string, why: string): KvError {
  return new KvError('CORRUPTION', `cluster metadata record "${what}": ${why}`);
}

export function placementFromShardMap(m: ShardMap): PlacementRecord {
  return { format: META_FORMAT_V1, epoch: m.epoch, shards: m.shards.map((s) => ({ replicas: [...s.replicas], leaderHint: s.leaderHint })) };
}

/** The key space a placed shard owns. */
export function placedRange(s: PlacedShard, shardId: number): ShardRange {
  return s.retired ? { slot: 0, lo: 0, hi: 0 } : (s.range ?? { slot: shardId, lo: 0, hi: 0x10000 });
}

export function shardMapFromPlacement(p: PlacementRecord, c: ClusterRecord): ShardMap {
  return {
    epoch: p.epoch,
    shardCount: c.shardCount,
    replicationFactor: c.replicationFactor,
    vnodesPerNode: c.vnodesPerNode,
    members: liveMembers(c).map((m) => m.nodeId).sort(),
    shards: p.shards.map((s, shardId) => ({ shardId, replicas: [...s.replicas], leaderHint: s.leaderHint, range: placedRange(s, shardId), ...(s.retired ? { retired: true } : {}) })),
  };
}

/** Members that take part in the cluster (not removed). */
export function liveMembers(c: ClusterRecord): MetaMember[] {
  return c.members.filter((m) => m.state !== 'removed');
}

/** The metadata group's voters: up to five of the founding members (the lowest raft ids). */
export const MAX_META_VOTERS = 5;
