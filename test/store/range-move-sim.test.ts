// A seeded simulation of splits and merges on three real hosts: rounds of random range moves
// (split a random piece into a free shard, or merge two adjacent pieces) while a writer keeps
// writing through the model's routing table, hosts are stopped and restarted at random, and the
// move driver "crashes" at a random step and is resumed from scratch with the floor it had
// persisted (as the metadata leader does). Checked against a model at the end of every round:
// each acknowledged write readable at its owner with its value and version, and every host's
// range records agree with the routing table. Prints its seed; SEED=n replays the choices.
import { expect } from 'chai';
import { type RoutedShard, ShardRouter, SUB_SPACE, encodeKey, splitPoint } from '../../src/ring/index.js';
import { StoreError, type MultiRaftHost } from '../../src/store/host.js';
import { type MoveDeps, type RangeMove, runMove } from '../../src/store/range-move.js';
import { Rng } from '../../src/util/rng.js';
import { TestCluster, leaderMoveDeps, waitFor } from './helpers.js';

const SLOTS = 2;
const SPARE = [2, 3, 4, 5, 6, 7];
const ROUNDS = Number(process.env['SIM_ROUNDS'] ?? 6);

class DriverCrash extends Error {}

const retriable = (e: unknown): boolean => e instanceof DriverCrash || (e instanceof StoreError && ['NOT_LEADER', 'UNAVAILABLE', 'TIMEOUT', 'PROPOSAL_DROPPED', 'CLOSED', 'NOT_FOUND'].includes(e.code));

describe('store: seeded simulation of splits and merges with host restarts and driver crashes', function () {
  this.timeout(240000);
  let c: TestCluster;
  afterEach(async () => {
    await c?.closeAll();
  });

  it('keeps every acknowledged write at its owner and every replica agreeing on ownership', async () => {
    const seed = Number(process.env['SEED'] ?? Date.now() % 1_000_000);
    console.log(`      range-move simulation: SEED=${seed} (SEED=${seed} replays the choices), ${ROUNDS} rounds`);
    const rng = new Rng(seed);
    c = new TestCluster([1, 2, 3], [0, 1, ...SPARE], { slotCount: SLOTS, snapshotEntries: 40, logGcBytes: 256 * 1024, requestTimeoutMs: 3000 });
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();

    const leader = (shard: number): MultiRaftHost => {
      const l = c.leader(shard);
      if (!l) throw new StoreError('UNAVAILABLE', `no leader of ${shard}`);
      return l;
    };
    let pieces: RoutedShard[] = [
      { shardId: 0, range: { slot: 0, lo: 0, hi: SUB_SPACE } },
      { shardId: 1, range: { slot: 1, lo: 0, hi: SUB_SPACE } },
    ];
    let router = new ShardRouter(SLOTS, pieces);
    const model = new Map<string, { value: string; version: number }>();
    let refused = 0;
    let acked = 0;

    const put = async (k: string, v: string): Promise<void> => {
      const shard = router.locate(Buffer.from(k));
      try {
        const r = await leader(shard).propose(shard, { ops: [{ type: 'put', key: encodeKey(Buffer.from(k)), value: Buffer.from(v) }] });
        const version = (r.results[0] as { version: number }).version;
        const prev = model.get(k);
        if (prev) expect(version, `version of ${k} grows`).to.be.greaterThan(prev.version);
        model.set(k, { value: v, version });
        acked++;
      } catch (e) {
        // refused (never applied) or unknown outcome: an unknown outcome would make the model
        // ambiguous, so the writer only continues with keys whose last write is known
        if (e instanceof StoreError && (e.code === 'WRONG_SHARD' || e.code === 'RANGE_MOVING' || e.code === 'NOT_LEADER' || e.code === 'NOT_FOUND')) {
          refused++;
          return;
        }
        if (e instanceof StoreError && (e.code === 'PROPOSAL_DROPPED' || e.code === 'TIMEOUT' || e.code === 'CLOSED' || e.code === 'UNAVAILABLE')) {
          // may or may not have applied: resolved by a read at the end of the round (values are unique)
          unknown.set(k, { attempted: v, prev: model.get(k) });
          model.delete(k);
          return;
        }
        throw e;
      }
    };
    const unknown = new Map<string, { attempted: string; prev: { value: string; version: number } | undefined }>();
    let resolved = 0;
    const keys = Array.from({ length: 60 }, (_, i) => `sim-${i}`);

    /** deps that "crash" the driver after `crashAfter` calls (Infinity: never) */
    const deps = (crashAfter: number): MoveDeps => {
      let calls = 0;
      return leaderMoveDeps(c, () => {
        if (++calls > crashAfter) throw new DriverCrash(`driver crash after ${crashAfter} calls`);
      });
    };

    const events: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // choose a move
      const free = SPARE.filter((s) => !pieces.some((p) => p.shardId === s));
      const splittable = pieces.filter((p) => p.range.hi - p.range.lo >= 2);
      const adjacent: Array<[RoutedShard, RoutedShard]> = [];
      for (const a of pieces) for (const b of pieces) if (a.range.slot === b.range.slot && a.range.hi === b.range.lo) adjacent.push([a, b]);
      let move: RangeMove;
      let apply: () => void;
      if (free.length > 0 && splittable.length > 0 && (adjacent.length === 0 || rng.chance(0.6))) {
        const p = rng.pick(splittable);
        const to = rng.pick(free);
        const mid = splitPoint(p.range);
        move = { moveId: `r${round}-split-${p.shardId}-${to}`, from: p.shardId, to, slot: p.range.slot, lo: mid, hi: p.range.hi };
        apply = () => {
          pieces = pieces.filter((x) => x !== p).concat([{ shardId: p.shardId, range: { ...p.range, hi: mid } }, { shardId: to, range: { ...p.range, lo: mid } }]);
        };
      } else {
        const [a, b] = rng.pick(adjacent);
        // merge either way: the left piece into the right one or the right into the left
        const [into, gone] = rng.chance(0.5) ? [a, b] : [b, a];
        move = { moveId: `r${round}-merge-${gone.shardId}-${into.shardId}`, from: gone.shardId, to: into.shardId, slot: gone.range.slot, lo: gone.range.lo, hi: gone.range.hi };
        apply = () => {
          pieces = pieces.filter((x) => x !== a && x !== b).concat([{ shardId: into.shardId, range: { slot: a.range.slot, lo: a.range.lo, hi: b.range.hi } }]);
        };
      }

      // the writer runs through the whole round
      let writing = true;
      const writer = (async () => {
        while (writing) {
          const known = keys.filter((k) => !unknown.has(k));
          if (known.length === 0) break;
          await put(rng.pick(known), `r${round}-${rng.int(1e6)}`);
          await new Promise((r) => setImmediate(r));
        }
      })();

      // run the move; the driver may crash at a random step; a host may restart meanwhile
      let floor = 0;
      let attempts = 0;
      const restart = rng.chance(0.5) ? rng.pick([1, 2, 3]) : 0;
      const restarter = (async () => {
        if (!restart) return;
        await new Promise((r) => setTimeout(r, rng.int(150)));
        await c.stop(restart);
        await new Promise((r) => setTimeout(r, rng.int(300)));
        await c.start(restart);
      })();
      for (;;) {
        attempts++;
        const crashAfter = attempts < 4 && rng.chance(0.5) ? rng.int(8) : Number.POSITIVE_INFINITY;
        try {
          await runMove(deps(crashAfter), move, floor, async (f) => {
            floor = f;
          });
          break;
        } catch (e) {
          if (!retriable(e) || attempts > 200) throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      await restarter;
      apply();
      router = new ShardRouter(SLOTS, pieces);
      await new Promise((r) => setTimeout(r, 50));
      writing = false;
      await writer;
      await c.waitLeaders(20000);
      events.push(`${move.moveId}${restart ? ` (restart ${restart})` : ''} x${attempts}`);

      // resolve the writes of unknown outcome: the owner holds either the attempted value or the previous one
      for (const [k, u] of unknown) {
        const shard = router.locate(Buffer.from(k));
        const got = await leader(shard).read(shard, encodeKey(Buffer.from(k)));
        const value = got.found ? got.value!.toString() : undefined;
        if (value === u.attempted) model.set(k, { value, version: got.version! });
        else {
          expect(value, `${k} after an unknown outcome (SEED=${seed})`).to.equal(u.prev?.value);
          if (u.prev) {
            expect(got.version).to.equal(u.prev.version);
            model.set(k, u.prev);
          }
        }
        resolved++;
      }
      unknown.clear();
      // check: every known write at its owner; every replica agrees with the table
      for (const [k, want] of model) {
        const shard = router.locate(Buffer.from(k));
        const got = await leader(shard).read(shard, encodeKey(Buffer.from(k)));
        expect(got.found, `${k} (round ${round}, SEED=${seed})`).to.equal(true);
        expect(got.value!.toString(), `${k} (round ${round}, SEED=${seed})`).to.equal(want.value);
        expect(got.version, `${k} (round ${round}, SEED=${seed})`).to.equal(want.version);
      }
      const all = [0, 1, ...SPARE];
      await waitFor(() => all.every((s) => [...c.hosts.values()].every((h) => h.appliedIndex(s) >= leader(s).appliedIndex(s))), 20000, 'replicas caught up');
      for (const h of c.hosts.values()) {
        for (const s of all) {
          const owned = pieces.find((p) => p.shardId === s);
          const st = h.ranges.state(s);
          expect(st.frozen, `node ${h.nodeId} shard ${s} frozen (SEED=${seed})`).to.equal(null);
          expect(st.incoming, `node ${h.nodeId} shard ${s} incoming (SEED=${seed})`).to.equal(null);
          if (owned) expect(st.range, `node ${h.nodeId} shard ${s} (SEED=${seed})`).to.deep.equal(owned.range);
          else expect(st.range.lo, `node ${h.nodeId} shard ${s} owns nothing (SEED=${seed})`).to.equal(st.range.hi);
        }
      }
    }
    console.log(`      ${events.join('; ')}`);
    console.log(`      ${acked} writes acknowledged, ${refused} refused, ${resolved} unknown outcomes resolved by reading; ${model.size} keys checked`);
    expect(acked).to.be.greaterThan(0);
  });
});
