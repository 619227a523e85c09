// MultiRaftHost: all Raft groups of one node (one per shard replica on it), driven by ONE tick
// timer and ONE ready loop (TiKV batch-system style), over ONE node-wide Raft log
// (./raft-log.ts) and ONE LsmEngine (./apply.ts).
//
// One loop turn (pipelined: see the ordering rules R1-R5 at "the ready loop" below):
//   1. proposals queued since the last turn become ONE entry per shard (group commit across
//      clients); reads queued per shard become ONE ReadIndex request per shard;
//   2. Ready is collected from every group that may have one and is not in flight in an earlier
//      turn (a dirty set: ticked, stepped, proposed or read since the last turn — idle groups are
//      not even polled);
//   3. snapshots, entries and hard states of all of them go into ONE RaftLogStore write (one
//      append, one fsync), started but not awaited; a leader's appends and heartbeats are sent
//      right away, and committed entries that were already durable are applied right away (ONE
//      engine write) and their proposals resolved;
//   4. once the write is durable: the other messages are queued for the next turn's sends
//      (batched per destination node: one Transport.send per peer and turn), then the remaining
//      committed entries and snapshots are applied with ONE engine write (ApplyBatch); reads
//      whose index is applied are served;
//   5. advance(). Log compaction is not part of a turn's Ready: a truncation round
//      (startTruncationRound) flushes the engine beside the turns, then each turn writes, ahead
//      of its own records, the truncation of the groups not in flight (truncationStep).
// The next turn may begin while this one waits for its fsync (the WAL folds waiting writes into
// one fsync), so a put's leader append, follower append and leader apply do not each wait
// behind a whole serial turn of the node's other groups.
//
// Replica ids are node ids; group id = shard id + 1 (group ids must be > 0).
//
// Quiescence (idle groups cost ~nothing): a leader whose group has been idle for
// quiesceAfterTicks ticks (everything committed, applied and acknowledged by every voter, no
// pending requests) stops being ticked and tells its followers (a host-level message, group id 0)
// to stop ticking too; the message also carries the commit index, which is how the followers of
// a group written once learn that the write committed (Raft runs with lazyCommitBroadcast: no
// empty appends on a commit advance, two messages fewer per follower per put). Any message,
// proposal or read for the group wakes it. Host-level liveness
// pings (one per peer NODE per heartbeat interval, not per group) wake every quiesced group that
// includes a node not heard from for an election timeout, so followers of a dead leader elect a
// new one (ticks this loop itself lost to a stall do not count as a peer's silence). A leader that wakes moves its lease clock forward by the ticks it missed (capped at
// electionTick), so a quiesced leader never serves a lease read on a stale lease.
//
// Leases and lost ticks (readOnlyOption 'lease'): the tick timer fires late while the loop is
// busy and not at all while it is blocked (a long compaction slice, a GC pause); Node does not
// deliver the missed intervals. A leader whose clock lost ticks would believe its lease younger
// than it is, while its followers, on other nodes, count real time toward an election. So
// `ticks` follows the monotonic clock: before a tick, a turn or a received batch, the ticks no
// timer delivered are added (catchUpClock) and every awake leader's lease clock moves forward by
// them. Followers are not caught up (a late follower elects later: the safe side).
//
// Errors: StoreError with code NOT_LEADER (leaderHint: node id or 0; never applied: also when
// leadership changed after the proposal reached the log and another entry took its index),
// PROPOSAL_DROPPED (the outcome is unknown: after a leadership change a snapshot covered the
// proposal's index), TIMEOUT (unknown too), UNAVAILABLE, CLOSED, plus what validateCommand throws.
// A proposal in the log when leadership moves keeps waiting: a transfer hands the next leader a
// log that holds it, and it is answered with its result when it applies here.
import path from 'node:path';
import { LsmEngine } from '../lsm/db.js';
import type { LsmOptions } from '../lsm/types.js';
import {
  type ConfChange,
  type ConfState,
  type Message,
  type Ready,
  type ReadState,
  type Snapshot,
  EntryType,
  MessageType,
  ProgressState,
  RaftError,
  RawNode,
  StateRole,
  cloneConfState,
  decodeConfChange,
  isRaftError,
  makeMessage,
} from '../raft/index.js';
import { MAX_SHARD_COUNT } from '../ring/index.js';
import { CorruptionError } from '../util/errors.js';
import { DOUBLE_ZERO, smallInt } from '../util/bytes.js';
import { Rng } from '../util/rng.js';
import { ApplyBatch, type ReadResult, buildSnapshotData, readApplied, readValue, shardDataBytes } from './apply.js';
import { type Command, type CommandResult, type TaggedCommand, MAX_OPS_PER_ENTRY, commandBytes, encodeEntry, validateCommand } from './commands.js';
import { RaftLogStore, type RaftLogOptions } from './raft-log.js';
import { ShardRanges } from './shard-range.js';
import type { GroupMessage, Transport } from './transport.js';

export type StoreErrorCode = 'NOT_LEADER' | 'PROPOSAL_DROPPED' | 'TIMEOUT' | 'UNAVAILABLE' | 'CLOSED' | 'NOT_FOUND' | 'WRONG_SHARD' | 'RANGE_MOVING';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    /** NOT_LEADER: the node believed to lead the shard (0 = unknown) */
    readonly leaderHint = 0,
  ) {
    super(`${code}: ${message}`);
    this.name = 'StoreError';
  }
}

export interface HostOptions {
  nodeId: number;
  /** engine in <dataDir>/engine, node-wide Raft log in <dataDir>/raft */
  dataDir: string;
  transport: Transport;
  /** ms per Raft tick. Default 100. */
  tickMs?: number;
  /** Default 10 ticks. */
  electionTick?: number;
  /** Default 2 ticks. */
  heartbeatTick?: number;
  /** 'lease' enables leader-lease reads. Default 'safe' (ReadIndex with a heartbeat round). */
  readOnlyOption?: 'safe' | 'lease';
  /** Idle ticks before a leader quiesces its group; 0 disables quiescence. Default 3: with
   *  writes spread over ~1000 shards most groups sit idle for a second or more between two
   *  writes, and ticking plus heartbeating them (and their followers) all that time was a large
   *  share of a node's CPU under load. */
  quiesceAfterTicks?: number;
  /** A truncation round (see logGcBytes) also starts once a group applied this many entries
   *  since its log's compaction point. Default 10000. */
  snapshotEntries?: number;
  /** Raft-log truncation and GC: once this many bytes were written to the node's Raft log since
   *  the last round, the engine is flushed, every group's log is truncated at the applied index
   *  that flush made durable (no data is written: snapshots for followers are built from the
   *  engine when one needs it) and the segments nothing needs are deleted. Bounds the log's disk
   *  and memory. Default 64 MiB; 0 disables. */
  logGcBytes?: number;
  /** Each truncation round waits for logGcBytes less a random share of up to this fraction
   *  (0 <= jitter < 1): every replica of a group writes the same log, so without it all nodes
   *  flush their engines and truncate at the same moment. Default 0. */
  logGcJitter?: number;
  /** Max bytes of commands batched into one entry. Default 1 MiB. */
  maxEntryBytes?: number;
  /** Turns of the host loop that may wait for their Raft-log write at once (see "the ready
   *  loop"). Default 64 (in practice unbounded: a few). 1 is plain group commit, each turn
   *  carrying everything that arrived during the previous fsync: least CPU per write in short
   *  runs (bench:ab, 64 in flight: +18% puts/s, -20% server CPU/put), but every slow fsync then
   *  holds every group's sends and acks (bench:cluster, 128 in flight after a
   *  few minutes of load: 970 vs 1540 puts/s, p99 2.0 s vs 0.7 s). */
  maxTurnsInFlight?: number;
  /** Proposals and reads fail with TIMEOUT after this. Default 5000 ms. */
  requestTimeoutMs?: number;
  seed?: number;
  lsm?: LsmOptions;
  raftLog?: RaftLogOptions;
  /** Whether a message for a group this node has no replica of may create one (a leader added
   *  this node to the group). Default: never. */
  mayCreateReplica?: (shardId: number) => boolean;
  /** The cluster's slot count (its configured shard count): enables the shard owner checks and
   *  range moves of split and merge (shard-range.ts). 0 (default): every shard owns every key. */
  slotCount?: number;
}

/** What the rebalancer needs to know about a local replica. */
export interface ReplicaStatus {
  role: StateRole;
  lead: number;
  term: number;
  commit: number;
  applied: number;
  /** last index of the replica's log (persisted or not) */
  lastIndex: number;
  confState: ConfState;
  /** leader only: replication progress per member */
  progress: Map<number, { match: number; isLearner: boolean; recentActive: boolean; replicating: boolean }>;
}

interface Pending {
  resolve: (r: CommandResult) => void;
  reject: (e: Error) => void;
  group: Group;
  deadline: number;
  /** log index of the entry carrying the command (0 until proposed into the log) */
  index: number;
}

interface PendingRead {
  key: Uint8Array;
  /** a barrier: resolves once this replica applied the read index; reads no key */
  barrier?: boolean;
  resolve: (r: ReadResult) => void;
  reject: (e: Error) => void;
  deadline: number;
}

interface Group {
  shardId: number;
  groupId: number;
  node: RawNode;
  applied: number;
  confState: ConfState;
  /** the log's compaction point (snapshot or truncation) */
  snapIndex: number;
  /** the shard's bytes at some applied index (an exact scan, or an installed snapshot's data),
   *  carried forward over entries as the log is truncated: shardSizeEstimate's base */
  sizeBase: { index: number; bytes: number } | undefined;
  queue: TaggedCommand[];
  queueBytes: number;
  queueOps: number;
  reads: PendingRead[];
  /** ReadIndex requests in flight: ctx -> reads */
  readCtx: Map<string, PendingRead[]>;
  /** read states waiting for apply */
  readWait: Array<{ index: number; reads: PendingRead[] }>;
  quiesced: boolean;
  quiescedAt: number;
  idleTicks: number;
  lastIndexSeen: number;
  /** its Ready is handed out and not yet advanced (a turn is persisting/applying it) */
  inFlight: boolean;
  /** marked dirty while in flight: look at it again once advanced */
  redo: boolean;
  /** term and vote of the last hard state handed to the log (a change must be durable before
   *  any message of its Ready leaves) */
  hsTerm: number;
  hsVote: number;
  /** this node's proposals by the log index of their entry, until that index applies here:
   *  the entry applied there either carries them (answered with its result) or replaced theirs
   *  after a leadership change (answered: not applied). Kept across leadership changes. */
  proposed: Map<number, number[]>;
  /** a membership change proposed here, waiting for its entry to apply */
  confWait: { resolve: (c: ConfState) => void; reject: (e: Error) => void; deadline: number; afterIndex: number } | undefined;
}

/** One turn of the ready loop between beginTurn() and the end of finishTurn(). */
interface Turn {
  started: number;
  readies: Array<[Group, Ready]>;
  /** the turn's log write (resolved at once when it had nothing to write) */
  persisted: Promise<void>;
  /** the engine write of committed entries that were durable before the turn */
  earlyApplied: Promise<void>;
  /** messages that leave only once `persisted` resolved */
  lateMsgs?: Array<[Group, Message]>;
  /** Readies whose snapshot or committed entries are applied only once `persisted` resolved */
  lateApply?: Array<[Group, Ready]>;
  confDone: Group[];
}

/** An answer to one of this node's proposals, given once the apply is written. */
type Done = { seq: number; result: CommandResult } | { seq: number; error: StoreError };

const RESOLVED: Promise<void> = Promise.resolve();
/** groups a truncation round handles per loop turn (truncationStep) */
const TRUNCATION_GROUPS_PER_TURN = 128;

const QUIESCE = 1;
const PING = 2;

export class MultiRaftHost {
  readonly nodeId: number;
  private readonly groups = new Map<number, Group>(); // by group id
  private readonly dirty = new Set<Group>();
  private readonly pending = new Map<number, Pending>();
  /** Tags this node's proposals. Starts from the clock (ms x 1000), not 0: entries proposed by an
   *  earlier run of this node may still be applied after a restart (a lagging replica replays
   *  them), and must not answer a new proposal that happens to reuse their seq. */
  private seq = Date.now() * 1000;
  private readCtxSeq = 0;
  /** Host ticks: follows real time (catchUpClock), not only the timer's deliveries. */
  private ticks = 0;
  /** performance.now() when the tick timer started: tick n is due at clockStart + n * tickMs. */
  private clockStart = DOUBLE_ZERO;
  private lastPingTick = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** turns begun and not yet finished */
  private turnsInFlight = 0;
  private scheduled = false;
  private fatal: unknown;
  private readonly peerHeard = new Map<number, number>();
  private readonly peerHeardAt = new Map<number, number>();
  private readonly rng: Rng;
  private readonly o: Required<Omit<HostOptions, 'lsm' | 'raftLog' | 'seed' | 'transport' | 'nodeId' | 'dataDir' | 'mayCreateReplica' | 'slotCount'>>;
  readonly stats = { logGcs: 0, logTruncations: 0, engineFlushMs: DOUBLE_ZERO, logSegmentsDeletedBefore: 0, turns: 0, logWrites: 0, entriesProposed: 0, commandsProposed: 0, applyWrites: 0, messagesSent: 0, sends: 0, snapshotsCreated: 0, snapshotsApplied: 0, messagesReceived: 0, ticks: 0, replicasCreated: 0, replicasDestroyed: 0, reads: 0, followerReads: 0, readyGroups: 0, turnMs: DOUBLE_ZERO, beginMs: DOUBLE_ZERO, persistMs: DOUBLE_ZERO, applyMs: DOUBLE_ZERO, earlySends: 0, earlyApplies: 0, maxTurnsInFlight: 0, roleChanges: 0, electionTimeouts: 0, quorumStepDowns: 0, ticksCaughtUp: 0, peerSilenceWakes: 0, leaseReads: 0, heartbeatsSent: 0, maxTurnMs: DOUBLE_ZERO, truncationRoundMs: DOUBLE_ZERO, maxTruncationRoundMs: DOUBLE_ZERO, truncationTurns: 0, truncationDeferrals: 0 };

  private constructor(
    private readonly opts: HostOptions,
    readonly engine: LsmEngine,
    readonly log: RaftLogStore,
  ) {
    this.nodeId = opts.nodeId;
    const electionTick = opts.electionTick ?? 10;
    this.o = {
      tickMs: opts.tickMs ?? 100,
      electionTick,
      heartbeatTick: opts.heartbeatTick ?? 2,
      readOnlyOption: opts.readOnlyOption ?? 'safe',
      quiesceAfterTicks: opts.quiesceAfterTicks ?? 3,
      snapshotEntries: opts.snapshotEntries ?? 10000,
      logGcBytes: opts.logGcBytes ?? 64 * 1024 * 1024,
      logGcJitter: opts.logGcJitter ?? 0,
      maxEntryBytes: opts.maxEntryBytes ?? 1 << 20,
      maxTurnsInFlight: Math.max(1, opts.maxTurnsInFlight ?? 64),
      requestTimeoutMs: opts.requestTimeoutMs ?? 5000,
    };
    this.rng = new Rng(opts.seed ?? opts.nodeId * 7919);
    if (!(this.o.logGcJitter >= 0 && this.o.logGcJitter < 1)) throw new RangeError(`logGcJitter must be in [0, 1), got ${this.o.logGcJitter}`);
    this.drawGcThreshold();
    this.ranges = new ShardRanges(engine, opts.slotCount ?? 0);
  }

  /** Which keys each local shard owns (split and merge). */
  readonly ranges: ShardRanges;

  /** Opens the node's engine and Raft log and recovers every group found in the log. */
  static async open(opts: HostOptions): Promise<MultiRaftHost> {
    if (!Number.isSafeInteger(opts.nodeId) || opts.nodeId <= 0) throw new StoreError('NOT_FOUND', `nodeId must be a positive integer, got ${opts.nodeId}`);
    const engine = await LsmEngine.open(path.join(opts.dataDir, 'engine'), { walSync: 'off', ...opts.lsm });
    let log: RaftLogStore;
    try {
      log = await RaftLogStore.open(path.join(opts.dataDir, 'raft'), opts.raftLog ?? {});
    } catch (err) {
      await engine.close();
      throw err;
    }
    const host = new MultiRaftHost(opts, engine, log);
    // Recovery: applies skip the engine's WAL (ApplyBatch.commit), so after a crash the engine
    // holds the state of its last flush. A group's log is truncated only at an applied index
    // the engine had flushed, so the engine is at or past it; a snapshot installed from a
    // leader may be ahead of the engine: re-apply that. Entries after the engine's applied
    // index are re-applied by Raft from `applied` on.
    const b = new ApplyBatch(engine, host.ranges);
    try {
      for (const gid of log.groupIds()) {
        const shardId = gid - 1;
        const st = log.group(gid);
        const applied = readApplied(engine, shardId);
        if (applied >= st.snap.metadata.index) continue;
        if (st.truncated) throw new CorruptionError(path.join(opts.dataDir, 'engine'), 0, `shard ${shardId}: the engine's applied index ${applied} is behind the Raft log's truncation at ${st.snap.metadata.index} (the engine lost state it had flushed)`);
        b.applySnapshot(shardId, st.snap.metadata.index, st.snap.data);
      }
      await b.commit();
    } catch (err) {
      await log.close();
      await engine.close();
      throw err;
    }
    for (const gid of log.groupIds()) host.startGroup(gid);
    opts.transport.onReceive((from, batch) => host.receive(from, batch));
    opts.transport.onUnreachable((n) => host.unreachable(n));
    host.clockStart = performance.now();
    host.timer = setInterval(() => host.tick(), host.o.tickMs);
    host.timer.unref?.();
    return host;
  }

  private startGroup(groupId: number): Group {
    const shardId = groupId - 1;
    const storage = this.log.group(groupId);
    const applied = Math.max(readApplied(this.engine, shardId), storage.snap.metadata.index);
    const node = new RawNode({
      id: this.nodeId,
      storage,
      electionTick: this.o.electionTick,
      heartbeatTick: this.o.heartbeatTick,
      random: this.rng.fork(),
      applied,
      readOnlyOption: this.o.readOnlyOption,
      checkQuorum: true,
      preVote: true,
      // with ~1000 busy groups per node, heartbeats next to appends were most of the messages
      skipHeartbeatAfterAppend: true,
      // followers learn a commit from the next append, heartbeat or QUIESCE message
      lazyCommitBroadcast: true,
    });
    // Membership changes between the log's snapshot and the applied index are not handed out
    // again as committed entries (the engine already has their effects): re-apply them to Raft
    // here, or a restarted replica would run with the snapshot's stale configuration.
    let confState = cloneConfState(storage.initialState().confState);
    const snapIndex = storage.snap.metadata.index;
    if (applied > snapIndex && storage.lastIndex() > snapIndex) {
      for (const e of storage.entries(snapIndex + 1, Math.min(applied, storage.lastIndex()) + 1, Number.MAX_SAFE_INTEGER)) {
        if (e.type === EntryType.ConfChange) confState = node.applyConfChange(decodeConfChange(e.data));
      }
    }
    storage.evictThrough(applied); // replayed from the log at open: applied ones need not stay
    const g: Group = {
      shardId,
      groupId,
      node,
      applied,
      confState,
      snapIndex,
      sizeBase: storage.truncated ? undefined : { index: snapIndex, bytes: storage.snap.data.length },
      queue: [],
      queueBytes: 0,
      queueOps: 0,
      reads: [],
      readCtx: new Map(),
      readWait: [],
      proposed: new Map(),
      quiesced: false,
      quiescedAt: 0,
      idleTicks: 0,
      lastIndexSeen: 0,
      inFlight: false,
      redo: false,
      hsTerm: storage.initialState().hardState.term,
      hsVote: storage.initialState().hardState.vote,
      confWait: undefined,
    };
    storage.snapshotSource = () => this.buildSnapshot(g);
    this.groups.set(groupId, g);
    this.dirty.add(g);
    return g;
  }

  /**
   * A snapshot of the shard at the engine's applied index, for a follower that needs entries
   * the log truncated. Only when the engine shows every entry the group applied (an apply
   * write still on its way would leave the engine's state and the group's configuration apart).
   */
  private buildSnapshot(g: Group): Snapshot {
    const st = this.log.group(g.groupId);
    const index = readApplied(this.engine, g.shardId);
    if (index !== g.applied || index < st.snap.metadata.index || index > st.lastIndex()) {
      throw new RaftError('SNAPSHOT_TEMPORARILY_UNAVAILABLE', `shard ${g.shardId}: engine at ${index}, group applied ${g.applied}, log ${st.snap.metadata.index}..${st.lastIndex()}`);
    }
    this.stats.snapshotsCreated++;
    return { metadata: { index, term: st.term(index), confState: cloneConfState(g.confState) }, data: buildSnapshotData(this.engine, g.shardId, index) };
  }

  /**
   * Creates the local replicas of shards (idempotent: shards already present are left alone).
   * Every replica of a shard must be created with the same `replicas` (node ids): the initial
   * membership is a bootstrap snapshot at index 1, term 1. All new shards share one log write.
   */
  async addShards(shards: Array<{ shardId: number; replicas: number[] }>): Promise<void> {
    this.checkOpen();
    const b = this.log.batch();
    const fresh: number[] = [];
    for (const { shardId, replicas } of shards) {
      if (!Number.isInteger(shardId) || shardId < 0 || shardId >= MAX_SHARD_COUNT) throw new StoreError('NOT_FOUND', `bad shard id ${shardId}`);
      const gid = shardId + 1;
      if (this.groups.has(gid)) continue;
      const gl = this.log.group(gid);
      if (gl.lastIndex() === 0 && gl.snap.metadata.index === 0) {
        const confState: ConfState = { voters: [...replicas].sort((a, c) => a - c), learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
        b.applySnapshot(gid, { metadata: { index: 1, term: 1, confState }, data: new Uint8Array(0) });
      }
      fresh.push(gid);
    }
    // until they are started, messages for these groups must not create them another way
    // (maybeCreateReplica during the awaits below would start a second replica on the storage
    // the bootstrap snapshot is being written to)
    for (const gid of fresh) this.bootstrapping.add(gid);
    try {
      await this.log.write(b);
      const ab = new ApplyBatch(this.engine, this.ranges);
      for (const gid of fresh) if (readApplied(this.engine, gid - 1) < 1) ab.applySnapshot(gid - 1, 1, new Uint8Array(0));
      await ab.commit();
      for (const gid of fresh) if (!this.groups.has(gid)) this.startGroup(gid);
    } finally {
      for (const gid of fresh) this.bootstrapping.delete(gid);
    }
    this.kick();
  }

  shardIds(): number[] {
    return [...this.groups.keys()].map((g) => g - 1).sort((a, b) => a - b);
  }

  /** Node id of the shard's leader as this replica knows it (0 = unknown). */
  leaderOf(shardId: number): number {
    return this.group(shardId).node.raft.lead;
  }

  isLeader(shardId: number): boolean {
    return this.group(shardId).node.raft.role === StateRole.Leader;
  }

  /** Starts an election for the shard on this replica now. */
  campaign(shardId: number): void {
    const g = this.group(shardId);
    this.wake(g);
    g.node.campaign();
    this.dirty.add(g);
    this.kick();
  }

  /** Whether this node holds a replica of the shard. */
  hasReplica(shardId: number): boolean {
    return this.groups.has(shardId + 1);
  }

  /** Milliseconds since a message from `node` last arrived (Infinity: never). */
  sinceHeardMs(node: number): number {
    const t = this.peerHeardAt.get(node);
    return t === undefined ? Number.POSITIVE_INFINITY : Date.now() - t;
  }

  /** The group's configuration as applied here (read-only view, no copy: for hot checks). */
  confStateOf(shardId: number): Readonly<ConfState> {
    return this.group(shardId).confState;
  }

  replicaStatus(shardId: number): ReplicaStatus {
    const g = this.group(shardId);
    const r = g.node.raft;
    const progress = new Map<number, { match: number; isLearner: boolean; recentActive: boolean; replicating: boolean }>();
    if (r.role === StateRole.Leader) for (const [id, pr] of r.tracker.progress) progress.set(id, { match: pr.match, isLearner: pr.isLearner, recentActive: pr.recentActive, replicating: pr.state === ProgressState.Replicate });
    return { role: r.role, lead: r.lead, term: r.term, commit: r.log.committed, applied: g.applied, lastIndex: r.log.lastIndex(), confState: cloneConfState(g.confState), progress };
  }

  /**
   * Proposes a membership change of a shard's group (leader only); resolves with the new
   * configuration once the change is applied here. One change at a time per group.
   */
  changeReplicas(shardId: number, cc: ConfChange): Promise<ConfState> {
    try {
      this.checkOpen();
      const g = this.group(shardId);
      const r = g.node.raft;
      if (r.role !== StateRole.Leader) return Promise.reject(new StoreError('NOT_LEADER', `node ${this.nodeId} does not lead shard ${shardId}`, r.lead));
      if (g.confWait) return Promise.reject(new StoreError('UNAVAILABLE', `shard ${shardId}: a membership change is already in progress`));
      this.wake(g);
      const afterIndex = r.log.lastIndex();
      try {
        g.node.proposeConfChange(cc);
      } catch (err) {
        return Promise.reject(isRaftError(err, 'PROPOSAL_DROPPED') ? new StoreError('UNAVAILABLE', `shard ${shardId}: membership change refused: ${(err as Error).message}`, r.lead) : err);
      }
      this.dirty.add(g);
      this.kick();
      return new Promise((resolve, reject) => {
        g.confWait = { resolve, reject, deadline: Date.now() + this.o.requestTimeoutMs, afterIndex };
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Destroys a replica the group removed. The caller must have learned from the group's current
   * leader that this node is not in the committed configuration (this replica's own applied
   * configuration is not enough: it may be replaying history from before it was added).
   * Destroying a replica that is still a voter would let it come back empty and vote for a
   * candidate missing committed entries.
   */
  async destroyRemovedReplica(shardId: number): Promise<void> {
    const g = this.group(shardId);
    if (g.node.raft.role === StateRole.Leader) throw new StoreError('UNAVAILABLE', `node ${this.nodeId} leads shard ${shardId}; it is a member`);
    await this.destroyReplica(g);
  }

  /** Destroys the local replica of a shard merged into another. The caller has the cluster
   *  metadata's word that the group released all its keys (committed in the group), so even a
   *  lagging replica holds nothing anyone needs; the role of this replica does not matter. */
  async destroyRetiredReplica(shardId: number): Promise<void> {
    await this.destroyReplica(this.group(shardId));
  }

  /** Asks the shard's leader (this replica) to hand leadership to `to`. */
  transferLeader(shardId: number, to: number): void {
    const g = this.group(shardId);
    this.wake(g);
    g.node.transferLeader(to);
    this.dirty.add(g);
    this.kick();
  }

  /** Upper bound of the bytes the shard holds on this replica, without reading the engine: the
   *  last exact size (shardBytes) plus every entry applied since (an overwrite counts twice);
   *  Infinity when there is none yet (after a restart), so that the caller measures. */
  shardSizeEstimate(shardId: number): number {
    const g = this.group(shardId);
    const base = g.sizeBase;
    if (!base) return Number.POSITIVE_INFINITY;
    return base.bytes + this.entryBytes(g, base.index, g.applied);
  }

  /** Bytes of the commands of the group's entries in (from, to]; Infinity if some were truncated. */
  private entryBytes(g: Group, from: number, to: number): number {
    const st = this.log.group(g.groupId);
    if (to <= from) return 0;
    if (from < st.firstIndex() - 1) return Number.POSITIVE_INFINITY;
    return st.dataBytes(from + 1, to + 1);
  }

  /** Bytes of keys and stored values the shard holds in this node's engine (a range scan). */
  shardBytes(shardId: number): number {
    const g = this.group(shardId);
    const bytes = shardDataBytes(this.engine, shardId);
    if (readApplied(this.engine, shardId) === g.applied) g.sizeBase = { index: g.applied, bytes };
    return bytes;
  }

  appliedIndex(shardId: number): number {
    return this.group(shardId).applied;
  }

  /** Whether the group is quiesced on this replica (not ticked). */
  isQuiesced(shardId: number): boolean {
    return this.group(shardId).quiesced;
  }

  private group(shardId: number): Group {
    const g = this.groups.get(shardId + 1);
    if (!g) throw new StoreError('NOT_FOUND', `shard ${shardId} has no replica on node ${this.nodeId}`);
    return g;
  }

  /**
   * Proposes a command to a shard; resolves once it is applied on this node. Only the leader
   * accepts proposals (NOT_LEADER with the leader hint otherwise).
   */
  propose(shardId: number, command: Command): Promise<CommandResult> {
    try {
      this.checkOpen();
      validateCommand(command);
      const g = this.group(shardId);
      if (g.node.raft.role !== StateRole.Leader) return Promise.reject(new StoreError('NOT_LEADER', `node ${this.nodeId} does not lead shard ${shardId}`, g.node.raft.lead));
      const seq = ++this.seq;
      g.queue.push({ proposer: this.nodeId, seq, ops: command.ops });
      g.queueBytes += commandBytes(command);
      g.queueOps += command.ops.length;
      // a quiesced leader must tick again: its followers wake on the append and would otherwise
      // sit out an election timeout without heartbeats and pre-vote
      this.wake(g);
      this.dirty.add(g);
      this.kick();
      return new Promise((resolve, reject) => this.pending.set(seq, { resolve, reject, group: g, deadline: Date.now() + this.o.requestTimeoutMs, index: 0 }));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Linearizable read of one key via ReadIndex (served from the leader lease when the Raft
   * config enables it). Works on followers too (follower read: the read index comes from the
   * leader, the data from this replica once it applied that index).
   */
  read(shardId: number, key: Uint8Array): Promise<ReadResult> {
    try {
      this.checkOpen();
      const g = this.group(shardId);
      return new Promise((resolve, reject) => {
        g.reads.push({ key, resolve, reject, deadline: Date.now() + this.o.requestTimeoutMs });
        this.wake(g);
        this.dirty.add(g);
        this.kick();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Resolves once this replica has applied everything the shard committed before the call
   *  (ReadIndex, like a linearizable read of no key). */
  barrier(shardId: number): Promise<void> {
    try {
      this.checkOpen();
      const g = this.group(shardId);
      return new Promise((resolve, reject) => {
        g.reads.push({ key: Buffer.alloc(0), barrier: true, resolve: () => resolve(), reject, deadline: Date.now() + this.o.requestTimeoutMs });
        this.wake(g);
        this.dirty.add(g);
        this.kick();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Reads this replica's applied state without any consistency guarantee (tests, debugging). */
  readLocal(shardId: number, key: Uint8Array): ReadResult {
    return readValue(this.engine, shardId, key);
  }

  // ---------------------------------------------------------------- input: ticks, messages

  /** Adds the ticks of real time no timer delivered (see "Leases and lost ticks"). One tick may
   *  be due and not delivered yet: the timer's next call accounts for it. */
  private catchUpClock(): void {
    const behind = Math.floor((performance.now() - this.clockStart) / this.o.tickMs) - this.ticks - 1;
    if (behind <= 0) return;
    this.ticks += behind;
    this.stats.ticksCaughtUp += behind;
    // This loop stalled (GC, a long turn, a descheduled process): it heard nobody over those
    // ticks, whatever its peers sent. Counted as the peers' silence, the next ping round would
    // find every peer silent past the election timeout and wake every quiesced group at once.
    for (const [p, heard] of this.peerHeard) this.peerHeard.set(p, heard + behind);
    const n = Math.min(behind, this.o.electionTick);
    for (const g of this.groups.values()) if (!g.quiesced) g.node.advanceLeaseClock(n);
  }

  private tick(): void {
    if (this.closed) return;
    this.catchUpClock();
    this.ticks++;
    const now = Date.now();
    for (const g of this.groups.values()) {
      if (g.quiesced) continue;
      // before the tick: the heartbeats it may produce would reach the followers after the
      // QUIESCE message and wake them, with no leader ticking to follow up
      if (this.o.quiesceAfterTicks > 0 && this.quiesceDue(g)) {
        this.quiesce(g);
        continue;
      }
      const before = g.node.raft.role;
      g.node.tick();
      this.stats.ticks++;
      const after = g.node.raft.role;
      if (after !== before) {
        // ticks change a role only by an election timeout or a CheckQuorum step-down
        if (before === StateRole.Leader) this.stats.quorumStepDowns++;
        else if (before === StateRole.Follower) this.stats.electionTimeouts++;
      }
      // Most ticks of most groups change nothing a Ready would carry (no heartbeat due, no
      // election): keep those groups out of the next turn.
      if (g.node.hasReady()) this.dirty.add(g);
    }
    // timeouts
    for (const [seq, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(seq);
        p.reject(new StoreError('TIMEOUT', `proposal to shard ${p.group.shardId} not applied in ${this.o.requestTimeoutMs} ms`));
      }
    }
    for (const g of this.groups.values()) {
      if (g.confWait && g.confWait.deadline <= now) {
        g.confWait.reject(new StoreError('TIMEOUT', `membership change of shard ${g.shardId} not applied in ${this.o.requestTimeoutMs} ms`));
        g.confWait = undefined;
      }
      if (g.readCtx.size === 0 && g.readWait.length === 0 && g.reads.length === 0) continue;
      if (g.reads.length > 0) {
        // reads held while no leader is known (flushQueues)
        for (const r of g.reads) if (r.deadline <= now) r.reject(new StoreError('TIMEOUT', `read on shard ${g.shardId} timed out: no leader known`));
        g.reads = g.reads.filter((r) => r.deadline > now);
      }
      for (const [ctx, reads] of g.readCtx) {
        const live = reads.filter((r) => r.deadline > now);
        for (const r of reads) if (r.deadline <= now) r.reject(new StoreError('TIMEOUT', `read on shard ${g.shardId} timed out (leader ${g.node.raft.lead || 'unknown'})`, g.node.raft.lead));
        if (live.length === 0) g.readCtx.delete(ctx);
        else g.readCtx.set(ctx, live);
      }
    }
    // host-level liveness: one ping per peer node per heartbeat interval
    if (this.o.quiesceAfterTicks > 0 && this.ticks - this.lastPingTick >= this.o.heartbeatTick) {
      this.lastPingTick = this.ticks;
      const peers = this.peers();
      for (const p of peers) {
        this.opts.transport.send(p, [{ groupId: 0, message: makeMessage({ type: MessageType.Heartbeat, from: this.nodeId, to: p, context: Uint8Array.of(PING) }) }]);
        const heard = this.peerHeard.get(p);
        if (heard === undefined) this.peerHeard.set(p, this.ticks);
        else if (this.ticks - heard > this.o.electionTick) this.wakeGroupsOf(p);
      }
    }
    this.kick();
  }

  private peers(): Set<number> {
    const s = new Set<number>();
    for (const g of this.groups.values()) for (const v of g.confState.voters) if (v !== this.nodeId) s.add(v);
    for (const k of this.peerHeard.keys()) s.add(k);
    return s;
  }

  private wakeGroupsOf(node: number): void {
    for (const g of this.groups.values()) {
      if (g.quiesced && g.confState.voters.includes(node)) {
        this.stats.peerSilenceWakes++;
        this.wake(g);
      }
    }
  }

  /** Counts a leader's idle ticks; true once it has been idle for quiesceAfterTicks ticks and
   *  has nothing in flight or pending (whatever a pending Ready sends would follow the QUIESCE). */
  private quiesceDue(g: Group): boolean {
    const r = g.node.raft;
    if (r.role !== StateRole.Leader) {
      g.idleTicks = 0;
      return false;
    }
    const last = r.log.lastIndex();
    const idle = last === g.lastIndexSeen && this.idleLeader(g);
    g.lastIndexSeen = last;
    if (!idle) {
      g.idleTicks = 0;
      return false;
    }
    return ++g.idleTicks >= this.o.quiesceAfterTicks && !g.inFlight && !g.node.hasReady();
  }

  /** A leader with nothing to do: no queued proposals or reads, everything committed, applied
   *  and held by every follower. */
  private idleLeader(g: Group): boolean {
    const r = g.node.raft;
    if (r.role !== StateRole.Leader) return false;
    const last = r.log.lastIndex();
    if (g.queue.length > 0 || g.reads.length > 0 || g.readCtx.size > 0 || g.readWait.length > 0 || r.log.committed !== last || g.applied !== last) return false;
    // a leadership transfer times out by ticks: keep ticking until it is done
    if (r.leadTransferee !== 0) return false;
    for (const [id, pr] of r.tracker.progress) if (id !== this.nodeId && pr.match !== last) return false;
    return true;
  }

  /** Quiesces an idle leader right away (not after quiesceAfterTicks idle ticks) once its last
   *  Ready went out: a put's group then costs no heartbeats at all. The QUIESCE message carries
   *  the commit index to its followers (leaders send no separate commit broadcast). */
  private maybeQuiesceNow(g: Group): void {
    if (this.o.quiesceAfterTicks <= 0 || g.quiesced || g.inFlight || this.groups.get(g.groupId) !== g) return;
    if (!this.idleLeader(g) || g.node.hasReady()) return;
    this.quiesce(g);
  }

  private quiesce(g: Group): void {
    const r = g.node.raft;
    const last = r.log.lastIndex();
    g.quiesced = true;
    g.quiescedAt = this.ticks;
    g.idleTicks = 0;
    g.lastIndexSeen = last;
    for (const id of r.tracker.progress.keys()) {
      if (id === this.nodeId) continue;
      const ctx = Buffer.alloc(1 + 24);
      ctx[0] = QUIESCE;
      ctx.writeUInt32BE(g.groupId, 1);
      ctx.writeDoubleBE(r.term, 5);
      ctx.writeDoubleBE(last, 13);
      this.outbox(id).push({ groupId: 0, message: makeMessage({ type: MessageType.Heartbeat, from: this.nodeId, to: id, context: ctx }) });
    }
    this.kick();
  }

  private wake(g: Group): void {
    if (!g.quiesced) return;
    g.quiesced = false;
    g.idleTicks = 0;
    const r = g.node.raft;
    if (r.role === StateRole.Leader) {
      // The lease clock did not run while quiesced: advance it by the ticks that passed (capped),
      // so a lease cannot outlive real time.
      g.node.advanceLeaseClock(Math.min(this.ticks - g.quiescedAt, this.o.electionTick));
    }
    this.dirty.add(g);
  }

  /** Called after each engine write of applied entries with the shards whose applied index moved
   *  (the node watches the cluster-metadata group this way). Listeners must not throw. */
  onApplied(listener: (shardIds: number[]) => void): void {
    this.appliedListeners.push(listener);
  }
  private readonly appliedListeners: Array<(shardIds: number[]) => void> = [];

  private outboxes = new Map<number, GroupMessage[]>();
  private outbox(node: number): GroupMessage[] {
    let b = this.outboxes.get(node);
    if (!b) this.outboxes.set(node, (b = []));
    return b;
  }

  private receive(from: number, batch: GroupMessage[]): void {
    if (this.closed) return;
    this.catchUpClock(); // a forwarded ReadIndex may be answered from the lease right here
    this.peerHeard.set(from, this.ticks);
    this.peerHeardAt.set(from, Date.now());
    this.stats.messagesReceived += batch.length;
    for (const { groupId, message } of batch) {
      if (groupId === 0) {
        this.hostMessage(from, message);
        continue;
      }
      const g = this.groups.get(groupId) ?? this.maybeCreateReplica(groupId, message);
      if (!g) continue;
      // An append or heartbeat ack reaching a quiesced leader (a late ack of its last append,
      // typically) leaves it quiesced unless it shows work to do.
      const ack = g.quiesced && (message.type === MessageType.AppResp || message.type === MessageType.HeartbeatResp) && !message.reject;
      if (!ack) this.wake(g);
      try {
        g.node.step(message);
      } catch (err) {
        if (!isRaftError(err, 'PROPOSAL_DROPPED')) this.fail(err);
      }
      if (ack && !this.idleLeader(g)) this.wake(g);
      this.dirty.add(g);
      if (!ack && message.type === MessageType.AppResp) this.maybeQuiesceNow(g);
    }
    this.kick();
  }

  /** A leader talks to this node about a group it has no replica of: it was added to the group
   *  (as a learner). Create an empty replica — Raft fills it with a snapshot and the log — but
   *  only for messages only a leader sends, and only where the placement says it belongs. */
  private maybeCreateReplica(groupId: number, m: Message): Group | undefined {
    if (m.type !== MessageType.App && m.type !== MessageType.Heartbeat && m.type !== MessageType.Snap) return undefined;
    const shardId = groupId - 1;
    if (shardId < 0 || shardId >= MAX_SHARD_COUNT || !this.opts.mayCreateReplica?.(shardId)) return undefined;
    if (this.destroying.has(groupId) || this.bootstrapping.has(groupId)) return undefined;
    this.stats.replicasCreated++;
    return this.startGroup(groupId);
  }

  private hostMessage(from: number, m: Message): void {
    const ctx = m.context;
    if (!ctx || ctx.length === 0) return;
    if (ctx[0] === QUIESCE && ctx.length >= 21) {
      const b = Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength);
      const g = this.groups.get(b.readUInt32BE(1));
      if (!g) return;
      const term = smallInt(b.readDoubleBE(5));
      const index = smallInt(b.readDoubleBE(13));
      const r = g.node.raft;
      if (r.term !== term || r.lead !== from || r.log.lastIndex() !== index || g.queue.length > 0 || g.reads.length > 0 || g.readCtx.size > 0) return;
      if (r.log.committed < index) {
        // The leader quiesces only once this replica acknowledged its whole log (match = index),
        // so index is committed and held here. Leaders send no commit broadcast
        // (lazyCommitBroadcast): for a put to an otherwise idle group this message is what
        // tells its followers the entry committed.
        if (!g.node.learnCommit(from, term, index)) return;
        this.dirty.add(g);
        this.kick();
      }
      if (r.log.committed === index) {
        g.quiesced = true;
        g.quiescedAt = this.ticks;
      }
    }
  }

  private unreachable(node: number): void {
    for (const g of this.groups.values()) {
      if (g.node.raft.role === StateRole.Leader && g.confState.voters.includes(node)) {
        g.node.reportUnreachable(node);
        this.dirty.add(g);
      }
    }
  }

  // ---------------------------------------------------------------- the ready loop
  //
  // Pipelined. A turn (beginTurn, synchronous) hands out the Readies of the dirty groups that are
  // not in flight, starts their ONE log write, sends what may leave before that write is durable
  // and starts applying what is already durable; finishTurn (asynchronous) waits for the write,
  // sends the rest, applies the rest and calls advance(). The next turn may begin while earlier
  // ones wait for their fsync: the WAL keeps the writes in call order and folds the waiting ones
  // into one fsync. Ordering rules, and why they are enough:
  //  R1. Per group, ready() and advance() alternate: a group in flight sits out later turns until
  //      its turn finished (it is re-marked dirty then). So a group's writes, messages and
  //      applies stay in order, and its storage (GroupLog) holds exactly the durable entries.
  //  R2. A message that acknowledges anything — MsgAppResp, vote responses, every message of a
  //      non-leader, every message of a Ready that changes term or vote — leaves only after its
  //      Ready's write is durable (the Raft rule "persist before send").
  //  R3. A leader's appends, heartbeats and snapshots leave BEFORE its own write is durable: they
  //      acknowledge nothing, and the leader persists in parallel with its followers (Raft thesis
  //      §10.2.1), which takes the leader's fsync off a put's critical path.
  //  R4. The leader's own vote counts in the commit quorum only once its entries are durable.
  //      Raft counts it at append time, but every effect of a commit leaves Raft only through a
  //      later Ready (committed entries, the commit index in messages, read states), and by R1
  //      that Ready is handed out only after this write is durable.
  //  R5. Committed entries already durable here (index <= the group's persisted last index) are
  //      applied, and their clients answered, without waiting for this turn's fsync; committed
  //      entries made durable by this very write (a follower told the commit index together with
  //      the entries, a single-replica group) are applied after it.

  private kick(): void {
    if (this.closed || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.startTurn();
    });
  }

  private startTurn(): void {
    if (this.closed || this.fatal) return;
    this.catchUpClock(); // before flushQueues hands reads to a leader that may answer from its lease
    if (this.gcPhase === 'idle' && this.gcDue()) this.startTruncationRound();
    if (this.gcPhase === 'ready' || this.gcPhase === 'rewriting') this.truncationStep();
    if (this.turnsInFlight >= this.o.maxTurnsInFlight) {
      this.sendOutboxes();
      return; // the last one to finish kicks again
    }
    let t: Turn | undefined;
    try {
      t = this.beginTurn();
    } catch (err) {
      this.fail(err);
      return;
    }
    if (!t) return;
    this.turnsInFlight++;
    if (this.gcPhase === 'rewriting' || this.gcPhase === 'finishing') this.stats.truncationTurns++;
    if (this.turnsInFlight > this.stats.maxTurnsInFlight) this.stats.maxTurnsInFlight = this.turnsInFlight;
    const started = t.started;
    this.finishTurn(t).then(
      () => {
        this.turnsInFlight--;
        const ms = performance.now() - started;
        this.stats.turnMs += ms;
        if (ms > this.stats.maxTurnMs) this.stats.maxTurnMs = ms;
        // a finished turn may free groups a truncation round waits for
        if (this.dirty.size > 0 || this.gcPhase === 'rewriting' || (this.gcPhase === 'idle' && this.gcDue())) this.kick();
      },
      (err: unknown) => {
        this.turnsInFlight--;
        this.fail(err);
      },
    );
  }

  private fail(err: unknown): void {
    if (this.fatal) return;
    this.fatal = err;
    // eslint-disable-next-line no-console
    console.error(`node ${this.nodeId}: host loop failed:`, err);
    void this.close();
  }

  private flushQueues(g: Group): void {
    if (g.queue.length > 0) {
      const r = g.node.raft;
      if (r.role !== StateRole.Leader) {
        for (const c of g.queue) this.rejectSeq(c.seq, new StoreError('NOT_LEADER', `node ${this.nodeId} no longer leads shard ${g.shardId}`, r.lead));
      } else {
        // cut into entries of at most maxEntryBytes / MAX_OPS_PER_ENTRY ops
        let batch: TaggedCommand[] = [];
        let bytes = 0;
        let ops = 0;
        const flush = (): void => {
          if (batch.length === 0) return;
          const cmds = batch;
          batch = [];
          bytes = 0;
          ops = 0;
          try {
            g.node.propose(encodeEntry(cmds));
            this.stats.entriesProposed++;
            this.stats.commandsProposed += cmds.length;
            const index = g.node.raft.log.lastIndex();
            const seqs: number[] = [];
            for (const c of cmds) {
              const p = this.pending.get(c.seq);
              if (p) p.index = index;
              seqs.push(c.seq);
            }
            // an index can hold an earlier proposal of ours that another leader's entry replaced
            // here before we led again: both wait for what applies there
            const earlier = g.proposed.get(index);
            g.proposed.set(index, earlier ? earlier.concat(seqs) : seqs);
          } catch (err) {
            for (const c of cmds) this.rejectSeq(c.seq, isRaftError(err, 'PROPOSAL_DROPPED') ? new StoreError('NOT_LEADER', `shard ${g.shardId}: ${(err as Error).message}`, r.lead) : (err as Error));
          }
        };
        for (const c of g.queue) {
          const cb = commandBytes(c);
          if (batch.length > 0 && (bytes + cb > this.o.maxEntryBytes || ops + c.ops.length > MAX_OPS_PER_ENTRY)) flush();
          batch.push(c);
          bytes += cb;
          ops += c.ops.length;
        }
        flush();
      }
      g.queue = [];
      g.queueBytes = 0;
      g.queueOps = 0;
    }
    // no leader known (an election is on): hold the reads until one is (resendReads), or their deadline
    if (g.reads.length > 0 && (g.node.raft.lead !== 0 || g.node.raft.role === StateRole.Leader)) {
      const reads = g.reads;
      g.reads = [];
      const ctx = Buffer.allocUnsafe(8);
      ctx.writeUInt32BE(this.nodeId, 0);
      ctx.writeUInt32BE(++this.readCtxSeq >>> 0, 4);
      const r = g.node.raft;
      const fromLease = r.role === StateRole.Leader && r.committedEntryInCurrentTerm() && g.node.hasValidLease();
      try {
        g.node.readIndex(ctx);
        g.readCtx.set(ctx.toString('latin1'), reads);
        if (fromLease) this.stats.leaseReads += reads.length;
      } catch (err) {
        const e = isRaftError(err, 'PROPOSAL_DROPPED') ? new StoreError('UNAVAILABLE', `shard ${g.shardId}: no leader known for a read`, g.node.raft.lead) : (err as Error);
        for (const r of reads) r.reject(e);
      }
    }
  }

  private rejectSeq(seq: number, err: Error): void {
    const p = this.pending.get(seq);
    if (!p) return;
    this.pending.delete(seq);
    p.reject(err);
  }

  /** Hands out the Readies of the dirty groups not in flight and starts their persistence,
   *  early sends and early applies (see the ordering rules above). undefined: nothing to do. */
  private beginTurn(): Turn | undefined {
    const started = performance.now();
    const work: Group[] = [];
    for (const g of this.dirty) {
      if (g.inFlight) g.redo = true;
      else work.push(g);
    }
    this.dirty.clear();
    const readies: Array<[Group, Ready]> = [];
    for (const g of work) {
      this.flushQueues(g);
      if (g.node.hasReady()) readies.push([g, g.node.ready()]);
    }
    if (readies.length === 0) {
      this.sendOutboxes();
      return undefined;
    }
    this.stats.turns++;
    this.stats.readyGroups += readies.length;
    const b = this.log.batch();
    const early = new ApplyBatch(this.engine, this.ranges);
    const earlyDone: Done[] = [];
    const earlyMoved: number[] = [];
    const lateMsgs: Array<[Group, Message]> = [];
    const lateApply: Array<[Group, Ready]> = [];
    const turn: Turn = { started, readies, persisted: RESOLVED, confDone: [], earlyApplied: RESOLVED };
    for (const r of readies) {
      const [g, rd] = r;
      g.inFlight = true;
      if (rd.snapshot) b.applySnapshot(g.groupId, rd.snapshot);
      b.append(g.groupId, rd.entries);
      const termOrVote = rd.hardState !== undefined && (rd.hardState.term !== g.hsTerm || rd.hardState.vote !== g.hsVote);
      if (rd.hardState) {
        b.setHardState(g.groupId, rd.hardState);
        g.hsTerm = rd.hardState.term;
        g.hsVote = rd.hardState.vote;
      }
      // a new term or vote must be durable before any message goes out; a commit index need not
      if (rd.mustSync) b.sync = true;
      // R3: a leader's appends/heartbeats/snapshots leave now; everything else after the write
      const leading = g.node.raft.role === StateRole.Leader && !termOrVote;
      for (const m of rd.messages) {
        if (leading && (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap)) this.outbox(m.to).push({ groupId: g.groupId, message: m });
        else lateMsgs.push([g, m]);
      }
      // R5: committed entries that were durable before this turn are applied now. Not those at
      // or above this Ready's first entry: they come from the unstable tail, which may replace
      // (conflicting suffix) what storage holds at the same indexes.
      const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
      const firstNew = rd.entries[0]?.index ?? Number.POSITIVE_INFINITY;
      if (!rd.snapshot && lastCommitted !== undefined && lastCommitted.index < firstNew && lastCommitted.index <= this.log.group(g.groupId).lastIndex()) {
        this.applyEntries(g, rd, early, earlyDone, turn);
        earlyMoved.push(g.shardId);
      } else if (rd.snapshot || lastCommitted !== undefined) {
        lateApply.push(r);
      }
    }
    this.stats.earlySends += this.outboxes.size;
    this.sendOutboxes();
    if (!b.empty) {
      const tp = performance.now();
      this.stats.logWrites++;
      turn.persisted = this.log.write(b).then(() => {
        this.stats.persistMs += performance.now() - tp;
      });
    }
    if (!early.empty) {
      this.stats.earlyApplies++;
      turn.earlyApplied = this.commitApply(early, earlyDone, earlyMoved);
    }
    turn.lateMsgs = lateMsgs;
    turn.lateApply = lateApply;
    this.stats.beginMs += performance.now() - started;
    return turn;
  }

  /** Persisted → late sends → late applies → reads → advance(), then compaction. */
  private async finishTurn(t: Turn): Promise<void> {
    await t.persisted;
    if (this.closed) return;
    for (const [g, m] of t.lateMsgs ?? []) this.outbox(m.to).push({ groupId: g.groupId, message: m });
    // They leave with the next turn's early sends (that turn starts in this loop iteration's
    // check phase): one transport message per peer instead of two. A gRPC message costs ~0.4 ms
    // of CPU on its two ends together here (bench:ab at 64 puts in flight: +10% puts/s).
    this.kick();
    const late = new ApplyBatch(this.engine, this.ranges);
    const done: Done[] = [];
    const moved: number[] = [];
    for (const [g, rd] of t.lateApply ?? []) {
      if (this.groups.get(g.groupId) !== g) continue; // destroyed while in flight: its data is gone
      this.applyEntries(g, rd, late, done, t);
      moved.push(g.shardId);
    }
    if (!late.empty) await this.commitApply(late, done, moved);
    await t.earlyApplied;
    if (this.closed) return;
    // reads
    for (const [g, rd] of t.readies) {
      for (const rs of rd.readStates) this.readState(g, rs);
      this.serveReads(g);
    }
    // advance; leadership changes
    for (const [g, rd] of t.readies) {
      g.node.advance();
      g.inFlight = false;
      if (rd.softState) this.stats.roleChanges++;
      if (rd.softState && rd.softState.role !== StateRole.Leader) this.rejectUnproposed(g);
      if (rd.softState) this.resendReads(g);
      if (this.groups.get(g.groupId) !== g) continue; // destroyed meanwhile
      if (g.redo || g.node.hasReady()) this.dirty.add(g);
      else if (g.node.raft.role === StateRole.Leader) this.maybeQuiesceNow(g);
      g.redo = false;
    }
    // membership changes resolve after advance(): Raft accepts the next one only then
    for (const g of t.confDone) {
      g.confWait?.resolve(cloneConfState(g.confState));
      g.confWait = undefined;
    }
    // A replica never destroys itself on applying a configuration without it: a new replica
    // replaying the group's history passes through such configurations (before it was added,
    // or an earlier removal of this node before a re-add). destroyRemovedReplica() does it once
    // the group's current leader confirms the removal.
  }

  /** Adds a Ready's snapshot and committed entries to `ab`; collects this node's proposals. */
  private applyEntries(g: Group, rd: Ready, ab: ApplyBatch, done: Done[], t: Turn): void {
    if (rd.snapshot && rd.snapshot.metadata.index > g.applied) {
      if (g.proposed.size > 0) this.settleProposedBySnapshot(g, rd.snapshot.metadata.index, done);
      ab.applySnapshot(g.shardId, rd.snapshot.metadata.index, rd.snapshot.data);
      g.applied = rd.snapshot.metadata.index;
      g.confState = cloneConfState(rd.snapshot.metadata.confState);
      g.snapIndex = rd.snapshot.metadata.index;
      g.sizeBase = { index: g.snapIndex, bytes: rd.snapshot.data.length };
      this.stats.snapshotsApplied++;
    }
    if (rd.committedEntries.length === 0) return;
    for (const e of rd.committedEntries) {
      if (e.index <= g.applied) continue;
      const answeredFrom = done.length; // done[answeredFrom..]: this entry's commands of ours
      if (e.type === EntryType.ConfChange) {
        g.confState = g.node.applyConfChange(decodeConfChange(e.data));
        if (g.confWait && e.index > g.confWait.afterIndex) t.confDone.push(g);
      } else {
        for (const { cmd, result } of ab.applyEntry(g.shardId, e.index, e.data)) if (cmd.proposer === this.nodeId) done.push({ seq: cmd.seq, result });
      }
      if (g.proposed.size > 0) this.settleProposed(g, e.index, answeredFrom, done);
      g.applied = e.index;
    }
    ab.setApplied(g.shardId, g.applied);
    // applied: the entries' bytes go (a lagging follower is sent them read back from the log)
    this.log.group(g.groupId).evictThrough(g.applied);
    if (g.applied - g.snapIndex >= this.o.snapshotEntries) this.truncationWanted = true;
  }

  /** One engine write for a batch of applies; then answers the proposers and tells listeners. */
  private async commitApply(ab: ApplyBatch, done: Done[], moved: number[]): Promise<void> {
    const ta = performance.now();
    await ab.commit();
    this.stats.applyWrites++;
    this.stats.applyMs += performance.now() - ta;
    if (this.appliedListeners.length > 0) {
      for (const l of this.appliedListeners) {
        try {
          l(moved);
        } catch (err) {
          console.error(`node ${this.nodeId}: onApplied listener failed:`, err);
        }
      }
    }
    for (const d of done) {
      const p = this.pending.get(d.seq);
      if (!p) continue;
      this.pending.delete(d.seq);
      if ('error' in d) p.reject(d.error);
      else if (d.result.rejected) p.reject(new StoreError(d.result.rejected.code, d.result.rejected.message));
      else p.resolve(d.result);
    }
  }

  /** log bytes written when the last truncation round started */
  private gcMark = DOUBLE_ZERO;
  /** log bytes after gcMark that start the next round (logGcBytes less its jitter) */
  private gcThreshold = DOUBLE_ZERO;
  /** idle; flushing the engine (turns go on); ready to truncate at `gcCut`; rewriting: the
   *  groups in `gcRewrite` still need their truncation and their old records re-written past
   *  `gcBelow`; finishing: syncing and deleting what the round freed */
  private gcPhase: 'idle' | 'flushing' | 'ready' | 'rewriting' | 'finishing' = 'idle';
  private gcCut = new Map<Group, { index: number; confState: ConfState }>();
  private gcRewrite = new Set<Group>();
  /** first segment of the round (everything the round writes lands there or later) */
  private gcBelow = 0;
  /** the round's log writes still on their way */
  private gcWrites = 0;
  private gcStarted = DOUBLE_ZERO;
  /** a group applied snapshotEntries past its compaction point */
  private truncationWanted = false;
  /** backups in progress (holdLogTruncation) */
  private truncationHolds = 0;

  private drawGcThreshold(): void {
    this.gcThreshold = this.o.logGcBytes * (1 - this.o.logGcJitter * this.rng.next());
  }

  /** enough written since the last truncation round, or a group applied many entries */
  private gcDue(): boolean {
    if (this.truncationWanted) return true;
    return this.o.logGcBytes > 0 && this.log.stats.bytes - this.gcMark >= this.gcThreshold;
  }

  /**
   * Raft-log truncation, first half (turns go on meanwhile): notes every group's applied index
   * as the engine shows it, then flushes the engine, which makes those states durable; the
   * second half (truncationStep) truncates the groups' logs there. Applies skip the
   * engine's WAL, so before that flush the log is what a restart would re-apply them from.
   */
  private startTruncationRound(): void {
    this.gcPhase = 'flushing';
    this.gcStarted = performance.now();
    this.gcMark = this.log.stats.bytes;
    this.drawGcThreshold();
    this.truncationWanted = false;
    const cut = new Map<Group, { index: number; confState: ConfState }>();
    for (const g of this.groups.values()) {
      const st = this.log.group(g.groupId);
      const index = readApplied(this.engine, g.shardId);
      const at = st.snap.metadata.index;
      // nothing to compact (an installed snapshot's data is dropped from memory by truncating
      // at its own index)
      if (index < at || (index === at && (st.truncated || st.snap.data.length === 0))) continue;
      // The configuration as of `index` is g.confState only when the engine shows all the
      // group applied (an apply write may be waiting for the engine): else the next round.
      if (index !== g.applied || index > st.lastIndex()) continue;
      cut.set(g, { index, confState: cloneConfState(g.confState) });
    }
    const started = performance.now();
    this.gcFlush = this.engine.flush().then(
      () => {
        this.stats.engineFlushMs += performance.now() - started;
        this.gcCut = cut;
        this.gcPhase = 'ready';
        this.kick();
      },
      (err: unknown) => {
        if (!this.closed) this.fail(err);
      },
    );
  }
  private gcFlush: Promise<void> = RESOLVED;
  /** deletion of the segments the last round freed */
  private gcDelete: Promise<void> = RESOLVED;

  /**
   * Raft-log truncation, second half, done piecewise beside the turns (a round never stops the
   * loop): the Raft log moves to a new segment (`gcBelow`); then, on every loop turn, each group
   * with no log write outstanding (R1: not in flight) gets, in one log write issued before the
   * turn's own, its TRUNCATE record at the applied index the engine flush made durable (if it
   * has one in the cut) and copies of its hard-state and compaction records that sit below
   * `gcBelow`. Such a group's in-memory state is exactly its durable state, so the copies are
   * current, and the WAL keeps call order, so its next records land after them. Groups in
   * flight wait for a later turn. Once every group is done and those writes are durable, the
   * segments below the oldest one still needed (live entries) are deleted, turns going on.
   */
  private truncationStep(): void {
    if (this.truncationHolds > 0) return; // a backup is copying: its release kicks
    if (this.gcPhase === 'ready') {
      this.gcBelow = this.log.rotate();
      this.gcRewrite = new Set(this.groups.values());
      this.gcPhase = 'rewriting';
    }
    const b = this.log.batch();
    const done: Array<[Group, number]> = [];
    let handled = 0;
    for (const g of this.gcRewrite) {
      if (g.inFlight) {
        this.stats.truncationDeferrals++;
        continue;
      }
      // a bounded share per turn: all 1024 groups' records and size bookkeeping in one turn
      // held the loop for tens of ms on every node at once (the rest go in the next turns)
      if (handled++ >= TRUNCATION_GROUPS_PER_TURN) break;
      this.gcRewrite.delete(g);
      if (this.groups.get(g.groupId) !== g) continue; // destroyed meanwhile
      const c = this.gcCut.get(g);
      const st = this.log.group(g.groupId);
      // a snapshot installed meanwhile may be past the cut
      if (c && !(c.index < st.snap.metadata.index || (c.index === st.snap.metadata.index && st.truncated) || c.index > st.lastIndex())) {
        b.truncate(g.groupId, c.index, c.confState);
        done.push([g, c.index]);
        // the size estimate's base moves over the entries about to go
        if (g.sizeBase && g.sizeBase.index < c.index) {
          const bytes = g.sizeBase.bytes + this.entryBytes(g, g.sizeBase.index, c.index);
          g.sizeBase = Number.isFinite(bytes) ? { index: c.index, bytes } : undefined;
        }
      }
      this.log.rewriteGroupBelow(b, g.groupId, this.gcBelow);
    }
    if (!b.empty) {
      this.gcWrites++;
      this.log.write(b).then(
        () => {
          this.gcWrites--;
          for (const [g, index] of done) if (index > g.snapIndex) g.snapIndex = index;
          this.stats.logTruncations += done.length;
          this.maybeFinishTruncationRound();
        },
        (err: unknown) => {
          this.gcWrites--;
          if (!this.closed) this.fail(err);
        },
      );
    } else this.maybeFinishTruncationRound();
  }

  private maybeFinishTruncationRound(): void {
    if (this.gcPhase !== 'rewriting' || this.gcRewrite.size > 0 || this.gcWrites > 0 || this.closed) return;
    this.gcPhase = 'finishing';
    this.gcCut = new Map();
    const below = this.gcBelow;
    const prev = this.gcDelete;
    this.gcDelete = (async () => {
      await prev;
      // every copy durable (a turn's write may have gone without an fsync), then the segments
      // nothing needs any more go; unlinking ~logGcBytes of files is slow on a busy disk
      await this.log.sync();
      const r = this.log.collectableBelow(below);
      this.stats.logGcs++;
      this.stats.logSegmentsDeletedBefore = r.deletedBefore;
      const ms = performance.now() - this.gcStarted;
      this.stats.truncationRoundMs += ms;
      if (ms > this.stats.maxTruncationRoundMs) this.stats.maxTruncationRoundMs = ms;
      this.gcPhase = 'idle';
      if (this.gcDue()) this.kick();
      await this.log.deleteSegmentsBefore(r.deletedBefore);
    })().catch((err: unknown) => {
      if (this.gcPhase === 'finishing') this.gcPhase = 'idle';
      if (!this.closed) console.error(`node ${this.nodeId}: finishing a Raft-log truncation round failed (the next round retries):`, err);
    });
  }

  /**
   * Keeps truncation rounds from truncating any log until the returned release is called
   * (a backup copies the engine first and the Raft logs after: no log may be truncated past
   * the engine copy's applied index in between). Waits for a truncation write under way.
   */
  async holdLogTruncation(): Promise<() => void> {
    this.checkOpen();
    this.truncationHolds++;
    // a round's truncation already on its way to the log would change it under the backup
    while (this.gcWrites > 0) await new Promise((r) => setTimeout(r, 1));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.truncationHolds--;
      this.kick();
    };
  }

  private readonly destroying = new Set<number>();
  /** groups addShards() is creating (see there) */
  private readonly bootstrapping = new Set<number>();

  /** Forgets a replica this node no longer belongs to: its Raft state and its shard's data. */
  private async destroyReplica(g: Group): Promise<void> {
    if (this.groups.get(g.groupId) !== g) return;
    this.destroying.add(g.groupId);
    try {
      this.groups.delete(g.groupId);
      this.dirty.delete(g);
      const err = new StoreError('NOT_LEADER', `node ${this.nodeId} no longer has a replica of shard ${g.shardId}`, g.node.raft.lead);
      this.dropPending(g, err);
      for (const r of g.reads) r.reject(err);
      for (const rs of g.readCtx.values()) for (const r of rs) r.reject(err);
      for (const w of g.readWait) for (const r of w.reads) r.reject(err);
      g.confWait?.reject(err);
      await this.log.removeGroup(g.groupId);
      const ab = new ApplyBatch(this.engine, this.ranges);
      ab.destroyShard(g.shardId);
      await ab.commit();
      this.stats.replicasDestroyed++;
    } finally {
      this.destroying.delete(g.groupId);
    }
  }

  private sendOutboxes(): void {
    if (this.outboxes.size === 0) return;
    const boxes = this.outboxes;
    this.outboxes = new Map();
    for (const [node, batch] of boxes) {
      this.stats.sends++;
      this.stats.messagesSent += batch.length;
      for (const m of batch) if (m.groupId !== 0 && m.message.type === MessageType.Heartbeat) this.stats.heartbeatsSent++;
      this.opts.transport.send(node, batch);
    }
  }

  /**
   * The leader changed (or this replica lost leadership): ReadIndex requests still waiting for
   * their read index were sent to, or held by, the old leader, which may never answer. Queue
   * them again for the current leader (a late answer to an old request is ignored: its context
   * is gone). Reads that already have their index keep it: any leader's index is valid.
   */
  private resendReads(g: Group): void {
    for (const reads of g.readCtx.values()) g.reads.push(...reads);
    g.readCtx.clear();
    if (g.reads.length === 0) return;
    this.dirty.add(g);
    this.kick();
  }

  private readState(g: Group, rs: ReadState): void {
    const key = Buffer.from(rs.context.buffer, rs.context.byteOffset, rs.context.byteLength).toString('latin1');
    const reads = g.readCtx.get(key);
    if (!reads) return;
    g.readCtx.delete(key);
    g.readWait.push({ index: rs.index, reads });
  }

  private serveReads(g: Group): void {
    if (g.readWait.length === 0) return;
    // reads this replica serves while not leading: follower ReadIndex (offloaded from the leader)
    const follower = g.node.raft.role !== StateRole.Leader;
    const keep: typeof g.readWait = [];
    for (const w of g.readWait) {
      if (w.index > g.applied) {
        keep.push(w);
        continue;
      }
      this.stats.reads += w.reads.length;
      if (follower) this.stats.followerReads += w.reads.length;
      for (const r of w.reads) {
        try {
          if (r.barrier) {
            r.resolve({ found: false });
            continue;
          }
          if (this.ranges.checkRead(g.shardId, r.key) !== 'ok') {
            r.reject(new StoreError('WRONG_SHARD', `shard ${g.shardId} does not own the key (moved by a split or merge; refresh the routing)`));
            continue;
          }
          r.resolve(readValue(this.engine, g.shardId, r.key));
        } catch (err) {
          r.reject(err as Error);
        }
      }
    }
    g.readWait = keep;
  }

  /**
   * Leadership lost. A proposal already in the log may still commit under the next leader (a
   * leadership transfer hands over a log that holds it), so it keeps waiting for its index to
   * apply here (settleProposed); only one that never reached the log fails now: NOT_LEADER,
   * which a client may retry.
   */
  private rejectUnproposed(g: Group): void {
    for (const [seq, p] of this.pending) {
      if (p.group !== g || p.index > 0) continue;
      this.pending.delete(seq);
      p.reject(new StoreError('NOT_LEADER', `node ${this.nodeId} no longer leads shard ${g.shardId}`, g.node.raft.lead));
    }
  }

  /**
   * Index `index` of the group applied here: this node's proposals whose entry had that index
   * and that the applied entry does not carry (its commands of ours are done[answeredFrom..])
   * were replaced by another leader's entry and will never apply (Raft applies each index once).
   */
  private settleProposed(g: Group, index: number, answeredFrom: number, done: Done[]): void {
    const seqs = g.proposed.get(index);
    if (!seqs) return;
    g.proposed.delete(index);
    const end = done.length;
    for (const seq of seqs) {
      if (!this.pending.has(seq)) continue;
      let carried = false;
      for (let i = answeredFrom; i < end && !carried; i++) carried = done[i]!.seq === seq;
      if (carried) continue;
      done.push({ seq, error: new StoreError('NOT_LEADER', `shard ${g.shardId}: leadership changed and another entry took index ${index}; the command was not applied`, g.node.raft.lead) });
    }
  }

  /** A snapshot up to `index` applied here: whether it holds this node's proposals at or below
   *  it cannot be told, so their outcome is unknown. */
  private settleProposedBySnapshot(g: Group, index: number, done: Done[]): void {
    for (const [i, seqs] of g.proposed) {
      if (i > index) continue;
      g.proposed.delete(i);
      for (const seq of seqs) {
        if (this.pending.has(seq)) done.push({ seq, error: new StoreError('PROPOSAL_DROPPED', `shard ${g.shardId}: leadership changed and a snapshot covered index ${i}; the command may or may not be applied`, g.node.raft.lead) });
      }
    }
  }

  /** The replica is gone: a proposal still queued was never proposed (`notLed`); one in the log
   *  may have committed elsewhere, so its outcome is unknown. */
  private dropPending(g: Group, notLed: StoreError): void {
    for (const [seq, p] of this.pending) {
      if (p.group !== g) continue;
      this.pending.delete(seq);
      p.reject(p.index === 0 ? notLed : new StoreError('PROPOSAL_DROPPED', `node ${this.nodeId} left shard ${g.shardId}'s group; the command may or may not be applied`, g.node.raft.lead));
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError('CLOSED', `host ${this.nodeId} is closed`);
  }

  /** Stops the timer and the loop, fails what is pending, closes transport, log and engine. */
  async close(opts: { flushEngine?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    while (this.turnsInFlight > 0 || this.gcWrites > 0) await new Promise((r) => setTimeout(r, 1));
    // an engine flush of a truncation round may be under way: let it end (or fail) before the
    // engine closes; nothing more happens with it (closed)
    await this.gcFlush.catch(() => undefined);
    await this.gcDelete;
    const err = new StoreError('CLOSED', `host ${this.nodeId} closed`);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const g of this.groups.values()) {
      for (const r of g.reads) r.reject(err);
      for (const rs of g.readCtx.values()) for (const r of rs) r.reject(err);
      for (const w of g.readWait) for (const r of w.reads) r.reject(err);
    }
    await this.opts.transport.close();
    await this.log.close();
    // Applied state skips the engine's WAL (ApplyBatch.commit): flushed here, a restart need not
    // re-apply it from the Raft log. Not after a failure (the engine may be what failed), and
    // not when a test asks for a crash-like close (flushEngine: false: the memtable is lost).
    if (!this.fatal && opts.flushEngine !== false) await this.engine.flush().catch(() => undefined);
    await this.engine.close();
  }
}
