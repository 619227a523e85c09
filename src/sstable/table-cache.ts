// TableCache: a bounded LRU of open TableReaders keyed by file number, opened on demand via
// pathFor(fileNumber). Evicting a reader calls TableReader.close(), which is reference counted
// against open iterators: the fd closes only after the reader's last iterator closes.
// A reader returned by get() may be evicted by a later get(); take an iterator (which pins it)
// before doing anything else that may touch the cache. Format: ./FORMAT.md.
import { invalidArgument } from '../util/errors.js';
import { TableReader, type TableReaderOptions } from './table-reader.js';

export interface TableCacheOptions {
  /** Max open readers (file descriptors, not counting readers kept open by iterators). */
  capacity: number;
  pathFor: (fileNumber: number) => string;
  /** Passed to TableReader.open (compare, filterKey, blockCache, verifyChecksums). */
  readerOptions?: TableReaderOptions;
}

export class TableCache {
  hits = 0;
  misses = 0;
  /** Readers closed to respect the capacity. */
  evictions = 0;

  private readonly capacity: number;
  private readonly pathFor: (fileNumber: number) => string;
  private readonly readerOptions: TableReaderOptions;
  /** Map iteration order is the LRU order: first = least recently used. */
  private readonly readers = new Map<number, TableReader>();

  constructor(opts: TableCacheOptions) {
    if (!(Number.isInteger(opts.capacity) && opts.capacity >= 1)) throw invalidArgument(`table cache capacity must be >= 1, got ${opts.capacity}`);
    this.capacity = opts.capacity;
    this.pathFor = opts.pathFor;
    this.readerOptions = opts.readerOptions ?? {};
  }

  get size(): number {
    return this.readers.size;
  }

  /** The open reader of a file, opening it (and evicting the LRU reader) if needed. Throws
   *  what TableReader.open throws (CorruptionError, ENOENT); a failed open is not cached. */
  get(fileNumber: number): TableReader {
    const r = this.readers.get(fileNumber);
    if (r !== undefined) {
      this.hits++;
      this.readers.delete(fileNumber);
      this.readers.set(fileNumber, r);
      return r;
    }
    this.misses++;
    const reader = TableReader.open(this.pathFor(fileNumber), fileNumber, this.readerOptions);
    this.readers.set(fileNumber, reader);
    while (this.readers.size > this.capacity) {
      const [oldest, victim] = this.readers.entries().next().value as [number, TableReader];
      this.readers.delete(oldest);
      victim.close();
      this.evictions++;
    }
    return reader;
  }

  /** True if the file's reader is cached (does not touch the LRU order). */
  has(fileNumber: number): boolean {
    return this.readers.has(fileNumber);
  }

  /** Drops a file's reader (closing it once its iterators close) and its cached blocks. Call
   *  when the file is deleted. */
  evict(fileNumber: number): void {
    const r = this.readers.get(fileNumber);
    if (r !== undefined) {
      this.readers.delete(fileNumber);
      r.close();
    }
    this.readerOptions.blockCache?.evictFile(fileNumber);
  }

  /** Closes every reader (each once its iterators close). */
  close(): void {
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
  }
}
