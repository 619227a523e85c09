// The node-wide Raft log: the entries, hard states and snapshots of MANY Raft groups in ONE
// write-ahead log (src/wal), so a ready cycle across all groups costs one append and one fsync.
// Record format, recovery and GC: see ./RAFTLOG.md.
//
// Contracts:
//  - write(batch) persists everything in the batch with one Wal.appendMany (one fsync when
//    `sync`; none otherwise, whatever the policy: see RaftLogBatch.sync), and only then updates
//    the in-memory per-group state that the Raft core reads through group(id) (a raft Storage). Call it with Ready contents BEFORE sending messages.
//  - Appending entries at index i drops the group's entries >= i first (conflicting suffix).
//  - createSnapshot() makes a snapshot durable and compacts the group's log behind it;
//    RaftLogBatch.truncate() compacts it with no data, the state machine holding that state
//    durably (it builds snapshots for followers on demand: GroupLog.snapshotSource).
//  - gc() deletes WAL segments that no group needs any more and names the groups holding it back.
//  - Concurrent write() calls are allowed: the WAL frames records in call order and acknowledges
//    them in that order, so the in-memory updates happen in call order too. The caller keeps at
//    most one write per group outstanding (the host loop's rule R1), so a group's Storage always
//    shows exactly its durable state.
// Entries are kept in memory (with the segment and record offset that hold each one) until the
// host evicts them (GroupLog.evictThrough: once applied); entries() reads evicted ones back from
// their segment. Memory beyond that is bounded by compacting behind snapshots.
import { BufReader, BufWriter, DOUBLE_ZERO, DecodeError } from '../util/bytes.js';
import { CorruptionError, KvError } from '../util/errors.js';
import path from 'node:path';
import { Wal, segmentFileName, type SyncPolicy, type WalStats } from '../wal/wal.js';
import { readRecordAt } from '../wal/log-reader.js';
import {
  type ConfState,
  type Entry,
  type HardState,
  type InitialState,
  type Snapshot,
  type Storage,
  EntryType,
  RaftError,
  cloneConfState,
  emptyConfState,
  entrySize,
  limitSize,
} from '../raft/index.js';

/** RaftLogStore's spare encode buffers: their initial size, how many are kept, the largest kept */
const ENTRIES_BUFFER_BYTES = 256 * 1024;
const SPARE_BUFFERS = 8;
const MAX_SPARE_BUFFER_BYTES = 4 * 1024 * 1024;

/** The data of an entry whose bytes were dropped from memory (GroupLog.evictThrough); never
 *  handed out: entries() reads the entry back instead. */
const EVICTED = new Uint8Array(0);

/** Format version of every record; readers refuse other versions. DO NOT CHANGE. */
export const RAFTLOG_VERSION = 1;

/** Record types — written to disk, never renumber or reuse. */
export enum RecordType {
  Entries = 1,
  HardState = 2,
  /** a snapshot received from a leader: replaces the whole group log */
  InstallSnapshot = 3,
  /** a snapshot the application took: entries <= index are compacted */
  CreateSnapshot = 4,
  /** the replica was removed from its group: forget the group (a later record may recreate it) */
  RemoveGroup = 5,
  /** entries <= index are compacted; the state at index lives (durably) in the state machine */
  Truncate = 6,
}

export interface RaftLogOptions {
  sync?: SyncPolicy;
  segmentBytes?: number;
  batchDelayMs?: number;
  /** see WalOptions.maxSyncsInFlight */
  maxSyncsInFlight?: number;
  /** see WalOptions.recycleSegments. Default 1: the segment the last truncation round freed is
   *  overwritten instead of a new file appended to (a round frees about one segment; the price
   *  is one segment's file kept on disk). */
  recycleSegments?: number;
}

export interface GcResult {
  /** segments numbered below this were deleted */
  deletedBefore: number;
  /** groups whose live entries sit in the oldest kept segment */
  heldBy: number[];
}

/** One group's persisted state, readable by the Raft core as its Storage. */
export class GroupLog implements Storage {
  hard: HardState = { term: 0, vote: 0, commit: 0 };
  /** The compaction point: the latest snapshot or truncation record (with data only for a
   *  snapshot record; a truncation record's state lives in the state machine). */
  snap: Snapshot = { metadata: { index: 0, term: 0, confState: emptyConfState() }, data: new Uint8Array(0) };
  /** `snap` comes from a TRUNCATE record: its data is not here but in the state machine */
  truncated = false;
  /**
   * Builds a snapshot of the state machine's CURRENT applied state (index >= the compaction
   * point) when the Raft core asks for one (a follower needs it) and the compaction point is a
   * truncation; may throw SNAPSHOT_TEMPORARILY_UNAVAILABLE. Set by the application.
   */
  snapshotSource: (() => Snapshot) | undefined;
  /** the last snapshot snapshotSource built, reused while it is not behind the compaction point
   *  (a transfer asks for it once per chunk window) */
  private built: Snapshot | undefined;
  /** index/term of the entry before ents[0] */
  private offset = 0;
  private offsetTerm = 0;
  private ents: Entry[] = [];
  /** WAL segment holding each entry (parallel to ents) */
  private segs: number[] = [];
  /** file offset of the ENTRIES record holding each entry in its segment (parallel to ents) */
  private offs: number[] = [];
  /** data length of each entry (parallel to ents), known also once the data is evicted */
  private lens: number[] = [];
  /** ents[0..cold) had their data dropped (EVICTED); entries() reads them back */
  private cold = 0;
  /** The file of a segment of the log (evicted entries are read back from it); set by
   *  RaftLogStore. */
  segmentPath: ((segment: number) => string) | undefined;
  /** the store's counters (entries read back from segments); set by RaftLogStore */
  counters: { coldReads: number } | undefined;
  hardSeg = 0;
  snapSeg = 0;

  constructor(readonly groupId: number) {}

  initialState(): InitialState {
    return { hardState: { ...this.hard }, confState: cloneConfState(this.snap.metadata.confState) };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.offset) throw new RaftError('COMPACTED', `group ${this.groupId}: entries(${lo}) below first index ${this.offset + 1}`);
    if (hi > this.lastIndex() + 1) throw new RaftError('UNAVAILABLE', `group ${this.groupId}: entries hi ${hi} beyond ${this.lastIndex()}`);
    if (lo >= hi) return [];
    const from = lo - this.offset - 1;
    const to = hi - this.offset - 1;
    if (from >= this.cold) return limitSize(this.ents.slice(from, to), maxBytes);
    // Some are evicted: read their records back, only as far as maxBytes reaches (a follower
    // catching up from far behind asks for much more than one message carries).
    const out: Entry[] = [];
    let size = 0;
    let record: { seg: number; off: number; ents: Entry[] } | undefined;
    for (let i = from; i < to; i++) {
      size += entrySize(this.ents[i]!) - this.ents[i]!.data.length + this.lens[i]!; // as limitSize counts
      if (out.length > 0 && size > maxBytes) break;
      if (i >= this.cold) {
        out.push(this.ents[i]!);
        continue;
      }
      if (record === undefined || record.seg !== this.segs[i] || record.off !== this.offs[i]) {
        record = { seg: this.segs[i]!, off: this.offs[i]!, ents: this.readEntriesRecord(this.segs[i]!, this.offs[i]!) };
      }
      const e = record.ents[this.ents[i]!.index - record.ents[0]!.index];
      if (e === undefined || e.index !== this.ents[i]!.index || e.term !== this.ents[i]!.term) {
        throw new CorruptionError(this.segmentPath!(record.seg), record.off, `group ${this.groupId}: the record there does not hold entry ${this.ents[i]!.index} of term ${this.ents[i]!.term}`);
      }
      if (this.counters) this.counters.coldReads++;
      out.push(e);
    }
    return out;
  }

  /** Bytes of entry data in [lo, hi), evicted entries included; without reading any back. */
  dataBytes(lo: number, hi: number): number {
    let n = 0;
    for (let i = Math.max(lo, this.offset + 1) - this.offset - 1; i < Math.min(hi, this.lastIndex() + 1) - this.offset - 1; i++) n += this.lens[i]!;
    return n;
  }

  /**
   * Drops the data of the entries up to `index` from memory (they stay in their segments, and
   * entries() reads them back): called once the host applied them, when what still needs them
   * is a follower far behind. Their ArrayBuffers would otherwise live until the next
   * truncation, and V8 starts a full GC per 64 MB of such memory.
   */
  evictThrough(index: number): void {
    const end = Math.min(index, this.lastIndex()) - this.offset;
    for (let i = this.cold; i < end; i++) {
      if (this.offs[i]! < 0) break; // where it lives is unknown: keep it
      const e = this.ents[i]!;
      this.ents[i] = { term: e.term, index: e.index, type: e.type, data: EVICTED };
      this.cold = i + 1;
    }
  }

  private readEntriesRecord(seg: number, off: number): Entry[] {
    if (this.segmentPath === undefined) throw new Error(`group ${this.groupId}: evicted entries but no log to read them from`);
    const file = this.segmentPath(seg);
    const rec = readRecordAt(file, off);
    try {
      const r = new BufReader(rec);
      const version = r.u8();
      if (version !== RAFTLOG_VERSION) throw new DecodeError(`unknown raft log record version ${version}`);
      if (r.u8() !== RecordType.Entries) throw new DecodeError('not an entries record');
      if (r.varint() !== this.groupId) throw new DecodeError('an entries record of another group');
      return readEntries(r);
    } catch (err) {
      if (err instanceof DecodeError) throw new CorruptionError(file, off, `group ${this.groupId}: ${err.message}`);
      throw err;
    }
  }

  term(i: number): number {
    if (i === this.offset) return this.offsetTerm;
    if (i < this.offset) throw new RaftError('COMPACTED', `group ${this.groupId}: term(${i}) below ${this.offset}`);
    const e = this.ents[i - this.offset - 1];
    if (!e) throw new RaftError('UNAVAILABLE', `group ${this.groupId}: term(${i}) beyond ${this.lastIndex()}`);
    return e.term;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.ents.length;
  }

  /** Storage: the snapshot to send a follower that needs entries this log compacted. */
  snapshot(): Snapshot {
    if (!this.truncated || !this.snapshotSource) return this.snap;
    if (this.built && this.built.metadata.index >= this.snap.metadata.index) return this.built;
    this.built = undefined;
    const s = this.snapshotSource();
    if (s.metadata.index < this.snap.metadata.index) throw new RaftError('SNAPSHOT_TEMPORARILY_UNAVAILABLE', `group ${this.groupId}: state machine at ${s.metadata.index}, behind the truncation at ${this.snap.metadata.index}`);
    this.built = s;
    return s;
  }


  /** Oldest segment this group still needs, or Infinity. */
  minSegment(): number {
    let m = Number.POSITIVE_INFINITY;
    if (this.segs.length > 0) m = this.segs[0]!;
    if (this.hardSeg > 0) m = Math.min(m, this.hardSeg);
    if (this.snapSeg > 0) m = Math.min(m, this.snapSeg);
    return m;
  }

  firstEntrySegment(): number {
    return this.segs.length > 0 ? this.segs[0]! : Number.POSITIVE_INFINITY;
  }

  // ---- mutations (after the record is durable, or during replay) ---------------------------

  /** `off`: the file offset of the record holding `ents` in segment `seg` (-1: unknown, so
   *  they are never evicted). */
  applyEntries(ents: Entry[], seg: number, off = -1): void {
    if (ents.length === 0) return;
    const first = ents[0]!.index;
    if (first > this.lastIndex() + 1) {
      // Earlier records were garbage-collected (replay after gc): restart the log here.
      // A later snapshot record (re-written by gc) re-establishes the prefix.
      this.offset = first - 1;
      this.offsetTerm = 0;
      this.resetEntries();
    }
    if (first <= this.offset) {
      const skip = this.offset + 1 - first;
      if (skip >= ents.length) return;
      ents = ents.slice(skip);
    }
    const keep = ents[0]!.index - this.offset - 1;
    this.ents.length = keep;
    this.segs.length = keep;
    this.offs.length = keep;
    this.lens.length = keep;
    if (this.cold > keep) this.cold = keep;
    for (const e of ents) {
      this.ents.push(e);
      this.segs.push(seg);
      this.offs.push(off);
      this.lens.push(e.data.length);
    }
  }

  private resetEntries(): void {
    this.ents = [];
    this.segs = [];
    this.offs = [];
    this.lens = [];
    this.cold = 0;
  }

  applyHardState(h: HardState, seg: number): void {
    this.hard = { ...h };
    this.hardSeg = seg;
  }

  applyInstall(s: Snapshot, seg: number): void {
    this.snap = s;
    this.truncated = false;
    this.built = undefined;
    this.snapSeg = seg;
    this.offset = s.metadata.index;
    this.offsetTerm = s.metadata.term;
    this.resetEntries();
  }

  applyCreate(s: Snapshot, seg: number): void {
    this.compactTo(s, seg, false);
  }

  /** A TRUNCATE record: compacts like a snapshot record whose data is the state machine's. */
  applyTruncate(s: Snapshot, seg: number): void {
    // An older compaction point never replaces a newer one (a snapshot installed by a write
    // framed before this record but applied to memory after it)
    if (s.metadata.index < this.snap.metadata.index) return;
    this.compactTo(s, seg, true);
  }

  private compactTo(s: Snapshot, seg: number, truncated: boolean): void {
    this.snap = s;
    this.truncated = truncated;
    if (this.built && this.built.metadata.index < s.metadata.index) this.built = undefined;
    this.snapSeg = seg;
    const idx = s.metadata.index;
    if (idx === this.offset) this.offsetTerm = s.metadata.term; // replay after gc: term now known
    if (idx <= this.offset) return;
    if (idx >= this.lastIndex()) {
      this.offset = idx;
      this.offsetTerm = s.metadata.term;
      this.resetEntries();
      return;
    }
    const drop = idx - this.offset;
    this.ents = this.ents.slice(drop);
    this.segs = this.segs.slice(drop);
    this.offs = this.offs.slice(drop);
    this.lens = this.lens.slice(drop);
    this.cold = Math.max(0, this.cold - drop);
    this.offset = idx;
    this.offsetTerm = s.metadata.term;
  }
}

/** Per-group writes of one ready cycle. */
export class RaftLogBatch {
  readonly records: Uint8Array[] = [];
  /** one per record, in order: updates memory once the record is written at (seg, off) */
  readonly ops: Array<(seg: number, off: number) => void> = [];
  /** Must be durable before write() resolves: set by entries and snapshots; the caller sets it
   *  for a hard state whose term or vote changed (Ready.mustSync). A batch without it (only
   *  commit indexes moved, which Raft may forget) is written without an fsync. */
  sync = false;
  /** groups this batch writes a snapshot or truncation record for (rewriteGroupBelow skips
   *  copying their older one) */
  readonly compacted = new Set<number>();

  /** @internal where this batch's entries records are encoded: one buffer for all groups,
   *  reused by later batches once this one is written (RaftLogStore.write) */
  entriesWriter: BufWriter | undefined;

  constructor(private readonly store: RaftLogStore) {}

  append(groupId: number, entries: Entry[]): this {
    if (entries.length === 0) return this;
    const w = (this.entriesWriter ??= this.store.borrowWriter());
    const start = w.length;
    writeEntries(w, groupId, entries);
    this.records.push(w.viewFrom(start));
    this.ops.push((seg, off) => this.store.group(groupId).applyEntries(entries, seg, off));
    this.sync = true;
    return this;
  }

  setHardState(groupId: number, h: HardState): this {
    this.records.push(encodeHardState(groupId, h));
    const copy = { ...h };
    this.ops.push((seg) => this.store.group(groupId).applyHardState(copy, seg));
    return this;
  }

  /** A snapshot the application took (as createSnapshot, batched with others: one fsync). */
  createSnapshot(groupId: number, index: number, confState: ConfState, data: Uint8Array): this {
    const g = this.store.group(groupId);
    if (index <= g.snap.metadata.index) throw new RaftError('SNAPSHOT_OUT_OF_DATE', `group ${groupId}: snapshot ${index} not newer than ${g.snap.metadata.index}`);
    const s: Snapshot = { metadata: { index, term: g.term(index), confState: cloneConfState(confState) }, data };
    this.records.push(encodeSnapshot(RecordType.CreateSnapshot, groupId, s));
    this.ops.push((seg) => g.applyCreate(s, seg));
    this.compacted.add(groupId);
    this.sync = true;
    return this;
  }

  /**
   * Compacts the group's log up to `index` with no snapshot data: the caller guarantees that the
   * state machine holds the state at `index` (or later) durably, and will produce snapshots
   * from it (GroupLog.snapshotSource). `confState` is the configuration as of `index`.
   */
  truncate(groupId: number, index: number, confState: ConfState, term?: number): this {
    const g = this.store.group(groupId);
    const at = g.snap.metadata.index;
    if (index < at || (index === at && g.truncated)) throw new RaftError('SNAPSHOT_OUT_OF_DATE', `group ${groupId}: truncation at ${index} not past ${at}`);
    // `term` only when copying a truncation record (backup): otherwise the log's own
    const s: Snapshot = { metadata: { index, term: term ?? g.term(index), confState: cloneConfState(confState) }, data: new Uint8Array(0) };
    this.records.push(encodeSnapshot(RecordType.Truncate, groupId, s));
    this.ops.push((seg) => g.applyTruncate(s, seg));
    this.compacted.add(groupId);
    this.sync = true;
    return this;
  }

  applySnapshot(groupId: number, s: Snapshot): this {
    this.records.push(encodeSnapshot(RecordType.InstallSnapshot, groupId, s));
    this.ops.push((seg) => this.store.group(groupId).applyInstall(s, seg));
    this.compacted.add(groupId);
    this.sync = true;
    return this;
  }

  get empty(): boolean {
    return this.records.length === 0;
  }
}

export class RaftLogStore {
  private readonly groups = new Map<number, GroupLog>();
  /** coldReads: evicted entries read back from their segments (followers far behind) */
  readonly stats = { writes: 0, records: 0, bytes: DOUBLE_ZERO, coldReads: 0 };

  private constructor(
    readonly dir: string,
    private wal: Wal,
    /** 'off': the operator traded power-loss durability for speed; nothing is fsynced (the
     *  bytes still reach the OS before write() resolves, so a process crash loses nothing) */
    private readonly syncPolicy: SyncPolicy,
  ) {}

  /** Opens (or creates) the log in `dir`, replaying every record into per-group state. */
  static async open(dir: string, options: RaftLogOptions = {}): Promise<RaftLogStore> {
    const groups = new Map<number, GroupLog>();
    const get = (id: number): GroupLog => {
      let g = groups.get(id);
      if (!g) groups.set(id, (g = new GroupLog(id)));
      return g;
    };
    const walOpts: Parameters<typeof Wal.open>[1] = {
      sync: options.sync ?? 'always',
      // gc() rotates while the host loop waits for it: the new segment must already exist
      prepareNextSegment: true,
      recycleSegments: options.recycleSegments ?? 1,
      onRecord: (rec, seg, off) => replayRecord(rec, seg, off, get, (id) => groups.delete(id)),
    };
    if (options.segmentBytes !== undefined) walOpts.segmentBytes = options.segmentBytes;
    if (options.batchDelayMs !== undefined) walOpts.batchDelayMs = options.batchDelayMs;
    if (options.maxSyncsInFlight !== undefined) walOpts.maxSyncsInFlight = options.maxSyncsInFlight;
    const wal = await Wal.open(dir, walOpts);
    const store = new RaftLogStore(dir, wal, walOpts.sync ?? 'always');
    for (const [id, g] of groups) {
      if (g.lastIndex() > g.snap.metadata.index && g.firstIndex() > g.snap.metadata.index + 1) {
        throw new CorruptionError(dir, 0, `group ${id}: entries start at ${g.firstIndex()} but snapshot ends at ${g.snap.metadata.index}`);
      }
      g.segmentPath = store.segmentPath;
      g.counters = store.stats;
      store.groups.set(id, g);
    }
    return store;
  }

  /** A segment's file (evicted entries are read back from it: GroupLog.entries). */
  readonly segmentPath = (segment: number): string => path.join(this.dir, segmentFileName(segment));

  /** The Storage of a group (created empty if unknown). */
  group(groupId: number): GroupLog {
    checkGroupId(groupId);
    let g = this.groups.get(groupId);
    if (!g) {
      this.groups.set(groupId, (g = new GroupLog(groupId)));
      g.segmentPath = this.segmentPath;
      g.counters = this.stats;
    }
    return g;
  }

  groupIds(): number[] {
    return [...this.groups.keys()].sort((a, b) => a - b);
  }

  batch(): RaftLogBatch {
    return new RaftLogBatch(this);
  }

  /** Encode buffers of written batches. A turn's entries are most of what the log writes (a
   *  put's value on every replica), and a fresh buffer per turn was tens of MB/s of ArrayBuffers
   *  for V8 to account and free; their growth is what starts most of its full GCs. */
  private readonly spareBuffers: Buffer[] = [];

  /** @internal a writer for RaftLogBatch's records, over a spare buffer when there is one */
  borrowWriter(): BufWriter {
    return new BufWriter(this.spareBuffers.pop() ?? ENTRIES_BUFFER_BYTES);
  }

  /** Persists a batch: one WAL append (one write, one fsync if batch.sync), then updates memory. */
  async write(batch: RaftLogBatch): Promise<void> {
    if (batch.empty) return;
    const offsets: number[] = [];
    const p = this.wal.appendMany(batch.records, batch.sync && this.syncPolicy !== 'off' ? { sync: true, owned: true } : { noSync: true, owned: true }, offsets);
    const seg = this.wal.currentSegment; // appendMany framed the records synchronously
    this.stats.writes++;
    this.stats.records += batch.records.length;
    for (const r of batch.records) this.stats.bytes += r.length;
    await p;
    // written: the WAL no longer holds the records' bytes (it hands the OS views of them; a
    // failed write rejects above and its buffer is left to the GC)
    const w = batch.entriesWriter;
    if (w !== undefined && this.spareBuffers.length < SPARE_BUFFERS && w.buffer().length <= MAX_SPARE_BUFFER_BYTES) {
      batch.entriesWriter = undefined;
      this.spareBuffers.push(w.buffer());
    }
    for (let i = 0; i < batch.ops.length; i++) batch.ops[i]!(seg, offsets[i]!);
  }

  /**
   * Durably records an application snapshot of a group at `index` and compacts behind it.
   * `confState` must be the group's configuration as of `index` (what the last applied ConfChange
   * returned): a member restarting from this snapshot takes its membership from it.
   */
  async createSnapshot(groupId: number, index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    const g = this.group(groupId);
    if (index <= g.snap.metadata.index) throw new RaftError('SNAPSHOT_OUT_OF_DATE', `group ${groupId}: snapshot ${index} not newer than ${g.snap.metadata.index}`);
    const s: Snapshot = { metadata: { index, term: g.term(index), confState: cloneConfState(confState) }, data };
    const p = this.wal.append(encodeSnapshot(RecordType.CreateSnapshot, groupId, s), { sync: true, owned: true });
    const seg = this.wal.currentSegment;
    await p;
    g.applyCreate(s, seg);
    return s;
  }

  /**
   * Durably forgets a group (its replica on this node was removed from the group). Its entries
   * in old segments become garbage for gc().
   */
  async removeGroup(groupId: number): Promise<void> {
    if (!this.groups.has(groupId)) return;
    const w = new BufWriter(16);
    header(w, RecordType.RemoveGroup, groupId);
    await this.wal.append(w.finish(), { sync: true, owned: true });
    this.groups.delete(groupId);
  }

  /**
   * Deletes the segments no group needs. Live entries are not moved, so the cutoff is the oldest
   * segment holding a live entry; hard states and snapshots in older segments are re-written
   * to the current segment first (they are small, or already the price of compaction).
   */
  async gc(): Promise<GcResult> {
    const r = await this.rewriteForGc();
    await this.deleteSegmentsBefore(r.deletedBefore);
    return r;
  }

  /**
   * gc() without the deletion: after it, segments below `deletedBefore` hold nothing any group
   * needs, and deleteSegmentsBefore() may remove them at any time (also while others write).
   */
  async rewriteForGc(): Promise<GcResult> {
    const below = this.rotate();
    const b = this.batch();
    for (const id of this.groups.keys()) this.rewriteGroupBelow(b, id, below);
    b.sync = true;
    await this.write(b);
    await this.sync();
    return this.collectableBelow(below);
  }

  /** Starts a new segment (records appended from now on land in it or later ones); returns its
   *  number. The first step of a gc done piecewise: rotate, rewriteGroupBelow for every group,
   *  sync, collectableBelow, deleteSegmentsBefore. */
  rotate(): number {
    this.wal.rotate();
    return this.wal.currentSegment;
  }

  /**
   * Adds to `b` a copy of the group's latest hard state and of its snapshot or truncation record
   * where those sit in a segment below `below`, so that no segment below it is needed for them.
   * The copies come from memory: call it only for a group with no write outstanding (the host
   * loop's R1), else memory may be older than a record still on its way and the copy, landing
   * after it, would replace it on replay.
   */
  rewriteGroupBelow(b: RaftLogBatch, groupId: number, below: number): void {
    const g = this.groups.get(groupId);
    if (!g) return;
    if (g.snapSeg > 0 && g.snapSeg < below && !b.compacted.has(groupId)) {
      const s = g.snap;
      if (g.truncated) {
        b.records.push(encodeSnapshot(RecordType.Truncate, g.groupId, s));
        b.ops.push((seg) => g.applyTruncate(s, seg));
      } else {
        b.records.push(encodeSnapshot(RecordType.CreateSnapshot, g.groupId, s));
        b.ops.push((seg) => g.applyCreate(s, seg));
      }
      b.compacted.add(groupId);
    }
    if (g.hardSeg > 0 && g.hardSeg < below) b.setHardState(g.groupId, g.hard);
  }

  /**
   * The segment number (at most `below`) under which no segment holds anything a group still
   * needs: a live entry (entries are never copied), or the latest hard-state or compaction
   * record of a group that was not re-written (rewriteGroupBelow) yet.
   */
  collectableBelow(below: number): GcResult {
    let cutoff = below;
    for (const g of this.groups.values()) {
      cutoff = Math.min(cutoff, g.firstEntrySegment());
      if (g.snapSeg > 0) cutoff = Math.min(cutoff, g.snapSeg);
      if (g.hardSeg > 0) cutoff = Math.min(cutoff, g.hardSeg);
    }
    const heldBy = cutoff < below ? [...this.groups.values()].filter((g) => g.firstEntrySegment() === cutoff || g.snapSeg === cutoff || g.hardSeg === cutoff).map((g) => g.groupId) : [];
    return { deletedBefore: cutoff, heldBy };
  }

  /** Resolves when everything written so far is durable (and retired segments are closed). */
  sync(): Promise<void> {
    return this.wal.sync();
  }

  currentSegment(): number {
    return this.wal.currentSegment;
  }

  /** Deletes the segment files numbered below `n` (see rewriteForGc). */
  deleteSegmentsBefore(n: number): Promise<void> {
    return this.wal.deleteSegmentsBefore(n);
  }

  /** the log's WAL writer counters (metrics, /api/stats) */
  get walStats(): Readonly<WalStats> {
    return this.wal.stats;
  }

  /** fsyncs of the log's WAL since open (metrics). */
  get syncs(): number {
    return this.wal.stats.syncs;
  }

  segmentFile(n: number): string {
    return segmentFileName(n);
  }

  async close(): Promise<void> {
    await this.wal.close();
  }
}

// ---- encoding (see RAFTLOG.md) ------------------------------------------------------------------

function checkGroupId(id: number): void {
  if (!Number.isSafeInteger(id) || id <= 0) throw new KvError('INVALID_ARGUMENT', `group id must be a positive safe integer, got ${id}`);
}

function header(w: BufWriter, type: RecordType, groupId: number): void {
  checkGroupId(groupId);
  w.u8(RAFTLOG_VERSION).u8(type).varint(groupId);
}

// Format: version u8 | type=1 u8 | group varint | first_index varint | count varint |
//         count * { term varint | entry_type u8 | data_len varint | data }
function writeEntries(w: BufWriter, groupId: number, ents: Entry[]): void {
  header(w, RecordType.Entries, groupId);
  w.varint(ents[0]!.index).varint(ents.length);
  let expect = ents[0]!.index;
  for (const e of ents) {
    if (e.index !== expect++) throw new KvError('INVALID_ARGUMENT', `group ${groupId}: entries not contiguous at ${e.index}`);
    w.varint(e.term).u8(e.type).lenBytes(e.data);
  }
}

// Format: version u8 | type=2 u8 | group varint | term varint | vote varint | commit varint
export function encodeHardState(groupId: number, h: HardState): Uint8Array {
  const w = new BufWriter(32);
  header(w, RecordType.HardState, groupId);
  w.varint(h.term).varint(h.vote).varint(h.commit);
  return w.finish();
}

function writeIds(w: BufWriter, ids: number[]): void {
  w.varint(ids.length);
  for (const id of ids) w.varint(id);
}

// Format: version u8 | type=3|4 u8 | group varint | index varint | term varint |
//         voters ids | learners ids | voters_outgoing ids | learners_next ids | auto_leave u8 |
//         data_len varint | data        (ids := count varint | count * id varint)
export function encodeSnapshot(type: RecordType, groupId: number, s: Snapshot): Uint8Array {
  const w = new BufWriter(64 + s.data.length);
  header(w, type, groupId);
  const md = s.metadata;
  w.varint(md.index).varint(md.term);
  writeIds(w, md.confState.voters);
  writeIds(w, md.confState.learners);
  writeIds(w, md.confState.votersOutgoing);
  writeIds(w, md.confState.learnersNext);
  w.u8(md.confState.autoLeave ? 1 : 0);
  w.lenBytes(s.data);
  return w.finish();
}

function readIds(r: BufReader): number[] {
  const n = r.varint();
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.varint());
  return out;
}

/** An ENTRIES record's body after its group id: the entries, with their data copied out. */
function readEntries(r: BufReader): Entry[] {
  const first = r.varint();
  const n = r.varint();
  const ents: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const term = r.varint();
    const et = r.u8();
    if (et !== EntryType.Normal && et !== EntryType.ConfChange) throw new DecodeError(`unknown entry type ${et}`);
    // copy: the record buffer may be reused by the reader
    ents.push({ term, index: first + i, type: et, data: Uint8Array.from(r.lenBytes()) });
  }
  return ents;
}

function replayRecord(rec: Buffer, seg: number, off: number, get: (id: number) => GroupLog, drop: (id: number) => void): void {
  const file = segmentFileName(seg);
  try {
    const r = new BufReader(rec);
    const version = r.u8();
    if (version !== RAFTLOG_VERSION) throw new DecodeError(`unknown raft log record version ${version}`);
    const type = r.u8();
    const groupId = r.varint();
    switch (type) {
      case RecordType.Entries:
        get(groupId).applyEntries(readEntries(r), seg, off);
        return;
      case RecordType.HardState:
        get(groupId).applyHardState({ term: r.varint(), vote: r.varint(), commit: r.varint() }, seg);
        return;
      case RecordType.InstallSnapshot:
      case RecordType.CreateSnapshot:
      case RecordType.Truncate: {
        const index = r.varint();
        const term = r.varint();
        const confState: ConfState = { voters: readIds(r), learners: readIds(r), votersOutgoing: readIds(r), learnersNext: readIds(r), autoLeave: r.u8() === 1 };
        const data = Uint8Array.from(r.lenBytes());
        const s: Snapshot = { metadata: { index, term, confState }, data };
        if (type === RecordType.InstallSnapshot) get(groupId).applyInstall(s, seg);
        else if (type === RecordType.CreateSnapshot) get(groupId).applyCreate(s, seg);
        else if (data.length !== 0) throw new DecodeError(`truncation record with ${data.length} bytes of data`);
        else get(groupId).applyTruncate(s, seg);
        return;
      }
      case RecordType.RemoveGroup:
        drop(groupId);
        return;
      default:
        return; // readers skip unknown types
    }
  } catch (err) {
    if (err instanceof DecodeError) throw new CorruptionError(file, off, `raft log record: ${err.message}`);
    throw err;
  }
}
