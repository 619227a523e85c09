// In-memory test network for Raft groups (after etcd's raft_test.go network). Every node is a
// RawNode over a MemoryStorage driven by the documented Ready loop; messages travel through a
// FIFO queue that honours drop/cut/isolate rules. Fully synchronous and deterministic.
import {
  type ConfChange,
  type Entry,
  type Message,
  type RaftConfig,
  type ReadState,
  type ConfState,
  EntryType,
  MemoryStorage,
  MessageType,
  RawNode,
  StateRole,
  decodeConfChange,
} from '../../../src/raft/index.js';
import { Rng } from '../../../src/util/rng.js';

export interface TestNode {
  id: number;
  node: RawNode;
  storage: MemoryStorage;
  /** Data of applied normal entries (empty leader no-ops excluded), in order. */
  applied: Entry[];
  /** Every applied entry index in order (incl. no-ops and conf changes). */
  appliedIndexes: number[];
  readStates: ReadState[];
  confState: ConfState;
  /** When set, snapshots are taken every `snapshotEvery` applied entries and the log compacted. */
  snapshotEvery: number;
}

export type NodeOptions = Partial<Omit<RaftConfig, 'id' | 'storage'>>;

export const DEFAULT_OPTS = { electionTick: 10, heartbeatTick: 1 };

export class Network {
  readonly nodes = new Map<number, TestNode>();
  private queue: Message[] = [];
  private readonly dropRate = new Map<string, number>();
  private readonly ignored = new Set<MessageType>();
  readonly rng: Rng;
  /** Every message delivered (after filtering), for assertions. */
  readonly delivered: Message[] = [];
  /** Optional hook: return false to drop a message. */
  filter: ((m: Message) => boolean) | undefined;
  readonly opts: NodeOptions;

  constructor(ids: number[], opts: NodeOptions = {}, seed = 1) {
    this.rng = new Rng(seed);
    this.opts = opts;
    for (const id of ids) this.addNode(id, MemoryStorage.bootstrapWithLog(ids));
  }

  /** Adds a member with the given storage (a new, empty node joins with MemoryStorage()). */
  addNode(id: number, storage: MemoryStorage, extra: NodeOptions = {}): TestNode {
    const cfg: RaftConfig = { ...DEFAULT_OPTS, ...this.opts, ...extra, id, storage, random: this.rng.fork() } as RaftConfig;
    const node = new RawNode(cfg);
    const tn: TestNode = {
      id,
      node,
      storage,
      applied: [],
      appliedIndexes: [],
      readStates: [],
      confState: storage.initialState().confState,
      snapshotEvery: 0,
    };
    this.nodes.set(id, tn);
    this.processReady(id); // apply the bootstrap entries
    return tn;
  }

  /**
   * Crash-restarts a node from what it persisted: a new RawNode over the same storage, the state
   * machine rebuilt from the storage's snapshot (its configuration from the snapshot metadata),
   * and the committed entries after the snapshot re-applied by the Ready loop.
   */
  restart(id: number, extra: NodeOptions = {}): TestNode {
    const old = this.get(id);
    this.queue = this.queue.filter((m) => m.to !== id);
    const snap = old.storage.snapshot();
    const cfg: RaftConfig = { ...DEFAULT_OPTS, ...this.opts, ...extra, id, storage: old.storage, applied: snap.metadata.index, random: this.rng.fork() } as RaftConfig;
    const tn: TestNode = {
      id,
      node: new RawNode(cfg),
      storage: old.storage,
      applied: [],
      appliedIndexes: [],
      readStates: [],
      confState: snap.metadata.confState,
      snapshotEvery: old.snapshotEvery,
    };
    this.nodes.set(id, tn);
    return tn;
  }

  get(id: number): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raft(id: number) {
    return this.get(id).node.raft;
  }

  // ---- fault rules ---------------------------------------------------------------------------

  drop(from: number, to: number, rate: number): void {
    this.dropRate.set(`${from}-${to}`, rate);
  }

  cut(a: number, b: number): void {
    this.drop(a, b, 1);
    this.drop(b, a, 1);
  }

  isolate(id: number): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  ignore(t: MessageType): void {
    this.ignored.add(t);
  }

  recover(): void {
    this.dropRate.clear();
    this.ignored.clear();
  }

  private allowed(m: Message): boolean {
    if (this.ignored.has(m.type)) return false;
    if (this.filter && !this.filter(m)) return false;
    const rate = this.dropRate.get(`${m.from}-${m.to}`) ?? 0;
    return !(rate > 0 && this.rng.next() < rate);
  }

  // ---- driving -------------------------------------------------------------------------------

  /** Runs the Ready loop of one node; its messages go to the queue. */
  processReady(id: number): void {
    const tn = this.get(id);
    const node = tn.node;
    while (node.hasReady()) {
      const rd = node.ready();
      if (rd.snapshot) tn.storage.applySnapshot(rd.snapshot);
      tn.storage.append(rd.entries);
      if (rd.hardState) tn.storage.setHardState(rd.hardState);
      this.queue.push(...rd.messages);
      if (rd.snapshot) {
        tn.confState = rd.snapshot.metadata.confState;
        tn.appliedIndexes.push(rd.snapshot.metadata.index);
      }
      for (const e of rd.committedEntries) {
        tn.appliedIndexes.push(e.index);
        if (e.type === EntryType.ConfChange) {
          tn.confState = node.applyConfChange(decodeConfChange(e.data));
        } else if (e.data.length > 0) {
          tn.applied.push(e);
        }
      }
      tn.readStates.push(...rd.readStates);
      node.advance();
      const last = rd.committedEntries[rd.committedEntries.length - 1];
      if (last && tn.snapshotEvery > 0) {
        const snapIdx = tn.storage.snapshot().metadata.index;
        if (last.index - snapIdx >= tn.snapshotEvery) {
          tn.storage.createSnapshot(last.index, tn.confState, new TextEncoder().encode(`state@${last.index}`));
          tn.storage.compact(last.index);
        }
      }
    }
  }

  /** Delivers queued messages (and everything they trigger) until the network is quiet. */
  stabilize(maxMessages = 100_000): void {
    for (const id of this.nodes.keys()) this.processReady(id);
    let n = 0;
    while (this.queue.length > 0) {
      if (++n > maxMessages) throw new Error('network did not stabilize');
      const m = this.queue.shift()!;
      if (!this.allowed(m)) continue;
      const target = this.nodes.get(m.to);
      if (!target) continue;
      this.delivered.push(m);
      target.node.step(m);
      this.processReady(m.to);
    }
  }

  /** Steps messages in, then stabilizes. */
  send(...msgs: Message[]): void {
    this.queue.push(...msgs);
    this.stabilize();
  }

  tick(id: number, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.get(id).node.tick();
      this.processReady(id);
    }
  }

  /** Ticks every node n times, stabilizing after each round. */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const tn of this.nodes.values()) tn.node.tick();
      this.stabilize();
    }
  }

  campaign(id: number): void {
    this.get(id).node.campaign();
    this.stabilize();
  }

  propose(id: number, data: string | Uint8Array): void {
    const d = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    this.get(id).node.propose(d);
    this.stabilize();
  }

  proposeConfChange(id: number, cc: ConfChange): void {
    this.get(id).node.proposeConfChange(cc);
    this.stabilize();
  }

  leaders(): number[] {
    return [...this.nodes.values()].filter((t) => t.node.raft.role === StateRole.Leader).map((t) => t.id);
  }

  /** The unique leader with the highest term, or undefined. */
  leader(): number | undefined {
    let best: TestNode | undefined;
    for (const t of this.nodes.values()) {
      if (t.node.raft.role !== StateRole.Leader) continue;
      if (!best || t.node.raft.term > best.node.raft.term) best = t;
    }
    return best?.id;
  }

  /** Ticks all nodes until a leader exists (or throws). */
  electLeader(maxTicks = 200): number {
    for (let i = 0; i < maxTicks; i++) {
      const l = this.leader();
      if (l !== undefined && this.leaders().length === 1) return l;
      this.tickAll(1);
    }
    throw new Error('no leader elected');
  }

  appliedStrings(id: number): string[] {
    return this.get(id).applied.map((e) => new TextDecoder().decode(e.data));
  }
}

export function bytes(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}
