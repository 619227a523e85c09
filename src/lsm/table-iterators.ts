// Adapters from SSTable cursors (opaque internal-key bytes) to the engine's InternalIterator,
// and a concatenating iterator over the sorted, non-overlapping files of one level (opening each
// file only when the cursor reaches it).
import { KIND_SEEK, Kind, TRAILER_SIZE, makeInternalKey, seqOf, kindOf, compareInternalKeys as compareIK } from './keys.js';
import type { InternalIterator } from './internal-iterator.js';
import type { FileMeta } from './version-edit.js';

/** The part of the SSTable iterator contract the engine relies on (src/sstable). */
export interface TableCursor {
  valid(): boolean;
  seekToFirst(): void;
  seekToLast(): void;
  seek(target: Buffer): void;
  seekForPrev(target: Buffer): void;
  next(): void;
  prev(): void;
  key(): Buffer;
  value(): Buffer;
  close(): void;
}

export type OpenCursor = (file: FileMeta) => TableCursor;

export class TableInternalIterator implements InternalIterator {
  constructor(private readonly c: TableCursor) {}
  valid(): boolean {
    return this.c.valid();
  }
  seekToFirst(): void {
    this.c.seekToFirst();
  }
  seekToLast(): void {
    this.c.seekToLast();
  }
  seek(key: Uint8Array, seq: number): void {
    this.c.seek(makeInternalKey(key, seq, KIND_SEEK));
  }
  seekForPrev(key: Uint8Array, seq: number): void {
    this.c.seekForPrev(makeInternalKey(key, seq, Kind.Delete));
  }
  next(): void {
    this.c.next();
  }
  prev(): void {
    this.c.prev();
  }
  userKey(): Buffer {
    const k = this.c.key();
    return k.subarray(0, k.length - TRAILER_SIZE);
  }
  seq(): number {
    return seqOf(this.c.key());
  }
  kind(): Kind {
    return kindOf(this.c.key());
  }
  value(): Buffer {
    return this.c.value();
  }
  close(): void {
    this.c.close();
  }
}

/** Iterates the files of one level >= 1 as one sorted sequence. */
export class LevelIterator implements InternalIterator {
  private index = -1;
  private cur: TableInternalIterator | null = null;

  constructor(
    private readonly files: readonly FileMeta[],
    private readonly open: OpenCursor,
  ) {}

  private openAt(i: number): TableInternalIterator | null {
    if (this.index === i && this.cur) return this.cur;
    this.cur?.close();
    this.index = i;
    const f = this.files[i];
    this.cur = f ? new TableInternalIterator(this.open(f)) : null;
    return this.cur;
  }

  valid(): boolean {
    return this.cur !== null && this.cur.valid();
  }
  seekToFirst(): void {
    this.openAt(0)?.seekToFirst();
    this.skipForward();
  }
  seekToLast(): void {
    this.openAt(this.files.length - 1)?.seekToLast();
    this.skipBackward();
  }
  seek(key: Uint8Array, seq: number): void {
    const target = makeInternalKey(key, seq, KIND_SEEK);
    this.openAt(this.findFile(target))?.seek(key, seq);
    this.skipForward();
  }
  seekForPrev(key: Uint8Array, seq: number): void {
    const target = makeInternalKey(key, seq, Kind.Delete);
    let i = this.findFile(target);
    // The file that may hold the last entry <= target starts at or before it.
    if (i >= this.files.length || compareFileStart(this.files[i]!, target) > 0) i--;
    if (i < 0) {
      this.cur?.close();
      this.cur = null;
      this.index = -1;
      return;
    }
    this.openAt(i)?.seekForPrev(key, seq);
    this.skipBackward();
  }
  next(): void {
    this.cur!.next();
    this.skipForward();
  }
  prev(): void {
    this.cur!.prev();
    this.skipBackward();
  }
  userKey(): Buffer {
    return this.cur!.userKey();
  }
  seq(): number {
    return this.cur!.seq();
  }
  kind(): Kind {
    return this.cur!.kind();
  }
  value(): Buffer {
    return this.cur!.value();
  }
  close(): void {
    this.cur?.close();
    this.cur = null;
  }

  private skipForward(): void {
    while (this.cur !== null && !this.cur.valid() && this.index + 1 < this.files.length) {
      this.openAt(this.index + 1)!.seekToFirst();
    }
  }
  private skipBackward(): void {
    while (this.cur !== null && !this.cur.valid() && this.index > 0) {
      this.openAt(this.index - 1)!.seekToLast();
    }
  }
  /** First file whose largest key >= target. */
  private findFile(target: Buffer): number {
    let lo = 0;
    let hi = this.files.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareIK(this.files[mid]!.largest, target) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function compareFileStart(f: FileMeta, target: Buffer): number {
  return compareIK(f.smallest, target);
}
