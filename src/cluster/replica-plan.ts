// The next membership step for one shard group, decided by its leader from the group's actual
// configuration and the placement's desired one. Pure, so the safety rules are unit-tested:
//
//   1. a desired replica that is not in the group joins as a LEARNER (no vote, so a slow
//      catch-up never costs the group its quorum);
//   2. a desired learner that has caught up is promoted to voter;
//   3. only when every desired replica is a voter is an undesired voter removed — the group
//      never shrinks below its desired size, and removals come one at a time (single-server
//      changes); if the undesired voter is the leader itself, leadership is handed to a
//      caught-up desired voter first and the new leader removes the old one;
//   4. undesired learners are removed; extra learners the placement asks for are added;
//   5. with membership settled, leadership moves to the placement's preferred leader (leader
//      balancing), if that replica is caught up and active.
// Step 1 counts against a per-node budget of concurrent moves, so foreground traffic keeps its
// share of disk and network while replicas stream.
import type { ConfState } from '../raft/index.js';

export interface GroupView {
  self: number;
  confState: ConfState;
  commit: number;
  progress: ReadonlyMap<number, { match: number; isLearner: boolean; recentActive: boolean; replicating: boolean }>;
}

export interface Desired {
  voters: readonly number[];
  /** extra non-voting replicas (the metadata group's read copies on every member) */
  learners?: readonly number[];
  /** preferred leader (0 = no preference) */
  leader: number;
}

export type Step =
  | { kind: 'addLearner'; node: number }
  | { kind: 'promote'; node: number }
  | { kind: 'remove'; node: number }
  | { kind: 'transfer'; node: number };

/** How far behind the leader's commit index a replica may be and still count as caught up. */
export const CATCH_UP_SLACK = 64;

/** Caught up: the replica exists and acknowledges appends (Raft's Replicate state — a replica
 *  that was never reached, or is still installing a snapshot, is in Probe or Snapshot state
 *  whatever its match index says), is active, and trails the commit index by at most the slack. */
export function caughtUp(g: GroupView, node: number): boolean {
  const p = g.progress.get(node);
  return p !== undefined && p.replicating && p.recentActive && p.match > 0 && p.match + CATCH_UP_SLACK >= g.commit;
}

/**
 * The next step, or undefined when the group matches `desired`. `mayStartMove` says whether a
 * new learner may be added now (the node's budget of concurrent moves).
 */
export function nextStep(g: GroupView, desired: Desired, mayStartMove: boolean): Step | undefined {
  const c = g.confState;
  if (c.votersOutgoing.length > 0) return undefined; // a joint configuration leaves by itself
  const voters = new Set(c.voters);
  const learners = new Set(c.learners);
  const want = new Set(desired.voters);
  const wantLearners = new Set((desired.learners ?? []).filter((n) => !want.has(n)));

  if (mayStartMove) for (const n of desired.voters) if (!voters.has(n) && !learners.has(n)) return { kind: 'addLearner', node: n };
  for (const n of desired.voters) if (learners.has(n) && caughtUp(g, n)) return { kind: 'promote', node: n };
  if (desired.voters.every((n) => voters.has(n))) {
    const extra = c.voters.filter((n) => !want.has(n));
    if (extra.length > 0) {
      const other = extra.find((n) => n !== g.self);
      if (other !== undefined) return { kind: 'remove', node: other };
      const to = desired.voters.find((n) => caughtUp(g, n));
      return to !== undefined ? { kind: 'transfer', node: to } : undefined;
    }
  }
  for (const n of c.learners) if (!want.has(n) && !wantLearners.has(n)) return { kind: 'remove', node: n };
  for (const n of wantLearners) if (!voters.has(n) && !learners.has(n)) return { kind: 'addLearner', node: n };
  if (desired.leader !== 0 && desired.leader !== g.self && voters.has(desired.leader) && caughtUp(g, desired.leader) && c.voters.length === want.size) {
    return { kind: 'transfer', node: desired.leader };
  }
  return undefined;
}

/** True when the group already is what `desired` asks for and `self` may stay its leader: then
 *  nextStep has nothing to do whatever the progress says (a cheap check for the rebalancer's
 *  rounds over every shard a node leads, before it gathers each group's progress). */
export function settled(c: Readonly<ConfState>, desired: Desired, self: number): boolean {
  if (c.votersOutgoing.length > 0 || c.learners.length > 0 || (desired.learners?.length ?? 0) > 0) return false;
  if (desired.leader !== 0 && desired.leader !== self) return false;
  if (c.voters.length !== desired.voters.length) return false;
  for (const n of desired.voters) if (!c.voters.includes(n)) return false;
  return true;
}

/** Whether the group is moving a replica in: a desired voter is in the group as a learner
 *  (catching up). Counts against the node's budget of concurrent moves. */
export function isMoving(c: ConfState, desired: Desired): boolean {
  return desired.voters.some((n) => c.learners.includes(n));
}
