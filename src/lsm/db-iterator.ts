// The user's view of the engine's entries: walks an internal iterator and yields, for each user
// key, the newest version visible at the snapshot sequence, hiding tombstones and respecting
// gte/gt/lte/lt bounds. Forward and reverse. Keys and values it returns are fresh copies, owned
// by the caller.
import { Kind, MAX_SEQUENCE } from './keys.js';
import type { InternalIterator } from './internal-iterator.js';

export interface Bounds {
  gte?: Uint8Array | undefined;
  gt?: Uint8Array | undefined;
  lte?: Uint8Array | undefined;
  lt?: Uint8Array | undefined;
}

export class DbIterator {
  private done = false;
  private started = false;

  constructor(
    private readonly it: InternalIterator,
    private readonly snapshotSeq: number,
    private readonly bounds: Bounds,
    private readonly reverse: boolean,
  ) {}

  /** The next visible entry in iteration order, or undefined at the end. */
  next(): [Buffer, Buffer] | undefined {
    if (this.done) return undefined;
    const entry = this.reverse ? this.stepBackward() : this.stepForward();
    if (entry === undefined) this.done = true;
    return entry;
  }

  /** Repositions at the first visible entry >= target (<= target when reverse), within bounds. */
  seek(target: Buffer): void {
    this.done = false;
    this.started = true;
    if (!this.reverse) {
      const { gt, gte } = this.bounds;
      if (gt !== undefined && Buffer.compare(target, gt) <= 0) {
        this.it.seek(gt, 0);
        if (this.it.valid() && this.it.userKey().equals(gt)) this.it.next();
      } else if (gte !== undefined && Buffer.compare(target, gte) < 0) this.it.seek(gte, MAX_SEQUENCE);
      else this.it.seek(target, MAX_SEQUENCE);
    } else {
      const { lt, lte } = this.bounds;
      if (lt !== undefined && Buffer.compare(target, lt) >= 0) {
        this.it.seekForPrev(lt, MAX_SEQUENCE);
        while (this.it.valid() && this.it.userKey().equals(lt)) this.it.prev();
      } else if (lte !== undefined && Buffer.compare(target, lte) > 0) this.it.seekForPrev(lte, 0);
      else this.it.seekForPrev(target, 0);
    }
  }

  close(): void {
    this.done = true;
    this.it.close();
  }

  private belowUpper(key: Buffer): boolean {
    const { lt, lte } = this.bounds;
    if (lt !== undefined && Buffer.compare(key, lt) >= 0) return false;
    if (lte !== undefined && Buffer.compare(key, lte) > 0) return false;
    return true;
  }

  private aboveLower(key: Buffer): boolean {
    const { gt, gte } = this.bounds;
    if (gt !== undefined && Buffer.compare(key, gt) <= 0) return false;
    if (gte !== undefined && Buffer.compare(key, gte) < 0) return false;
    return true;
  }

  private stepForward(): [Buffer, Buffer] | undefined {
    const it = this.it;
    if (!this.started) {
      this.started = true;
      const { gt, gte } = this.bounds;
      if (gte !== undefined) it.seek(gte, MAX_SEQUENCE);
      else if (gt !== undefined) {
        it.seek(gt, 0); // (gt, 0) is the last position of key gt
        if (it.valid() && it.userKey().equals(gt)) it.next();
      } else it.seekToFirst();
    }
    while (it.valid()) {
      if (it.seq() > this.snapshotSeq) {
        it.next();
        continue;
      }
      const key = it.userKey();
      if (!this.belowUpper(key)) return undefined;
      const kind = it.kind();
      const keyCopy = Buffer.from(key);
      const value = kind === Kind.Value ? Buffer.from(it.value()) : undefined;
      // Skip the older versions of this key.
      it.next();
      while (it.valid() && it.userKey().equals(keyCopy)) it.next();
      if (value !== undefined && this.aboveLower(keyCopy)) return [keyCopy, value];
    }
    return undefined;
  }

  private stepBackward(): [Buffer, Buffer] | undefined {
    const it = this.it;
    if (!this.started) {
      this.started = true;
      const { lt, lte } = this.bounds;
      if (lte !== undefined) it.seekForPrev(lte, 0);
      else if (lt !== undefined) it.seekForPrev(lt, MAX_SEQUENCE);
      else it.seekToLast();
      // seekForPrev(lt, MAX) may land on versions of `lt` itself only if seq == MAX: skip them.
      while (lt !== undefined && it.valid() && it.userKey().equals(lt)) it.prev();
    }
    // Walking backward, the versions of one user key come oldest first; the last visible one
    // seen before the key changes is the newest visible.
    while (it.valid()) {
      const keyCopy = Buffer.from(it.userKey());
      if (!this.aboveLower(keyCopy)) return undefined;
      let kind: Kind | undefined;
      let value: Buffer | undefined;
      while (it.valid() && it.userKey().equals(keyCopy)) {
        if (it.seq() <= this.snapshotSeq) {
          kind = it.kind();
          // Values alias immutable memtable entries or cached blocks, so holding the view while
          // stepping is safe; only the one returned is copied.
          value = kind === Kind.Value ? it.value() : undefined;
        }
        it.prev();
      }
      if (kind === Kind.Value && value !== undefined && this.belowUpper(keyCopy)) return [keyCopy, Buffer.from(value)];
    }
    return undefined;
  }
}
