// Replica moves inside the multi-Raft host: a new node's replica is created on demand when the
// leader adds it as a learner, catches up (snapshot + log), is promoted; an old replica that is
// removed from its group is destroyed (Raft state and shard data); a restart remembers both.
import { expect } from 'chai';
import { ConfChangeType } from '../../src/raft/index.js';
import { MultiRaftHost } from '../../src/store/host.js';
import { TestCluster, waitFor } from './helpers.js';

const enc = (s: string): Buffer => Buffer.from(s);

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a rejection').to.be.instanceOf(Error);
  expect((err as Error).message).to.match(re);
}

describe('store: replica membership changes', function () {
  this.timeout(60000);
  let c: TestCluster;

  afterEach(async () => {
    await c?.closeAll();
  });

  async function startNew(id: number, allow: (shard: number) => boolean): Promise<MultiRaftHost> {
    const dir = c.dirs.get(id)!;
    const h = await MultiRaftHost.open({ nodeId: id, dataDir: dir, transport: c.hub.transport(id), tickMs: 10, electionTick: 10, heartbeatTick: 2, snapshotEntries: 50, mayCreateReplica: allow });
    c.hosts.set(id, h);
    return h;
  }

  it('moves a replica from node 3 to node 4 with learner, promotion and removal; data follows', async () => {
    c = new TestCluster([1, 2, 3, 4], [0, 1], { snapshotEntries: 50 });
    // nodes 1..3 found shards 0 and 1; node 4 starts empty
    for (const id of [1, 2, 3]) {
      const h = await MultiRaftHost.open({ nodeId: id, dataDir: c.dirs.get(id)!, transport: c.hub.transport(id), tickMs: 10, electionTick: 10, heartbeatTick: 2, snapshotEntries: 50 });
      await h.addShards([0, 1].map((shardId) => ({ shardId, replicas: [1, 2, 3] })));
      c.hosts.set(id, h);
    }
    const h4 = await startNew(4, (s) => s === 0);
    c.hosts.get(1)!.campaign(0);
    await waitFor(() => c.hosts.get(1)!.isLeader(0), 30000, 'leader of shard 0');
    const leader = c.hosts.get(1)!;
    // more entries than snapshotEntries: the learner needs a snapshot, then the log
    for (let i = 0; i < 120; i++) await leader.propose(0, { ops: [{ type: 'put', key: enc(`k${i}`), value: enc(`v${i}`) }] });

    expect(h4.hasReplica(0)).to.equal(false);
    let conf = await leader.changeReplicas(0, { changes: [{ type: ConfChangeType.AddLearner, nodeId: 4 }] });
    expect(conf.learners).to.deep.equal([4]);
    await waitFor(() => h4.hasReplica(0) && h4.appliedIndex(0) >= leader.appliedIndex(0), 10000, 'learner catch-up');
    expect(h4.readLocal(0, enc('k119')).value?.toString()).to.equal('v119');
    expect(h4.readLocal(0, enc('k0')).value?.toString()).to.equal('v0');
    // a message for shard 1 must not create a replica there (placement says no)
    expect(h4.hasReplica(1)).to.equal(false);

    conf = await leader.changeReplicas(0, { changes: [{ type: ConfChangeType.AddVoter, nodeId: 4 }] });
    expect(conf.voters).to.deep.equal([1, 2, 3, 4]);
    conf = await leader.changeReplicas(0, { changes: [{ type: ConfChangeType.RemoveNode, nodeId: 3 }] });
    expect(conf.voters).to.deep.equal([1, 2, 4]);
    const h3 = c.hosts.get(3)!;
    // node 3 applies its removal but keeps the replica (quiet: it cannot campaign) until told
    // by the leader's word — here, the test — that the group removed it
    await waitFor(() => !h3.replicaStatus(0).confState.voters.includes(3), 10000, 'node 3 applies its removal');
    expect(h3.hasReplica(0)).to.equal(true);
    await h3.destroyRemovedReplica(0);
    expect(h3.hasReplica(0)).to.equal(false);
    expect(h3.readLocal(0, enc('k5')).found).to.equal(false);
    expect(h3.hasReplica(1)).to.equal(true);

    // the group still commits with node 3 gone, and node 4 can lead it
    await c.stop(3);
    const v = await leader.propose(0, { ops: [{ type: 'put', key: enc('after'), value: enc('move') }] });
    expect(v.applied).to.equal(true);
    leader.transferLeader(0, 4);
    await waitFor(() => h4.isLeader(0), 10000, 'node 4 leads shard 0');
    expect((await h4.read(0, enc('after'))).value?.toString()).to.equal('move');

    // restarts remember: node 3 no longer has shard 0, node 4 has it with the data
    await c.stop(4);
    const h4b = await startNew(4, () => false);
    expect(h4b.hasReplica(0)).to.equal(true);
    expect(h4b.readLocal(0, enc('k77')).value?.toString()).to.equal('v77');
    // the membership changes after its snapshot are part of its configuration after a restart
    expect(h4b.replicaStatus(0).confState.voters).to.deep.equal([1, 2, 4]);
    const h3b = await MultiRaftHost.open({ nodeId: 3, dataDir: c.dirs.get(3)!, transport: c.hub.transport(3), tickMs: 10 });
    c.hosts.set(3, h3b);
    expect(h3b.hasReplica(0)).to.equal(false);
    expect(h3b.hasReplica(1)).to.equal(true);
  });

  it('a new replica replaying configurations from before it was added does not destroy itself', async () => {
    c = new TestCluster([1, 2, 3, 4], [0]);
    for (const id of [1, 2, 3]) {
      const h = await MultiRaftHost.open({ nodeId: id, dataDir: c.dirs.get(id)!, transport: c.hub.transport(id), tickMs: 10, electionTick: 10, heartbeatTick: 2 });
      await h.addShards([{ shardId: 0, replicas: [1, 2, 3] }]);
      c.hosts.set(id, h);
    }
    c.hosts.get(1)!.campaign(0);
    await waitFor(() => c.hosts.get(1)!.isLeader(0), 30000, 'leader of shard 0');
    const leader = c.hosts.get(1)!;
    // history before node 4 exists: a learner 9 comes and goes (configurations without node 4)
    await leader.changeReplicas(0, { changes: [{ type: ConfChangeType.AddLearner, nodeId: 9 }] });
    for (let i = 0; i < 20; i++) await leader.propose(0, { ops: [{ type: 'put', key: enc(`h${i}`), value: enc(`v${i}`) }] });
    await leader.changeReplicas(0, { changes: [{ type: ConfChangeType.RemoveNode, nodeId: 9 }] });
    // node 4 joins with no snapshot newer than the bootstrap one: it replays all of that
    const h4 = await startNew(4, () => true);
    await leader.changeReplicas(0, { changes: [{ type: ConfChangeType.AddLearner, nodeId: 4 }] });
    await waitFor(() => h4.hasReplica(0) && h4.appliedIndex(0) >= leader.appliedIndex(0), 20000, 'learner catch-up');
    expect(h4.stats.replicasDestroyed).to.equal(0);
    expect(h4.replicaStatus(0).confState.learners).to.deep.equal([4]);
    expect(h4.readLocal(0, enc('h19')).value?.toString()).to.equal('v19');
  });

  it('refuses a second membership change while one is in flight, and on a follower', async () => {
    c = new TestCluster([1, 2, 3], [0]);
    await c.startAll();
    c.hosts.get(1)!.campaign(0);
    await c.waitLeaders();
    const leader = c.leader(0)!;
    const follower = [...c.hosts.values()].find((h) => h !== leader)!;
    await rejects(follower.changeReplicas(0, { changes: [{ type: ConfChangeType.AddLearner, nodeId: 9 }] }), /NOT_LEADER/);
    const first = leader.changeReplicas(0, { changes: [{ type: ConfChangeType.AddLearner, nodeId: 9 }] });
    await rejects(leader.changeReplicas(0, { changes: [{ type: ConfChangeType.AddLearner, nodeId: 8 }] }), /in progress/);
    expect((await first).learners).to.deep.equal([9]);
  });
});
