// The in-memory write buffer: a skiplist plus byte accounting. A memtable is mutable until the
// engine freezes it (switch to a new one), then read-only until its flush to an SSTable is
// recorded in the manifest. It also remembers which WAL segments hold its writes.
import { Kind } from './keys.js';
import { SkipList, type SkipNode } from './skiplist.js';
import type { InternalIterator } from './internal-iterator.js';

/** Per-entry overhead estimate: node object, next array, Buffers' headers. */
const NODE_OVERHEAD = 96;

export type LookupResult = { kind: Kind.Value; value: Buffer } | { kind: Kind.Delete } | undefined;

export class Memtable {
  private readonly list = new SkipList();
  private bytes = 0;
  /** Highest sequence inserted (0 when empty). */
  maxSeq = 0;
  /** Lowest WAL segment holding this memtable's writes; set by the engine. */
  firstWalSegment = 0;

  get approximateBytes(): number {
    return this.bytes;
  }

  get entries(): number {
    return this.list.size;
  }

  /** Takes ownership of key and value (pass copies). */
  add(seq: number, kind: Kind, key: Buffer, value: Buffer): void {
    this.list.insert(key, seq, kind, value);
    this.bytes += key.length + value.length + NODE_OVERHEAD;
    if (seq > this.maxSeq) this.maxSeq = seq;
  }

  /** The newest entry for `key` with sequence <= seq. */
  get(key: Uint8Array, seq: number): LookupResult {
    const n = this.list.seek(key, seq);
    if (n === null || !n.key.equals(key)) return undefined;
    return n.kind === Kind.Value ? { kind: Kind.Value, value: n.value } : { kind: Kind.Delete };
  }

  iterator(): InternalIterator {
    return new MemtableIterator(this.list);
  }
}

class MemtableIterator implements InternalIterator {
  private node: SkipNode | null = null;
  constructor(private readonly list: SkipList) {}

  valid(): boolean {
    return this.node !== null;
  }
  seekToFirst(): void {
    this.node = this.list.first();
  }
  seekToLast(): void {
    this.node = this.list.last();
  }
  seek(key: Uint8Array, seq: number): void {
    this.node = this.list.seek(key, seq);
  }
  seekForPrev(key: Uint8Array, seq: number): void {
    // Last entry <= (key, seq) is the entry before the first entry > (key, seq); entries are
    // unique, so the first > (key, seq) is the first >= (key, seq - 1) in internal order.
    const n = seq > 0 ? this.list.seek(key, seq - 1) : nextUserKey(this.list, key);
    this.node = n === null ? this.list.last() : this.list.seekBefore(n.skey, n.seq);
  }
  next(): void {
    this.node = this.node!.next[0]!;
  }
  prev(): void {
    const n = this.node!;
    this.node = this.list.seekBefore(n.skey, n.seq);
  }
  userKey(): Buffer {
    return this.node!.key;
  }
  seq(): number {
    return this.node!.seq;
  }
  kind(): Kind {
    return this.node!.kind;
  }
  value(): Buffer {
    return this.node!.value;
  }
  close(): void {
    this.node = null;
  }
}

/** First node whose user key is > key (seq 0 is the last position of a user key). */
function nextUserKey(list: SkipList, key: Uint8Array): SkipNode | null {
  let n = list.seek(key, 0);
  while (n !== null && n.key.equals(key)) n = n.next[0]!;
  return n;
}

