// Deterministic network simulator for one Raft group. Everything — message loss, delay,
// reordering, duplication, (asymmetric) partitions, crashes, tick rates, client operations and
// membership changes — is drawn from one seeded Rng, so a seed replays exactly.
//
// Time is an integer of "time units"; each node ticks every `rate` units (rates differ per node,
// which is the clock drift the lease bound must absorb). Each node is driven by the documented
// Ready loop: persist (MemoryStorage = exactly what Ready said to persist) BEFORE the messages
// leave, then apply, then advance. A crash throws away the RawNode and the state machine; a
// restart rebuilds both from the persisted storage (state machine from its snapshot).
// Invariants are checked after every delivery and tick (checker.ts): besides the safety of the
// log and of reads, each node's membership against a model of the committed ConfChanges, every
// new leader's initialisation, every commit-index advance of a leader, and every valid lease.
// After the chaos phase the network heals and the group must elect a leader and commit a
// proposal within a tick bound.
import {
  type ConfState,
  type Message,
  ConfChangeType,
  EntryType,
  MemoryStorage,
  RawNode,
  StateRole,
  decodeConfChange,
  isRaftError,
} from '../../../src/raft/index.js';
import { Rng } from '../../../src/util/rng.js';
import { Checker } from './checker.js';

export interface SimConfig {
  seed: number;
  steps: number;
  nodes: number;
  loss: number;
  dup: number;
  maxDelay: number;
  partitionProb: number;
  crashProb: number;
  proposeProb: number;
  readProb: number;
  transferProb: number;
  confChangeProb: number;
  readOnly: 'safe' | 'lease';
  preVote: boolean;
  checkQuorum: boolean;
  electionTick: number;
  heartbeatTick: number;
  snapshotEvery: number;
  snapshotChunkBytes: number;
  /** time units per tick: each node draws from [minRate, maxRate] */
  minRate: number;
  maxRate: number;
  /** liveness bound after healing, in ticks */
  livenessTicks: number;
  lazyCommitBroadcast: boolean;
  skipHeartbeatAfterAppend: boolean;
}

/** A seed picks a variant so a seed range covers several configurations. */
export function configForSeed(seed: number, steps: number): SimConfig {
  const r = new Rng(seed ^ 0x5eed);
  const lease = r.chance(0.5);
  return {
    seed,
    steps,
    nodes: r.pick([3, 3, 5]),
    loss: r.pick([0, 0.02, 0.05, 0.15]),
    dup: r.pick([0, 0.02, 0.1]),
    maxDelay: r.pick([2, 5, 15]),
    partitionProb: r.pick([0, 0.002, 0.005, 0.02]),
    crashProb: r.pick([0, 0.001, 0.003, 0.01]),
    proposeProb: r.pick([0.05, 0.2]),
    readProb: r.pick([0.02, 0.1, 0.3]),
    transferProb: r.pick([0, 0.0005]),
    confChangeProb: r.pick([0, 0.001, 0.003]),
    readOnly: lease ? 'lease' : 'safe',
    preVote: r.chance(0.8),
    checkQuorum: lease ? true : r.chance(0.8),
    electionTick: 10,
    heartbeatTick: 2,
    snapshotEvery: r.pick([5, 20, 1000]),
    snapshotChunkBytes: r.pick([4, 64, 1 << 20]),
    // Rates 8..10: a follower's 9 ticks (≥ 72 units) outlast a 7-tick lease (≤ 70 units).
    minRate: 8,
    maxRate: 10,
    livenessTicks: 40 * 10,
    // drawn last, so the seeds before this option kept their other settings
    lazyCommitBroadcast: r.chance(0.5),
    // (drawn after it, for the same reason) with leases, the renewal then rides on the answers
    // to appends, which carry the leader's tick
    skipHeartbeatAfterAppend: r.chance(0.5),
  };
}

interface PendingRead {
  ctx: string;
  commitAtStart: number;
  index: number | undefined;
  lease: boolean;
}

class SimNode {
  node: RawNode | undefined;
  appliedIndex = 0;
  hash = 0;
  confState: ConfState;
  nextTickAt: number;
  downUntil = 0;
  pendingReads = new Map<string, PendingRead>();
  lastLeaderTerm = -1;
  constructor(
    readonly id: number,
    readonly storage: MemoryStorage,
    readonly rate: number,
    now: number,
  ) {
    this.confState = storage.initialState().confState;
    this.nextTickAt = now + rate;
  }
}

interface InFlight {
  at: number;
  seq: number;
  m: Message;
}

export interface SimResult {
  seed: number;
  violations: string[];
  trace: string[];
  stats: { delivered: number; dropped: number; writes: number; reads: number; leaders: number; crashes: number; confChanges: number; snapshots: number };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function encodeState(index: number, hash: number): Uint8Array {
  return enc.encode(`${index}:${hash}`);
}

function decodeState(b: Uint8Array): [number, number] {
  const [i, h] = dec.decode(b).split(':');
  return [Number(i), Number(h)];
}

export class Simulation {
  readonly rng: Rng;
  readonly checker = new Checker();
  readonly nodes = new Map<number, SimNode>();
  private queue: InFlight[] = [];
  private seq = 0;
  now = 0;
  private readonly blocked = new Set<string>();
  private partitionUntil = 0;
  private readonly traceBuf: string[] = [];
  private counter = 0;
  private nextId: number;
  private readonly stats = { delivered: 0, dropped: 0, writes: 0, reads: 0, leaders: 0, crashes: 0, confChanges: 0, snapshots: 0 };
  private loss: number;
  private dup: number;
  private maxDelay: number;

  constructor(readonly cfg: SimConfig) {
    this.rng = new Rng(cfg.seed);
    this.loss = cfg.loss;
    this.dup = cfg.dup;
    this.maxDelay = cfg.maxDelay;
    const ids = Array.from({ length: cfg.nodes }, (_, i) => i + 1);
    this.nextId = cfg.nodes + 1;
    for (const id of ids) this.addNode(id, MemoryStorage.bootstrapWithLog(ids));
  }

  trace(s: string): void {
    this.traceBuf.push(`t=${this.now} ${s}`);
    if (this.traceBuf.length > 40) this.traceBuf.shift();
  }

  private addNode(id: number, storage: MemoryStorage): SimNode {
    const sn = new SimNode(id, storage, this.rng.range(this.cfg.minRate, this.cfg.maxRate), this.now);
    this.nodes.set(id, sn);
    this.start(sn);
    return sn;
  }

  private start(sn: SimNode): void {
    const snap = sn.storage.snapshot();
    if (snap.metadata.index > 0) {
      [sn.appliedIndex, sn.hash] = decodeState(snap.data);
    } else {
      sn.appliedIndex = 0;
      sn.hash = 0;
    }
    sn.confState = snap.metadata.confState;
    sn.pendingReads.clear();
    sn.lastLeaderTerm = -1;
    sn.node = new RawNode({
      id: sn.id,
      storage: sn.storage,
      electionTick: this.cfg.electionTick,
      heartbeatTick: this.cfg.heartbeatTick,
      random: this.rng.fork(),
      applied: sn.appliedIndex,
      preVote: this.cfg.preVote,
      checkQuorum: this.cfg.checkQuorum,
      readOnlyOption: this.cfg.readOnly,
      leaseDriftTicks: 3,
      maxSizePerMsg: 256,
      maxInflightMsgs: 8,
      snapshotChunkBytes: this.cfg.snapshotChunkBytes,
      lazyCommitBroadcast: this.cfg.lazyCommitBroadcast,
      skipHeartbeatAfterAppend: this.cfg.skipHeartbeatAfterAppend,
    });
    const r = sn.node.raft;
    // A restarted node's configuration comes from its snapshot (entries after it are re-applied).
    if (r.log.applied > 0) this.checker.checkConf(sn.id, r.log.applied, r.confState(), 'restarted from its snapshot');
    // Invariant 7: watch every commit-index advance at the moment it happens, with the
    // configuration that counted it.
    const maybeCommit = r.maybeCommit.bind(r);
    r.maybeCommit = (): boolean => {
      const advanced = maybeCommit();
      if (advanced && r.role === StateRole.Leader) this.checker.onLeaderCommit(sn.id, r, r.log.committed, (n, i, t) => this.durable(n, i, t));
      return advanced;
    };
    this.processReady(sn);
  }

  /** Whether node n's persisted storage holds entry i of term t (or a snapshot covering it). */
  private durable(n: number, i: number, t: number): boolean {
    const st = this.nodes.get(n)?.storage;
    if (!st) return false;
    if (st.snapshot().metadata.index >= i) return true;
    try {
      return st.term(i) === t;
    } catch {
      return false;
    }
  }

  // ---- network -----------------------------------------------------------------------------

  private send(m: Message): void {
    if (this.rng.chance(this.loss)) {
      this.stats.dropped++;
      return;
    }
    const copies = this.rng.chance(this.dup) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.queue.push({ at: this.now + 1 + this.rng.int(this.maxDelay), seq: this.seq++, m });
    }
  }

  private deliverDue(): void {
    if (this.queue.length === 0) return;
    const due: InFlight[] = [];
    const rest: InFlight[] = [];
    for (const f of this.queue) (f.at <= this.now ? due : rest).push(f);
    if (due.length === 0) return;
    this.queue = rest;
    due.sort((a, b) => a.at - b.at || a.seq - b.seq);
    for (const f of due) {
      const m = f.m;
      if (this.blocked.has(`${m.from}>${m.to}`)) {
        this.stats.dropped++;
        continue;
      }
      const sn = this.nodes.get(m.to);
      if (!sn || !sn.node) continue;
      this.stats.delivered++;
      sn.node.step(m);
      this.processReady(sn);
    }
  }

  // ---- the Ready loop ----------------------------------------------------------------------

  private processReady(sn: SimNode): void {
    const node = sn.node;
    if (!node) return;
    const r = node.raft;
    while (node.hasReady()) {
      const rd = node.ready();
      // 1. persist, before anything leaves the node
      if (rd.snapshot) sn.storage.applySnapshot(rd.snapshot);
      sn.storage.append(rd.entries);
      if (rd.hardState) {
        sn.storage.setHardState(rd.hardState);
        this.checker.onCommitKnown(rd.hardState.commit);
      }
      // 2. send
      for (const m of rd.messages) this.send(m);
      // 3. apply
      if (rd.snapshot) {
        const [idx, h] = decodeState(rd.snapshot.data);
        if (idx !== rd.snapshot.metadata.index) this.checker.fail(`node ${sn.id}: snapshot data index ${idx} != metadata ${rd.snapshot.metadata.index}`);
        this.checker.onSnapshot(sn.id, idx, h);
        sn.appliedIndex = idx;
        sn.hash = h;
        sn.confState = rd.snapshot.metadata.confState;
        this.checker.checkConf(sn.id, idx, sn.confState, `installed snapshot ${idx} whose metadata has`);
        this.stats.snapshots++;
        this.trace(`node ${sn.id} installed snapshot ${idx}`);
      }
      for (const e of rd.committedEntries) {
        sn.hash = this.checker.onApply(sn.id, e, sn.appliedIndex, sn.hash);
        sn.appliedIndex = e.index;
        if (e.type === EntryType.ConfChange) {
          const cc = decodeConfChange(e.data);
          try {
            sn.confState = node.applyConfChange(cc);
          } catch (err) {
            if (!isRaftError(err, 'INVALID_ARGUMENT')) throw err;
          }
          if (sn.id === r.lead || r.role === StateRole.Leader) this.trace(`node ${sn.id} applied conf ${JSON.stringify(cc.changes)} -> voters ${sn.confState.voters} out ${sn.confState.votersOutgoing} learners ${sn.confState.learners}`);
        }
      }
      for (const rs of rd.readStates) {
        const p = sn.pendingReads.get(dec.decode(rs.context));
        if (p) p.index = rs.index;
      }
      node.advance();
      this.serveReads(sn);
      this.maybeSnapshot(sn);
    }
    // Invariant 5: the configuration the core uses, and the one the application will store in
    // its next snapshot, are the ones implied by what has been applied.
    if (r.log.applied !== sn.appliedIndex) this.checker.fail(`node ${sn.id}: raft applied ${r.log.applied} but the state machine is at ${sn.appliedIndex}`);
    this.checker.checkConf(sn.id, r.log.applied, r.confState(), 'core');
    this.checker.checkConf(sn.id, sn.appliedIndex, sn.confState, 'application');
    if (r.role === StateRole.Leader && sn.lastLeaderTerm !== r.term) {
      sn.lastLeaderTerm = r.term;
      this.stats.leaders++;
      this.trace(`node ${sn.id} is leader of term ${r.term} (last ${r.log.lastIndex()}, commit ${r.log.committed})`);
      this.checker.onLeader(sn.id, r);
    }
  }

  private serveReads(sn: SimNode): void {
    for (const [ctx, p] of sn.pendingReads) {
      if (p.index === undefined || sn.appliedIndex < p.index) continue;
      sn.pendingReads.delete(ctx);
      this.stats.reads++;
      this.checker.onReadServed(sn.id, ctx, p.index, p.commitAtStart, p.lease);
    }
  }

  private maybeSnapshot(sn: SimNode): void {
    const snapIdx = sn.storage.snapshot().metadata.index;
    if (sn.appliedIndex - snapIdx < this.cfg.snapshotEvery) return;
    const snap = sn.storage.createSnapshot(sn.appliedIndex, sn.confState, encodeState(sn.appliedIndex, sn.hash));
    this.checker.checkConf(sn.id, snap.metadata.index, snap.metadata.confState, `snapshot ${snap.metadata.index} taken with`);
    sn.storage.compact(Math.max(sn.appliedIndex - 2, sn.storage.firstIndex() - 1));
  }

  // ---- faults and clients ------------------------------------------------------------------

  private liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.node !== undefined);
  }

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const sn of this.nodes.values()) {
      const r = sn.node?.raft;
      if (r && r.role === StateRole.Leader && (!best || r.term > best.node!.raft.term)) best = sn;
    }
    return best;
  }

  private partition(): void {
    this.blocked.clear();
    const ids = [...this.nodes.keys()];
    const kind = this.rng.int(4);
    if (kind === 3) {
      // Cut off the leader (asymmetrically half the time: it still hears the others): the rest
      // elect a new leader as soon as they may, racing the old leader's lease (invariant 8).
      const v = this.leader()?.id ?? this.rng.pick(ids);
      const oneWay = this.rng.chance(0.5);
      for (const o of ids) {
        if (o === v) continue;
        this.blocked.add(`${v}>${o}`);
        if (!oneWay) this.blocked.add(`${o}>${v}`);
      }
      this.trace(`isolate leader ${v}${oneWay ? ' (outgoing only)' : ''}`);
    } else if (kind === 0) {
      // symmetric split
      const side = new Set(ids.filter(() => this.rng.chance(0.5)));
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
      this.trace(`partition {${[...side]}} | rest`);
    } else if (kind === 1) {
      const v = this.rng.pick(ids);
      for (const o of ids) if (o !== v) this.blocked.add(`${v}>${o}`).add(`${o}>${v}`);
      this.trace(`isolate ${v}`);
    } else {
      // asymmetric: some directed links fail
      for (const a of ids) for (const b of ids) if (a !== b && this.rng.chance(0.3)) this.blocked.add(`${a}>${b}`);
      this.trace(`asymmetric partition ${[...this.blocked].join(',')}`);
    }
    this.partitionUntil = this.now + (this.rng.chance(0.5) ? this.rng.range(10, 120) : this.rng.range(50, 600));
  }

  private crash(sn: SimNode): void {
    sn.node = undefined;
    sn.downUntil = this.now + (this.rng.chance(0.5) ? this.rng.range(1, 40) : this.rng.range(20, 400));
    this.stats.crashes++;
    this.trace(`crash ${sn.id}`);
  }

  private propose(sn: SimNode, data: string): boolean {
    try {
      sn.node!.propose(enc.encode(data));
      this.processReady(sn);
      return true;
    } catch (err) {
      if (isRaftError(err, 'PROPOSAL_DROPPED')) return false;
      throw err;
    }
  }

  private read(sn: SimNode): void {
    const ctx = `r${this.counter++}`;
    const lease = sn.node!.hasValidLease();
    const p: PendingRead = { ctx, commitAtStart: this.checker.maxKnownCommit, index: undefined, lease };
    try {
      sn.node!.readIndex(enc.encode(ctx));
      sn.pendingReads.set(ctx, p);
      this.processReady(sn);
    } catch (err) {
      if (!isRaftError(err, 'PROPOSAL_DROPPED')) throw err;
    }
  }

  private confChange(l: SimNode): void {
    const cs = l.confState;
    if (cs.votersOutgoing.length > 0) return;
    const changes: { type: ConfChangeType; nodeId: number }[] = [];
    let joint = false;
    if (cs.learners.length > 0) {
      const lrn = this.rng.pick(cs.learners);
      changes.push({ type: ConfChangeType.AddVoter, nodeId: lrn });
      if (cs.voters.length >= 3 && this.rng.chance(0.5)) {
        // replace a voter with the learner in one joint step
        changes.push({ type: ConfChangeType.RemoveNode, nodeId: this.rng.pick(cs.voters) });
        joint = true;
      }
    } else if (cs.voters.length > 3 && this.rng.chance(0.6)) {
      changes.push({ type: ConfChangeType.RemoveNode, nodeId: this.rng.pick(cs.voters) });
    } else if (this.nodes.size < 8) {
      const id = this.nextId++;
      this.addNode(id, new MemoryStorage());
      this.trace(`new node ${id}`);
      changes.push({ type: ConfChangeType.AddLearner, nodeId: id });
    } else {
      return;
    }
    try {
      l.node!.proposeConfChange(joint ? { changes, joint } : { changes });
      this.stats.confChanges++;
      this.trace(`node ${l.id} proposed conf ${JSON.stringify(changes)}${joint ? ' joint' : ''}`);
      this.processReady(l);
    } catch (err) {
      if (!isRaftError(err, 'PROPOSAL_DROPPED')) throw err;
    }
  }

  // ---- the loop ----------------------------------------------------------------------------

  /** One time unit. */
  step(chaos: boolean): void {
    this.now++;
    const rng = this.rng;
    if (chaos) {
      if (this.blocked.size > 0 && this.now >= this.partitionUntil) {
        this.blocked.clear();
        this.trace('heal partition');
      } else if (this.blocked.size === 0 && rng.chance(this.cfg.partitionProb)) {
        this.partition();
      }
      if (rng.chance(this.cfg.crashProb)) {
        const live = this.liveNodes();
        if (live.length > 0) this.crash(rng.pick(live));
      }
    }
    for (const sn of this.nodes.values()) {
      if (!sn.node && sn.downUntil <= this.now) {
        this.trace(`restart ${sn.id}`);
        this.start(sn);
      }
    }
    for (const sn of this.nodes.values()) {
      if (!sn.node) continue;
      while (sn.nextTickAt <= this.now) {
        sn.nextTickAt += sn.rate;
        sn.node.tick();
        this.processReady(sn);
      }
    }
    this.deliverDue();
    // Invariant 8: a lease is only valid while no newer leader exists.
    for (const sn of this.nodes.values()) {
      if (sn.node && sn.node.raft.role === StateRole.Leader && sn.node.hasValidLease()) this.checker.onValidLease(sn.id, sn.node.raft);
    }
    if (chaos) {
      const live = this.liveNodes();
      if (live.length > 0) {
        if (rng.chance(this.cfg.proposeProb)) this.propose(rng.pick(live), `w${this.counter++}`);
        if (rng.chance(this.cfg.readProb)) {
          // Half the reads go to whoever believes it leads (lease and deposed-leader cases).
          const leaders = live.filter((n) => n.node!.raft.role === StateRole.Leader);
          this.read(leaders.length > 0 && rng.chance(0.5) ? rng.pick(leaders) : rng.pick(live));
        }
      }
      const l = this.leader();
      if (l) {
        if (rng.chance(this.cfg.transferProb)) {
          const to = rng.pick(l.confState.voters);
          this.trace(`transfer ${l.id} -> ${to}`);
          l.node!.transferLeader(to);
          this.processReady(l);
        }
        if (rng.chance(this.cfg.confChangeProb)) this.confChange(l);
      }
    }
  }

  /** Heals everything and checks that a leader commits a new proposal within the bound. */
  private liveness(): void {
    this.blocked.clear();
    this.loss = 0;
    this.dup = 0;
    this.maxDelay = 2;
    this.trace('heal all (liveness phase)');
    for (const sn of this.nodes.values()) sn.downUntil = 0;
    const limit = this.now + this.cfg.livenessTicks * this.cfg.maxRate;
    const tag = `live${this.cfg.seed}`;
    let proposedAt = -1;
    while (this.now < limit) {
      this.step(false);
      if (this.appliedTags.has(tag)) return;
      const l = this.leader();
      if (!l) continue;
      if (proposedAt < 0 || this.now - proposedAt > this.cfg.electionTick * this.cfg.maxRate * 2) {
        if (this.propose(l, tag)) proposedAt = this.now;
      }
    }
    const l = this.leader();
    this.checker.fail(`liveness: no proposal committed within ${this.cfg.livenessTicks} ticks after healing (leader: ${l ? `${l.id} term ${l.node!.raft.term}` : 'none'})`);
  }

  private readonly appliedTags = new Set<string>();

  run(): SimResult {
    // Record applied write tags for the liveness check.
    const origApply = this.checker.onApply.bind(this.checker);
    this.checker.onApply = (id, e, prevIndex, prevHash) => {
      if (e.data.length > 0 && e.type === EntryType.Normal) this.appliedTags.add(dec.decode(e.data));
      return origApply(id, e, prevIndex, prevHash);
    };
    try {
      for (let i = 0; i < this.cfg.steps && this.checker.violations.length === 0; i++) this.step(true);
      if (this.checker.violations.length === 0) this.liveness();
    } catch (err) {
      this.checker.fail(`exception: ${(err as Error).stack ?? String(err)}`);
    }
    this.stats.writes = this.checker.writesApplied;
    return { seed: this.cfg.seed, violations: this.checker.violations, trace: this.traceBuf.slice(), stats: this.stats };
  }
}

export function runSeed(seed: number, steps: number): SimResult {
  return new Simulation(configForSeed(seed, steps)).run();
}
