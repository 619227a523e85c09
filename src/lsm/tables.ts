// The engine's window onto its SSTables: builders configured with the engine's key order and
// options, a bounded cache of open readers, and a shared block cache. A cursor pins its reader,
// so an evicted table's file descriptor closes only after its last cursor is closed.
import { BlockCache, TableBuilder, TableCache, type TableReader } from '../sstable/index.js';
import { compareInternalKeys, userKeyOf } from './keys.js';
import { tablePath } from './filenames.js';
import type { ResolvedOptions } from './options.js';
import type { TableBuilderLike } from './compaction.js';
import type { TableCursor } from './table-iterators.js';

export class Tables {
  private readonly blockCache: BlockCache;
  private readonly cache: TableCache;

  constructor(
    private readonly dir: string,
    private readonly o: ResolvedOptions,
  ) {
    this.blockCache = new BlockCache(o.blockCacheBytes);
    this.cache = new TableCache({
      capacity: o.maxOpenTables,
      pathFor: (n: number) => tablePath(dir, n),
      readerOptions: { compare: compareInternalKeys, filterKey: userKeyOf, blockCache: this.blockCache },
    });
  }

  createBuilder(number: number): Promise<TableBuilderLike> {
    return TableBuilder.create(tablePath(this.dir, number), {
      blockSize: this.o.blockBytes,
      restartInterval: 16,
      compression: this.o.compression,
      bloomBitsPerKey: this.o.bloomBitsPerKey,
      compare: compareInternalKeys,
      filterKey: userKeyOf,
      syncEveryBytes: this.o.tableSyncBytes,
    });
  }

  /** The reader of table `number`. Valid until the next call into this object: take a cursor
   *  (which pins the reader) before anything else may evict it. */
  reader(number: number): TableReader {
    return this.cache.get(number);
  }

  /** A cursor over table `number`; it keeps the file open until closed. */
  /** `scan`: a compaction input read once, in order (read-ahead, block cache untouched). */
  cursor(number: number, scan = false): TableCursor {
    return this.cache.get(number).iterator(scan ? { scan: true } : undefined);
  }

  /** Forgets a deleted table: its reader (once its cursors close) and its cached blocks. */
  evict(number: number): void {
    this.cache.evict(number);
  }

  cacheStats(): { hits: number; misses: number } {
    return { hits: this.blockCache.hits, misses: this.blockCache.misses };
  }

  close(): void {
    this.cache.close();
  }
}
