// The public contract of the storage engine (exported as `distcache/lsm`). Other code and tools
// (the abstract-level face, the benchmark, the multi-Raft store) are written against these types.

export type WalSyncPolicy = 'always' | 'batch' | 'off';

export interface LsmOptions {
  /** When a write's WAL record must be on disk before the write resolves. Default 'batch'. */
  walSync?: WalSyncPolicy;
  /** Max time a 'batch' sync waits to gather more writers, in ms. Default 2. */
  walBatchDelayMs?: number;
  /** Memtable size in bytes before it is frozen and flushed. Default 64 MiB. */
  memtableBytes?: number;
  /** Each memtable is frozen at memtableBytes less a random share of up to this fraction
   *  (0 <= jitter < 1). Replicas of a Raft group apply the same writes, so without it their
   *  engines flush at the same moment and the whole cluster pays for it at once. Default 0. */
  memtableJitter?: number;
  /** Frozen memtables allowed to wait for flush before writes stall. Default 2. */
  maxImmutableMemtables?: number;
  /** Max key length in bytes. Default 64 KiB. */
  maxKeyBytes?: number;
  /** Max value length in bytes. Default 64 MiB. */
  maxValueBytes?: number;
  /** SSTable data block size before compression. Default 4 KiB. */
  blockBytes?: number;
  /** lz4-compress blocks where it saves space. Default true. */
  compression?: boolean;
  /** Bloom filter bits per key; 0 disables. Default 10. */
  bloomBitsPerKey?: number;
  /** Block cache capacity in bytes. Default 64 MiB. */
  blockCacheBytes?: number;
  /** Open table files kept. Default 500. */
  maxOpenTables?: number;
  /** fdatasync a table being written every this many bytes, so that a flush or compaction
   *  never leaves the disk megabytes of writeback that a WAL fsync would queue behind; 0: once,
   *  when the table is finished. Default 1 MiB. */
  tableSyncBytes?: number;
  /** Target SSTable size written by flush/compaction. Default 8 MiB. */
  targetFileBytes?: number;
  /**
   * Share of the thread's wall time flushes and compactions may take while writes are not
   * waiting for them (0 < d <= 1; default 0.5). They run on the caller's thread in slices of a
   * few ms; after each slice they pause so that foreground work (reads, writes, a server's
   * request loop) gets the rest. While writes wait for them or soon will (a write stalled, L0
   * at the slowdown trigger, or no room for another frozen memtable and the live one half full)
   * they run at full speed. 1 = never pause.
   */
  backgroundDutyCycle?: number;
  /** L0 file count that triggers compaction. Default 4. */
  l0CompactionTrigger?: number;
  /** L0 file count at which writes are slowed. Default 12. */
  l0SlowdownTrigger?: number;
  /** L0 file count at which writes stop until compaction catches up. Default 20. */
  l0StopTrigger?: number;
  /** Max bytes of L1; each deeper level is sizeRatio times larger. Default 64 MiB. */
  l1MaxBytes?: number;
  /** Size ratio between adjacent levels. Default 10. */
  sizeRatio?: number;
  /** Create the directory if missing. Default true. */
  createIfMissing?: boolean;
  /** Refuse to open an existing store. Default false. */
  errorIfExists?: boolean;
  /** Told about background work as it happens (Pebble's EventListener idea): the way metrics
   *  and logs observe the engine without the engine importing them. Must not throw. */
  onEvent?: (event: EngineEvent) => void;
}

export type EngineEvent =
  | { type: 'flush-begin'; entries: number }
  /** Tables written and synced; the manifest edit is not yet written. */
  | { type: 'flush-tables-written'; files: number; bytes: number }
  | { type: 'flush-end'; files: number; bytes: number; durationMs: number }
  | { type: 'compaction-begin'; level: number; inputFiles: number; trivialMove: boolean }
  /** Output tables written and synced; the manifest edit is not yet written. */
  | { type: 'compaction-tables-written'; level: number; files: number; bytes: number }
  | { type: 'compaction-end'; level: number; outputFiles: number; bytesWritten: number; entriesDropped: number; durationMs: number }
  | { type: 'write-stall'; reason: 'memtables' | 'l0-files' }
  | { type: 'background-error'; error: unknown };

export interface WriteOptions {
  /** Resolve only after the WAL record is on disk, whatever the walSync policy. */
  sync?: boolean;
  /** Skip the WAL: the write is durable only once its memtable is flushed, and a crash before
   *  that loses it (and everything written after it without the WAL; never anything before).
   *  For callers that keep their own log and re-apply from it (the Raft store: its log holds
   *  every applied entry until the state they produced is in a flushed table or a snapshot).
   *  Not with `sync`. */
  disableWal?: boolean;
}

export type WriteOp =
  | {
      type: 'put';
      key: Uint8Array;
      value: Uint8Array;
      /** Stored before `value` (the stored value is valuePrefix ++ value): a caller that frames
       *  values with a header of its own passes header and payload without joining them first
       *  (the memtable's arena holds the one copy). */
      valuePrefix?: Uint8Array;
      /**
       * Lazy put (only in a `disableWal` write): visible at once to point reads (get/getSync),
       * but kept beside the memtable and inserted into it, with the sequence it was given here,
       * only when the memtable is frozen, so a key rewritten on every write costs one map update
       * instead of a skiplist insert each time. A later lazy put of the key replaces it; a later
       * ordinary write of the key supersedes it. Iterators, and reads at a snapshot older than
       * the latest lazy put of the key, do not see it until the freeze. For small bookkeeping
       * keys read at the latest state only (the Raft store's applied index per shard).
       */
      lazy?: boolean;
    }
  | { type: 'del'; key: Uint8Array };

/** A consistent read view at one sequence number; release() lets compaction drop what it pins. */
export interface Snapshot {
  readonly sequence: number;
  release(): void;
}

export interface ScanOptions {
  gte?: Uint8Array;
  gt?: Uint8Array;
  lte?: Uint8Array;
  lt?: Uint8Array;
  limit?: number;
  reverse?: boolean;
  snapshot?: Snapshot;
}

export interface ReadOptions {
  snapshot?: Snapshot;
}

export interface LevelStats {
  level: number;
  files: number;
  bytes: number;
}

export interface EngineStats {
  sequence: number;
  memtableBytes: number;
  immutableMemtables: number;
  levels: LevelStats[];
  /** Bytes written to SSTables (flush + compaction) divided by bytes written by users. */
  writeAmplification: number;
  userBytesWritten: number;
  flushes: number;
  compactions: number;
  walSyncs: number;
  walRecords: number;
  bloomChecks: number;
  bloomNegatives: number;
  blockCacheHits: number;
  blockCacheMisses: number;
  writeStalls: number;
  writeSlowdowns: number;
  liveSnapshots: number;
}
