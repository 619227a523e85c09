// Split and merge end to end, with three real cache-server processes under continuous checked
// client load (lin-workload.ts): the shard holding the history keys is split (POST
// /api/cluster/shards/:id/split, sent to a node that forwards it to the metadata leader) until
// the keys move to the new shard; a node is SIGKILLed and restarted; then every split is undone
// by merges (the keys move again). Checks: every acknowledged write (preloaded keys and the
// workload's witnesses) readable at its version, the recorded history linearizable, the routing
// table back to one whole slot per shard on every node, the merged-away shards' replicas
// destroyed everywhere, and bad split/merge requests answered with clear errors.
import { expect } from 'chai';
import { CacheClient } from '../../src/client/index.js';
import { type ClusterNode, ServerProc, eventually, freePorts, http, localCluster, rmDir, singleNodeArgs, tmpDir } from './harness.js';
import { LinWorkload, testSeed } from './lin-workload.js';

const SHARDS = 4;
const PRELOAD = 300;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function httpPort(n: ClusterNode): number {
  const a = n.proc.spec.args;
  return Number(a[a.indexOf('--http-port') + 1]);
}

interface ShardRow {
  shard_id: number;
  slot: number;
  hash_lo: number;
  hash_hi: number;
  retired: boolean;
}

describe('server: shard split and merge under load (3 processes, checked history)', function () {
  this.timeout(180000);
  const seed = testSeed();
  let nodes: ClusterNode[] = [];

  before(async () => {
    nodes = await localCluster(['n1', 'n2', 'n3'], SHARDS);
    await Promise.all(nodes.map((n) => n.proc.start()));
  });

  after(async () => {
    for (const n of nodes) await n.proc.kill('SIGKILL');
    for (const n of nodes) rmDir(n.dir);
  });

  it('splits the shard of the history keys until they move, survives a SIGKILL, merges everything back: linearizable, nothing lost', async function () {
    try {
      await scenario();
    } catch (err) {
      for (const n of nodes) console.log(`--- ${n.id} stderr (tail)\n${n.proc.err.slice(-2500)}`);
      throw err;
    }
  });

  async function scenario(): Promise<void> {
    console.log(`      reshard: SEED=${seed} (SEED=${seed} replays the op choices)`);
    const addrs = nodes.map((n) => n.address);
    const admin = await CacheClient.connect(addrs, { timeoutMs: 5000 });
    const preload = new Map<string, number>();
    for (let i = 0; i < PRELOAD; i++) preload.set(`pre-${i}`, (await admin.put(`pre-${i}`, `value-${i}`)).version);

    const clients = await Promise.all(Array.from({ length: 4 }, () => CacheClient.connect(addrs, { timeoutMs: 5000 })));
    const load = new LinWorkload(seed, clients);
    const events: string[] = [];
    const t0 = Date.now();
    const note = (s: string): void => {
      events.push(`+${Date.now() - t0} ms ${s}`);
    };
    const owner = async (): Promise<number> => {
      await admin.refresh();
      return admin.shardOfKey({ primary: Buffer.from('lin'), secondary: Buffer.alloc(0) });
    };

    load.start();
    const splits: Array<{ parent: number; child: number; moved: number }> = [];
    try {
      await sleep(1000);
      // split the history keys' shard until they are in the half that moves
      for (let round = 0; round < 12; round++) {
        const parent = await owner();
        const via = nodes[(round + 1) % nodes.length]!;
        const res = await http(httpPort(via), 'POST', `/api/cluster/shards/${parent}/split`);
        expect(res.status, JSON.stringify(res.json)).to.equal(200);
        const [p, child] = res.json['shard_ids'] as number[];
        expect(p).to.equal(parent);
        splits.push({ parent, child: child!, moved: res.json['moved_keys'] as number });
        note(`split ${parent} -> ${parent}+${child} via ${via.id} (${String(res.json['moved_keys'])} keys, ${String(res.json['took_ms'])} ms)`);
        // every node learns the new placement through the metadata group, some a little after
        // the split answered: ask for the owner once none of them can still route by the old map
        for (const n of nodes) {
          await eventually(async () => {
            const r = await http(httpPort(n), 'GET', '/api/cluster/shards');
            const live = (r.json['shards'] as ShardRow[]).filter((s) => !s.retired).map((s) => s.shard_id);
            expect(live, `${n.id} knows shard ${child}`).to.include(child);
          }, 10000, 100);
        }
        if ((await owner()) === child) break;
      }
      expect(await owner(), 'the history keys moved to a split-off shard').to.equal(splits[splits.length - 1]!.child);
      await sleep(1500);

      note('SIGKILL n3');
      await nodes[2]!.proc.kill('SIGKILL');
      await sleep(1500);
      await nodes[2]!.proc.start();
      note('n3 restarted');
      await sleep(1500);

      // undo the splits, newest first: the child's keys move back into the parent
      for (const s of [...splits].reverse()) {
        const res = await http(httpPort(nodes[0]!), 'POST', `/api/cluster/shards/${s.parent}/merge`, JSON.stringify({ with: s.child }));
        expect(res.status, JSON.stringify(res.json)).to.equal(200);
        note(`merge ${s.child} into ${s.parent} (${String(res.json['moved_keys'])} keys, ${String(res.json['took_ms'])} ms)`);
      }
      await sleep(1000);
    } finally {
      await load.stop();
    }
    expect(splits.reduce((n, s) => n + s.moved, 0), 'keys moved by the splits').to.be.greaterThan(0);

    // every node converges to the original routing; merged-away replicas are gone everywhere
    for (const n of nodes) {
      await eventually(async () => {
        const r = await http(httpPort(n), 'GET', '/api/cluster/shards');
        const live = (r.json['shards'] as ShardRow[]).filter((s) => !s.retired);
        expect(live.map((s) => [s.shard_id, s.slot, s.hash_lo, s.hash_hi])).to.deep.equal(Array.from({ length: SHARDS }, (_, i) => [i, i, 0, 65536]));
        expect(r.json['reshard']).to.equal(null);
        const reps = await http(httpPort(n), 'GET', '/api/cluster/replicas');
        const ids = (reps.json['replicas'] as Array<{ shard: number | string }>).map((x) => x.shard).filter((x) => x !== 'meta');
        expect(ids.every((x) => (x as number) < SHARDS), `${n.id} replicas ${JSON.stringify(ids)}`).to.equal(true);
      }, 20000, 200);
    }
    for (const [k, version] of preload) {
      const g = await admin.get(k);
      expect(g, k).to.deep.include({ found: true, version });
      expect(g.value!.toString()).to.equal(`value-${k.slice(4)}`);
    }
    const scanned = await admin.rangeScan({ start: 'pre-', end: 'pre.', limit: 10000 });
    expect(scanned.length).to.equal(PRELOAD);
    await load.finish(nodes, events);

    // bad requests: clear errors, the cluster keeps serving
    const port = httpPort(nodes[1]!);
    expect((await http(port, 'POST', '/api/cluster/shards/999/split')).status).to.equal(404);
    expect((await http(port, 'POST', '/api/cluster/shards/abc/split')).status).to.equal(400);
    expect((await http(port, 'POST', '/api/cluster/shards/0/merge', '{}')).status).to.equal(400);
    const notAdjacent = await http(port, 'POST', '/api/cluster/shards/0/merge', JSON.stringify({ with: 1 }));
    expect(notAdjacent.status, JSON.stringify(notAdjacent.json)).to.equal(409);
    expect((await http(port, 'POST', `/api/cluster/shards/${splits[0]!.child}/merge`, JSON.stringify({ with: 0 }))).status).to.equal(404);
    expect((await admin.get('pre-1')).found).to.equal(true);
    admin.close();
    for (const c of clients) c.close();
  }

  it('the metadata leader is SIGKILLed in the middle of a split: the next one finishes it; every acknowledged write survives', async () => {
    const addrs = nodes.map((n) => n.address);
    const c = await CacheClient.connect(addrs, { timeoutMs: 10000 });
    // (outside the try: a failed assertion must stop the writers too, or they would spin on the
    // closed client's immediate rejections and starve the event loop)
    let writing = true;
    try {
      // a few MiB in one shard, so the copy takes a while
      const target = 2;
      const value = Buffer.alloc(2048, 7);
      const big: string[] = [];
      for (let i = 0; big.length < 1500; i++) if (c.shardOfKey({ primary: Buffer.from(`big-${i}`), secondary: Buffer.alloc(0) }) === target) big.push(`big-${i}`);
      for (let i = 0; i < big.length; i += 100) await c.multiPut(big.slice(i, i + 100).map((k) => ({ key: k, value })));
      const metaLeader = nodes.find((n) => n.id === 'n1')!; // founder 1 leads the metadata group
      expect((await http(httpPort(metaLeader), 'GET', '/api/health')).status).to.equal(200);

      // writers on fresh keys all through the split and the crash; each acknowledged one is kept
      const acked = new Map<string, number>();
      let failed = 0;
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; writing; i++) {
          const k = `live-${w}-${i}`;
          try {
            acked.set(k, (await c.put(k, `v-${k}`)).version);
          } catch {
            failed++;
          }
        }
      });

      const via = nodes[1]!;
      const split = http(httpPort(via), 'POST', `/api/cluster/shards/${target}/split`);
      // wait until the split is recorded, then kill the coordinator
      await eventually(async () => {
        const r = await http(httpPort(via), 'GET', '/api/cluster/shards');
        if (r.json['reshard'] === null) throw new Error('not recorded yet');
      }, 10000, 5);
      await metaLeader.proc.kill('SIGKILL');
      const answer = await split;
      // the forwarded request either ended with the first coordinator or found the move in progress
      expect([200, 409, 503], JSON.stringify(answer.json)).to.include(answer.status);

      // the new metadata leader resumes and finishes the split
      const done = await eventually(async () => {
        const r = await http(httpPort(via), 'GET', '/api/cluster/shards');
        if (r.json['reshard'] !== null) throw new Error('still in progress');
        return r.json['shards'] as ShardRow[];
      }, 60000, 200);
      const pieces = done.filter((s) => !s.retired && s.slot === target).sort((a, b) => a.hash_lo - b.hash_lo);
      expect(pieces.map((s) => [s.hash_lo, s.hash_hi])).to.deep.equal([[0, 32768], [32768, 65536]]);
      await metaLeader.proc.start();
      await sleep(1000);
      writing = false;
      await Promise.all(writers);

      for (const k of big) {
        const g = await c.get(k);
        expect(g.found, k).to.equal(true);
        expect(g.value!.equals(value), k).to.equal(true);
      }
      for (const [k, version] of acked) expect(await c.get(k), k).to.deep.include({ found: true, version });
      console.log(`      split of shard ${target} (${big.length} x 2 KiB) survived the coordinator's SIGKILL (answer ${answer.status}); ${acked.size} writes acknowledged, ${failed} failed, all readable`);

      // and merged back through the restarted cluster
      const res = await http(httpPort(nodes[0]!), 'POST', `/api/cluster/shards/${target}/merge`, JSON.stringify({ with: pieces[1]!.shard_id }));
      expect(res.status, JSON.stringify(res.json)).to.equal(200);
      expect(res.json['moved_keys'] as number).to.be.greaterThan(500);
      for (const k of big) expect((await c.get(k)).found, k).to.equal(true);
    } finally {
      writing = false;
      c.close();
    }
  });
});

describe('server: automatic split (cluster.split_shard_mb)', function () {
  this.timeout(120000);
  let srv: ServerProc | undefined;
  let dir = '';

  after(async () => {
    await srv?.kill('SIGKILL');
    if (dir) rmDir(dir);
  });

  it('splits shards that outgrow the threshold until none does; every key stays readable', async () => {
    dir = tmpDir();
    const ports = await freePorts(4);
    srv = new ServerProc({ args: singleNodeArgs(dir, ports), env: { DISTCACHE_CLUSTER_SHARD_COUNT: '2', DISTCACHE_CLUSTER_SPLIT_SHARD_MB: '1', DISTCACHE_CLUSTER_SPLIT_CHECK_MS: '300', DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000' } });
    await srv.start();
    const c = await CacheClient.connect([`127.0.0.1:${ports[0]}`], { timeoutMs: 10000 });
    try {
      const value = Buffer.alloc(4096, 3);
      const keys = Array.from({ length: 900 }, (_, i) => `auto-${i}`); // ~3.6 MiB over 2 shards
      for (let i = 0; i < keys.length; i += 50) await c.multiPut(keys.slice(i, i + 50).map((k) => ({ key: k, value })));
      // ~1.8 MiB per shard: each splits (once, or twice where the hash put more keys in one half)
      // until it settles: no split for 2 s (several check periods)
      let last = -1;
      const shards = await eventually(async () => {
        const r = await http(ports[2]!, 'GET', '/api/cluster/shards');
        const live = (r.json['shards'] as ShardRow[]).filter((s) => !s.retired);
        const settled = live.length === last && r.json['reshard'] === null;
        last = live.length;
        if (!settled || live.length < 4) throw new Error(`${live.length} shards`);
        return live;
      }, 60000, 2000);
      // ~1.8 MiB per slot: every slot split at least once, and no piece smaller than an eighth
      expect(new Set(shards.map((s) => s.slot)).size).to.equal(2);
      for (const slot of [0, 1]) expect(shards.filter((s) => s.slot === slot).length, `pieces of slot ${slot}`).to.be.within(2, 4);
      for (const k of keys) expect((await c.get(k)).found, k).to.equal(true);
      expect(srv.err).to.match(/holds \d+\.\d MiB \(> 1\.0 MiB\): splitting it/);
    } finally {
      c.close();
    }
  });
});
