// Public API of the Raft core (package export "distcache/raft"). See rawnode.ts for the driving
// loop and types.ts for the Ready contract.
export * from './types.js';
export * from './errors.js';
export { type RaftConfig, type ValidConfig, type ReadOnlyOption, validateConfig } from './config.js';
export { type Storage, type InitialState, MemoryStorage, limitSize, cloneConfState } from './storage.js';
export { RawNode, type Status } from './rawnode.js';
export { Raft, CAMPAIGN_TRANSFER } from './raft.js';
export { encodeConfChange, decodeConfChange, isLeaveJoint } from './confchange.js';
export { ProgressState } from './progress.js';
export { RaftLog } from './log.js';
