// MetaManager: this node's window on the cluster-metadata Raft group (shard META_SHARD_ID).
//
// - Keeps the last APPLIED cluster and placement records of the local metadata replica and tells
//   listeners when they change (the host calls back after every apply of the group). Routing
//   uses this local view: it may lag the leader by a heartbeat, which is safe because every shard
//   group checks leadership itself and clients follow NOT_LEADER hints.
// - bootstrap(): the founding members all compute the same initial records from the static
//   configuration; whichever node leads the metadata group first writes them with
//   putIfVersionMatch(expected 0), so exactly one copy wins and a restart never rewrites them.
// - update(): read-modify-write of a record on the metadata leader, compare-and-set on the
//   record's version, retried on a concurrent change.
import { META_SHARD_ID } from '../ring/index.js';
import { StoreError, type MultiRaftHost } from '../store/host.js';
import { sleep } from '../util/async.js';
import { CLUSTER_KEY, type ClusterRecord, PLACEMENT_KEY, type PlacementRecord, decodeCluster, decodePlacement, encodeRecord } from './meta-state.js';

export interface MetaView {
  cluster: ClusterRecord;
  clusterVersion: number;
  placement: PlacementRecord;
  placementVersion: number;
}

export type Mutator<T> = (current: T) => T | undefined;

const BOOTSTRAP_POLL_MS = 50;

export class MetaManager {
  private view: MetaView | undefined;
  private readonly listeners: Array<(v: MetaView) => void> = [];
  private closed = false;

  constructor(private readonly host: MultiRaftHost) {
    this.refresh();
    host.onApplied((shards) => {
      if (shards.includes(META_SHARD_ID)) this.refresh();
    });
  }

  /** The last applied metadata on this node (undefined before the cluster is bootstrapped). */
  get current(): MetaView | undefined {
    return this.view;
  }

  onChange(listener: (v: MetaView) => void): void {
    this.listeners.push(listener);
  }

  private refresh(): void {
    if (!this.host.shardIds().includes(META_SHARD_ID)) return;
    const c = this.host.readLocal(META_SHARD_ID, CLUSTER_KEY);
    const p = this.host.readLocal(META_SHARD_ID, PLACEMENT_KEY);
    if (!c.found || !p.found) return;
    if (this.view && this.view.clusterVersion === c.version && this.view.placementVersion === p.version) return;
    this.view = { cluster: decodeCluster(c.value!), clusterVersion: c.version!, placement: decodePlacement(p.value!), placementVersion: p.version! };
    for (const l of this.listeners) l(this.view);
  }

  /**
   * Resolves once the metadata exists (written by this node if it leads the metadata group, or
   * by another founder), or rejects when `timeoutMs` passes.
   */
  async bootstrap(initial: { cluster: ClusterRecord; placement: PlacementRecord }, timeoutMs: number): Promise<MetaView> {
    const deadline = Date.now() + timeoutMs;
    while (!this.view) {
      if (this.closed) throw new StoreError('CLOSED', 'metadata manager closed');
      if (Date.now() > deadline) throw new StoreError('UNAVAILABLE', `the cluster metadata group did not come up within ${timeoutMs} ms (is a majority of the founding members running?)`);
      if (this.host.isLeader(META_SHARD_ID)) {
        try {
          await this.host.propose(META_SHARD_ID, {
            ops: [
              { type: 'putIfVersionMatch', key: CLUSTER_KEY, value: encodeRecord(initial.cluster), expectedVersion: 0 },
              { type: 'putIfVersionMatch', key: PLACEMENT_KEY, value: encodeRecord(initial.placement), expectedVersion: 0 },
            ],
          });
        } catch (err) {
          if (!(err instanceof StoreError)) throw err;
        }
        this.refresh();
      } else {
        await sleep(BOOTSTRAP_POLL_MS);
      }
    }
    return this.view;
  }

  /** Linearizable read of both records (through the metadata group's leader). */
  async read(): Promise<MetaView> {
    const [c, p] = await Promise.all([this.host.read(META_SHARD_ID, CLUSTER_KEY), this.host.read(META_SHARD_ID, PLACEMENT_KEY)]);
    if (!c.found || !p.found) throw new StoreError('UNAVAILABLE', 'the cluster metadata is not bootstrapped yet');
    return { cluster: decodeCluster(c.value!), clusterVersion: c.version!, placement: decodePlacement(p.value!), placementVersion: p.version! };
  }

  /**
   * Applies `mutate` to the current records and writes the result with compare-and-set; the
   * mutator returns undefined for "no change". Retries a few times on a concurrent update.
   * Must run on the metadata leader (NOT_LEADER otherwise).
   */
  async update(mutate: (v: MetaView) => { cluster?: ClusterRecord; placement?: PlacementRecord } | undefined): Promise<MetaView> {
    for (let attempt = 0; ; attempt++) {
      const v = await this.read();
      const next = mutate(v);
      if (!next || (!next.cluster && !next.placement)) return v;
      const ops = [];
      if (next.cluster) ops.push({ type: 'putIfVersionMatch' as const, key: CLUSTER_KEY, value: encodeRecord(next.cluster), expectedVersion: v.clusterVersion });
      if (next.placement) ops.push({ type: 'putIfVersionMatch' as const, key: PLACEMENT_KEY, value: encodeRecord(next.placement), expectedVersion: v.placementVersion });
      const res = await this.host.propose(META_SHARD_ID, { ops });
      if (res.applied) {
        this.refresh();
        return this.view!;
      }
      if (attempt >= 5) throw new StoreError('UNAVAILABLE', 'cluster metadata: too many concurrent updates, try again');
    }
  }

  close(): void {
    this.closed = true;
  }
}
