// A segmented write-ahead log with group commit. Owns a directory of numbered segment files
// (`NNNNNN.log`, each in the record format of ./FORMAT.md), their recovery on open, and the
// write pipeline: appends are framed synchronously in call order, and one writer loop turns all
// appends waiting at that moment into ONE file write and, when any of them needs it, ONE fdatasync.
//
// Contracts:
//  - append() resolves once its sync policy is met: 'always' (or {sync: true}) after fdatasync,
//    'batch' after an fdatasync issued at most `batchDelayMs` after the append, 'off' (or
//    {noSync: true}) once the bytes are handed to the OS (survives a process crash, not a power
//    loss).
//  - Records appended before rotate() go to the old segment, records after it to the new one,
//    even though the files are written asynchronously. rotate() is synchronous for that reason.
//  - After a failed write or sync the log refuses further appends (the page cache can no longer
//    be trusted to hold what was not synced); reopen to recover.
//  - Recovery truncates a torn tail of the last segment holding records (header-only spares may
//    follow it); damage anywhere else is a CorruptionError.
import { promises as fsp, writevSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { DOUBLE_ZERO } from '../util/bytes.js';
import { CorruptionError, KvError } from '../util/errors.js';
import { BLOCK_SIZE, FORMAT_VERSION_RECYCLABLE, HEADER_SIZE } from './format.js';
import { LogEncoder } from './log-writer.js';
import { readLogFile, type TornTail } from './log-reader.js';

export type SyncPolicy = 'always' | 'batch' | 'off';

export interface WalOptions {
  sync?: SyncPolicy;
  /** 'batch' policy: longest an acknowledged append waits for its fsync. Default 2 ms. */
  batchDelayMs?: number;
  /** Rotate automatically when the current segment exceeds this size. Default: never. */
  segmentBytes?: number;
  /** Create the next segment's file ahead of time, in the background, so that a rotation costs
   *  no file creation (an fsync of the file and its directory; on a busy disk a file-system
   *  journal commit of hundreds of ms) on the write path. Default false. */
  prepareNextSegment?: boolean;
  /** Keep up to this many files of deleted segments (deleteSegmentsBefore) and reuse them for
   *  new segments, overwriting in place: an fdatasync of an overwrite within the file's size
   *  writes only the data, one of an append also the file's new size (an inode write, or a
   *  journal commit on a journaling file system). New segments are then written
   *  in the recyclable format (version 2, ./FORMAT.md). Default 0: segment files are deleted. */
  recycleSegments?: number;
  /** Segments numbered below this are obsolete: not replayed (and deleted by open). */
  minSegment?: number;
  /** fdatasyncs the writer loop may have outstanding at once (>= 1). Default 1: plain group
   *  commit, appends arriving during an fsync wait for it to end and then share the next one.
   *  With 2 or more an append arriving during an fsync is written and its own fsync started at
   *  once; acknowledgements stay in order (see "Group commit" in ./FORMAT.md). */
  maxSyncsInFlight?: number;
  /** Called during open() for each recovered record, in log order. */
  onRecord?: (record: Buffer, segment: number, offset: number) => void;
  /** Called during open() when a torn tail is truncated. */
  onTornTail?: (segment: number, torn: TornTail) => void;
}

export interface AppendOptions {
  /** Sync this append now, whatever the policy. */
  sync?: boolean;
  /** This append needs no fsync, whatever the policy: it resolves once its bytes are handed to
   *  the OS (a later synced append or sync() makes it durable too). Ignored when `sync`. */
  noSync?: boolean;
  /** The caller hands the record over and will not modify it: it is not copied. */
  owned?: boolean;
}

export interface WalStats {
  records: number;
  bytesWritten: number;
  writes: number;
  syncs: number;
  /** time spent waiting for write() and fdatasync() calls of the writer loop, ms */
  writeMs: number;
  syncMs: number;
}

interface Segment {
  number: number;
  path: string;
  encoder: LogEncoder;
  size: number;
  file: FileHandle | null;
  /** No more records go here once a newer segment exists. */
  retired: boolean;
  /** The file has been created (with its header) and the directory synced. */
  created: boolean;
  /** a spare segment's creation in the background (WalOptions.prepareNextSegment) */
  ready?: Promise<void>;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  /** 0: written to the OS, 1: synced within batch delay, 2: synced now */
  level: 0 | 1 | 2;
}

const RESOLVED = Promise.resolve();
const SEGMENT_RE = /^(\d{6,})\.log$/;
/** a deleted segment's file kept for reuse (WalOptions.recycleSegments) */
const FREE_RE = /^(\d{6,})\.free$/;

export function segmentFileName(n: number): string {
  return `${String(n).padStart(6, '0')}.log`;
}

function freeFileName(n: number): string {
  return `${String(n).padStart(6, '0')}.free`;
}

/** Segment numbers present in `dir`, ascending. */
export async function listSegments(dir: string): Promise<number[]> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  const nums: number[] = [];
  for (const name of names) {
    const m = SEGMENT_RE.exec(name);
    if (m) nums.push(Number(m[1]));
  }
  return nums.sort((a, b) => a - b);
}

export class Wal {
  readonly stats: WalStats = { records: 0, bytesWritten: DOUBLE_ZERO, writes: 0, syncs: 0, writeMs: DOUBLE_ZERO, syncMs: DOUBLE_ZERO };
  private readonly policy: SyncPolicy;
  private readonly batchDelayMs: number;
  private readonly segmentBytes: number;
  /** Segments with bytes or a close still to be written, oldest first; the last is current. */
  private segments: Segment[] = [];
  private waiters: Waiter[] = [];
  private pumping = false;
  private failure: unknown = null;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** the next segment, created ahead (prepareNextSegment) */
  private spare: Segment | undefined;
  private readonly prepareNext: boolean;
  private readonly recycleLimit: number;
  /** paths of deleted segments' files waiting to be reused, oldest first */
  private freeFiles: string[] = [];
  private readonly maxSyncs: number;
  /** pipelined batches (maxSyncsInFlight > 1) not yet settled, oldest first; each settles
   *  (never rejects) once its waiters are resolved or rejected */
  private syncsInFlight: Promise<void>[] = [];
  private lastSettled: Promise<void> = RESOLVED;

  private constructor(
    readonly dir: string,
    options: WalOptions,
    firstNumber: number,
    freeFiles: string[],
  ) {
    this.policy = options.sync ?? 'batch';
    this.batchDelayMs = options.batchDelayMs ?? 2;
    this.segmentBytes = options.segmentBytes ?? Number.POSITIVE_INFINITY;
    this.prepareNext = options.prepareNextSegment === true;
    this.recycleLimit = Math.max(0, Math.floor(options.recycleSegments ?? 0));
    this.maxSyncs = Math.max(1, Math.floor(options.maxSyncsInFlight ?? 1));
    this.freeFiles = freeFiles;
    this.segments.push(this.newSegment(firstNumber));
    this.prepareSpare();
  }

  /** Starts creating the segment after the current one (file, header, fsyncs) in the background. */
  private prepareSpare(): void {
    if (!this.prepareNext || this.closed || this.failure || this.spare) return;
    const seg = this.newSegment(this.currentSegment + 1);
    const header = seg.encoder.take(); // records appended once it is current follow it in writeOut
    const reuse = this.freeFiles.shift();
    seg.ready = (async () => {
      // A reused file gets its new header (and so its new checksum seed) before its new name:
      // a crash in between leaves a free file, never a segment carrying another's header.
      // deleteSegmentsBefore renamed it without a directory sync: make that durable first, or a
      // crash could bring back the old segment's name over the new header
      if (reuse !== undefined) await syncDir(this.dir);
      seg.file = await fsp.open(reuse ?? seg.path, reuse === undefined ? 'wx' : 'r+');
      let off = 0;
      while (off < header.length) off += (await seg.file.write(header, off, header.length - off)).bytesWritten;
      await seg.file.datasync();
      if (reuse !== undefined) await fsp.rename(reuse, seg.path);
      await syncDir(this.dir);
      seg.created = true;
    })();
    seg.ready.catch(() => undefined); // a failure surfaces when the segment is used (writeOut)
    this.spare = seg;
  }

  /** Recovers the log in `dir` (replaying records through options.onRecord) and opens a new
   *  segment for appends. Existing segments are never appended to. */
  static async open(dir: string, options: WalOptions = {}): Promise<Wal> {
    await fsp.mkdir(dir, { recursive: true });
    const minSegment = options.minSegment ?? 0;
    const all = await listSegments(dir);
    for (const n of all) if (n < minSegment) await fsp.rm(path.join(dir, segmentFileName(n)), { force: true });
    const live = all.filter((n) => n >= minSegment);
    const freeFiles: string[] = [];
    for (const name of (await fsp.readdir(dir)).sort()) {
      if (!FREE_RE.test(name)) continue;
      const file = path.join(dir, name);
      if (freeFiles.length < (options.recycleSegments ?? 0)) freeFiles.push(file);
      else await fsp.rm(file, { force: true });
    }
    // A torn tail is possible in the last segment that holds records, not only in the last file:
    // a spare made ahead (prepareNextSegment) exists, header only, while the segment before it
    // is being written. Damage at the end of a segment is a torn tail only if no later segment
    // holds anything past its header (a retired segment is synced before anything after it is
    // written).
    const torn: { n: number; file: string; tail: TornTail }[] = [];
    for (const n of live) {
      const file = path.join(dir, segmentFileName(n));
      const result = await readLogFile(file, { tolerateTornTail: true, expectFileNumber: n });
      // Anything past the header, even a torn first record, was written after the earlier
      // segments were synced. Not so in a recyclable file: bytes left from its earlier life
      // follow its header until records overwrite them, so only a record counts.
      const recyclable = result.version === FORMAT_VERSION_RECYCLABLE;
      const written = result.records.length > 0 || (!recyclable && result.torn !== undefined && result.torn.offset > 0);
      if (written && torn.length > 0) {
        // writes after the damage: re-read the damaged file strictly for the precise error
        const first = torn[0]!;
        await readLogFile(first.file, { tolerateTornTail: false, expectFileNumber: first.n });
        throw new CorruptionError(first.file, first.tail.offset, `${first.tail.reason} (segment ${n} after it was written to: not a torn tail)`);
      }
      if (options.onRecord) for (const r of result.records) options.onRecord(r.data, n, r.offset);
      // a reused file made a spare and never written to is not a torn segment
      if (result.torn && !(recyclable && result.records.length === 0)) torn.push({ n, file, tail: result.torn });
    }
    for (const { n, file, tail } of torn) {
      // A file whose header never made it is removed; otherwise cut at the valid prefix.
      if (tail.offset === 0) await fsp.rm(file, { force: true });
      else await truncateDurably(file, tail.offset);
      options.onTornTail?.(n, tail);
    }
    const last = live.length > 0 ? live[live.length - 1]! : Math.max(0, minSegment - 1);
    return new Wal(dir, options, last + 1, freeFiles);
  }

  /** Number of the segment new appends go to. */
  get currentSegment(): number {
    return this.segments[this.segments.length - 1]!.number;
  }

  /** Appends one record. See the file comment for when the promise resolves. */
  append(record: Uint8Array, options?: AppendOptions): Promise<void> {
    return this.appendMany([record], options);
  }

  /** Appends records contiguously with one acknowledgement. With `positions`, pushes onto it
   *  each record's file offset in the segment that is current once this returns
   *  (readRecordAt reads one back). */
  appendMany(records: readonly Uint8Array[], options?: AppendOptions, positions?: number[]): Promise<void> {
    if (this.failure) return Promise.reject(new KvError('IO_ERROR', 'write-ahead log failed earlier; reopen to recover', { cause: this.failure }));
    if (this.closed) return Promise.reject(new KvError('CLOSED', 'write-ahead log is closed'));
    let seg = this.segments[this.segments.length - 1]!;
    if (seg.size >= this.segmentBytes) seg = this.segments[this.rotateInternal()]!;
    const before = seg.encoder.pendingBytes;
    if (positions === undefined) {
      for (const r of records) seg.encoder.add(r, options?.owned === true);
    } else {
      let at = seg.size;
      for (const r of records) {
        // the encoder pads a block tail too short for a header and starts the record after it
        const left = BLOCK_SIZE - (at % BLOCK_SIZE);
        positions.push(left < HEADER_SIZE ? at + left : at);
        const b = seg.encoder.pendingBytes;
        seg.encoder.add(r, options?.owned === true);
        at += seg.encoder.pendingBytes - b;
      }
    }
    seg.size += seg.encoder.pendingBytes - before;
    this.stats.records += records.length;
    const level: 0 | 1 | 2 = options?.sync ? 2 : options?.noSync || this.policy === 'off' ? 0 : this.policy === 'always' ? 2 : 1;
    if (level === 0 && !this.pumping && seg.created && seg.file && this.segments.length === 1) {
      // Fast path for unsynced appends: nothing else is writing, so hand the bytes to the OS
      // right here (a pwrite from this thread costs less than a thread-pool round trip).
      try {
        const n = writeChunksSync(seg.file.fd, seg.encoder.takeChunks());
        this.stats.writes++;
        this.stats.bytesWritten += n;
      } catch (err) {
        this.failure = err;
        return Promise.reject(new KvError('IO_ERROR', `write-ahead log write failed: ${String(err)}`, { cause: err }));
      }
      return RESOLVED;
    }
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject, level });
      this.kick();
    });
  }

  /** Starts a new segment; records appended from now on go there. Returns its number. */
  rotate(): number {
    if (this.closed) throw new KvError('CLOSED', 'write-ahead log is closed');
    this.rotateInternal();
    this.kick();
    return this.currentSegment;
  }

  /** Resolves when everything appended so far is written and synced. */
  sync(): Promise<void> {
    if (this.failure) return Promise.reject(new KvError('IO_ERROR', 'write-ahead log failed earlier', { cause: this.failure }));
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject, level: 2 });
      this.kick();
    });
  }

  /** Deletes segment files numbered below `n` (their contents are durable elsewhere), or with
   *  recycleSegments keeps them, renamed, for new segments to overwrite. */
  async deleteSegmentsBefore(n: number): Promise<void> {
    for (const s of await listSegments(this.dir)) {
      if (s >= n) break;
      if (this.segments.some((seg) => seg.number === s)) continue; // still being written
      const file = path.join(this.dir, segmentFileName(s));
      if (this.freeFiles.length < this.recycleLimit && !this.closed) {
        // No directory sync: a crash that undoes the rename leaves the segment to be replayed,
        // as one that undoes an unlink would.
        const free = path.join(this.dir, freeFileName(s));
        await fsp.rename(file, free);
        this.freeFiles.push(free);
      } else {
        await fsp.rm(file, { force: true });
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // From here appends and rotations are refused: nothing may land after SEGMENT_END.
    this.closed = true;
    if (!this.failure) {
      // a recyclable segment is ended explicitly, else its left-over bytes would read as a torn tail
      if (this.recycleLimit > 0) this.endSegment(this.segments[this.segments.length - 1]!);
      await this.sync().catch(() => undefined);
    }
    await this.whenIdle();
    for (const seg of this.segments) await seg.file?.close().catch(() => undefined);
    this.segments = [];
    // an unused spare stays on disk: an empty segment, replayed as such
    const spare = this.spare;
    this.spare = undefined;
    if (spare) await spare.ready?.then(() => spare.file?.close()).catch(() => undefined);
  }

  private newSegment(n: number): Segment {
    const encoder = new LogEncoder(0);
    encoder.addFileHeader(n, this.recycleLimit > 0);
    return { number: n, path: path.join(this.dir, segmentFileName(n)), encoder, size: encoder.pendingBytes, file: null, retired: false, created: false };
  }

  /** Frames SEGMENT_END into a recyclable segment that takes no more records. */
  private endSegment(seg: Segment): void {
    const before = seg.encoder.pendingBytes;
    seg.encoder.addSegmentEnd();
    seg.size += seg.encoder.pendingBytes - before;
  }

  private rotateInternal(): number {
    const cur = this.segments[this.segments.length - 1]!;
    if (this.recycleLimit > 0) this.endSegment(cur);
    cur.retired = true;
    const spare = this.spare;
    this.spare = undefined;
    this.segments.push(spare?.number === cur.number + 1 ? spare : this.newSegment(cur.number + 1));
    this.prepareSpare();
    return this.segments.length - 1;
  }

  private kick(): void {
    if (this.pumping) return;
    this.pumping = true;
    void this.pump();
  }

  private async whenIdle(): Promise<void> {
    if (this.pumping) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.drainSyncs();
  }

  /** Waits until every pipelined batch has settled. */
  private async drainSyncs(): Promise<void> {
    while (this.syncsInFlight.length > 0) await this.syncsInFlight[this.syncsInFlight.length - 1];
  }

  /** The single writer loop: while anything waits, write all framed bytes, sync if any waiter
   *  needs it, then acknowledge the waiters covered by that write. */
  private async pump(): Promise<void> {
    // the appends taken and not yet settled: a failed write rejects them too
    let batch: Waiter[] = [];
    try {
      while (this.waiters.length > 0 || this.segments.some((s) => s.retired)) {
        if (this.waiters.length > 0 && this.waiters.every((w) => w.level === 1) && this.batchDelayMs > 0) {
          // Gather more writers into this fsync, bounded by the batch delay.
          await new Promise((r) => setTimeout(r, this.batchDelayMs));
        }
        if (this.maxSyncs > 1 && this.syncsInFlight.length >= this.maxSyncs) {
          // Wait for room, then look again: a rotation may have come meanwhile. Between the
          // check below and the fsync pipelineBatch issues there is no await.
          await this.syncsInFlight[0];
          continue;
        }
        if (this.canPipeline()) {
          batch = this.waiters;
          this.waiters = [];
          this.pipelineBatch(batch);
          batch = [];
          continue;
        }
        await this.drainSyncs();
        batch = this.waiters;
        this.waiters = [];
        const needSync = batch.some((w) => w.level > 0);
        await this.writeOut(needSync);
        for (const w of batch) w.resolve();
        batch = [];
      }
    } catch (err) {
      if (!this.failure) this.failure = err;
      const failed = [...batch, ...this.waiters];
      batch = [];
      this.waiters = [];
      for (const w of failed) w.reject(new KvError('IO_ERROR', `write-ahead log write failed: ${String(err)}`, { cause: err }));
    } finally {
      this.pumping = false;
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const r of idle) r();
      if (this.waiters.length > 0 && !this.failure) this.kick();
    }
  }

  /** Pipelining applies only in the steady state: one segment, already created, none retiring
   *  (rotation and file creation take the serial path, which first drains what is in flight). */
  private canPipeline(): boolean {
    if (this.maxSyncs <= 1 || this.segments.length !== 1) return false;
    const seg = this.segments[0]!;
    return seg.created && seg.file !== null && !seg.retired;
  }

  /** Writes the waiting appends' bytes now and starts their fdatasync without waiting for the
   *  ones already in flight (at most maxSyncs). Each fsync is issued after its batch's write
   *  returned, so it covers that batch; waiters are settled in batch order, so an append is
   *  acknowledged only when it and everything before it is durable. */
  private pipelineBatch(batch: Waiter[]): void {
    if (this.failure) throw this.failure;
    const seg = this.segments[0]!;
    const file = seg.file!;
    this.writePending(seg, file);
    let synced: Promise<void> = RESOLVED;
    if (batch.some((w) => w.level > 0)) {
      const ts = performance.now();
      this.stats.syncs++;
      synced = file.datasync().then(() => {
        this.stats.syncMs += performance.now() - ts;
      });
    }
    const prev = this.lastSettled;
    const settle = async (): Promise<void> => {
      let err: unknown = null;
      try {
        await synced;
      } catch (e) {
        err = e;
      }
      await prev;
      if (err !== null && !this.failure) this.failure = err;
      const failed = this.failure;
      if (failed) for (const w of batch) w.reject(new KvError('IO_ERROR', `write-ahead log sync failed: ${String(failed)}`, { cause: failed }));
      else for (const w of batch) w.resolve();
      // batches settle in order, so this one is the oldest in flight
      this.syncsInFlight.shift();
    };
    const settled = settle();
    this.lastSettled = settled;
    this.syncsInFlight.push(settled);
  }

  /** Hands the segment's framed bytes to the OS. A memory copy into the page cache: done on this
   *  thread it costs less than a thread-pool round trip, which on a busy machine waits for a core
   *  twice (there and back) before the fdatasync after it can even start. */
  private writePending(seg: Segment, file: FileHandle): void {
    if (seg.encoder.pendingBytes === 0) return;
    const tw = performance.now();
    const n = writeChunksSync(file.fd, seg.encoder.takeChunks());
    this.stats.writeMs += performance.now() - tw;
    this.stats.writes++;
    this.stats.bytesWritten += n;
  }

  /** Writes every segment's framed bytes in order; retired segments are synced and closed. */
  private async writeOut(needSync: boolean): Promise<void> {
    const failed = this.failure;
    if (failed) throw failed;
    for (const seg of [...this.segments]) {
      if (seg.ready) await seg.ready; // a spare still being created
      if (!seg.file) {
        seg.file = await fsp.open(seg.path, 'wx');
      }
      this.writePending(seg, seg.file);
      if (!seg.created) {
        // The new file's directory entry must be durable before anything in it is acknowledged.
        await seg.file.datasync();
        await syncDir(this.dir);
        seg.created = true;
      }
      if (seg.retired) {
        await seg.file.datasync();
        this.stats.syncs++;
        await seg.file.close();
        this.segments.splice(this.segments.indexOf(seg), 1);
      } else if (needSync) {
        const ts = performance.now();
        await seg.file.datasync();
        this.stats.syncMs += performance.now() - ts;
        this.stats.syncs++;
      }
    }
  }
}

/** Most pieces one writev takes (Linux's IOV_MAX is 1024). */
const MAX_IOVECS = 512;

/**
 * Writes `chunks` in order at the file's position with writev: the framing's headers and the
 * records' own buffers go to the page cache without being concatenated into one more copy
 * first. Loops over short writes. Returns the bytes written.
 */
export function writeChunksSync(fd: number, chunks: Buffer[]): number {
  let total = 0;
  let i = 0;
  while (i < chunks.length) {
    const end = Math.min(chunks.length, i + MAX_IOVECS);
    const slice = i === 0 && end === chunks.length ? chunks : chunks.slice(i, end);
    let want = 0;
    for (const c of slice) want += c.length;
    let n = writevSync(fd, slice);
    total += n;
    if (n === want) {
      i = end;
      continue;
    }
    // short write: skip what went out, resume inside the chunk it stopped in
    while (n >= chunks[i]!.length) n -= chunks[i++]!.length;
    chunks[i] = chunks[i]!.subarray(n);
  }
  return total;
}

export async function syncDir(dir: string): Promise<void> {
  const h = await fsp.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

async function truncateDurably(file: string, length: number): Promise<void> {
  const h = await fsp.open(file, 'r+');
  try {
    await h.truncate(length);
    await h.sync();
  } finally {
    await h.close();
  }
}
