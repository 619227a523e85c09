// Hashing for placement: xxHash (xxhash-wasm) behind synchronous functions, and key -> shard.
//
// xxhash-wasm instantiates its WebAssembly module asynchronously. This module does that once, at
// load time, with a top-level await, so that every importer gets synchronous `hash64`/`hash32`
// and there is no "not initialised yet" state to get wrong. `initHashing()` is kept for callers
// that want to await readiness explicitly; it resolves at once.
//
// FROZEN: `shardOf` decides which shard (and so which replicas and which storage prefix) holds a
// key. Changing the hash function, its seed or the reduction below relocates every key of an
// existing cluster; the golden values in test/ring/hash.test.ts guard it.
import xxhash from 'xxhash-wasm';
import { invalidArgument } from '../util/errors.js';

const api = await xxhash();

/** Seed of the key -> shard hash. FROZEN (see the file comment). */
export const SHARD_HASH_SEED = 0n;

/** Resolves once hashing is ready. Hashing is ready as soon as this module has loaded (it
 *  initialises with a top-level await), so this is a no-op kept for explicit call sites. */
export function initHashing(): Promise<void> {
  return Promise.resolve();
}

/** XXH64 of `bytes` as an unsigned 64-bit bigint. */
export function hash64(bytes: Uint8Array, seed = 0n): bigint {
  return api.h64Raw(bytes, seed);
}

/** XXH32 of `bytes` as an unsigned 32-bit number. */
export function hash32(bytes: Uint8Array, seed = 0): number {
  return api.h32Raw(bytes, seed) >>> 0;
}

/** XXH64 of the UTF-8 bytes of `s`. */
export function hash64String(s: string, seed = 0n): bigint {
  return api.h64(s, seed);
}

/** Largest shard count accepted: shard ids 0..65534 fit the 2-byte storage prefix of
 *  `shardKeyPrefix` (keys.ts) and so does the exclusive end of the last shard's range. */
export const MAX_SHARD_COUNT = 65535;

/** The shard id of the cluster-metadata Raft group (members, placement): the last id the storage
 *  prefix can hold, so user shard counts stop one short of MAX_SHARD_COUNT. */
export const META_SHARD_ID = MAX_SHARD_COUNT - 1;
/** Largest shard count a cluster may be configured with (ids below META_SHARD_ID). */
export const MAX_DATA_SHARD_COUNT = META_SHARD_ID;

function checkShardCount(shardCount: number): void {
  if (!Number.isSafeInteger(shardCount) || shardCount < 1 || shardCount > MAX_SHARD_COUNT) {
    throw invalidArgument(`shardCount must be an integer in 1..${MAX_SHARD_COUNT}, got ${shardCount}`);
  }
}

/** The shard of a key: XXH64(primary, seed 0) mod shardCount. Only the PRIMARY key is hashed, so
 *  every `primary:*` entry of one primary lives in one shard. FROZEN (see the file comment). */
export function shardOf(primary: Uint8Array, shardCount: number): number {
  checkShardCount(shardCount);
  return Number(api.h64Raw(primary, SHARD_HASH_SEED) % BigInt(shardCount));
}
