// Merges several InternalIterators into one ordered stream (internal-key order). Children are
// few (memtables, L0 files, one per deeper level), so the current child is found by a linear
// scan rather than a heap. Switching direction repositions every other child around the current
// key, the approach LevelDB's merger takes. Entries are unique (sequences are), so no ties.
import { compareKeySeq, type Kind } from './keys.js';
import type { InternalIterator } from './internal-iterator.js';

export class MergingIterator implements InternalIterator {
  private current: InternalIterator | null = null;
  private forward = true;

  constructor(private readonly children: InternalIterator[]) {}

  valid(): boolean {
    return this.current !== null && this.current.valid();
  }

  seekToFirst(): void {
    for (const c of this.children) c.seekToFirst();
    this.forward = true;
    this.pickSmallest();
  }

  seekToLast(): void {
    for (const c of this.children) c.seekToLast();
    this.forward = false;
    this.pickLargest();
  }

  seek(key: Uint8Array, seq: number): void {
    for (const c of this.children) c.seek(key, seq);
    this.forward = true;
    this.pickSmallest();
  }

  seekForPrev(key: Uint8Array, seq: number): void {
    for (const c of this.children) c.seekForPrev(key, seq);
    this.forward = false;
    this.pickLargest();
  }

  next(): void {
    const cur = this.current!;
    if (!this.forward) {
      // Every other child is positioned at or before the current key; move each to the first
      // entry after it.
      const k = Buffer.from(cur.userKey());
      const s = cur.seq();
      for (const c of this.children) {
        if (c === cur) continue;
        c.seek(k, s);
        if (c.valid() && compareKeySeq(c.userKey(), c.seq(), k, s) === 0) c.next();
      }
      this.forward = true;
    }
    cur.next();
    this.pickSmallest();
  }

  prev(): void {
    const cur = this.current!;
    if (this.forward) {
      const k = Buffer.from(cur.userKey());
      const s = cur.seq();
      for (const c of this.children) {
        if (c === cur) continue;
        c.seekForPrev(k, s);
        if (c.valid() && compareKeySeq(c.userKey(), c.seq(), k, s) === 0) c.prev();
      }
      this.forward = false;
    }
    cur.prev();
    this.pickLargest();
  }

  userKey(): Buffer {
    return this.current!.userKey();
  }
  seq(): number {
    return this.current!.seq();
  }
  kind(): Kind {
    return this.current!.kind();
  }
  value(): Buffer {
    return this.current!.value();
  }

  close(): void {
    for (const c of this.children) c.close();
    this.current = null;
  }

  private pickSmallest(): void {
    let best: InternalIterator | null = null;
    for (const c of this.children) {
      if (!c.valid()) continue;
      if (best === null || compareKeySeq(c.userKey(), c.seq(), best.userKey(), best.seq()) < 0) best = c;
    }
    this.current = best;
  }

  private pickLargest(): void {
    let best: InternalIterator | null = null;
    for (const c of this.children) {
      if (!c.valid()) continue;
      if (best === null || compareKeySeq(c.userKey(), c.seq(), best.userKey(), best.seq()) > 0) best = c;
    }
    this.current = best;
  }
}
