// Merges several InternalIterators into one ordered stream (internal-key order). Children are
// few (memtables, L0 files, one per deeper level), so the current child is found by a linear
// scan rather than a heap. Switching direction repositions every other child around the current
// key, the approach LevelDB's merger takes. Entries are unique (sequences are), so no ties.
//
// Each child's current user key and sequence are cached, and re-read only from a child that
// moved: a step of a compaction over N inputs then costs one key view instead of 2N (a table
// child's userKey() is a fresh subarray; they were most of a compacting node's JS allocation).
// A cached key is a view into the child's current block, valid until that child moves, and
// every move goes through this class, which re-reads the key right after it.
import { compareKeySeq, type Kind } from './keys.js';
import type { InternalIterator } from './internal-iterator.js';

export class MergingIterator implements InternalIterator {
  /** index of the child at the merged position, -1 when none is valid */
  private current = -1;
  private forward = true;
  /** per child: its current user key (null when it is not valid) and sequence */
  private readonly keys: (Buffer | null)[];
  private readonly seqs: number[];

  constructor(private readonly children: InternalIterator[]) {
    this.keys = children.map(() => null);
    this.seqs = children.map(() => 0);
  }

  valid(): boolean {
    return this.current >= 0;
  }

  seekToFirst(): void {
    for (const c of this.children) c.seekToFirst();
    this.forward = true;
    this.refreshAll();
    this.pick(1);
  }

  seekToLast(): void {
    for (const c of this.children) c.seekToLast();
    this.forward = false;
    this.refreshAll();
    this.pick(-1);
  }

  seek(key: Uint8Array, seq: number): void {
    for (const c of this.children) c.seek(key, seq);
    this.forward = true;
    this.refreshAll();
    this.pick(1);
  }

  seekForPrev(key: Uint8Array, seq: number): void {
    for (const c of this.children) c.seekForPrev(key, seq);
    this.forward = false;
    this.refreshAll();
    this.pick(-1);
  }

  next(): void {
    const i = this.current;
    const cur = this.children[i]!;
    if (!this.forward) {
      // Every other child is positioned at or before the current key; move each to the first
      // entry after it.
      const k = Buffer.from(this.keys[i]!);
      const s = this.seqs[i]!;
      for (const c of this.children) {
        if (c === cur) continue;
        c.seek(k, s);
        if (c.valid() && compareKeySeq(c.userKey(), c.seq(), k, s) === 0) c.next();
      }
      this.forward = true;
      this.refreshAll();
    }
    cur.next();
    this.refresh(i);
    this.pick(1);
  }

  prev(): void {
    const i = this.current;
    const cur = this.children[i]!;
    if (this.forward) {
      const k = Buffer.from(this.keys[i]!);
      const s = this.seqs[i]!;
      for (const c of this.children) {
        if (c === cur) continue;
        c.seekForPrev(k, s);
        if (c.valid() && compareKeySeq(c.userKey(), c.seq(), k, s) === 0) c.prev();
      }
      this.forward = false;
      this.refreshAll();
    }
    cur.prev();
    this.refresh(i);
    this.pick(-1);
  }

  userKey(): Buffer {
    return this.keys[this.current]!;
  }
  seq(): number {
    return this.seqs[this.current]!;
  }
  kind(): Kind {
    return this.children[this.current]!.kind();
  }
  value(): Buffer {
    return this.children[this.current]!.value();
  }

  close(): void {
    for (const c of this.children) c.close();
    this.current = -1;
    this.keys.fill(null);
  }

  private refresh(i: number): void {
    const c = this.children[i]!;
    if (c.valid()) {
      this.keys[i] = c.userKey();
      this.seqs[i] = c.seq();
    } else this.keys[i] = null;
  }

  private refreshAll(): void {
    for (let i = 0; i < this.children.length; i++) this.refresh(i);
  }

  /** The valid child first in direction `dir` (1: smallest, -1: largest). */
  private pick(dir: 1 | -1): void {
    const keys = this.keys;
    const seqs = this.seqs;
    let best = -1;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (k === null || k === undefined) continue;
      if (best < 0 || compareKeySeq(k, seqs[i]!, keys[best]!, seqs[best]!) * dir < 0) best = i;
    }
    this.current = best;
  }
}
