// Membership changes: computing the next configuration, and the entry encoding of a ConfChange.
//
// Two forms, chosen by the change itself:
//  - simple: at most one voter is added or removed (the single-server rule of the Raft thesis
//    §4.1); any two majorities of the old and new voter sets overlap, so no joint phase is needed.
//    Learners may be added/removed freely alongside.
//  - joint (§6 of the paper): the new config C_new is entered as (C_new, C_old); decisions need
//    majorities of both until the empty "leave" ConfChange is applied. The leader proposes that
//    leave entry itself once the joint config is applied (autoLeave).
// Safety condition enforced by the leader (raft.ts): at most one unapplied ConfChange in the log,
// and none before the leader has applied everything up to the start of its term.
//
// Entry encoding (EntryType.ConfChange data), all varints:
//   version(=1) flags(bit0: joint) count { type nodeId }*count
import { BufReader, BufWriter, DecodeError } from '../util/bytes.js';
import { RaftError } from './errors.js';
import { Progress } from './progress.js';
import { JointConfig } from './quorum.js';
import { type TrackerConfig, cloneTrackerConfig } from './tracker.js';
import { type ConfChange, type ConfState, ConfChangeType } from './types.js';

const CC_VERSION = 1;

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const w = new BufWriter(16);
  w.varint(CC_VERSION).varint(cc.joint ? 1 : 0).varint(cc.changes.length);
  for (const c of cc.changes) w.varint(c.type).varint(c.nodeId);
  return w.finish();
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  try {
    const r = new BufReader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    const version = r.varint();
    if (version !== CC_VERSION) throw new DecodeError(`unknown ConfChange version ${version}`);
    const flags = r.varint();
    const n = r.varint();
    const changes = [];
    for (let i = 0; i < n; i++) {
      const type = r.varint();
      if (!(type in ConfChangeType)) throw new DecodeError(`unknown ConfChange type ${type}`);
      changes.push({ type: type as ConfChangeType, nodeId: r.varint() });
    }
    const cc: ConfChange = { changes };
    if (flags & 1) cc.joint = true;
    return cc;
  } catch (err) {
    throw new RaftError('INVALID_ARGUMENT', `bad ConfChange entry: ${(err as Error).message}`);
  }
}

export function isLeaveJoint(cc: ConfChange): boolean {
  return cc.changes.length === 0;
}

/** Whether cc needs joint consensus (more than one voter changes, or asked for explicitly). */
export function needsJoint(cc: ConfChange, cfg: TrackerConfig): boolean {
  if (cc.joint) return true;
  // Bootstrapping from an empty configuration has no old majority to protect.
  if (cfg.voters.incoming.size === 0 && !cfg.voters.isJoint()) return false;
  const after = new Set(cfg.voters.incoming);
  for (const c of cc.changes) {
    if (c.type === ConfChangeType.AddVoter) after.add(c.nodeId);
    else after.delete(c.nodeId);
  }
  let diff = 0;
  for (const id of after) if (!cfg.voters.incoming.has(id)) diff++;
  for (const id of cfg.voters.incoming) if (!after.has(id)) diff++;
  return diff > 1;
}

export interface ChangeResult {
  config: TrackerConfig;
  progress: Map<number, Progress>;
}

/** Computes the configuration after applying cc. Throws INVALID_ARGUMENT for an illegal change. */
export class Changer {
  constructor(
    private readonly cfg: TrackerConfig,
    private readonly prs: Map<number, Progress>,
    private readonly lastIndex: number,
    private readonly maxInflight: number,
    private readonly maxInflightBytes: number,
  ) {}

  apply(cc: ConfChange): ChangeResult {
    if (isLeaveJoint(cc)) return this.leaveJoint();
    if (needsJoint(cc, this.cfg)) return this.enterJoint(cc);
    return this.simple(cc);
  }

  private copy(): ChangeResult {
    const progress = new Map<number, Progress>();
    for (const [id, pr] of this.prs) progress.set(id, pr); // Progress objects are carried over
    return { config: cloneTrackerConfig(this.cfg), progress };
  }

  private simple(cc: ConfChange): ChangeResult {
    if (this.cfg.voters.isJoint()) throw new RaftError('INVALID_ARGUMENT', 'cannot apply a simple change in a joint configuration');
    const r = this.copy();
    this.applyChanges(r, cc);
    if (r.config.voters.incoming.size === 0) throw new RaftError('INVALID_ARGUMENT', 'removing all voters is not allowed');
    return r;
  }

  private enterJoint(cc: ConfChange): ChangeResult {
    if (this.cfg.voters.isJoint()) throw new RaftError('INVALID_ARGUMENT', 'configuration is already joint');
    if (this.cfg.voters.incoming.size === 0) throw new RaftError('INVALID_ARGUMENT', 'cannot enter joint from an empty configuration');
    const r = this.copy();
    for (const id of r.config.voters.incoming) r.config.voters.outgoing.add(id);
    this.applyChanges(r, cc);
    if (r.config.voters.incoming.size === 0) throw new RaftError('INVALID_ARGUMENT', 'removing all voters is not allowed');
    r.config.autoLeave = true;
    return r;
  }

  private leaveJoint(): ChangeResult {
    if (!this.cfg.voters.isJoint()) throw new RaftError('INVALID_ARGUMENT', 'cannot leave a non-joint configuration');
    const r = this.copy();
    const c = r.config;
    for (const id of c.learnersNext) {
      c.learners.add(id);
      const pr = r.progress.get(id);
      if (pr) pr.isLearner = true;
    }
    c.learnersNext.clear();
    for (const id of c.voters.outgoing) {
      if (!c.voters.incoming.has(id) && !c.learners.has(id)) r.progress.delete(id);
    }
    c.voters.outgoing.clear();
    c.autoLeave = false;
    return r;
  }

  private applyChanges(r: ChangeResult, cc: ConfChange): void {
    for (const ch of cc.changes) {
      if (!Number.isSafeInteger(ch.nodeId) || ch.nodeId <= 0) throw new RaftError('INVALID_ARGUMENT', `bad node id ${ch.nodeId}`);
      switch (ch.type) {
        case ConfChangeType.AddVoter:
          this.makeVoter(r, ch.nodeId);
          break;
        case ConfChangeType.AddLearner:
          this.makeLearner(r, ch.nodeId);
          break;
        case ConfChangeType.RemoveNode:
          this.remove(r, ch.nodeId);
          break;
        default:
          throw new RaftError('INVALID_ARGUMENT', `unknown change type ${String(ch.type)}`);
      }
    }
  }

  private ensureProgress(r: ChangeResult, id: number, isLearner: boolean): void {
    let pr = r.progress.get(id);
    if (!pr) {
      // Start probing at the end of the log; the follower's rejection walks next back.
      pr = new Progress(Math.max(this.lastIndex, 1), this.maxInflight, this.maxInflightBytes, isLearner);
      // Count a new member as active so CheckQuorum does not depose the leader before it answers.
      pr.recentActive = true;
      r.progress.set(id, pr);
    }
    pr.isLearner = isLearner;
  }

  private makeVoter(r: ChangeResult, id: number): void {
    const c = r.config;
    c.learners.delete(id);
    c.learnersNext.delete(id);
    c.voters.incoming.add(id);
    this.ensureProgress(r, id, false);
  }

  private makeLearner(r: ChangeResult, id: number): void {
    const c = r.config;
    if (c.learners.has(id)) return;
    c.voters.incoming.delete(id);
    if (c.voters.outgoing.has(id)) {
      // Still a voter of the outgoing half until the joint config is left.
      c.learnersNext.add(id);
      this.ensureProgress(r, id, false);
    } else {
      c.learners.add(id);
      this.ensureProgress(r, id, true);
    }
  }

  private remove(r: ChangeResult, id: number): void {
    const c = r.config;
    c.voters.incoming.delete(id);
    c.learners.delete(id);
    c.learnersNext.delete(id);
    if (!c.voters.outgoing.has(id)) r.progress.delete(id);
  }
}

/** Builds the configuration a ConfState describes (after a restart or a snapshot). */
export function restoreConfig(cs: ConfState, lastIndex: number, maxInflight: number, maxInflightBytes: number): ChangeResult {
  const config: TrackerConfig = {
    voters: new JointConfig(new Set(cs.voters), new Set(cs.votersOutgoing)),
    learners: new Set(cs.learners),
    learnersNext: new Set(cs.learnersNext),
    autoLeave: cs.autoLeave,
  };
  const progress = new Map<number, Progress>();
  const add = (id: number, learner: boolean): void => {
    if (progress.has(id)) return;
    const pr = new Progress(Math.max(lastIndex + 1, 1), maxInflight, maxInflightBytes, learner);
    pr.recentActive = true;
    progress.set(id, pr);
  };
  for (const id of cs.voters) add(id, false);
  for (const id of cs.votersOutgoing) add(id, false);
  for (const id of cs.learners) add(id, true);
  for (const id of cs.learnersNext) add(id, false);
  return { config, progress };
}
