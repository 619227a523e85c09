// A Version: the immutable set of live SSTables per level at one point in time. Reads and
// iterators hold (ref) the version they started on, so compaction can replace files without
// pulling them from under a reader; a file is deleted only when no live version lists it.
//
// Level 0 files may overlap each other and are kept newest first. Level 1+ files are sorted by
// smallest key and do not overlap within a level.
import { compareInternalKeys, userKeyOf } from './keys.js';
import type { FileMeta, VersionEdit } from './version-edit.js';

export const NUM_LEVELS = 7;

export class Version {
  refs = 0;
  constructor(readonly levels: FileMeta[][]) {}

  static empty(): Version {
    return new Version(Array.from({ length: NUM_LEVELS }, () => []));
  }

  /** A new version with `edit` applied. */
  apply(edit: VersionEdit): Version {
    const levels = this.levels.map((files) => files.slice());
    for (const d of edit.deletedFiles) {
      const files = levels[d.level]!;
      const i = files.findIndex((f) => f.number === d.number);
      if (i >= 0) files.splice(i, 1);
    }
    for (const { level, file } of edit.newFiles) levels[level]!.push(file);
    levels[0]!.sort((a, b) => b.number - a.number);
    for (let l = 1; l < NUM_LEVELS; l++) levels[l]!.sort((a, b) => compareInternalKeys(a.smallest, b.smallest));
    return new Version(levels);
  }

  levelBytes(level: number): number {
    let n = 0;
    for (const f of this.levels[level]!) n += f.size;
    return n;
  }

  /** Files of `level` whose user-key range intersects [lo, hi] (undefined: unbounded). */
  overlapping(level: number, lo: Uint8Array | undefined, hi: Uint8Array | undefined): FileMeta[] {
    return this.levels[level]!.filter((f) => fileOverlaps(f, lo, hi));
  }

  /** For level >= 1: the one file that may contain `userKey`, by binary search. */
  fileFor(level: number, userKey: Uint8Array): FileMeta | undefined {
    const files = this.levels[level]!;
    let lo = 0;
    let hi = files.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Buffer.compare(userKeyOf(files[mid]!.largest), userKey) < 0) lo = mid + 1;
      else hi = mid;
    }
    const f = files[lo];
    if (f === undefined || Buffer.compare(userKeyOf(f.smallest), userKey) > 0) return undefined;
    return f;
  }

  allFileNumbers(into: Set<number>): void {
    for (const files of this.levels) for (const f of files) into.add(f.number);
  }
}

export function fileOverlaps(f: FileMeta, lo: Uint8Array | undefined, hi: Uint8Array | undefined): boolean {
  if (lo !== undefined && Buffer.compare(userKeyOf(f.largest), lo) < 0) return false;
  if (hi !== undefined && Buffer.compare(userKeyOf(f.smallest), hi) > 0) return false;
  return true;
}
