// Quorum arithmetic over a majority configuration and a joint (incoming, outgoing) pair.
// A joint configuration decides only when BOTH majorities agree (Raft §6). An empty majority
// config agrees with anything: committedIndex is +Infinity and every vote is "won", so a
// non-joint config is simply a joint one with an empty outgoing half.

export enum VoteResult {
  Pending = 0,
  Lost = 1,
  Won = 2,
}

/** Scratch space for majorityCommitted: it runs for every append ack a leader gets (the
 *  commit rule), so it sorts in place instead of allocating and sorting a fresh array. */
const scratch: number[] = [];

/** Largest value v such that a majority of `ids` have value >= v (values from `get`). */
export function majorityCommitted(ids: ReadonlySet<number>, get: (id: number) => number): number {
  const n = ids.size;
  if (n === 0) return Number.POSITIVE_INFINITY;
  let k = 0;
  for (const id of ids) scratch[k++] = get(id);
  // insertion sort, descending: configurations hold a handful of voters
  for (let i = 1; i < n; i++) {
    const v = scratch[i]!;
    let j = i - 1;
    while (j >= 0 && scratch[j]! < v) {
      scratch[j + 1] = scratch[j]!;
      j--;
    }
    scratch[j + 1] = v;
  }
  return scratch[Math.floor(n / 2)]!; // the (n/2+1)-th largest
}

export function majorityVote(ids: ReadonlySet<number>, votes: ReadonlyMap<number, boolean>): VoteResult {
  if (ids.size === 0) return VoteResult.Won;
  let yes = 0;
  let missing = 0;
  for (const id of ids) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) yes++;
  }
  const q = Math.floor(ids.size / 2) + 1;
  if (yes >= q) return VoteResult.Won;
  if (yes + missing >= q) return VoteResult.Pending;
  return VoteResult.Lost;
}

export class JointConfig {
  constructor(
    readonly incoming: Set<number> = new Set(),
    readonly outgoing: Set<number> = new Set(),
  ) {}

  isJoint(): boolean {
    return this.outgoing.size > 0;
  }

  ids(): Set<number> {
    const s = new Set(this.incoming);
    for (const id of this.outgoing) s.add(id);
    return s;
  }

  committed(get: (id: number) => number): number {
    return Math.min(majorityCommitted(this.incoming, get), majorityCommitted(this.outgoing, get));
  }

  vote(votes: ReadonlyMap<number, boolean>): VoteResult {
    const a = majorityVote(this.incoming, votes);
    const b = majorityVote(this.outgoing, votes);
    if (a === b) return a;
    if (a === VoteResult.Lost || b === VoteResult.Lost) return VoteResult.Lost;
    return VoteResult.Pending;
  }

  clone(): JointConfig {
    return new JointConfig(new Set(this.incoming), new Set(this.outgoing));
  }
}
