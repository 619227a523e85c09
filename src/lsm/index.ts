// distcache/lsm: the storage engine's public surface.
export { LsmEngine, EngineIterator } from './db.js';
export type * from './types.js';
export { KvError, CorruptionError } from '../util/errors.js';
export { DistcacheLevel, DistcacheSnapshot, type DistcacheLevelOptions } from './abstract-level.js';
