// Byte storage for a memtable's keys and values: copies packed into 1 MiB chunks, and a pool
// through which a released memtable's chunks hold the next memtables' bytes.
//
// Why: V8 starts a full (mark-compact) GC whenever ArrayBuffer memory has grown 64 MB since the
// last one. A memtable lives for seconds, so the ArrayBuffers holding its data are promoted and
// counted; with a buffer per write batch, every 64 MB of writes forced a full GC of the whole
// heap on every node (bench/RESULTS.md, session 14). Recycled chunks are allocated once.
//
// Contract: a view handed out by an Arena is valid until that arena's free(). The memtable
// frees its arena only when nothing can read it any more (Memtable.release: the engine dropped
// it and every iterator over it is closed); everything else copies bytes out (engine reads).

export const ARENA_CHUNK_BYTES = 1024 * 1024;
/** Larger items get a buffer of their own, so one big value wastes no chunk tail. */
const MAX_PACKED_BYTES = ARENA_CHUNK_BYTES / 4;

/** Spare chunks shared by the memtables of one engine. */
export class ArenaPool {
  private readonly spare: Buffer[] = [];

  /** @param maxSpareBytes chunks beyond this go to the GC when released */
  constructor(private readonly maxSpareBytes: number) {}

  get spareBytes(): number {
    return this.spare.length * ARENA_CHUNK_BYTES;
  }

  take(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(ARENA_CHUNK_BYTES);
  }

  give(chunk: Buffer): void {
    if ((this.spare.length + 1) * ARENA_CHUNK_BYTES <= this.maxSpareBytes) this.spare.push(chunk);
  }
}

export class Arena {
  private readonly chunks: Buffer[] = [];
  private current: Buffer | undefined;
  private used = 0;
  private freed = false;

  /** Without a pool, chunks are never reused (they go to the GC with the arena). */
  constructor(private readonly pool?: ArenaPool) {}

  /** A copy of `a` followed by `b` (b may be omitted) in one view. */
  copy(a: Uint8Array, b?: Uint8Array): Buffer {
    const len = a.length + (b?.length ?? 0);
    const out = this.alloc(len);
    out.set(a, 0);
    if (b !== undefined) out.set(b, a.length);
    return out;
  }

  private alloc(len: number): Buffer {
    if (this.freed) throw new Error('arena used after free');
    if (len > MAX_PACKED_BYTES) return Buffer.allocUnsafeSlow(len);
    if (this.current === undefined || this.used + len > this.current.length) {
      this.current = this.pool?.take() ?? Buffer.allocUnsafeSlow(ARENA_CHUNK_BYTES);
      this.chunks.push(this.current);
      this.used = 0;
    }
    const out = this.current.subarray(this.used, this.used + len);
    this.used += len;
    return out;
  }

  /** Hands the chunks back to the pool: every view from this arena is invalid from now on. */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    if (this.pool !== undefined) for (const c of this.chunks) this.pool.give(c);
    this.chunks.length = 0;
    this.current = undefined;
  }
}
