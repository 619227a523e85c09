// Public surface of src/ring: key -> shard (hash.ts), the storage key encoding (keys.ts),
// shard -> replicas (ring.ts) and versioned placements (shard-map.ts). Pure; imports only util.
export { initHashing, hash32, hash64, hash64String, shardOf, SHARD_HASH_SEED, MAX_SHARD_COUNT, META_SHARD_ID, MAX_DATA_SHARD_COUNT } from './hash.js';
export {
  encodeKey,
  decodeKey,
  primaryPrefixRange,
  shardKeyPrefix,
  encodeShardKey,
  decodeShardKey,
  shardKeyRange,
  SHARD_PREFIX_BYTES,
  type DecodedKey,
  type KeyRange,
} from './keys.js';
export { HashRing, DEFAULT_VNODES_PER_NODE, MAX_VNODES_PER_NODE, tokenPosition, shardPosition, type RingOptions } from './ring.js';
export {
  computeShardMap,
  nextShardMap,
  diff,
  replicaCounts,
  leaderCounts,
  shardsOf,
  type ShardMap,
  type ShardAssignment,
  type ReplicaMove,
  type LeaderHintChange,
  type ShardMapDiff,
} from './shard-map.js';
export { ShardRouter, SUB_SPACE, keyPosition, subHashOf, wholeSlot, rangeContains, isWholeSlot, splitPoint, type ShardRange, type RoutedShard } from './routing.js';
