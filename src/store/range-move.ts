// Moving a piece of the key space between two shards (the data plane of split and merge): the
// driver that runs the steps of apply.ts "range moves" against the shards' leaders, and the
// chunked scan of the frozen range that feeds it. The driver knows nothing about where the
// leaders are: `MoveDeps` proposes to a shard's leader and scans at it (locally or over RPC,
// src/server/reshard.ts), so the same driver runs in the store's tests and in the cluster.
//
// Every step is idempotent: after any failure the whole move can be run again with the same
// moveId and it finishes what is left (freeze says "already frozen", ingest rewrites the same
// values, release/acquire say "already"). Only the version floor must survive a restart of the
// driver, which is why it is returned by freeze and passed in again by a resumed move.
import type { LsmEngine } from '../lsm/db.js';
import { SHARD_PREFIX_BYTES } from '../ring/index.js';
import { KvError } from '../util/errors.js';
import type { CommandResult, Op, RangeOp } from './commands.js';
import { RANGE_OP_KEY } from './commands.js';
import { storageKey } from './apply.js';
import { type ShardRanges, isRangeRecordKey } from './shard-range.js';

export interface RangeMove {
  moveId: string;
  from: number;
  to: number;
  slot: number;
  lo: number;
  hi: number;
}

export interface ScanChunk {
  /** encoded keys (without the shard prefix) and their stored values, in key order */
  items: Array<{ key: Buffer; value: Buffer }>;
  done: boolean;
}

export interface MoveDeps {
  /** Proposes a command at the shard's leader; resolves with its result once applied there. */
  propose(shardId: number, ops: Op[]): Promise<CommandResult>;
  /** scanFrozen() at the shard's leader, after a barrier (the leader applied everything committed). */
  scan(shardId: number, moveId: string, lo: number, hi: number, after: Buffer | undefined, maxBytes: number): Promise<ScanChunk>;
}

export interface MoveStats {
  keys: number;
  bytes: number;
  floor: number;
}

/** Bytes of keys and values per ingest command: well under the host's 1 MiB entry batch. */
export const INGEST_CHUNK_BYTES = 256 * 1024;

function rangeOp(r: RangeOp): Op[] {
  return [{ type: 'range', key: RANGE_OP_KEY, value: Buffer.from(JSON.stringify(r)) }];
}

async function step(deps: MoveDeps, shardId: number, r: RangeOp): Promise<number> {
  const res = await deps.propose(shardId, rangeOp(r));
  const out = res.results[0];
  if (!out || out.type !== 'range') throw new KvError('UNAVAILABLE', `shard ${shardId}: ${r.kind}: unexpected result`);
  if (!out.ok) throw new KvError('FAILED_PRECONDITION', `shard ${shardId}: ${r.kind} of move ${r.moveId} refused: ${out.message}`);
  return out.floor;
}

/**
 * Runs (or resumes) a move to its end. `knownFloor`: the floor a previous run's freeze returned,
 * needed when the source already released the range (its freeze can no longer be repeated).
 * `onFloor` is called once the floor is known, before anything is copied, so a caller can
 * persist it for a resumed run.
 */
export async function runMove(deps: MoveDeps, m: RangeMove, knownFloor = 0, onFloor?: (floor: number) => Promise<void>): Promise<MoveStats> {
  const stats: MoveStats = { keys: 0, bytes: 0, floor: knownFloor };
  await step(deps, m.to, { kind: 'beginIngest', moveId: m.moveId, slot: m.slot, lo: m.lo, hi: m.hi });
  let frozen = true;
  try {
    stats.floor = Math.max(knownFloor, await step(deps, m.from, { kind: 'freeze', moveId: m.moveId, lo: m.lo, hi: m.hi }));
  } catch (err) {
    // a resumed move whose source already released the range: only acquire is left
    if (!(err instanceof KvError) || err.code !== 'FAILED_PRECONDITION' || knownFloor === 0) throw err;
    frozen = false;
  }
  if (frozen) {
    await onFloor?.(stats.floor);
    let after: Buffer | undefined;
    for (;;) {
      const chunk = await deps.scan(m.from, m.moveId, m.lo, m.hi, after, INGEST_CHUNK_BYTES);
      if (chunk.items.length > 0) {
        await deps.propose(m.to, chunk.items.map((it) => ({ type: 'ingest' as const, key: it.key, value: it.value })));
        for (const it of chunk.items) stats.bytes += it.key.length + it.value.length;
        stats.keys += chunk.items.length;
        after = chunk.items[chunk.items.length - 1]!.key;
      }
      if (chunk.done) break;
    }
    await step(deps, m.from, { kind: 'release', moveId: m.moveId, lo: m.lo, hi: m.hi });
  }
  await step(deps, m.to, { kind: 'acquire', moveId: m.moveId, lo: m.lo, hi: m.hi, floor: stats.floor });
  return stats;
}

/**
 * The keys of `shardId` with sub-hash in [lo, hi) after `after` (exclusive), up to about
 * `maxBytes`, from this replica's applied state. Refuses unless the range is frozen for this
 * move: only then is the data final (writes to it are refused at apply time).
 */
export function scanFrozen(engine: LsmEngine, ranges: ShardRanges, shardId: number, moveId: string, lo: number, hi: number, after: Buffer | undefined, maxBytes: number): ScanChunk {
  const st = ranges.state(shardId);
  if (st.frozen?.moveId !== moveId || st.frozen.lo !== lo || st.frozen.hi !== hi) {
    throw new KvError('FAILED_PRECONDITION', `shard ${shardId} has not frozen [${lo}, ${hi}) for move ${moveId}`);
  }
  const gte = after ? Buffer.concat([storageKey(shardId, after), Buffer.from([0])]) : storageKey(shardId, Buffer.from([0x00, 0x01]));
  const lt = Buffer.alloc(SHARD_PREFIX_BYTES);
  lt.writeUInt16BE(shardId + 1, 0);
  const items: ScanChunk['items'] = [];
  let bytes = 0;
  const it = engine.iterator({ gte, lt });
  try {
    for (let e = it.next(); e; e = it.next()) {
      const suffix = e[0].subarray(SHARD_PREFIX_BYTES);
      if (isRangeRecordKey(suffix)) continue;
      const { sub } = ranges.position(suffix);
      if (sub < lo || sub >= hi) continue;
      items.push({ key: Buffer.from(suffix), value: Buffer.from(e[1]) });
      bytes += suffix.length + e[1].length;
      if (bytes >= maxBytes) return { items, done: false };
    }
  } finally {
    it.close();
  }
  return { items, done: true };
}
