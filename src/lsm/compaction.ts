// Leveled compaction: choosing what to compact (scores per level, LevelDB style) and writing
// merged, garbage-collected output tables. Also the table-writing loop shared with memtable flush.
//
// What a compaction may drop (smallestSnapshot = oldest sequence any reader can still see):
//  - a version of a key hidden by a newer version that is itself visible to every reader
//    (newer.seq <= smallestSnapshot);
//  - a tombstone visible to every reader when no deeper level may hold the key (the "base
//    level" test), since nothing older remains for it to hide.
// Output files are cut only between user keys, so one user key never spans two files of a level.
import { yieldToLoop } from '../util/async.js';
import { Kind, makeInternalKey, compareInternalKeys } from './keys.js';
import type { InternalIterator } from './internal-iterator.js';
import type { ResolvedOptions } from './options.js';
import { NUM_LEVELS, type Version, fileOverlaps } from './version.js';
import type { FileMeta } from './version-edit.js';
import { userKeyOf } from './keys.js';

export interface TableBuilderLike {
  add(key: Buffer, value: Buffer): void;
  readonly pendingBytes: number;
  flushPending(): Promise<void>;
  readonly estimatedFileSize: number;
  finish(userProps: Record<string, number>): Promise<{ fileSize: number }>;
  abandon(): Promise<void>;
}

export interface Compaction {
  level: number;
  /** inputs[0] from `level`, inputs[1] from `level + 1`. */
  inputs: [FileMeta[], FileMeta[]];
  /** A single file with nothing to merge: moved down by editing the manifest only. */
  trivialMove: boolean;
  /** New compact pointer of `level` (largest key compacted), for round-robin picking. */
  pointer: Buffer;
}

export function maxBytesForLevel(level: number, o: ResolvedOptions): number {
  let bytes = o.l1MaxBytes;
  for (let l = 1; l < level; l++) bytes *= o.sizeRatio;
  return bytes;
}

/** Per-level pressure: >= 1 means the level needs compaction. */
export function levelScores(v: Version, o: ResolvedOptions): number[] {
  const scores = [v.levels[0]!.length / o.l0CompactionTrigger];
  for (let l = 1; l < NUM_LEVELS - 1; l++) scores.push(v.levelBytes(l) / maxBytesForLevel(l, o));
  return scores;
}

export function pickCompaction(v: Version, o: ResolvedOptions, pointers: readonly (Buffer | undefined)[]): Compaction | undefined {
  const scores = levelScores(v, o);
  let level = -1;
  let best = 1;
  scores.forEach((s, l) => {
    if (s >= best) {
      best = s;
      level = l;
    }
  });
  if (level < 0) return undefined;
  const files = v.levels[level]!;
  let seed: FileMeta;
  if (level === 0) {
    seed = files[files.length - 1]!; // oldest L0 file first
  } else {
    const ptr = pointers[level];
    seed = (ptr && files.find((f) => compareInternalKeys(f.largest, ptr) > 0)) || files[0]!;
  }
  return compactionFor(v, level, [seed]);
}

/** Builds the compaction of `files` (at `level`) into level + 1, expanding L0 inputs to every
 *  L0 file overlapping their range (L0 files overlap each other). */
export function compactionFor(v: Version, level: number, files: FileMeta[]): Compaction {
  let inputs0 = files.slice();
  let [lo, hi] = userRange(inputs0);
  if (level === 0) {
    for (;;) {
      const expanded = v.overlapping(0, lo, hi);
      if (expanded.length === inputs0.length) break;
      inputs0 = expanded;
      [lo, hi] = userRange(inputs0);
    }
  }
  const inputs1 = v.overlapping(level + 1, lo, hi);
  const trivialMove = inputs0.length === 1 && inputs1.length === 0 && (level > 0 || v.levels[0]!.length === 1);
  const pointer = inputs0.reduce((m, f) => (compareInternalKeys(f.largest, m) > 0 ? f.largest : m), inputs0[0]!.largest);
  return { level, inputs: [inputs0, inputs1], trivialMove, pointer };
}

function userRange(files: readonly FileMeta[]): [Buffer, Buffer] {
  let lo = userKeyOf(files[0]!.smallest);
  let hi = userKeyOf(files[0]!.largest);
  for (const f of files) {
    const s = userKeyOf(f.smallest);
    const l = userKeyOf(f.largest);
    if (Buffer.compare(s, lo) < 0) lo = s;
    if (Buffer.compare(l, hi) > 0) hi = l;
  }
  return [lo, hi];
}

/** True when no level deeper than `outputLevel` may hold `userKey`. */
export function isBaseLevelForKey(v: Version, outputLevel: number, userKey: Buffer): boolean {
  for (let l = outputLevel + 1; l < NUM_LEVELS; l++) {
    const f = v.fileFor(l, userKey);
    if (f && fileOverlaps(f, userKey, userKey)) return false;
  }
  return true;
}

export interface WriteTablesContext {
  newFileNumber(): number;
  createBuilder(number: number): Promise<TableBuilderLike>;
  /** Target size of one output file; Infinity for a single file. */
  targetFileBytes: number;
  /** Called every few dozen entries: resolves when the merge may go on (the engine's pacing,
   *  see LsmOptions.backgroundDutyCycle); undefined = go on at once. */
  pace?: () => Promise<void> | undefined;
}

export interface WrittenTables {
  files: FileMeta[];
  bytesWritten: number;
  entriesIn: number;
  entriesDropped: number;
}

/** Drains `it` (already positioned) into new tables, skipping entries `drop` rejects. */
export async function writeTables(
  it: InternalIterator,
  ctx: WriteTablesContext,
  drop: (userKey: Buffer, seq: number, kind: Kind) => boolean,
): Promise<WrittenTables> {
  const out: WrittenTables = { files: [], bytesWritten: 0, entriesIn: 0, entriesDropped: 0 };
  let builder: TableBuilderLike | null = null;
  let number = 0;
  let smallest: Buffer | null = null;
  let largest: Buffer | null = null;
  let lastUserKey: Buffer | null = null;
  let minSeq = Number.MAX_SAFE_INTEGER;
  let maxSeq = 0;
  let deletions = 0;

  const finishFile = async (): Promise<void> => {
    if (!builder) return;
    const { fileSize } = await builder.finish({ minSeq, maxSeq, numDeletions: deletions });
    out.files.push({ number, size: fileSize, smallest: smallest!, largest: largest! });
    out.bytesWritten += fileSize;
    builder = null;
  };

  try {
    let sinceYield = 0;
    for (; it.valid(); it.next()) {
      out.entriesIn++;
      const userKey = it.userKey();
      const seq = it.seq();
      const kind = it.kind();
      if (drop(userKey, seq, kind)) {
        out.entriesDropped++;
        continue;
      }
      const newUserKey = lastUserKey === null || !lastUserKey.equals(userKey);
      if (builder && newUserKey && builder.estimatedFileSize >= ctx.targetFileBytes) await finishFile();
      if (!builder) {
        number = ctx.newFileNumber();
        builder = await ctx.createBuilder(number);
        smallest = null;
        minSeq = Number.MAX_SAFE_INTEGER;
        maxSeq = 0;
        deletions = 0;
      }
      const ikey = makeInternalKey(userKey, seq, kind);
      builder.add(ikey, kind === Kind.Value ? it.value() : EMPTY);
      if (smallest === null) smallest = ikey;
      largest = ikey;
      if (newUserKey) lastUserKey = Buffer.from(userKey);
      if (seq < minSeq) minSeq = seq;
      if (seq > maxSeq) maxSeq = seq;
      if (kind === Kind.Delete) deletions++;
      if (builder.pendingBytes >= 1024 * 1024) await builder.flushPending();
      if ((++sinceYield & 63) === 0) {
        // the pacer's pause lets foreground requests in; without one, still yield now and then
        const wait = ctx.pace?.() ?? (sinceYield >= 4096 ? yieldToLoop() : undefined);
        if (wait) {
          sinceYield = 0;
          await wait;
        }
      }
    }
    await finishFile();
  } catch (err) {
    const b = builder as TableBuilderLike | null;
    if (b) await b.abandon().catch(() => undefined);
    throw err;
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

/** The drop rule of a compaction into `outputLevel` (see the file comment). */
export function makeDropRule(v: Version, outputLevel: number, smallestSnapshot: number): (userKey: Buffer, seq: number, kind: Kind) => boolean {
  let currentKey: Buffer | null = null;
  let lastSeqForKey = Number.MAX_SAFE_INTEGER;
  return (userKey, seq, kind) => {
    if (currentKey === null || !currentKey.equals(userKey)) {
      currentKey = Buffer.from(userKey);
      lastSeqForKey = Number.MAX_SAFE_INTEGER;
    }
    let drop = false;
    if (lastSeqForKey <= smallestSnapshot) drop = true;
    else if (kind === Kind.Delete && seq <= smallestSnapshot && isBaseLevelForKey(v, outputLevel, currentKey)) drop = true;
    lastSeqForKey = seq;
    return drop;
  };
}
