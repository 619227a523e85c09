// Client-side linearizability of a real 3-process cluster under crashes: several CacheClients run
// random get / put / putIfVersionMatch / remove on a few keys (so operations conflict) while the
// leader of the keys' shard is SIGKILLed and restarted on its data directory, then cut off from
// the other nodes by a network partition (the nodes talk through NetProxy links) and healed,
// then SIGKILLed and restarted again. Every
// operation is recorded with its invocation and response time (HistoryRecorder); an operation
// that failed with an unknown outcome (timeout, PROPOSAL_DROPPED, connection lost after sending)
// is recorded as such, and the checker may let it take effect or not. The history is checked
// per key (src/testing/linearizability.ts). Separately, "witness" keys written once each must all
// be readable, with their acknowledged versions, on every node after the last restart.
//
// The op choices come from a seeded rng: the seed is printed, SEED=n replays the choices (the
// interleaving with the crashes is up to the scheduler).
import { expect } from 'chai';
import { CacheClient } from '../../src/client/index.js';
import { connect, eventually } from './harness.js';
import { LinWorkload, testSeed } from './lin-workload.js';
import { ProxiedCluster, type ProxiedNode } from './proxied-cluster.js';

const SHARDS = 8;
const CLIENTS = 5;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('server: linearizability under leader crashes and a partition (3 processes, checked history)', function () {
  this.timeout(120000);
  const seed = testSeed();
  let cluster: ProxiedCluster;
  let nodes: ProxiedNode[] = [];

  before(async () => {
    cluster = await ProxiedCluster.create(['n1', 'n2', 'n3'], SHARDS);
    nodes = cluster.nodes;
    await cluster.start();
  });

  after(async () => {
    await cluster?.destroy();
  });

  it('concurrent clients on 4 keys while the shard leader is SIGKILLed, partitioned away, SIGKILLed again: the history is linearizable, no acknowledged write is lost', async () => {
    console.log(`      linearizability: SEED=${seed} (SEED=${seed} replays the op choices)`);
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => CacheClient.connect(nodes.map((n) => n.address), { timeoutMs: 2000 })));
    const load = new LinWorkload(seed, clients);

    /** The leader of the history keys' shard, as a live node sees it. */
    async function shardLeader(): Promise<ProxiedNode> {
      const shard = clients[0]!.shardOfKey({ primary: Buffer.from('lin'), secondary: Buffer.alloc(0) });
      return eventually(async () => {
        for (const n of nodes) {
          if (n.proc.proc?.exitCode !== null || n.proc.proc.signalCode !== null) continue;
          const kv = connect(n.address);
          try {
            const info = await kv.call('ClusterInfo', {}, 1000);
            const leader = (info['shards'] as Array<{ leader: string }>)[shard]!.leader;
            const node = nodes.find((x) => x.id === leader);
            if (node) return node;
          } finally {
            kv.close();
          }
        }
        throw new Error('no leader known');
      }, 10000, 100);
    }

    load.start();
    const events: string[] = [];
    const t0 = Date.now();
    const note = (s: string): void => {
      events.push(`+${Date.now() - t0} ms ${s}`);
    };
    let nemesisError: unknown;
    try {
      for (const fault of ['kill', 'partition', 'kill'] as const) {
        await sleep(2500);
        const victim = await shardLeader();
        if (fault === 'kill') {
          note(`SIGKILL ${victim.id} (leader of the keys' shard)`);
          await victim.proc.kill('SIGKILL');
          await sleep(3000);
          await victim.proc.start();
          note(`${victim.id} restarted`);
        } else {
          note(`isolate ${victim.id} (leader of the keys' shard)`);
          cluster.isolate(victim.id);
          await sleep(3000);
          cluster.heal();
          note('healed');
        }
      }
      await sleep(2500);
    } catch (e) {
      nemesisError = e;
    } finally {
      await load.stop();
    }
    note('clients stopped');
    if (nemesisError) throw nemesisError;
    try {
      await load.finish(nodes, events);
    } finally {
      for (const c of clients) c.close();
    }
    // the run did exercise the faults: some ops had to ride out a missing leader
    expect(load.rec.history().length).to.be.greaterThan(200);
  });
});
