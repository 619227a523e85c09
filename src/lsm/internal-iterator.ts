// The iterator contract inside the engine: a synchronous cursor over entries ordered as internal
// keys (user key ascending, sequence descending). Memtables, SSTables and the merging iterator
// implement it; the user-facing DbIterator sits on top and applies snapshots and tombstones.
//
// REQUIRES valid() before userKey()/seq()/kind()/value(). Returned Buffers stay valid only until
// the cursor moves: copy what you keep. Positioning never throws for "not found"; it leaves the
// cursor invalid. A CorruptionError from a damaged block is thrown by the positioning call.
import type { Kind } from './keys.js';

export interface InternalIterator {
  valid(): boolean;
  seekToFirst(): void;
  seekToLast(): void;
  /** First entry >= (key, seq). */
  seek(key: Uint8Array, seq: number): void;
  /** Last entry <= (key, seq). */
  seekForPrev(key: Uint8Array, seq: number): void;
  next(): void;
  prev(): void;
  userKey(): Buffer;
  seq(): number;
  kind(): Kind;
  value(): Buffer;
  close(): void;
}
