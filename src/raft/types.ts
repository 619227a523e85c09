// Data types of the Raft core: entries, hard state, snapshots, membership, messages and Ready.
// Everything here is plain data. Terms and indexes are `number`s that must stay safe integers;
// entry payloads are Uint8Arrays owned by whoever created the entry (the core never mutates them).

/** 0 is never a valid node id; it means "nobody" (no leader, no vote). */
export const NONE = 0;

export enum EntryType {
  Normal = 0,
  /** data is an encoded ConfChange (see confchange.ts encodeConfChange). */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** Persisted before any message that depends on it is sent. */
export interface HardState {
  term: number;
  vote: number;
  commit: number;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export function isEmptyHardState(h: HardState): boolean {
  return hardStateEqual(h, EMPTY_HARD_STATE);
}

/** Membership as of some log index. A joint configuration has a non-empty votersOutgoing. */
export interface ConfState {
  voters: number[];
  learners: number[];
  /** Voters of the old configuration while in joint consensus; empty otherwise. */
  votersOutgoing: number[];
  /** Voters of the outgoing config that become learners when the joint config is left. */
  learnersNext: number[];
  /** Leave the joint configuration automatically once it is applied. */
  autoLeave: boolean;
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

/** Application state as of metadata.index; `data` is opaque to Raft. */
export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

export function emptySnapshot(): Snapshot {
  return { metadata: { index: 0, term: 0, confState: emptyConfState() }, data: new Uint8Array(0) };
}

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

export enum ConfChangeType {
  AddVoter = 0,
  AddLearner = 1,
  RemoveNode = 2,
}

export interface ConfChangeSingle {
  type: ConfChangeType;
  nodeId: number;
}

/**
 * A membership change. An empty `changes` list leaves a joint configuration. A change that alters
 * at most one voter is applied in one step (the single-server rule); anything larger, or any
 * change with `joint: true`, goes through joint consensus and leaves it automatically.
 */
export interface ConfChange {
  changes: ConfChangeSingle[];
  joint?: boolean;
}

export enum MessageType {
  /** local: start an election. */
  Hup = 0,
  /** local: leader broadcasts heartbeats. */
  Beat = 1,
  /** proposal: local, or forwarded by a follower to the leader (term 0). */
  Prop = 2,
  App = 3,
  AppResp = 4,
  Vote = 5,
  VoteResp = 6,
  PreVote = 7,
  PreVoteResp = 8,
  /** one chunk of an InstallSnapshot transfer. */
  Snap = 9,
  /** ack of a snapshot chunk: index = snapshot index, offset = bytes the follower holds. */
  SnapResp = 10,
  Heartbeat = 11,
  HeartbeatResp = 12,
  /** leader → transferee: campaign now, ignoring leases. */
  TimeoutNow = 13,
  /** read request: local, or forwarded by a follower to the leader (term 0). */
  ReadIndex = 14,
  ReadIndexResp = 15,
  /** local or forwarded: transfer leadership to `from`. */
  TransferLeader = 16,
  /** local: leader checks it heard from a quorum in the last election timeout. */
  CheckQuorum = 17,
  /** local: the transport could not reach `from`. */
  Unreachable = 18,
}

export function isLocalMessage(t: MessageType): boolean {
  return t === MessageType.Hup || t === MessageType.Beat || t === MessageType.CheckQuorum || t === MessageType.Unreachable;
}

export function isResponseMessage(t: MessageType): boolean {
  return (
    t === MessageType.AppResp ||
    t === MessageType.VoteResp ||
    t === MessageType.PreVoteResp ||
    t === MessageType.HeartbeatResp ||
    t === MessageType.SnapResp ||
    t === MessageType.ReadIndexResp ||
    t === MessageType.Unreachable
  );
}

export interface SnapshotChunk {
  metadata: SnapshotMetadata;
  /** byte offset of `data` within the snapshot data. */
  offset: number;
  totalBytes: number;
  data: Uint8Array;
  /** last chunk: the receiver installs the snapshot. */
  done: boolean;
}

/**
 * One Raft message. Field use by type:
 *  App: index/logTerm = entry preceding `entries`; commit = leader commit.
 *  AppResp: index = last index accepted (or the rejected index); on reject, rejectHint/logTerm are
 *    the follower's conflict hint (largest index with term <= the probed term, and its term).
 *  Vote/PreVote: index/logTerm = candidate's last entry; context = CAMPAIGN_TRANSFER to bypass leases.
 *  Heartbeat: commit; context = ReadIndex round ctx; tick = leader tick echoed back for leases.
 *  ReadIndex/ReadIndexResp: context = request ctx; index = read index.
 *  Snap: snapshot chunk. SnapResp: index = snapshot index, offset = received bytes, reject.
 */
export interface Message {
  type: MessageType;
  from: number;
  to: number;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  rejectHint: number;
  context?: Uint8Array;
  snapshot?: SnapshotChunk;
  tick?: number;
  offset?: number;
}

/** Builds a message with zeroed defaults. */
export function makeMessage(m: Partial<Message> & { type: MessageType }): Message {
  const out: Message = {
    type: m.type,
    from: m.from ?? NONE,
    to: m.to ?? NONE,
    term: m.term ?? 0,
    logTerm: m.logTerm ?? 0,
    index: m.index ?? 0,
    entries: m.entries ?? [],
    commit: m.commit ?? 0,
    reject: m.reject ?? false,
    rejectHint: m.rejectHint ?? 0,
  };
  if (m.context !== undefined) out.context = m.context;
  if (m.snapshot !== undefined) out.snapshot = m.snapshot;
  if (m.tick !== undefined) out.tick = m.tick;
  if (m.offset !== undefined) out.offset = m.offset;
  return out;
}

export enum StateRole {
  Follower = 0,
  PreCandidate = 1,
  Candidate = 2,
  Leader = 3,
}

export interface SoftState {
  lead: number;
  role: StateRole;
}

/** A linearizable read point: once the application has applied `index`, it may serve the read
 *  identified by `context`. */
export interface ReadState {
  index: number;
  context: Uint8Array;
}

/**
 * What the application must do, in order:
 *  1. persist `snapshot` (if any), then `entries`, then `hardState` (if any) — fsync if mustSync;
 *  2. only then send `messages`;
 *  3. apply `snapshot` then `committedEntries` to the state machine (calling applyConfChange for
 *     ConfChange entries); serve `readStates` once applied >= their index;
 *  4. call advance().
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  mustSync: boolean;
}

/** Randomness injected into the core (e.g. util/rng.ts Rng). */
export interface RandomSource {
  /** uniform integer in [0, n) */
  int(n: number): number;
}

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

export function entrySize(e: Entry): number {
  return e.data.length + 24;
}
