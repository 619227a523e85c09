// Safety invariants of a simulated Raft group, checked as the simulation runs:
//  1. Election Safety: at most one leader per term.
//  2. Committed entries are never lost or changed: every applied entry at index i has the same
//     (term, type, data) everywhere, and every new leader's log holds every entry known committed.
//  3. State Machine Safety: every node applies the same sequence — each apply extends a prefix
//     (checked with a hash chain, which also validates state restored from snapshots).
//  4. Linearizable reads: a read served by ReadIndex or lease has a read index >= every commit
//     index any node knew when the read began (so it reflects every write completed before).
import type { Entry, Raft } from '../../../src/raft/index.js';

export function entryKey(e: Entry): string {
  return `${e.term}:${e.type}:${Buffer.from(e.data).toString('latin1')}`;
}

/** 32-bit FNV-1a style chain: hash(prev, key). */
export function chain(prev: number, key: string): number {
  let h = (prev ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export class Checker {
  readonly violations: string[] = [];
  private readonly leaderOfTerm = new Map<number, number>();
  /** index -> entry key of every applied (hence committed) entry */
  private readonly committed = new Map<number, string>();
  /** index -> state hash after applying index */
  private readonly hashAt = new Map<number, number>();
  maxCommitted = 0;
  /** highest commit index any node has reported */
  maxKnownCommit = 0;
  readsServed = 0;
  writesApplied = 0;

  fail(msg: string): void {
    if (this.violations.length < 20) this.violations.push(msg);
  }

  onLeader(id: number, r: Raft): void {
    const prev = this.leaderOfTerm.get(r.term);
    if (prev !== undefined && prev !== id) this.fail(`two leaders in term ${r.term}: ${prev} and ${id}`);
    this.leaderOfTerm.set(r.term, id);
    // Leader Completeness: the new leader holds every committed entry it has not compacted.
    const first = r.log.firstIndex();
    for (let i = Math.max(first, 1); i <= this.maxCommitted; i++) {
      const want = this.committed.get(i);
      if (want === undefined) continue;
      const t = r.log.termOf(i);
      const wantTerm = Number(want.slice(0, want.indexOf(':')));
      if (t !== wantTerm) {
        this.fail(`leader ${id} (term ${r.term}) lacks committed entry ${i} (term ${wantTerm}), has term ${t}`);
        return;
      }
    }
    if (r.log.lastIndex() < this.maxCommitted && first - 1 < this.maxCommitted) {
      this.fail(`leader ${id} (term ${r.term}) log ends at ${r.log.lastIndex()} before committed ${this.maxCommitted}`);
    }
  }

  onCommitKnown(commit: number): void {
    if (commit > this.maxKnownCommit) this.maxKnownCommit = commit;
  }

  /** A node applied entry e on top of state hash `prevHash`; returns the new hash. */
  onApply(id: number, e: Entry, prevIndex: number, prevHash: number): number {
    if (e.index !== prevIndex + 1) this.fail(`node ${id} applied ${e.index} after ${prevIndex} (gap or repeat)`);
    const key = entryKey(e);
    const have = this.committed.get(e.index);
    if (have === undefined) {
      this.committed.set(e.index, key);
      if (e.data.length > 0) this.writesApplied++;
    } else if (have !== key) {
      this.fail(`node ${id} applied ${e.index} as ${key}, another node applied ${have}`);
    }
    const h = chain(prevHash, key);
    const hh = this.hashAt.get(e.index);
    if (hh === undefined) this.hashAt.set(e.index, h);
    else if (hh !== h) this.fail(`node ${id} state after ${e.index} diverges (hash ${h} vs ${hh})`);
    if (e.index > this.maxCommitted) this.maxCommitted = e.index;
    this.onCommitKnown(e.index);
    return h;
  }

  /** A node restored a snapshot of state (index, hash). */
  onSnapshot(id: number, index: number, hash: number): void {
    const hh = this.hashAt.get(index);
    if (hh === undefined) this.hashAt.set(index, hash);
    else if (hh !== hash) this.fail(`node ${id} restored snapshot ${index} with hash ${hash}, expected ${hh}`);
  }

  onReadServed(id: number, ctx: string, readIndex: number, commitAtStart: number, lease: boolean): void {
    this.readsServed++;
    if (readIndex < commitAtStart) {
      this.fail(`stale read ${ctx} on node ${id}${lease ? ' (lease)' : ''}: read index ${readIndex} < commit ${commitAtStart} known when the read began`);
    }
  }
}
