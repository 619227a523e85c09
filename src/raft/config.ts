// RaftConfig and its validation. validate() runs before a node is built and either returns a
// complete config (every default filled in) or throws RaftError CONFIG_INVALID naming the field.
import { RaftError } from './errors.js';
import type { Storage } from './storage.js';
import { type Logger, type RandomSource, silentLogger } from './types.js';

export type ReadOnlyOption = 'safe' | 'lease';

export interface RaftConfig {
  /** This node's id (> 0). */
  id: number;
  storage: Storage;
  /** Ticks without hearing from a leader before a follower campaigns; randomized in [e, 2e). */
  electionTick: number;
  /** Ticks between leader heartbeats; must be < electionTick. */
  heartbeatTick: number;
  /** Seeded randomness for election timeouts. */
  random: RandomSource;
  /** Last index the application has applied (on restart); default: the storage's first index - 1. */
  applied?: number;
  /** Max bytes of entries in one append message. Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Max bytes of committed entries in one Ready. Default 4 MiB. */
  maxCommittedSizePerReady?: number;
  /** Max appends in flight per follower in Replicate state. Default 256. */
  maxInflightMsgs?: number;
  /** Max bytes in flight per follower; 0 = unlimited. Default 0. */
  maxInflightBytes?: number;
  /** Leader steps down if it has not heard from a quorum in an election timeout. Default true. */
  checkQuorum?: boolean;
  /** Run a pre-election so partitioned nodes do not inflate terms. Default true. */
  preVote?: boolean;
  /** 'lease' serves ReadIndex from the leader lease without a heartbeat round. Default 'safe'. */
  readOnlyOption?: ReadOnlyOption;
  /** Clock-drift bound for leases, in ticks: lease = electionTick - leaseDriftTicks. Must allow
   *  for the fastest follower clock: a follower rejects votes for electionTick of ITS ticks after
   *  hearing from the leader. Default ceil(electionTick / 4). */
  leaseDriftTicks?: number;
  /** Max bytes of snapshot data per InstallSnapshot chunk. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /** Snapshot chunks in flight per follower. Default 4. */
  snapshotWindow?: number;
  /** Followers drop proposals instead of forwarding them to the leader. Default false. */
  disableProposalForwarding?: boolean;
  /** A periodic heartbeat skips a follower in Replicate state that was sent an append since the
   *  previous heartbeat round: the append already reset its election timer and carried the
   *  commit index, and its response refreshes CheckQuorum activity. Heartbeats confirming a
   *  ReadIndex always go out. With leases, appends carry the leader's tick and their responses
   *  echo it, so the skipped heartbeat's lease renewal comes with the append's answer. Cuts the
   *  messages of busy groups (many groups per node). Default false. */
  skipHeartbeatAfterAppend?: boolean;
  /** A commit advance sends no empty appends: followers learn the commit index from the next
   *  append or heartbeat, or from the application (RawNode.learnCommit, e.g. a host's quiesce
   *  message). Saves an append and its response per follower per write when writes to a group
   *  are sparse; followers apply later (the leader answers its clients as before). Default false. */
  lazyCommitBroadcast?: boolean;
  logger?: Logger;
}

export interface ValidConfig {
  id: number;
  storage: Storage;
  electionTick: number;
  heartbeatTick: number;
  random: RandomSource;
  applied: number;
  maxSizePerMsg: number;
  maxCommittedSizePerReady: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  checkQuorum: boolean;
  preVote: boolean;
  readOnlyOption: ReadOnlyOption;
  /** readOnlyOption === 'lease' && checkQuorum. */
  leaseEnabled: boolean;
  leaseDriftTicks: number;
  /** electionTick - leaseDriftTicks */
  leaseTicks: number;
  snapshotChunkBytes: number;
  snapshotWindow: number;
  disableProposalForwarding: boolean;
  skipHeartbeatAfterAppend: boolean;
  lazyCommitBroadcast: boolean;
  logger: Logger;
}

function bad(msg: string): never {
  throw new RaftError('CONFIG_INVALID', msg);
}

function posInt(v: number, name: string, min = 1): number {
  if (!Number.isSafeInteger(v) || v < min) bad(`${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

export function validateConfig(c: RaftConfig): ValidConfig {
  if (c === null || typeof c !== 'object') bad('config must be an object');
  posInt(c.id, 'id');
  if (!c.storage) bad('storage is required');
  if (!c.random || typeof c.random.int !== 'function') bad('random (a seeded RandomSource) is required');
  posInt(c.heartbeatTick, 'heartbeatTick');
  posInt(c.electionTick, 'electionTick');
  if (c.electionTick <= c.heartbeatTick) bad(`electionTick (${c.electionTick}) must be greater than heartbeatTick (${c.heartbeatTick})`);
  const logger = c.logger ?? silentLogger;
  const checkQuorum = c.checkQuorum ?? true;
  const readOnlyOption = c.readOnlyOption ?? 'safe';
  if (readOnlyOption !== 'safe' && readOnlyOption !== 'lease') bad(`readOnlyOption must be 'safe' or 'lease'`);
  let leaseEnabled = readOnlyOption === 'lease';
  if (leaseEnabled && !checkQuorum) {
    // A lease is only sound if followers refuse votes while they hear from a leader, which is
    // the CheckQuorum rule. Fall back to heartbeat-confirmed ReadIndex.
    logger.warn(`node ${c.id}: lease reads need checkQuorum; falling back to ReadIndex`);
    leaseEnabled = false;
  }
  const leaseDriftTicks = posInt(c.leaseDriftTicks ?? Math.ceil(c.electionTick / 4), 'leaseDriftTicks');
  const leaseTicks = c.electionTick - leaseDriftTicks;
  if (readOnlyOption === 'lease' && leaseTicks < 1) bad(`lease (electionTick - leaseDriftTicks = ${leaseTicks}) must be positive`);
  const applied = c.applied ?? 0;
  posInt(applied, 'applied', 0);
  const maxSizePerMsg = posInt(c.maxSizePerMsg ?? 1 << 20, 'maxSizePerMsg');
  return {
    id: c.id,
    storage: c.storage,
    electionTick: c.electionTick,
    heartbeatTick: c.heartbeatTick,
    random: c.random,
    applied,
    maxSizePerMsg,
    maxCommittedSizePerReady: posInt(c.maxCommittedSizePerReady ?? 4 << 20, 'maxCommittedSizePerReady'),
    maxInflightMsgs: posInt(c.maxInflightMsgs ?? 256, 'maxInflightMsgs'),
    maxInflightBytes: posInt(c.maxInflightBytes ?? 0, 'maxInflightBytes', 0),
    checkQuorum,
    preVote: c.preVote ?? true,
    readOnlyOption,
    leaseEnabled,
    leaseDriftTicks,
    leaseTicks,
    snapshotChunkBytes: posInt(c.snapshotChunkBytes ?? 1 << 20, 'snapshotChunkBytes'),
    snapshotWindow: posInt(c.snapshotWindow ?? 4, 'snapshotWindow'),
    disableProposalForwarding: c.disableProposalForwarding ?? false,
    skipHeartbeatAfterAppend: c.skipHeartbeatAfterAppend ?? false,
    lazyCommitBroadcast: c.lazyCommitBroadcast ?? false,
    logger,
  };
}
