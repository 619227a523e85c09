// BlockCache: an LRU of decoded blocks (decompressed, checksum-verified, restart array parsed),
// bounded in bytes and shared by all TableReaders. Keyed by (fileNumber, block offset).
// Blocks are immutable and garbage-collected, so an evicted block stays usable by iterators
// that still hold it; eviction only drops the cache's reference. Format: ./FORMAT.md.
import type { Block } from './block.js';

interface Node {
  fileNumber: number;
  offset: number;
  block: Block;
  charge: number;
  prev: Node | null;
  next: Node | null;
}

export class BlockCache {
  /** Lookups that found the block. */
  hits = 0;
  /** Lookups that did not. */
  misses = 0;
  /** Blocks dropped to respect the byte bound. */
  evictions = 0;

  private usage = 0;
  private count = 0;
  private readonly files = new Map<number, Map<number, Node>>();
  // Doubly-linked LRU list: head = most recently used.
  private head: Node | null = null;
  private tail: Node | null = null;

  constructor(readonly capacityBytes: number) {
    if (!(capacityBytes >= 0)) throw new RangeError(`block cache capacity must be >= 0, got ${capacityBytes}`);
  }

  /** Bytes currently charged (sum of Block.charge). Never exceeds capacityBytes. */
  get usedBytes(): number {
    return this.usage;
  }

  get size(): number {
    return this.count;
  }

  get(fileNumber: number, offset: number): Block | undefined {
    const node = this.files.get(fileNumber)?.get(offset);
    if (node === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (node !== this.head) {
      this.unlink(node);
      this.pushFront(node);
    }
    return node.block;
  }

  /** Inserts (or replaces) a block. A block larger than the whole cache is not kept. */
  insert(fileNumber: number, offset: number, block: Block): void {
    const charge = block.charge;
    let m = this.files.get(fileNumber);
    const old = m?.get(offset);
    if (old) this.remove(old);
    if (charge > this.capacityBytes) return;
    if (!m) {
      m = new Map();
      this.files.set(fileNumber, m);
    }
    const node: Node = { fileNumber, offset, block, charge, prev: null, next: null };
    m.set(offset, node);
    this.pushFront(node);
    this.usage += charge;
    this.count++;
    while (this.usage > this.capacityBytes && this.tail) {
      this.remove(this.tail);
      this.evictions++;
    }
  }

  /** Drops every block of a file (call when the file is deleted). */
  evictFile(fileNumber: number): void {
    const m = this.files.get(fileNumber);
    if (!m) return;
    for (const node of [...m.values()]) this.remove(node);
  }

  clear(): void {
    this.files.clear();
    this.head = this.tail = null;
    this.usage = 0;
    this.count = 0;
  }

  private remove(node: Node): void {
    this.unlink(node);
    const m = this.files.get(node.fileNumber);
    if (m) {
      m.delete(node.offset);
      if (m.size === 0) this.files.delete(node.fileNumber);
    }
    this.usage -= node.charge;
    this.count--;
  }

  private unlink(node: Node): void {
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = null;
  }

  private pushFront(node: Node): void {
    node.next = this.head;
    node.prev = null;
    if (this.head) this.head.prev = node;
    this.head = node;
    if (!this.tail) this.tail = node;
  }
}
