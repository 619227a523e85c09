// The elastic cluster end to end, with real cache-server processes under continuous checked
// client load (lin-workload.ts): one node started alone grows to five through --seeds (each
// joiner admitted by the metadata leader, shards re-placed by the ring and moved by their
// leaders: learner, catch-up, promotion, removal), one node is decommissioned
// (DELETE /api/cluster/nodes/:id: drained, then removed), one is SIGKILLed and marked down after
// cluster.down_after_ms, and its replicas are re-created on the others. At every stage the
// cluster converges to the placement; at the end every shard has exactly 3 voters on live
// nodes, every acknowledged write is readable and the recorded history is linearizable.
import { expect } from 'chai';
import { CacheClient } from '../../src/client/index.js';
import { ServerProc, connect, eventually, freePorts, http, rmDir, tmpDir } from './harness.js';
import { LinWorkload, testSeed } from './lin-workload.js';

const SHARDS = 8;
const RF = 3;
const DOWN_AFTER_MS = 3000;

interface ElasticNode {
  id: string;
  address: string;
  httpPort: number;
  dir: string;
  proc: ServerProc;
}

interface NodeView {
  id: string;
  state: string;
  replicas: number | null;
  leaders: number | null;
  placement_replicas: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('server: elastic cluster (join, rebalance, decommission, re-replication under load)', function () {
  this.timeout(300000);
  const seed = testSeed();
  const nodes: ElasticNode[] = [];
  let ports: number[] = [];

  function spec(i: number, seeds: ElasticNode[]): ElasticNode {
    const id = `n${i + 1}`;
    const [client, peer, httpPort, metrics] = ports.slice(i * 4, i * 4 + 4) as [number, number, number, number];
    const dir = tmpDir();
    const proc = new ServerProc({
      args: ['--node-id', id, '--port', String(client), '--peer-port', String(peer), '--http-port', String(httpPort), '--metrics-port', String(metrics), '--data-dir', dir, ...(seeds.length > 0 ? ['--seeds', seeds.map((s) => s.address).join(',')] : [])],
      env: {
        DISTCACHE_CLUSTER_SHARD_COUNT: String(SHARDS),
        DISTCACHE_SERVER_REQUEST_TIMEOUT_MS: '5000',
        DISTCACHE_SERVER_LISTEN_ADDRESS: '127.0.0.1',
        DISTCACHE_CLUSTER_DOWN_AFTER_MS: String(DOWN_AFTER_MS),
      },
    });
    const n = { id, address: `127.0.0.1:${client}`, httpPort, dir, proc };
    nodes.push(n);
    return n;
  }

  const alive = (n: ElasticNode): boolean => n.proc.proc !== undefined && n.proc.proc.exitCode === null && n.proc.proc.signalCode === null;

  /** placement epoch of the last convergence: the next one must be a newer placement */
  let epoch = 0;

  async function view(via: ElasticNode): Promise<NodeView[]> {
    const r = await http(via.httpPort, 'GET', '/api/cluster/nodes');
    return r.json['nodes'] as NodeView[];
  }

  /** Waits until exactly `ids` are members, all up, each holding what a placement newer than the
   *  last convergence gives it. */
  async function converged(ids: string[], via: ElasticNode, timeoutMs = 60000): Promise<NodeView[]> {
    const end = Date.now() + timeoutMs;
    let last: NodeView[] = [];
    while (Date.now() < end) {
      try {
        const r = await http(via.httpPort, 'GET', '/api/cluster/nodes');
        last = r.json['nodes'] as NodeView[];
        const placed = last.reduce((a, n) => a + n.placement_replicas, 0);
        if (
          (r.json['epoch'] as number) > epoch &&
          last.length === ids.length &&
          last.every((n) => ids.includes(n.id) && n.state === 'up' && n.replicas === n.placement_replicas) &&
          placed === SHARDS * Math.min(RF, ids.length) &&
          (await groupsMatchPlacement(nodes.filter((n) => ids.includes(n.id) && alive(n))))
        ) {
          epoch = r.json['epoch'] as number;
          if (process.env['ELASTIC_DEBUG']) console.log(`      converged epoch ${epoch}: ${JSON.stringify(last)}`);
          return last;
        }
      } catch {
        /* the node is busy; ask again */
      }
      await sleep(250);
    }
    throw new Error(`cluster did not converge to ${ids.join(',')}: ${JSON.stringify(last)}`);
  }

  /** Every shard's leader (as the live nodes report) has exactly the placement's replicas as
   *  voters and no learner: the moves are done, not merely balanced in count. */
  async function groupsMatchPlacement(live: ElasticNode[]): Promise<boolean> {
    const info = connect(live[0]!.address);
    let placement: Array<{ replicas: string[] }>;
    let raftIds: Map<string, number>;
    try {
      const ci = await info.call('ClusterInfo', {}, 2000);
      placement = ci['shards'] as Array<{ replicas: string[] }>;
      raftIds = new Map((ci['members'] as Array<{ node_id: string; raft_id: number }>).map((m) => [m.node_id, m.raft_id]));
    } finally {
      info.close();
    }
    const leaders = new Map<string, { voters: number[]; learners: number[] }>();
    for (const n of live) {
      const rep = await http(n.httpPort, 'GET', '/api/cluster/replicas');
      for (const x of rep.json['replicas'] as Array<{ shard: number | string; role: string; voters: number[]; learners: number[] }>) {
        if (x.role === 'Leader' && x.shard !== 'meta') leaders.set(String(x.shard), x);
      }
    }
    return placement.every((p, shard) => {
      const g = leaders.get(String(shard));
      const want = p.replicas.map((r) => raftIds.get(r)).sort();
      return g !== undefined && g.learners.length === 0 && JSON.stringify([...g.voters].sort()) === JSON.stringify(want);
    });
  }

  /** Every shard's leader reports exactly `voters` voters, all in `allowed`, and no learner. */
  async function checkReplication(live: ElasticNode[], voters: number): Promise<void> {
    const raftIds = new Map<string, number>();
    const leaders = new Map<string, { voters: number[]; learners: number[] }>();
    for (const n of live) {
      const r = await http(n.httpPort, 'GET', '/api/cluster/nodes');
      for (const m of r.json['nodes'] as Array<{ id: string; raft_id: number }>) raftIds.set(m.id, m.raft_id);
      const rep = await http(n.httpPort, 'GET', '/api/cluster/replicas');
      for (const x of rep.json['replicas'] as Array<{ shard: number | string; role: string; voters: number[]; learners: number[] }>) {
        if (x.role === 'Leader' && x.shard !== 'meta') leaders.set(String(x.shard), x);
      }
    }
    const allowed = new Set(live.map((n) => raftIds.get(n.id)));
    expect([...leaders.keys()].sort(), 'every shard has a leader').to.have.length(SHARDS);
    for (const [shard, g] of leaders) {
      expect(g.voters, `shard ${shard} voters`).to.have.length(voters);
      expect(g.learners, `shard ${shard} learners`).to.deep.equal([]);
      for (const v of g.voters) expect(allowed.has(v), `shard ${shard}: voter ${v} is a live member`).to.equal(true);
    }
  }

  after(async () => {
    for (const n of nodes) {
      await n.proc.kill('SIGKILL');
      rmDir(n.dir);
    }
  });

  it('grows 1 -> 5 by --seeds, decommissions one, re-replicates a SIGKILLed one; acknowledged writes survive, history linearizable', async () => {
    console.log(`      elastic: SEED=${seed}`);
    ports = await freePorts(5 * 4);
    const events: string[] = [];
    const t0 = Date.now();
    const note = (s: string): void => {
      events.push(`+${Date.now() - t0} ms ${s}`);
      if (process.env['ELASTIC_DEBUG']) console.log(`      ${events[events.length - 1]}`);
    };
    const n1 = spec(0, []);
    await n1.proc.start();
    const clients = await Promise.all(Array.from({ length: 3 }, () => CacheClient.connect([n1.address], { timeoutMs: 3000 })));
    const load = new LinWorkload(seed, clients);
    load.start();
    let failure: unknown;
    try {
      await sleep(1000);
      for (let i = 1; i < 5; i++) {
        const n = spec(i, nodes.slice(0, i));
        await n.proc.start();
        note(`${n.id} joined`);
        await converged(nodes.map((x) => x.id), n1);
        note(`converged at ${i + 1} nodes`);
      }
      expect(n1.proc.out + n1.proc.err).to.not.match(/host loop failed/);
      await eventually(() => checkReplication(nodes, RF), 15000, 250);
      // the joined nodes lead shards too (leader balancing)
      const v5 = await view(n1);
      expect(v5.filter((n) => (n.leaders ?? 0) > 0).length, JSON.stringify(v5)).to.be.at.least(3);

      // decommission n2: drained, then removed
      const d = await http(n1.httpPort, 'DELETE', '/api/cluster/nodes/n2');
      expect(d.status, JSON.stringify(d.json)).to.equal(200);
      expect(d.json).to.include({ state: 'draining' });
      note('n2 decommissioned');
      const rest = nodes.filter((n) => n.id !== 'n2');
      await converged(rest.map((n) => n.id), n1);
      note('n2 drained and removed');
      const n2 = nodes.find((n) => n.id === 'n2')!;
      await n2.proc.kill('SIGTERM');

      // SIGKILL n3: marked down after DOWN_AFTER_MS, its replicas re-created elsewhere
      const n3 = nodes.find((n) => n.id === 'n3')!;
      await n3.proc.kill('SIGKILL');
      note('n3 SIGKILLed');
      const deadline = Date.now() + 60000;
      for (;;) {
        const v = await view(n1);
        if (v.find((n) => n.id === 'n3')?.state === 'down') break;
        if (Date.now() > deadline) throw new Error(`n3 never marked down: ${JSON.stringify(v)}`);
        await sleep(250);
      }
      note('n3 marked down');
      const live = rest.filter((n) => n.id !== 'n3');
      // placement over the live members: each of them holds what it is given
      const end = Date.now() + 90000;
      for (;;) {
        const r = await http(n1.httpPort, 'GET', '/api/cluster/nodes');
        const v = r.json['nodes'] as NodeView[];
        const others = v.filter((n) => n.id !== 'n3');
        const down = v.find((n) => n.id === 'n3');
        if ((r.json['epoch'] as number) > epoch && down?.placement_replicas === 0 && others.every((n) => n.state === 'up' && n.replicas === n.placement_replicas) && others.reduce((a, n) => a + n.placement_replicas, 0) === SHARDS * RF) break;
        if (Date.now() > end) throw new Error(`no re-replication: ${JSON.stringify(v)}`);
        await sleep(250);
      }
      note('re-replicated');
      await sleep(1000);
      await eventually(() => checkReplication(live, RF), 15000, 250);

      // a joined node restarting on its data comes back as itself (IDENTITY), no re-join
      const n5 = nodes.find((n) => n.id === 'n5')!;
      await n5.proc.kill('SIGKILL');
      await n5.proc.start();
      note('n5 SIGKILLed and restarted');
      await eventually(async () => {
        const v = await view(n1);
        const me = v.find((n) => n.id === 'n5');
        if (me?.state !== 'up' || me.replicas !== me.placement_replicas) throw new Error(JSON.stringify(me));
      }, 30000, 250);
      // n3 comes back: marked up, the ring gives it replicas again (caught up by snapshot and
      // log), and the replicas the groups removed while it was down are destroyed, not left
      // campaigning: it ends up holding exactly what the placement gives it
      await n3.proc.start();
      note('n3 restarted');
      await converged(['n1', 'n3', 'n4', 'n5'], n1);
      note('n3 back in: converged');
      await eventually(() => checkReplication(nodes.filter((n) => n.id !== 'n2'), RF), 15000, 250);

      // a different node claiming a live member's id is refused with a clear error
      const [p1, p2, p3, p4] = await freePorts(4);
      const impostorDir = tmpDir();
      const impostor = await ServerProc.run(
        ['--node-id', 'n4', '--port', String(p1), '--peer-port', String(p2), '--http-port', String(p3), '--metrics-port', String(p4), '--data-dir', impostorDir, '--seeds', n1.address],
        { DISTCACHE_SERVER_LISTEN_ADDRESS: '127.0.0.1', DISTCACHE_CLUSTER_SHARD_COUNT: String(SHARDS) },
      );
      rmDir(impostorDir);
      expect(impostor.code, impostor.err).to.equal(2);
      expect(impostor.err).to.match(/ALREADY_EXISTS: node id n4 is taken by a live node/);
      expect(load.acknowledgedOps).to.be.greaterThan(100);
    } catch (e) {
      failure = e;
    } finally {
      await load.stop();
    }
    note('clients stopped');
    if (failure) {
      console.log(`      ${events.join('; ')}`);
      throw failure;
    }
    try {
      await load.finish(nodes.filter(alive), events);
    } finally {
      for (const c of clients) c.close();
    }
  });
});
