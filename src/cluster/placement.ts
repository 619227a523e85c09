// Desired placement from membership (pure): which members hold shard replicas, where every
// shard's replicas should live (the consistent-hash ring over those members), and which members
// vote in the metadata group. The metadata leader writes the result; shard leaders move their
// groups toward it (rebalancer.ts).
import { HashRing, computeShardMap } from '../ring/index.js';
import { type ClusterRecord, MAX_META_VOTERS, type MetaMember, type PlacementRecord, META_FORMAT_V1, liveMembers, placedRange } from './meta-state.js';

/** Members that should hold replicas: the up ones. */
export function eligibleMembers(c: ClusterRecord): MetaMember[] {
  return c.members.filter((m) => m.state === 'up');
}

/**
 * The placement the ring gives the eligible members, or undefined when it equals `current`
 * (same replicas and preferred leaders for every shard). Epoch = current epoch + 1.
 */
export function desiredPlacement(c: ClusterRecord, current: PlacementRecord): PlacementRecord | undefined {
  const ids = eligibleMembers(c).map((m) => m.nodeId);
  if (ids.length === 0) return undefined;
  const ring = HashRing.create(ids, { replicationFactor: c.replicationFactor, vnodesPerNode: c.vnodesPerNode });
  // the ring places slots; every shard of a slot (split pieces) lives where its slot does
  const map = computeShardMap(ring, c.shardCount, current.epoch + 1);
  const shards = current.shards.map((cur, shardId) => {
    if (cur.retired) return cur;
    const slot = placedRange(cur, shardId).slot;
    const want = map.shards[cur.range ? slot : shardId]!;
    return { ...cur, replicas: [...want.replicas], leaderHint: want.leaderHint };
  });
  for (let s = current.shards.length; s < c.shardCount; s++) shards.push({ replicas: [...map.shards[s]!.replicas], leaderHint: map.shards[s]!.leaderHint });
  const same = shards.length === current.shards.length && shards.every((s, i) => {
    const cur = current.shards[i]!;
    return cur.leaderHint === s.leaderHint && cur.replicas.length === s.replicas.length && cur.replicas.every((r, j) => r === s.replicas[j]);
  });
  if (same) return undefined;
  return { ...current, format: META_FORMAT_V1, epoch: map.epoch, shards };
}

/**
 * Voters of the metadata group: the current voters that are still eligible, topped up with
 * eligible members by raft id, at most MAX_META_VOTERS and an odd number (an even count adds a
 * member to every quorum without surviving one more failure). Every other live member keeps a
 * learner copy, so any node can route from local metadata.
 */
export function desiredMetaReplicas(c: ClusterRecord, currentVoters: readonly number[]): { voters: number[]; learners: number[] } {
  const eligible = eligibleMembers(c).sort((a, b) => a.raftId - b.raftId);
  let target = Math.min(MAX_META_VOTERS, eligible.length);
  if (target > 1 && target % 2 === 0) target--;
  const voters = currentVoters.filter((v) => eligible.some((m) => m.raftId === v));
  for (const m of eligible) {
    if (voters.length >= target) break;
    if (!voters.includes(m.raftId)) voters.push(m.raftId);
  }
  // never drop below the current (still eligible) voters just to reach an odd count
  const learners = liveMembers(c)
    .map((m) => m.raftId)
    .filter((id) => !voters.includes(id));
  return { voters: voters.sort((a, b) => a - b), learners };
}
