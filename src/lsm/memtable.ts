// The in-memory write buffer: a skiplist plus byte accounting, and a hash index from each user
// key to its newest node so point reads skip the skiplist search (a seek over a large skiplist
// is a chain of cache misses; a Map lookup is one). Versions of a key are adjacent in the list,
// newest first, so an older snapshot walks forward from the newest node. A memtable is mutable until the
// engine freezes it (switch to a new one), then read-only until its flush to an SSTable is
// recorded in the manifest. It also remembers which WAL segments hold its writes.
// Keys and values are copied into the memtable's arena (./arena.ts), whose chunks are reused by
// later memtables once this one is released: by the engine and by every iterator over it.
import { Kind } from './keys.js';
import { SkipList, sortKey, type SkipNode } from './skiplist.js';
import type { InternalIterator } from './internal-iterator.js';
import { Arena, type ArenaPool } from './arena.js';

const EMPTY: Buffer = Buffer.alloc(0);

/** Per-entry overhead estimate: node object, next array, Buffers' headers, sort-key string. */
const NODE_OVERHEAD = 96;
/** Per distinct key: the hash index entry. */
const INDEX_OVERHEAD = 48;

export type LookupResult = { kind: Kind.Value; value: Buffer } | { kind: Kind.Delete } | undefined;

export class Memtable {
  private readonly list = new SkipList();
  private readonly arena: Arena;
  /** The engine's reference plus one per open iterator; the arena is freed at zero. */
  private refs = 1;

  constructor(pool?: ArenaPool) {
    this.arena = new Arena(pool);
  }

  /** An iterator (or anyone reading nodes' bytes in place) holds the memtable's bytes. */
  retain(): void {
    if (this.refs === 0) throw new Error('memtable retained after release');
    this.refs++;
  }

  /** Drops a reference; at the last one the arena's chunks go back to the pool, so no view of
   *  this memtable's keys or values may be used after it. */
  release(): void {
    if (this.refs === 0) throw new Error('memtable released twice');
    if (--this.refs === 0) this.arena.free();
  }

  /** sort key → newest node of that user key. */
  private readonly newest = new Map<string, SkipNode>();
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

  /** Copies key and (valuePrefix ++ value) into the arena; the caller keeps its buffers. */
  add(seq: number, kind: Kind, key: Uint8Array, value: Uint8Array, valuePrefix?: Uint8Array): void {
    const k = this.arena.copy(key);
    let v: Buffer = EMPTY;
    if (valuePrefix !== undefined) v = this.arena.copy(valuePrefix, value);
    else if (value.length > 0) v = this.arena.copy(value);
    this.bytes += 2 * k.length + v.length + NODE_OVERHEAD;
    const skey = sortKey(k);
    const prev = this.newest.get(skey);
    if (prev === undefined) {
      this.newest.set(skey, this.list.insert(k, seq, kind, v, skey));
      this.bytes += INDEX_OVERHEAD;
    } else if (prev.seq < seq) {
      // an overwrite: the new version goes right in front of the newest one
      this.newest.set(skey, this.list.insertBefore(prev, k, seq, kind, v));
    } else {
      this.list.insert(k, seq, kind, v, skey);
    }
    if (seq > this.maxSeq) this.maxSeq = seq;
  }

  /** The newest entry for `key` with sequence <= seq. */
  get(key: Uint8Array, seq: number): LookupResult {
    const skey = sortKey(key);
    let n = this.newest.get(skey) ?? null;
    while (n !== null && n.seq > seq) {
      n = n.next[0]!;
      if (n !== null && n.skey !== skey) return undefined;
    }
    if (n === null) return undefined;
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

