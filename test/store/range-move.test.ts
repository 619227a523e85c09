// Range moves (the data plane of split and merge) on three real hosts: half of shard 0 moves to
// a new shard 2 and back again while a writer keeps writing through a routing table that is
// updated only after each move (so it is stale during the move, as a real client's is). Checked
// against a model: every acknowledged write readable at its owner with its value and version;
// refused writes (WRONG_SHARD, RANGE_MOVING) never applied; versions of a key only grow across
// moves; each shard holds exactly the keys it owns on every replica; a host that was down
// during the move catches up (snapshot included) with the same ownership.
import { expect } from 'chai';
import { ShardRouter, SUB_SPACE, keyPosition, encodeKey } from '../../src/ring/index.js';
import { StoreError, type MultiRaftHost } from '../../src/store/host.js';
import { type RangeMove, runMove } from '../../src/store/range-move.js';
import { rangeRecordStorageKey } from '../../src/store/shard-range.js';
import { shardKeyRange } from '../../src/ring/index.js';
import { TestCluster, leaderMoveDeps, waitFor } from './helpers.js';
import { Rng } from '../../src/util/rng.js';

const SLOTS = 2;
const MID = SUB_SPACE / 2;

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(StoreError);
    expect((err as StoreError).code).to.equal(code);
    return;
  }
  expect.fail(`expected ${code}`);
}

function slot0Keys(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (keyPosition(Buffer.from(`k${i}`), SLOTS).slot === 0) out.push(`k${i}`);
  return out;
}

describe('store: range moves for split and merge (3 hosts)', function () {
  this.timeout(60000);
  let c: TestCluster;

  afterEach(async () => {
    await c?.closeAll();
  });

  function leader(shard: number): MultiRaftHost {
    const l = c.leader(shard);
    if (!l) throw new StoreError('UNAVAILABLE', `no leader of shard ${shard}`);
    return l;
  }

  it('moves half a shard out and back under writes: no acknowledged write lost, no refused write applied, versions keep growing', async () => {
    const seed = Number(process.env['SEED'] ?? Date.now() % 100000);
    console.log(`      seed ${seed} (SEED=${seed} replays)`);
    const rng = new Rng(seed);
    c = new TestCluster([1, 2, 3], [0, 1, 2], { slotCount: SLOTS, snapshotEntries: 50 });
    await c.startAll();
    c.hosts.get(1)!.campaign(0);
    c.hosts.get(1)!.campaign(2);
    c.hosts.get(2)!.campaign(1);
    await c.waitLeaders();

    // shard 2 starts owning nothing: a write routed to it is refused and not applied
    const keys = slot0Keys(200);
    await rejects(leader(2).propose(2, { ops: [{ type: 'put', key: encodeKey(Buffer.from(keys[0]!)), value: Buffer.from('x') }] }), 'WRONG_SHARD');

    const model = new Map<string, { value: string; version: number }>();
    let router = new ShardRouter(SLOTS, [{ shardId: 0, range: { slot: 0, lo: 0, hi: SUB_SPACE } }, { shardId: 1, range: { slot: 1, lo: 0, hi: SUB_SPACE } }]);
    let refused = 0;
    const put = async (k: string, v: string): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        const shard = router.locate(Buffer.from(k));
        try {
          const r = await leader(shard).propose(shard, { ops: [{ type: 'put', key: encodeKey(Buffer.from(k)), value: Buffer.from(v) }] });
          const version = (r.results[0] as { version: number }).version;
          const prev = model.get(k);
          if (prev) expect(version, `version of ${k} grows`).to.be.greaterThan(prev.version);
          model.set(k, { value: v, version });
          return;
        } catch (err) {
          if (!(err instanceof StoreError) || (err.code !== 'WRONG_SHARD' && err.code !== 'RANGE_MOVING' && err.code !== 'NOT_LEADER' && err.code !== 'UNAVAILABLE')) throw err;
          refused++;
          if (attempt > 500) throw err;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    for (const k of keys) await put(k, `v0-${k}`);

    let writing = true;
    let writes = 0;
    const writer = (async () => {
      while (writing) {
        const k = keys[rng.int(keys.length)]!;
        await put(k, `w${writes++}`);
      }
    })();

    const out: RangeMove = { moveId: 'split-0', from: 0, to: 2, slot: 0, lo: MID, hi: SUB_SPACE };
    await c.stop(3); // host 3 misses the move and catches up later
    const st1 = await runMove(leaderMoveDeps(c), out);
    router = new ShardRouter(SLOTS, [
      { shardId: 0, range: { slot: 0, lo: 0, hi: MID } },
      { shardId: 2, range: { slot: 0, lo: MID, hi: SUB_SPACE } },
      { shardId: 1, range: { slot: 1, lo: 0, hi: SUB_SPACE } },
    ]);
    expect(st1.keys).to.be.greaterThan(50);
    await new Promise((r) => setTimeout(r, 200));

    await c.start(3);
    const back: RangeMove = { moveId: 'merge-2', from: 2, to: 0, slot: 0, lo: MID, hi: SUB_SPACE };
    await runMove(leaderMoveDeps(c), back);
    router = new ShardRouter(SLOTS, [{ shardId: 0, range: { slot: 0, lo: 0, hi: SUB_SPACE } }, { shardId: 1, range: { slot: 1, lo: 0, hi: SUB_SPACE } }, { shardId: 2, range: { slot: 0, lo: 0, hi: 0 } }]);
    await new Promise((r) => setTimeout(r, 200));
    writing = false;
    await writer;
    expect(writes).to.be.greaterThan(0);
    // a write sent to the merged-away shard is refused
    await rejects(leader(2).propose(2, { ops: [{ type: 'put', key: encodeKey(Buffer.from(keys[1]!)), value: Buffer.from('x') }] }), 'WRONG_SHARD');

    // every acknowledged write, at its owner, linearizably
    for (const [k, want] of model) {
      const shard = router.locate(Buffer.from(k));
      const got = await leader(shard).read(shard, encodeKey(Buffer.from(k)));
      expect(got.found, k).to.equal(true);
      expect(got.value!.toString(), k).to.equal(want.value);
      expect(got.version, k).to.equal(want.version);
    }
    // every replica converges: shard 0 holds all the model's keys, shard 2 none, same records
    const h0 = leader(0);
    await waitFor(() => [...c.hosts.values()].every((h) => h.appliedIndex(0) >= h0.appliedIndex(0) && h.appliedIndex(2) >= leader(2).appliedIndex(2)), 10000, 'replicas applied');
    for (const h of c.hosts.values()) {
      for (const [k, want] of model) expect(h.readLocal(0, encodeKey(Buffer.from(k))).version, `node ${h.nodeId} ${k}`).to.equal(want.version);
      const r2 = shardKeyRange(2);
      const it = h.engine.iterator({ gte: r2.gte, lt: r2.lt });
      let n = 0;
      for (let e = it.next(); e; e = it.next()) if (!e[0].equals(rangeRecordStorageKey(2))) n++;
      it.close();
      expect(n, `node ${h.nodeId}: keys left in shard 2`).to.equal(0);
      expect(h.ranges.state(0).range).to.deep.equal({ slot: 0, lo: 0, hi: SUB_SPACE });
      expect(h.ranges.state(2).range.lo).to.equal(h.ranges.state(2).range.hi);
    }
    console.log(`      moved ${st1.keys} keys out and back; ${writes} concurrent writes, ${refused} refused and retried`);

    // the records survive a restart
    await c.stop(2);
    const h2 = await c.start(2);
    expect(h2.ranges.state(0).range).to.deep.equal({ slot: 0, lo: 0, hi: SUB_SPACE });
    expect(h2.ranges.state(2).range.lo).to.equal(h2.ranges.state(2).range.hi);
  });

  it('refuses out-of-order steps and repeats completed ones harmlessly', async () => {
    c = new TestCluster([1], [0, 1, 2], { slotCount: SLOTS });
    await c.startAll();
    for (const s of [0, 1, 2]) c.hosts.get(1)!.campaign(s);
    await c.waitLeaders();
    const h = c.hosts.get(1)!;
    const k = slot0Keys(1)[0]!;
    await h.propose(0, { ops: [{ type: 'put', key: encodeKey(Buffer.from(k)), value: Buffer.from('a') }] });
    // release without freeze, acquire without beginIngest: refused
    const m: RangeMove = { moveId: 'm1', from: 0, to: 2, slot: 0, lo: 0, hi: MID };
    const range = (kind: string, extra: object) => h.propose(0, { ops: [{ type: 'range', key: Buffer.from([0, 0]), value: Buffer.from(JSON.stringify({ kind, moveId: 'm1', lo: 0, hi: MID, ...extra })) }] });
    expect(((await range('release', {})).results[0] as { ok: boolean }).ok).to.equal(false);
    // a piece from the middle cannot be frozen (ranges stay contiguous)
    expect(((await h.propose(0, { ops: [{ type: 'range', key: Buffer.from([0, 0]), value: Buffer.from(JSON.stringify({ kind: 'freeze', moveId: 'x', lo: 10, hi: 20 })) }] })).results[0] as { ok: boolean }).ok).to.equal(false);
    const first = await runMove(leaderMoveDeps(c), m);
    const again = await runMove(leaderMoveDeps(c), m, first.floor);
    expect(again.keys).to.equal(0);
    const sub = keyPosition(Buffer.from(k), SLOTS).sub;
    const owner = sub < MID ? 2 : 0;
    const got = await h.read(owner, encodeKey(Buffer.from(k)));
    expect(got.found).to.equal(true);
    expect(got.value!.toString()).to.equal('a');
    await rejects(h.read(owner === 2 ? 0 : 2, encodeKey(Buffer.from(k))), 'WRONG_SHARD');
  });
});
