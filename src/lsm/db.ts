// LsmEngine: the single-node storage engine. Owns the write path (WAL → memtable), reads
// (memtable → immutable memtables → SSTables newest first), snapshots and iterators, and the
// background work that flushes memtables and compacts levels. Files: ./FORMAT.md.
//
// Write path: a write is validated, waits only if the engine must stall, gets its sequence
// numbers, is framed into the WAL (synchronously, in call order) and inserted into the memtable,
// then resolves once the WAL's sync policy is met. Readers see a write only after that point:
// reads use `visibleSeq`, the highest acknowledged sequence, never `lastSeq`.
//
// Durability points: the WAL until a memtable's flush is recorded in the MANIFEST; after that
// the SSTable. WAL segments are deleted only after the manifest edit naming their replacement
// table is synced. SSTables are deleted only when no version (reader) references them.
import { promises as fsp, mkdirSync } from 'node:fs';
import path from 'node:path';
import { AsyncMutex, Signal, sleep } from '../util/async.js';
import { DOUBLE_ZERO, DecodeError, toBuffer } from '../util/bytes.js';
import { CorruptionError, KvError, invalidArgument } from '../util/errors.js';
import { Wal } from '../wal/wal.js';
import { syncDir } from '../wal/wal.js';
import { compactionFor, levelScores, makeDropRule, pickCompaction, writeTables, type Compaction } from './compaction.js';
import { DbIterator, type Bounds } from './db-iterator.js';
import { WAL_DIR, parseFileName, tablePath, manifestFileName } from './filenames.js';
import type { InternalIterator } from './internal-iterator.js';
import { KIND_SEEK, Kind, makeInternalKey, userKeyOf, kindOf } from './keys.js';
import { DirLock } from './lock.js';
import { Memtable, type LookupResult } from './memtable.js';
import { MergingIterator } from './merging-iterator.js';
import { Pacer } from './pacer.js';
import { sortKey } from './skiplist.js';
import { resolveOptions, type ResolvedOptions } from './options.js';
import { LevelIterator, TableInternalIterator } from './table-iterators.js';
import { Tables } from './tables.js';
import type { EngineEvent, EngineStats, LsmOptions, ReadOptions, ScanOptions, Snapshot, WriteOp, WriteOptions } from './types.js';
import { NUM_LEVELS, type Version } from './version.js';
import { emptyEdit, type FileMeta } from './version-edit.js';
import { VersionSet, createManifest, setCurrent } from './version-set.js';
import { decodeBatch, encodeBatch, encodedBatchSize, storedValueLength } from './write-batch.js';
import { ARENA_CHUNK_BYTES, ArenaPool } from './arena.js';

type State = 'open' | 'closing' | 'closed';

const EMPTY_VALUE = Buffer.alloc(0);

export class LsmEngine {
  private state: State = 'open';
  private mem: Memtable;
  /** Size at which the live memtable is frozen: memtableBytes less a random share of up to
   *  memtableJitter, drawn anew for each memtable (see LsmOptions.memtableJitter). */
  private memLimit: number;
  /** Frozen memtables, oldest first, waiting for flush. */
  private imms: Memtable[] = [];
  private lastSeq: number;
  private visibleSeq: number;
  /** Lazy puts not yet in the memtable (WriteOp.lazy): key as latin1 → entry. */
  private readonly lazy = new Map<string, { key: Buffer; value: Buffer; seq: number }>();
  /** lazy keys per first key byte: most keys skip the map lookup on one array read */
  private readonly lazyFirstByte = new Uint32Array(256);
  /** Live snapshot sequences (snapshots and open iterators) → count. */
  private readonly snapshots = new Map<number, number>();
  private flushRunning = false;
  private compactionRunning = false;
  private bgError: unknown = null;
  private readonly bgDone = new Signal();
  /** Serializes compactions (background and manual) and checkpoints: whoever holds it may
   *  rely on no table being deleted. Flushes do not take it; they only add L0 files. */
  private readonly compactionLock = new AsyncMutex();
  private readonly obsoleteCandidates = new Set<number>();
  private readonly counters = {
    userBytesWritten: DOUBLE_ZERO,
    tableBytesWritten: DOUBLE_ZERO,
    flushes: 0,
    compactions: 0,
    bloomChecks: 0,
    bloomNegatives: 0,
    writeStalls: 0,
    writeSlowdowns: 0,
  };

  private constructor(
    readonly dir: string,
    private readonly o: ResolvedOptions,
    private readonly lock: DirLock,
    private readonly versions: VersionSet,
    private readonly tables: Tables,
    private wal: Wal,
    recovered: Memtable,
    /** the memtables' byte chunks, reused from one memtable to the next (./arena.ts) */
    private readonly arenaPool: ArenaPool,
  ) {
    this.mem = recovered;
    this.memLimit = this.drawMemtableLimit();
    this.lastSeq = Math.max(versions.lastSequence, recovered.maxSeq);
    this.visibleSeq = this.lastSeq;
    this.mem.firstWalSegment = versions.logNumber;
  }

  /** Opens (creating if allowed) the store in `dir`, replaying its WAL. */
  static async open(dir: string, options: LsmOptions = {}): Promise<LsmEngine> {
    const o = resolveOptions(options);
    if (o.createIfMissing) mkdirSync(dir, { recursive: true });
    else await fsp.access(dir).catch(() => {
      throw new KvError('NOT_FOUND', `store does not exist in ${dir} (createIfMissing is false)`);
    });
    const lock = await DirLock.acquire(dir);
    let versions: VersionSet | undefined;
    try {
      versions = await VersionSet.open(dir, { createIfMissing: o.createIfMissing, errorIfExists: o.errorIfExists });
      const tables = new Tables(dir, o);
      await removeOrphanTables(dir, versions.current);
      // spare chunks: about one memtable's worth, what a flush hands back to the next one
      const arenaPool = new ArenaPool(Math.max(o.memtableBytes, 2 * ARENA_CHUNK_BYTES));
      const recovered = new Memtable(arenaPool);
      const walDir = path.join(dir, WAL_DIR);
      const wal = await Wal.open(walDir, {
        sync: o.walSync,
        batchDelayMs: o.walBatchDelayMs,
        minSegment: versions.logNumber,
        onRecord: (record, segment, offset) => {
          let batch;
          try {
            batch = decodeBatch(record);
          } catch (err) {
            if (err instanceof DecodeError) throw new CorruptionError(path.join(walDir, String(segment)), offset, `bad write batch: ${err.message}`);
            throw err;
          }
          // Entries already in SSTables (sequence <= the manifest's) are not replayed.
          batch.ops.forEach((op, i) => {
            const seq = batch.firstSeq + i;
            if (seq > versions!.lastSequence) recovered.add(seq, op.kind, op.key, op.value);
          });
        },
      });
      const engine = new LsmEngine(dir, o, lock, versions, tables, wal, recovered, arenaPool);
      engine.maybeScheduleWork();
      return engine;
    } catch (err) {
      await versions?.close().catch(() => undefined);
      await lock.release();
      throw err;
    }
  }

  // ---------------------------------------------------------------- writes

  put(key: Uint8Array, value: Uint8Array, options?: WriteOptions): Promise<void> {
    return this.write([{ type: 'put', key, value }], options);
  }

  delete(key: Uint8Array, options?: WriteOptions): Promise<void> {
    return this.write([{ type: 'del', key }], options);
  }

  /** WAL appends not yet acknowledged, and the promise of the latest one (disableWal writes
   *  wait for it to keep visibility in sequence order). */
  private walPending = 0;
  private lastWalAck: Promise<void> | undefined;

  /** Applies `ops` atomically: all or none are visible, now and after any crash. */
  async write(ops: readonly WriteOp[], options?: WriteOptions): Promise<void> {
    this.checkOpen();
    if (!Array.isArray(ops)) throw invalidArgument('write() takes an array of operations');
    for (const op of ops) this.validateOp(op);
    if (ops.length === 0) return;
    const wait = this.makeRoomForWrite();
    if (wait) await wait;
    this.checkOpen();
    if (options?.disableWal && options.sync) throw invalidArgument('disableWal and sync exclude each other');
    if (!options?.disableWal && ops.some((op) => op.type === 'put' && op.lazy === true)) throw invalidArgument('lazy puts need disableWal');
    const firstSeq = this.lastSeq + 1;
    const endSeq = this.lastSeq + ops.length;
    this.lastSeq = endSeq;
    let acked: Promise<void> | undefined;
    if (options?.disableWal) {
      // Visible in sequence order: not before an earlier write still waiting for its WAL ack
      // (acks come in append order, so the latest pending one covers them all).
      acked = this.walPending > 0 ? this.lastWalAck : undefined;
      this.counters.userBytesWritten += encodedBatchSize(ops);
    } else {
      const record = encodeBatch(firstSeq, ops);
      const a = this.wal.append(record, options?.sync ? { sync: true, owned: true } : { owned: true });
      this.walPending++;
      acked = this.lastWalAck = a.finally(() => this.walPending--);
      this.counters.userBytesWritten += record.length;
    }
    // The memtable copies keys and values into its arena: the caller keeps its buffers.
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      const key = op.key;
      if (op.type === 'put' && op.lazy === true) {
        this.setLazy(key, op.valuePrefix === undefined ? Buffer.from(op.value) : Buffer.concat([op.valuePrefix, op.value]), firstSeq + i);
        continue;
      }
      if (this.lazy.size > 0 && key.length > 0 && this.lazyFirstByte[key[0]!]! > 0) this.dropLazy(key);
      if (op.type === 'put') this.mem.add(firstSeq + i, Kind.Value, key, op.value, op.valuePrefix);
      else this.mem.add(firstSeq + i, Kind.Delete, key, EMPTY_VALUE);
    }
    if (acked) await acked;
    if (endSeq > this.visibleSeq) this.visibleSeq = endSeq;
  }

  private setLazy(key: Uint8Array, value: Buffer, seq: number): void {
    const k = sortKey(key);
    if (!this.lazy.has(k) && key.length > 0) this.lazyFirstByte[key[0]!]!++;
    this.lazy.set(k, { key: Buffer.from(key), value, seq });
  }

  private dropLazy(key: Uint8Array): void {
    if (this.lazy.delete(sortKey(key))) this.lazyFirstByte[key[0]!]!--;
  }

  /** The lazy put of `key` a read at `seq` sees, if any. */
  private lazyValue(key: Uint8Array, seq: number): Buffer | undefined {
    if (this.lazy.size === 0 || key.length === 0 || this.lazyFirstByte[key[0]!] === 0) return undefined;
    const e = this.lazy.get(sortKey(key));
    return e !== undefined && e.seq <= seq ? e.value : undefined;
  }

  /** Moves the lazy puts into the memtable about to be frozen (they belong to it: every write
   *  they describe is in it or in an earlier one). */
  private insertLazy(): void {
    for (const e of this.lazy.values()) this.mem.add(e.seq, Kind.Value, e.key, e.value);
    this.lazy.clear();
    this.lazyFirstByte.fill(0);
  }

  private validateOp(op: WriteOp): void {
    if (op === null || typeof op !== 'object') throw invalidArgument('a write operation must be an object');
    if (!(op.key instanceof Uint8Array)) throw invalidArgument('key must be a Uint8Array or Buffer');
    if (op.key.length > this.o.maxKeyBytes) {
      throw new KvError('KEY_TOO_LARGE', `key of ${op.key.length} bytes exceeds the limit of ${this.o.maxKeyBytes}`);
    }
    if (op.type === 'put') {
      if (!(op.value instanceof Uint8Array)) throw invalidArgument('value must be a Uint8Array or Buffer');
      if (op.valuePrefix !== undefined && !(op.valuePrefix instanceof Uint8Array)) throw invalidArgument('valuePrefix must be a Uint8Array or Buffer');
      const len = storedValueLength(op);
      if (len > this.o.maxValueBytes) {
        throw new KvError('VALUE_TOO_LARGE', `value of ${len} bytes exceeds the limit of ${this.o.maxValueBytes}`);
      }
    } else if (op.type !== 'del') {
      throw invalidArgument(`unknown operation type ${String((op as { type: unknown }).type)}`);
    }
  }

  /** Returns undefined when the write may proceed at once (the common, synchronous case). */
  private makeRoomForWrite(): Promise<void> | undefined {
    if (this.bgError) throw this.backgroundFailure();
    const l0 = this.versions.current.levels[0]!.length;
    if (this.mem.approximateBytes < this.memLimit && l0 < this.o.l0SlowdownTrigger) return undefined;
    return this.makeRoomSlow();
  }

  private async makeRoomSlow(): Promise<void> {
    let slowed = false;
    for (;;) {
      this.checkOpen();
      if (this.bgError) throw this.backgroundFailure();
      const l0 = this.versions.current.levels[0]!.length;
      if (!slowed && l0 >= this.o.l0SlowdownTrigger && l0 < this.o.l0StopTrigger) {
        // Give compaction a millisecond per write rather than stopping writes dead later.
        slowed = true;
        this.counters.writeSlowdowns++;
        await sleep(1);
        continue;
      }
      if (this.mem.approximateBytes < this.memLimit) return;
      if (this.imms.length >= this.o.maxImmutableMemtables || l0 >= this.o.l0StopTrigger) {
        this.counters.writeStalls++;
        this.emit({ type: 'write-stall', reason: l0 >= this.o.l0StopTrigger ? 'l0-files' : 'memtables' });
        this.maybeScheduleWork();
        this.stalledWriters++;
        try {
          await this.bgDone.wait();
        } finally {
          this.stalledWriters--;
        }
        continue;
      }
      this.switchMemtable();
      return;
    }
  }

  private drawMemtableLimit(): number {
    return this.o.memtableBytes * (1 - this.o.memtableJitter * Math.random());
  }

  /** Freezes the memtable and starts a new one on a new WAL segment. Synchronous, so every
   *  write framed before it lands in the old segment and every later one in the new. */
  private switchMemtable(): void {
    this.insertLazy();
    const frozen = this.mem;
    this.imms.push(frozen);
    this.mem = new Memtable(this.arenaPool);
    this.memLimit = this.drawMemtableLimit();
    this.mem.firstWalSegment = this.wal.rotate();
    this.maybeScheduleWork();
  }

  // ---------------------------------------------------------------- reads

  async get(key: Uint8Array, options?: ReadOptions): Promise<Buffer | undefined> {
    return this.getSync(key, options);
  }

  /** Point lookup without a promise (all reads are synchronous underneath). */
  getSync(key: Uint8Array, options?: ReadOptions): Buffer | undefined {
    this.checkOpen();
    if (!(key instanceof Uint8Array)) throw invalidArgument('key must be a Uint8Array or Buffer');
    const seq = options?.snapshot?.sequence ?? this.visibleSeq;
    const lazy = this.lazyValue(key, seq);
    if (lazy !== undefined) return Buffer.from(lazy);
    let r: LookupResult = this.mem.get(key, seq);
    for (let i = this.imms.length - 1; r === undefined && i >= 0; i--) r = this.imms[i]!.get(key, seq);
    if (r === undefined) r = this.getFromTables(this.versions.current, key, seq);
    return r?.kind === Kind.Value ? Buffer.from(r.value) : undefined;
  }

  private getFromTables(v: Version, key: Uint8Array, seq: number): LookupResult {
    const keyBuf = toBuffer(key);
    let target: Buffer | null = null;
    for (const f of v.levels[0]!) {
      if (Buffer.compare(userKeyOf(f.smallest), keyBuf) > 0 || Buffer.compare(userKeyOf(f.largest), keyBuf) < 0) continue;
      target ??= makeInternalKey(key, seq, KIND_SEEK);
      const r = this.getFromTable(f, keyBuf, target);
      if (r) return r;
    }
    for (let level = 1; level < NUM_LEVELS; level++) {
      const f = v.fileFor(level, keyBuf);
      if (!f) continue;
      target ??= makeInternalKey(key, seq, KIND_SEEK);
      const r = this.getFromTable(f, keyBuf, target);
      if (r) return r;
    }
    return undefined;
  }

  private getFromTable(f: FileMeta, userKey: Buffer, target: Buffer): LookupResult {
    const reader = this.tables.reader(f.number);
    this.counters.bloomChecks++;
    if (!reader.mayContain(userKey)) {
      this.counters.bloomNegatives++;
      return undefined;
    }
    const c = reader.iterator();
    try {
      c.seek(target);
      if (!c.valid()) return undefined;
      const k = c.key();
      if (!userKeyOf(k).equals(userKey)) return undefined;
      return kindOf(k) === Kind.Value ? { kind: Kind.Value, value: c.value() } : { kind: Kind.Delete };
    } finally {
      c.close();
    }
  }

  /** A read view at the current sequence; call release() when done. */
  snapshot(): Snapshot {
    this.checkOpen();
    const sequence = this.visibleSeq;
    this.addSnapshot(sequence);
    let released = false;
    return {
      sequence,
      release: () => {
        if (released) return;
        released = true;
        this.removeSnapshot(sequence);
      },
    };
  }

  /** A cursor over user entries, consistent to the sequence at the moment of this call. */
  iterator(options: ScanOptions = {}): EngineIterator {
    this.checkOpen();
    const seq = options.snapshot?.sequence ?? this.visibleSeq;
    const version = this.versions.pin(this.versions.current);
    this.addSnapshot(seq);
    // the iterator reads memtable bytes in place: they stay until it closes (Memtable.release)
    const mems = [this.mem, ...this.imms.slice().reverse()];
    for (const m of mems) m.retain();
    const children: InternalIterator[] = mems.map((m) => m.iterator());
    for (const f of version.levels[0]!) children.push(new TableInternalIterator(this.tables.cursor(f.number)));
    for (let l = 1; l < NUM_LEVELS; l++) {
      const files = version.levels[l]!;
      if (files.length > 0) children.push(new LevelIterator(files, (f) => this.tables.cursor(f.number)));
    }
    const bounds: Bounds = { gte: options.gte, gt: options.gt, lte: options.lte, lt: options.lt };
    const it = new DbIterator(new MergingIterator(children), seq, bounds, options.reverse === true);
    return new EngineIterator(it, options.limit ?? -1, () => {
      for (const m of mems) m.release();
      this.removeSnapshot(seq);
      this.versions.unpin(version);
      void this.deleteObsoleteFiles();
    });
  }

  /** Range scan as an async iterable of [key, value]; see ScanOptions. */
  scan(options: ScanOptions = {}): AsyncIterable<[Buffer, Buffer]> {
    const it = this.iterator(options); // the snapshot is taken now, not at the first next()
    return {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<[Buffer, Buffer]>> => {
          const e = it.next();
          if (e === undefined) {
            it.close();
            return { done: true, value: undefined };
          }
          return { done: false, value: e };
        },
        return: async (): Promise<IteratorResult<[Buffer, Buffer]>> => {
          it.close();
          return { done: true, value: undefined };
        },
      }),
    };
  }

  private addSnapshot(seq: number): void {
    this.snapshots.set(seq, (this.snapshots.get(seq) ?? 0) + 1);
  }

  private removeSnapshot(seq: number): void {
    const n = (this.snapshots.get(seq) ?? 0) - 1;
    if (n <= 0) this.snapshots.delete(seq);
    else this.snapshots.set(seq, n);
  }

  private smallestSnapshot(): number {
    let s = this.visibleSeq;
    for (const seq of this.snapshots.keys()) if (seq < s) s = seq;
    return s;
  }

  // ---------------------------------------------------------------- background work

  /** Starts the flush loop and/or the compaction loop if there is work for them. They run
   *  concurrently (interleaved on the event loop): a long compaction must not hold up memtable
   *  flushes, or writes would stall behind it while L0 piles up. Their manifest edits commute
   *  (a flush only adds an L0 file; a compaction only replaces its own inputs). */
  private maybeScheduleWork(): void {
    if (this.state !== 'open' || this.bgError) return;
    if (!this.flushRunning && this.imms.length > 0) {
      this.flushRunning = true;
      void this.backgroundLoop('flush');
    }
    if (!this.compactionRunning && pickCompaction(this.versions.current, this.o, this.versions.compactPointers)) {
      this.compactionRunning = true;
      void this.backgroundLoop('compaction');
    }
  }

  private get bgRunning(): boolean {
    return this.flushRunning || this.compactionRunning;
  }

  private async backgroundLoop(kind: 'flush' | 'compaction'): Promise<void> {
    try {
      while (this.state === 'open' && !this.bgError) {
        if (kind === 'flush') {
          if (this.imms.length === 0) break;
          await this.flushOldest();
        } else {
          const ran = await this.compactionLock.run(async () => {
            const c = pickCompaction(this.versions.current, this.o, this.versions.compactPointers);
            if (!c) return false;
            await this.runCompaction(c);
            return true;
          });
          if (!ran) break;
        }
        this.bgDone.notify();
        // A flush adds an L0 file, which may call for a compaction, and vice versa.
        this.maybeScheduleWork();
      }
    } catch (err) {
      this.bgError ??= err;
      this.emit({ type: 'background-error', error: err });
    } finally {
      if (kind === 'flush') this.flushRunning = false;
      else this.compactionRunning = false;
      this.bgDone.notify();
      this.maybeScheduleWork();
    }
  }

  private backgroundFailure(): KvError {
    return new KvError('IO_ERROR', `background flush/compaction failed; writes are refused until reopen: ${String(this.bgError)}`, { cause: this.bgError });
  }

  private async flushOldest(): Promise<void> {
    const imm = this.imms[0];
    if (!imm) return;
    const started = Date.now();
    this.emit({ type: 'flush-begin', entries: imm.entries });
    const it = imm.iterator();
    it.seekToFirst();
    const written = await writeTables(it, this.tableWriteContext(Number.POSITIVE_INFINITY), () => false);
    this.emit({ type: 'flush-tables-written', files: written.files.length, bytes: written.bytesWritten });
    const edit = emptyEdit();
    for (const file of written.files) edit.newFiles.push({ level: 0, file });
    // Segments before the next memtable's first one now hold nothing that is not in a table.
    edit.logNumber = (this.imms[1] ?? this.mem).firstWalSegment;
    edit.lastSequence = imm.maxSeq;
    await this.versions.logAndApply(edit);
    this.imms.shift();
    imm.release();
    this.counters.flushes++;
    this.counters.tableBytesWritten += written.bytesWritten;
    await this.wal.deleteSegmentsBefore(edit.logNumber);
    this.emit({ type: 'flush-end', files: written.files.length, bytes: written.bytesWritten, durationMs: Date.now() - started });
  }

  private emit(event: EngineEvent): void {
    this.o.onEvent?.(event);
  }

  private tableWriteContext(targetFileBytes: number) {
    const pacer = new Pacer(this.o.backgroundDutyCycle, () => this.writesWaiting());
    return {
      newFileNumber: () => this.versions.newFileNumber(),
      createBuilder: (n: number) => this.tables.createBuilder(n),
      targetFileBytes,
      pace: () => pacer.pace(),
    };
  }

  /** Writes wait or are slowed for background work, or soon will be: it must not pause then. */
  private writesWaiting(): boolean {
    if (this.stalledWriters > 0 || this.versions.current.levels[0]!.length >= this.o.l0SlowdownTrigger) return true;
    // no room for another frozen memtable, and the live one half full
    return this.imms.length >= this.o.maxImmutableMemtables && this.mem.approximateBytes >= this.memLimit / 2;
  }
  private stalledWriters = 0;

  private async runCompaction(c: Compaction): Promise<void> {
    const started = Date.now();
    this.emit({ type: 'compaction-begin', level: c.level, inputFiles: c.inputs[0].length + c.inputs[1].length, trivialMove: c.trivialMove });
    const edit = emptyEdit();
    edit.compactPointers.push({ level: c.level, key: c.pointer });
    for (const [i, files] of c.inputs.entries()) for (const f of files) edit.deletedFiles.push({ level: c.level + i, number: f.number });
    if (c.trivialMove) {
      const f = c.inputs[0][0]!;
      edit.newFiles.push({ level: c.level + 1, file: f });
      await this.versions.logAndApply(edit);
      this.counters.compactions++;
      this.emit({ type: 'compaction-end', level: c.level, outputFiles: 1, bytesWritten: 0, entriesDropped: 0, durationMs: Date.now() - started });
      return;
    }
    const v = this.versions.pin(this.versions.current);
    try {
      const children: InternalIterator[] = [];
      const scan = (f: FileMeta) => this.tables.cursor(f.number, true);
      if (c.level === 0) for (const f of c.inputs[0]) children.push(new TableInternalIterator(scan(f)));
      else children.push(new LevelIterator(c.inputs[0], scan));
      if (c.inputs[1].length > 0) children.push(new LevelIterator(c.inputs[1], scan));
      const merged = new MergingIterator(children);
      let written;
      try {
        merged.seekToFirst();
        written = await writeTables(merged, this.tableWriteContext(this.o.targetFileBytes), makeDropRule(v, c.level + 1, this.smallestSnapshot()));
      } finally {
        merged.close();
      }
      this.emit({ type: 'compaction-tables-written', level: c.level, files: written.files.length, bytes: written.bytesWritten });
      for (const file of written.files) edit.newFiles.push({ level: c.level + 1, file });
      await this.versions.logAndApply(edit);
      this.counters.compactions++;
      this.counters.tableBytesWritten += written.bytesWritten;
      for (const files of c.inputs) for (const f of files) this.obsoleteCandidates.add(f.number);
      this.emit({ type: 'compaction-end', level: c.level, outputFiles: written.files.length, bytesWritten: written.bytesWritten, entriesDropped: written.entriesDropped, durationMs: Date.now() - started });
    } finally {
      this.versions.unpin(v);
    }
    await this.deleteObsoleteFiles();
  }

  private async deleteObsoleteFiles(): Promise<void> {
    if (this.obsoleteCandidates.size === 0) return;
    const live = this.versions.liveFiles();
    for (const n of [...this.obsoleteCandidates]) {
      if (live.has(n)) continue;
      this.obsoleteCandidates.delete(n);
      this.tables.evict(n);
      await fsp.rm(tablePath(this.dir, n), { force: true });
    }
  }

  /** Writes the memtable out and waits until every frozen memtable is in an SSTable. */
  async flush(): Promise<void> {
    this.checkOpen();
    if (this.mem.entries > 0 || this.lazy.size > 0) this.switchMemtable();
    while (this.imms.length > 0) {
      this.checkOpen(); // a concurrent close() stops the flush loop: do not wait for it
      if (this.bgError) throw this.backgroundFailure();
      this.maybeScheduleWork();
      await this.bgDone.wait();
    }
  }

  /** Compacts every level overlapping [start, end] (all of it when omitted) down to the
   *  deepest level holding data in that range, dropping what no reader needs. */
  async compact(range: { start?: Uint8Array; end?: Uint8Array } = {}): Promise<void> {
    await this.flush();
    const lo = range.start ? toBuffer(range.start) : undefined;
    const hi = range.end ? toBuffer(range.end) : undefined;
    let deepest = 0;
    for (let l = 0; l < NUM_LEVELS; l++) if (this.versions.current.overlapping(l, lo, hi).length > 0) deepest = l;
    for (let level = 0; level < Math.max(deepest, 1); level++) {
      this.checkOpen();
      await this.compactionLock.run(async () => {
        const files = this.versions.current.overlapping(level, lo, hi);
        if (files.length === 0) return;
        const c = compactionFor(this.versions.current, level, files);
        await this.runCompaction({ ...c, trivialMove: false });
      });
    }
    this.maybeScheduleWork();
  }

  /** Writes a consistent, openable copy of the store to `target` (which must not exist or be
   *  empty): SSTables are hard-linked (copied across file systems) and a fresh MANIFEST
   *  describes them. Writes continue meanwhile; the copy holds every write acknowledged before
   *  the call, and possibly later ones, as of one sequence number. */
  async checkpoint(target: string): Promise<{ sequence: number; files: number }> {
    await this.flush();
    await fsp.mkdir(target, { recursive: true });
    if ((await fsp.readdir(target)).length > 0) throw invalidArgument(`checkpoint target ${target} is not empty`);
    return this.compactionLock.run(async () => {
      const v = this.versions.current;
      const edit = this.versions.snapshotEdit(v);
      edit.logNumber = 0;
      let count = 0;
      for (const files of v.levels) {
        for (const f of files) {
          const src = tablePath(this.dir, f.number);
          const dst = tablePath(target, f.number);
          await fsp.link(src, dst).catch(() => fsp.copyFile(src, dst));
          count++;
        }
      }
      const manifestNumber = this.versions.nextFileNumber;
      edit.nextFileNumber = manifestNumber + 1;
      const { handle } = await createManifest(path.join(target, manifestFileName(manifestNumber)), manifestNumber, edit);
      await handle.close();
      await setCurrent(target, manifestFileName(manifestNumber));
      await syncDir(target);
      return { sequence: edit.lastSequence ?? 0, files: count };
    });
  }

  // ---------------------------------------------------------------- lifecycle

  stats(): EngineStats {
    const v = this.versions.current;
    const cache = this.tables.cacheStats();
    return {
      sequence: this.visibleSeq,
      memtableBytes: this.mem.approximateBytes,
      immutableMemtables: this.imms.length,
      levels: v.levels.map((files, level) => ({ level, files: files.length, bytes: v.levelBytes(level) })),
      writeAmplification: this.counters.userBytesWritten === 0 ? 0 : this.counters.tableBytesWritten / this.counters.userBytesWritten,
      userBytesWritten: this.counters.userBytesWritten,
      flushes: this.counters.flushes,
      compactions: this.counters.compactions,
      walSyncs: this.wal.stats.syncs,
      walRecords: this.wal.stats.records,
      bloomChecks: this.counters.bloomChecks,
      bloomNegatives: this.counters.bloomNegatives,
      blockCacheHits: cache.hits,
      blockCacheMisses: cache.misses,
      writeStalls: this.counters.writeStalls,
      writeSlowdowns: this.counters.writeSlowdowns,
      liveSnapshots: [...this.snapshots.values()].reduce((a, b) => a + b, 0),
    };
  }

  /** Level scores (>= 1 means compaction pending); for diagnostics and tests. */
  compactionScores(): number[] {
    return levelScores(this.versions.current, this.o);
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Waits for in-flight background work, syncs the WAL and releases the directory. Data in
   *  the memtable stays in the WAL and is replayed by the next open. */
  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closing';
    await this.compactionLock.run(async () => undefined);
    while (this.bgRunning) await this.bgDone.wait();
    await this.wal.close();
    await this.versions.close();
    this.tables.close();
    await this.lock.release();
    this.state = 'closed';
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new KvError('CLOSED', 'the engine is closed');
  }
}

/** A user-facing cursor; see LsmEngine.iterator(). Synchronous underneath. */
export class EngineIterator {
  private closed = false;
  private remaining: number;
  constructor(
    private readonly it: DbIterator,
    limit: number,
    private readonly onClose: () => void,
  ) {
    this.remaining = limit < 0 ? Number.POSITIVE_INFINITY : limit;
  }

  /** The next entry, or undefined at the end (the iterator then stays at the end). */
  next(): [Buffer, Buffer] | undefined {
    if (this.closed || this.remaining <= 0) return undefined;
    const e = this.it.next();
    if (e !== undefined) this.remaining--;
    return e;
  }

  /** Repositions at the first entry >= target (<= target in reverse) within the bounds. */
  seek(target: Uint8Array): void {
    if (this.closed) throw new KvError('CLOSED', 'iterator is closed');
    this.it.seek(toBuffer(target));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.it.close();
    this.onClose();
  }
}

/** Deletes .sst files that no version names: outputs of a flush or compaction that crashed
 *  before its manifest edit was synced. */
async function removeOrphanTables(dir: string, v: Version): Promise<void> {
  const live = new Set<number>();
  v.allFileNumbers(live);
  for (const name of await fsp.readdir(dir)) {
    const p = parseFileName(name);
    if ((p?.kind === 'table' && !live.has(p.number)) || p?.kind === 'temp') await fsp.rm(path.join(dir, name), { force: true });
  }
}
