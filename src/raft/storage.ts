// Stable log storage as seen by the Raft core, and MemoryStorage, its in-memory implementation.
//
// Contract (every implementation):
//  - The log holds entries [firstIndex(), lastIndex()]; the entry at firstIndex()-1 is the last
//    compacted one (or the snapshot point) and only its term is known: term(firstIndex()-1) works.
//  - entries(lo, hi, maxBytes) returns [lo, hi), at least one entry if lo < hi, then as many as
//    fit in maxBytes. Throws RaftError COMPACTED if lo < firstIndex(), UNAVAILABLE if hi > lastIndex()+1.
//  - term(i) throws COMPACTED below firstIndex()-1 and UNAVAILABLE above lastIndex().
//  - snapshot() returns the latest snapshot; may throw SNAPSHOT_TEMPORARILY_UNAVAILABLE.
//  - Returned arrays are fresh; the Entry objects and their data are shared and must not be mutated.
// The core only reads storage. The application writes it from Ready (append, setHardState,
// applySnapshot) and compacts it (createSnapshot + compact) behind what it has applied.
import { encodeConfChange } from './confchange.js';
import { RaftError, invariant } from './errors.js';
import {
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
  EMPTY_HARD_STATE,
  ConfChangeType,
  EntryType,
  NONE,
  emptyConfState,
  emptySnapshot,
  entrySize,
} from './types.js';

export interface InitialState {
  hardState: HardState;
  confState: ConfState;
}

export interface Storage {
  initialState(): InitialState;
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

/** Keeps entries while their total size stays within maxBytes (always at least one). */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySize(ents[0]!);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySize(ents[n]!);
    if (size > maxBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}

export class MemoryStorage implements Storage {
  private hard: HardState = { ...EMPTY_HARD_STATE };
  private snap: Snapshot = emptySnapshot();
  /** ents[0] is a dummy holding the index/term of the snapshot point. */
  private ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }];

  /** A fresh storage whose initial membership is `voters` (bootstrap of a new group). */
  static bootstrap(voters: number[], learners: number[] = []): MemoryStorage {
    const s = new MemoryStorage();
    s.snap = { metadata: { index: 0, term: 0, confState: { ...emptyConfState(), voters: [...voters], learners: [...learners] } }, data: new Uint8Array(0) };
    return s;
  }

  /**
   * A fresh storage for a founding member, the way a real node bootstraps: the log starts with a
   * committed ConfChange (index 1, term 1) adding the initial members, so a member that joins
   * later and replays the log from index 1 rebuilds the same configuration.
   */
  static bootstrapWithLog(voters: number[], learners: number[] = []): MemoryStorage {
    const s = MemoryStorage.bootstrap(voters, learners);
    const changes = [
      ...voters.map((nodeId) => ({ type: ConfChangeType.AddVoter, nodeId })),
      ...learners.map((nodeId) => ({ type: ConfChangeType.AddLearner, nodeId })),
    ];
    s.append([{ term: 1, index: 1, type: EntryType.ConfChange, data: encodeConfChange({ changes }) }]);
    s.setHardState({ term: 1, vote: NONE, commit: 1 });
    return s;
  }

  initialState(): InitialState {
    return { hardState: { ...this.hard }, confState: cloneConfState(this.snap.metadata.confState) };
  }

  hardState(): HardState {
    return { ...this.hard };
  }

  setHardState(h: HardState): void {
    this.hard = { ...h };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new RaftError('COMPACTED', `entries(${lo}) below first index ${offset + 1}`);
    if (hi > this.lastIndex() + 1) throw new RaftError('UNAVAILABLE', `entries hi ${hi} beyond last index ${this.lastIndex()}`);
    if (lo >= hi) return [];
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  term(i: number): number {
    const offset = this.ents[0]!.index;
    if (i < offset) throw new RaftError('COMPACTED', `term(${i}) below ${offset}`);
    const e = this.ents[i - offset];
    if (e === undefined) throw new RaftError('UNAVAILABLE', `term(${i}) beyond last index ${this.lastIndex()}`);
    return e.term;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole state with a snapshot received from the leader (Ready.snapshot). */
  applySnapshot(s: Snapshot): void {
    if (this.snap.metadata.index >= s.metadata.index) throw new RaftError('SNAPSHOT_OUT_OF_DATE', `have ${this.snap.metadata.index}, got ${s.metadata.index}`);
    this.snap = s;
    this.ents = [{ term: s.metadata.term, index: s.metadata.index, type: EntryType.Normal, data: new Uint8Array(0) }];
  }

  /** Records an application snapshot at applied index i (<= lastIndex); does not compact. */
  createSnapshot(i: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new RaftError('SNAPSHOT_OUT_OF_DATE', `snapshot ${i} not newer than ${this.snap.metadata.index}`);
    invariant(i <= this.lastIndex(), `snapshot ${i} beyond last index ${this.lastIndex()}`);
    this.snap = { metadata: { index: i, term: this.term(i), confState: cloneConfState(confState) }, data };
    return this.snap;
  }

  /** Discards entries up to and including compactIndex (which must be <= the snapshot index
   *  the application has taken, so the leader can still send a snapshot covering them). */
  compact(compactIndex: number): void {
    const offset = this.ents[0]!.index;
    if (compactIndex <= offset) return;
    invariant(compactIndex <= this.lastIndex(), `compact ${compactIndex} beyond last index ${this.lastIndex()}`);
    const e = this.ents[compactIndex - offset]!;
    this.ents = [{ term: e.term, index: e.index, type: EntryType.Normal, data: new Uint8Array(0) }, ...this.ents.slice(compactIndex - offset + 1)];
  }

  /** Appends entries from Ready.entries, replacing any conflicting suffix. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return; // all compacted already
    if (first > entries[0]!.index) entries = entries.slice(first - entries[0]!.index);
    const offset = entries[0]!.index - this.ents[0]!.index;
    invariant(offset <= this.ents.length, `append gap: first new ${entries[0]!.index}, last ${this.lastIndex()}`);
    this.ents = this.ents.slice(0, offset).concat(entries);
  }

  /** A deep-enough copy (entries are immutable) for crash simulation. */
  clone(): MemoryStorage {
    const s = new MemoryStorage();
    s.hard = { ...this.hard };
    s.snap = this.snap;
    s.ents = this.ents.slice();
    return s;
  }
}

export function cloneConfState(c: ConfState): ConfState {
  return {
    voters: [...c.voters],
    learners: [...c.learners],
    votersOutgoing: [...c.votersOutgoing],
    learnersNext: [...c.learnersNext],
    autoLeave: c.autoLeave,
  };
}
