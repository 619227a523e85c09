// The one small interface the engine benchmark drives, with adapters for distcache (LsmEngine
// directly, not through abstract-level), classic-level (LevelDB) and lmdb (lmdb-js). Each
// adapter uses its store's natural fast path for each operation; run.ts times them alike.
//
// Durability. `durable: false` (all workloads but the sync run) means: an acknowledged write
// survives a process crash but not an OS crash or power loss. distcache: walSync 'off' (the
// WAL record is handed to the OS with write(2) before the put resolves, no fsync);
// classic-level: its default {sync: false}; lmdb: noSync (commits go to the memory map, no
// msync/fsync). `durable: true` (the sync run) means an acknowledged write is on disk:
// distcache walSync 'always' (group commit: one fdatasync covers every writer waiting at that
// moment); classic-level put with {sync: true}; lmdb's durable commit with overlappingSync off,
// so the put promise resolves only after its transaction is flushed (lmdb's default
// overlappingSync resolves at commit and flushes afterwards).
import { ClassicLevel } from 'classic-level';

/** The part of lmdb-js's RootDatabase the bench uses. lmdb is not a dependency of the project
 *  (its optional native sub-packages break `npm ci` lockfile checks): `npm run bench:engine`
 *  installs it without saving, and it is loaded dynamically here. */
interface LmdbDb {
  put(key: Buffer, value: Buffer): Promise<boolean>;
  remove(key: Buffer): Promise<boolean>;
  batch(fn: () => void): Promise<unknown>;
  get(key: Buffer): Buffer | undefined;
  getRange(o: { start: Buffer; limit: number }): Iterable<unknown>;
  close(): Promise<void>;
}

async function openLmdb(options: Record<string, unknown>): Promise<LmdbDb> {
  const moduleName = 'lmdb';
  const mod = (await import(moduleName)) as { open: (o: Record<string, unknown>) => LmdbDb };
  return mod.open(options);
}
import { LsmEngine } from '../../src/lsm/index.js';
import type { EngineStats, LsmOptions, WriteOp } from '../../src/lsm/types.js';

export type StoreName = 'distcache' | 'classic-level' | 'lmdb';
export const STORE_NAMES: readonly StoreName[] = ['distcache', 'classic-level', 'lmdb'];

export type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

export interface BenchStore {
  readonly name: StoreName;
  put(key: Buffer, value: Buffer): Promise<void>;
  del(key: Buffer): Promise<void>;
  /** Atomic multi-op write. */
  batch(ops: BatchOp[]): Promise<void>;
  get(key: Buffer): Promise<Buffer | undefined>;
  /** Point-reads every key; resolves to how many were found. */
  getMany(keys: Buffer[]): Promise<number>;
  /** Positions at the first key >= `key` and reads up to `count` entries (the one found by the
   *  seek plus count-1 nexts); resolves to the number read. */
  seek(key: Buffer, count: number): Promise<number>;
  /** distcache only: engine counters. */
  stats?(): EngineStats;
  close(): Promise<void>;
}

export interface OpenOptions {
  durable: boolean;
  /** Extra LsmEngine options for distcache (run.ts --distcache-options JSON). */
  distcache?: LsmOptions;
}

export async function openStore(name: StoreName, dir: string, o: OpenOptions): Promise<BenchStore> {
  switch (name) {
    case 'distcache':
      return DistcacheStore.open(dir, o);
    case 'classic-level':
      return ClassicStore.open(dir, o);
    case 'lmdb':
      return LmdbStore.open(dir, o);
  }
}

class DistcacheStore implements BenchStore {
  readonly name = 'distcache';
  private constructor(private readonly e: LsmEngine) {}

  static async open(dir: string, o: OpenOptions): Promise<DistcacheStore> {
    return new DistcacheStore(await LsmEngine.open(dir, { ...o.distcache, walSync: o.durable ? 'always' : 'off' }));
  }

  put(key: Buffer, value: Buffer): Promise<void> {
    return this.e.put(key, value);
  }

  del(key: Buffer): Promise<void> {
    return this.e.delete(key);
  }

  batch(ops: BatchOp[]): Promise<void> {
    return this.e.write(ops as WriteOp[]);
  }

  get(key: Buffer): Promise<Buffer | undefined> {
    return this.e.get(key);
  }

  async getMany(keys: Buffer[]): Promise<number> {
    let found = 0;
    for (const k of keys) if (this.e.getSync(k) !== undefined) found++;
    return found;
  }

  async seek(key: Buffer, count: number): Promise<number> {
    const it = this.e.iterator({ gte: key });
    try {
      let n = 0;
      while (n < count && it.next() !== undefined) n++;
      return n;
    } finally {
      it.close();
    }
  }

  stats(): EngineStats {
    return this.e.stats();
  }

  close(): Promise<void> {
    return this.e.close();
  }
}

class ClassicStore implements BenchStore {
  readonly name = 'classic-level';
  private readonly writeOptions: { sync: boolean };
  private constructor(
    private readonly db: ClassicLevel<Buffer, Buffer>,
    durable: boolean,
  ) {
    this.writeOptions = { sync: durable };
  }

  static async open(dir: string, o: OpenOptions): Promise<ClassicStore> {
    const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    return new ClassicStore(db, o.durable);
  }

  put(key: Buffer, value: Buffer): Promise<void> {
    return this.db.put(key, value, this.writeOptions);
  }

  del(key: Buffer): Promise<void> {
    return this.db.del(key, this.writeOptions);
  }

  batch(ops: BatchOp[]): Promise<void> {
    return this.db.batch(ops, this.writeOptions);
  }

  get(key: Buffer): Promise<Buffer | undefined> {
    return this.db.get(key);
  }

  async getMany(keys: Buffer[]): Promise<number> {
    let found = 0;
    for (const v of await this.db.getMany(keys)) if (v !== undefined) found++;
    return found;
  }

  async seek(key: Buffer, count: number): Promise<number> {
    // all() closes the iterator; one native round trip.
    return (await this.db.iterator({ gte: key, limit: count }).all()).length;
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

class LmdbStore implements BenchStore {
  readonly name = 'lmdb';
  private constructor(private readonly db: LmdbDb) {}

  static async open(dir: string, o: OpenOptions): Promise<LmdbStore> {
    const db = await openLmdb({
      path: dir,
      keyEncoding: 'binary',
      encoding: 'binary',
      compression: false,
      ...(o.durable ? { overlappingSync: false } : { noSync: true }),
    });
    return new LmdbStore(db);
  }

  async put(key: Buffer, value: Buffer): Promise<void> {
    await this.db.put(key, value);
  }

  async del(key: Buffer): Promise<void> {
    await this.db.remove(key);
  }

  async batch(ops: BatchOp[]): Promise<void> {
    // One write transaction for the whole batch.
    await this.db.batch(() => {
      for (const op of ops) {
        if (op.type === 'put') void this.db.put(op.key, op.value);
        else void this.db.remove(op.key);
      }
    });
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    return this.db.get(key);
  }

  async getMany(keys: Buffer[]): Promise<number> {
    let found = 0;
    for (const k of keys) if (this.db.get(k) !== undefined) found++;
    return found;
  }

  async seek(key: Buffer, count: number): Promise<number> {
    let n = 0;
    for (const _ of this.db.getRange({ start: key, limit: count })) n++;
    return n;
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
