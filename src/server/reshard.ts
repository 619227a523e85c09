// Split and merge of shards, coordinated by the metadata leader (POST /api/cluster/shards/:id/split
// and .../merge, forwarded there as ClusterAdmin.Reshard).
//
// split(A): a new shard B (next unused id) is added to the placement with B's starting
// configuration = A's current voters (`bootstrap`: those members create B's replica from the
// placement, all with the same configuration) and an empty range; once B has a leader, the upper
// half of A's sub-hash range moves to B (store/range-move.ts: freeze, copy, release, acquire);
// then the placement gives both their new ranges with a new epoch. Clients and nodes route by
// the placement; until they see the new epoch, requests for the moved half reach A, which
// refuses them at apply time (WRONG_SHARD, never applied), and they re-route.
// merge(A, B): B's whole range (adjacent to A's in the same slot) moves into A; B is retired (its
// replicas are destroyed, its id is never reused).
//
// One split or merge runs at a time. The operation is recorded in the placement before any data
// moves (with the version floor once known), and resume() finishes a recorded one: every step is
// idempotent, so a metadata leader that died mid-way (or a failed step) only delays it.
// During a move, the moving range refuses writes (RANGE_MOVING, retried by clients) for as long
// as the copy takes; reads of it are served by the source until the release.
import { type MetaManager, type MetaView } from '../cluster/meta-manager.js';
import { type PlacementRecord, type ReshardRecord, placedRange } from '../cluster/meta-state.js';
import { META_SHARD_ID, SUB_SPACE, splitPoint } from '../ring/index.js';
import type { CommandResult, Op } from '../store/commands.js';
import { type MoveDeps, type ScanChunk, runMove } from '../store/range-move.js';
import { sleep } from '../util/async.js';
import { KvError } from '../util/errors.js';

export interface ShardCommandResponse {
  applied: boolean;
  message: string;
  floor: number;
  ok: boolean;
}

export interface ShardScanResponse {
  items: Array<{ type: string; key: Buffer; value: Buffer }>;
  done: boolean;
}

export interface ReshardDeps {
  meta: MetaManager;
  /** runs a ClusterAdmin ShardCommand / ShardScan at the shard's leader (here or elsewhere) */
  atLeader<T>(shardId: number, method: 'ShardCommand' | 'ShardScan', req: object): Promise<T>;
  /** the shard's leader (node id) and voters (raft ids), from the leader itself; undefined while
   *  it has none */
  groupOf(shardId: number): Promise<{ leader: string; voters: number[] } | undefined>;
  nodeIdOf(raftId: number): string | undefined;
  log(line: string): void;
}

export interface ReshardResult {
  op: 'split' | 'merge';
  shard_ids: number[];
  epoch: number;
  moved_keys: number;
  moved_bytes: number;
  took_ms: number;
}

const LEADER_WAIT_MS = 15_000;

export class Resharder {
  private running: Promise<ReshardResult> | undefined;

  constructor(private readonly d: ReshardDeps) {}

  get busy(): boolean {
    return this.running !== undefined;
  }

  split(shardId: number): Promise<ReshardResult> {
    return this.exclusive(async () => {
      const v = await this.d.meta.read();
      this.checkIdle(v.placement);
      const a = live(v.placement, shardId);
      const range = placedRange(a, shardId);
      const mid = splitPoint(range);
      const to = v.placement.shards.length;
      if (to >= META_SHARD_ID) throw new KvError('FAILED_PRECONDITION', `no shard id left for a split (ids below ${META_SHARD_ID} are all used)`);
      const group = await this.d.groupOf(shardId);
      if (!group) throw new KvError('UNAVAILABLE', `shard ${shardId} has no leader right now; try again`);
      const replicas = group.voters.map((id) => this.d.nodeIdOf(id));
      if (replicas.some((r) => r === undefined)) throw new KvError('UNAVAILABLE', `shard ${shardId}: a voter is not a known member`);
      const rec: ReshardRecord = { op: 'split', moveId: `split-${shardId}-${to}-${v.placement.epoch}`, from: shardId, to, slot: range.slot, lo: mid, hi: range.hi, floor: 0 };
      await this.d.meta.update((cur) => {
        if (cur.placement.reshard || cur.placement.shards.length !== to) throw new KvError('FAILED_PRECONDITION', 'the placement changed under the split; try again');
        const shards = [...cur.placement.shards, { replicas: replicas as string[], leaderHint: group.leader, range: { slot: range.slot, lo: mid, hi: mid }, bootstrap: [...group.voters] }];
        return { placement: { ...cur.placement, epoch: cur.placement.epoch + 1, shards, reshard: rec } };
      });
      this.d.log(`split of shard ${shardId}: new shard ${to} on ${replicas.join(', ')} takes sub-hashes [${mid}, ${range.hi}) of slot ${range.slot}`);
      return this.finish(rec);
    });
  }

  merge(shardId: number, otherId: number): Promise<ReshardResult> {
    return this.exclusive(async () => {
      const v = await this.d.meta.read();
      this.checkIdle(v.placement);
      if (shardId === otherId) throw new KvError('INVALID_ARGUMENT', 'a shard cannot be merged with itself');
      const into = placedRange(live(v.placement, shardId), shardId);
      const gone = placedRange(live(v.placement, otherId), otherId);
      if (into.slot !== gone.slot || !(into.hi === gone.lo || gone.hi === into.lo)) {
        throw new KvError('FAILED_PRECONDITION', `shards ${shardId} (slot ${into.slot} [${into.lo}, ${into.hi})) and ${otherId} (slot ${gone.slot} [${gone.lo}, ${gone.hi})) are not adjacent pieces of one slot`);
      }
      const rec: ReshardRecord = { op: 'merge', moveId: `merge-${otherId}-${shardId}-${v.placement.epoch}`, from: otherId, to: shardId, slot: gone.slot, lo: gone.lo, hi: gone.hi, floor: 0 };
      await this.d.meta.update((cur) => {
        if (cur.placement.reshard) throw new KvError('FAILED_PRECONDITION', 'another split or merge started; try again');
        return { placement: { ...cur.placement, reshard: rec } };
      });
      this.d.log(`merge: shard ${otherId} (sub-hashes [${gone.lo}, ${gone.hi}) of slot ${gone.slot}) into shard ${shardId}`);
      return this.finish(rec);
    });
  }

  /** Finishes a split or merge recorded in the placement (a previous leader's, or a failed one). */
  resume(): Promise<ReshardResult> | undefined {
    const rec = this.d.meta.current?.placement.reshard;
    if (!rec || this.running) return undefined;
    this.d.log(`resuming the ${rec.op} of move ${rec.moveId}`);
    return this.exclusive(() => this.finish(rec));
  }

  private checkIdle(p: PlacementRecord): void {
    if (p.reshard) throw new KvError('FAILED_PRECONDITION', `a ${p.reshard.op} is in progress (move ${p.reshard.moveId}); it is resumed by the metadata leader`);
  }

  private exclusive(fn: () => Promise<ReshardResult>): Promise<ReshardResult> {
    if (this.running) return Promise.reject(new KvError('FAILED_PRECONDITION', 'a split or merge is already running; one at a time'));
    const p = fn().finally(() => {
      this.running = undefined;
    });
    this.running = p;
    return p;
  }

  private async finish(rec: ReshardRecord): Promise<ReshardResult> {
    const started = Date.now();
    // the target needs a leader first (a new shard's replicas create it from the placement)
    const deadline = Date.now() + LEADER_WAIT_MS;
    while (!(await this.d.groupOf(rec.to))) {
      if (Date.now() > deadline) throw new KvError('UNAVAILABLE', `shard ${rec.to} has no leader after ${LEADER_WAIT_MS} ms`);
      await sleep(50);
    }
    const stats = await runMove(this.moveDeps(), rec, rec.floor, async (floor) => {
      if (floor === rec.floor) return;
      await this.d.meta.update((cur) => (cur.placement.reshard?.moveId === rec.moveId ? { placement: { ...cur.placement, reshard: { ...rec, floor } } } : undefined));
    });
    const v = await this.d.meta.update((cur) => {
      if (cur.placement.reshard?.moveId !== rec.moveId) return undefined;
      const shards = [...cur.placement.shards];
      const from = shards[rec.from]!;
      const to = shards[rec.to]!;
      const fromRange = placedRange(from, rec.from);
      const toRange = placedRange(to, rec.to);
      if (rec.op === 'split') {
        shards[rec.from] = { ...from, range: { slot: rec.slot, lo: fromRange.lo, hi: rec.lo } };
        const { bootstrap: _done, ...rest } = to;
        shards[rec.to] = { ...rest, range: { slot: rec.slot, lo: rec.lo, hi: rec.hi } };
      } else {
        const lo = Math.min(toRange.lo, rec.lo);
        const hi = Math.max(toRange.hi, rec.hi);
        shards[rec.to] = lo === 0 && hi === SUB_SPACE && rec.to === rec.slot ? { replicas: to.replicas, leaderHint: to.leaderHint } : { ...to, range: { slot: rec.slot, lo, hi } };
        shards[rec.from] = { replicas: [], leaderHint: '', retired: true };
      }
      const { reshard: _finished, ...placement } = cur.placement;
      return { placement: { ...placement, epoch: cur.placement.epoch + 1, shards } };
    });
    const took = Date.now() - started;
    this.d.log(`${rec.op} done (move ${rec.moveId}): ${stats.keys} keys, ${stats.bytes} bytes moved in ${took} ms; placement epoch ${v.placement.epoch}`);
    return { op: rec.op, shard_ids: rec.op === 'split' ? [rec.from, rec.to] : [rec.to], epoch: v.placement.epoch, moved_keys: stats.keys, moved_bytes: stats.bytes, took_ms: took };
  }

  private moveDeps(): MoveDeps {
    return {
      propose: async (shardId: number, ops: Op[]): Promise<CommandResult> => {
        const r = await this.d.atLeader<ShardCommandResponse>(shardId, 'ShardCommand', { shard_id: shardId, ops: ops.map((o) => ({ type: o.type, key: o.key, value: 'value' in o ? o.value : Buffer.alloc(0) })) });
        if (ops[0]?.type === 'range') return { applied: r.applied, results: [{ type: 'range', ok: r.ok, message: r.message, floor: r.floor }] };
        return { applied: r.applied, results: ops.map(() => ({ type: 'ingest' as const })) };
      },
      scan: async (shardId, moveId, lo, hi, after, maxBytes): Promise<ScanChunk> => {
        const r = await this.d.atLeader<ShardScanResponse>(shardId, 'ShardScan', { shard_id: shardId, move_id: moveId, lo, hi, after: after ?? Buffer.alloc(0), max_bytes: maxBytes });
        return { items: r.items.map((it) => ({ key: it.key, value: it.value })), done: r.done };
      },
    };
  }
}

function live(p: PlacementRecord, shardId: number): PlacementRecord['shards'][number] {
  const s = p.shards[shardId];
  if (shardId === META_SHARD_ID) throw new KvError('INVALID_ARGUMENT', 'the cluster metadata shard cannot be split or merged');
  if (!s || s.retired) throw new KvError('NOT_FOUND', `no shard ${shardId}${s?.retired ? ' (merged into another)' : ''}`);
  return s;
}

/** For the admin API: what a placement says about the shards (range and state). */
export function describeShards(v: MetaView | undefined): Array<{ shard_id: number; slot: number; hash_lo: number; hash_hi: number; replicas: string[]; retired: boolean }> {
  if (!v) return [];
  return v.placement.shards.map((s, shardId) => {
    const r = placedRange(s, shardId);
    return { shard_id: shardId, slot: r.slot, hash_lo: r.lo, hash_hi: r.hi, replicas: s.replicas, retired: s.retired === true };
  });
}
