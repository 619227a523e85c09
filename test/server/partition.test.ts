// A real network partition between three cache-server processes: every node reaches the others
// only through NetProxy links (proxied-cluster.ts), and a partition cuts links, never processes.
// Asserts the minority side cannot serve linearizable reads or writes (it fails within the
// deadline, never succeeds, never returns the value the majority has overwritten), the majority
// side elects a leader and keeps serving, and after heal() the cut-off node catches up with no
// acknowledged write lost and no write it accepted while cut off surviving.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { CacheClient, toPKey } from '../../src/client/index.js';
import { connect, eventually, key, settledLeaders, type KvClient } from './harness.js';
import { ProxiedCluster } from './proxied-cluster.js';

const SHARDS = 8;
const IDS = ['n1', 'n2', 'n3'];
/** What a node that cannot reach a quorum may answer: no leader / not the leader / out of time. */
const REFUSALS = [grpc.status.UNAVAILABLE, grpc.status.FAILED_PRECONDITION, grpc.status.DEADLINE_EXCEEDED];

interface ShardInfo {
  shard_id: number;
  leader: string;
  replicas: string[];
}

describe('server: network partition (3 processes behind TCP proxies)', function () {
  this.timeout(120000);
  let cluster: ProxiedCluster;
  const raw = new Map<string, KvClient>(); // node id -> a grpc client pinned to that node
  let all: CacheClient; // routes through every node
  const acked = new Map<string, { value: string; version: number }>();

  before(async () => {
    cluster = await ProxiedCluster.create(IDS, SHARDS);
    await cluster.start();
    for (const n of cluster.nodes) raw.set(n.id, connect(n.address));
    await eventually(async () => {
      for (const id of IDS) {
        const shards = (await raw.get(id)!.call('ClusterInfo', {}))['shards'] as ShardInfo[];
        expect(shards.every((s) => s.leader !== ''), `${id} knows every leader`).to.equal(true);
      }
    }, 20000, 200);
    all = await CacheClient.connect(cluster.nodes.map((n) => n.address), { timeoutMs: 15000 });
    for (let i = 0; i < 16; i++) await ackedPut(all, `base:${i}`, `b${i}`);
  });

  after(async () => {
    all?.close();
    for (const c of raw.values()) c.close();
    await cluster?.destroy();
  });

  /** A put that is retried until it is acknowledged: the client may still route to the cut-off
   *  node (it learned its address), whose answer is then an unknown outcome (PROPOSAL_DROPPED,
   *  TIMEOUT). Such an attempt must never take effect later, which expectAllAcked checks: the
   *  acknowledged version has to stay the key's latest. */
  async function ackedPut(c: CacheClient, k: string, v: string): Promise<number> {
    const { version } = await eventually(() => c.put(k, v), 20000, 50);
    acked.set(k, { value: v, version });
    return version;
  }

  /** The shard's leader as the node `via` sees it ('' when it knows none). */
  async function leaderSeenBy(via: string, shard: number): Promise<string> {
    const shards = (await raw.get(via)!.call('ClusterInfo', {}))['shards'] as ShardInfo[];
    return shards[shard]!.leader;
  }

  /** A leader that every node agrees on. */
  async function agreedLeader(shard: number): Promise<string> {
    return eventually(async () => {
      const seen = await Promise.all(IDS.map((id) => leaderSeenBy(id, shard)));
      expect(new Set(seen).size, `views of shard ${shard}: ${seen.join(',')}`).to.equal(1);
      expect(seen[0]).to.not.equal('');
      return seen[0]!;
    }, 20000, 100);
  }

  /** A call pinned to one node that must fail with a refusal code; returns the status. */
  async function refused(node: string, method: string, req: object, deadlineMs: number): Promise<grpc.ServiceError> {
    const res = await raw.get(node)!.call(method, req, deadlineMs).then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e: e as grpc.ServiceError }),
    );
    if (res.ok) expect.fail(`${method} on cut-off ${node} succeeded: ${JSON.stringify(res.r)}`);
    expect(REFUSALS, `${method} on ${node}: ${res.e.code} ${res.e.details}`).to.include(res.e.code);
    return res.e;
  }

  /** Linearizable Gets of `k` pinned to `node`, one after another, until one is refused (a
   *  refusal code); fails if none is within `withinMs`. Returns the answered ones. */
  async function readsUntilRefused(node: string, k: string, withinMs: number): Promise<Array<{ version: number; startedAt: number }>> {
    const answered: Array<{ version: number; startedAt: number }> = [];
    const end = Date.now() + withinMs;
    while (Date.now() < end) {
      const startedAt = Date.now();
      const res = await raw.get(node)!.call('Get', { key: key(k) }, 1000).then(
        (r) => ({ ok: true as const, r }),
        (e: unknown) => ({ ok: false as const, e: e as grpc.ServiceError }),
      );
      if (!res.ok) {
        expect(REFUSALS, `Get on ${node}: ${res.e.code} ${res.e.details}`).to.include(res.e.code);
        return answered;
      }
      answered.push({ version: Number(res.r['version']), startedAt });
    }
    return expect.fail(`Get on cut-off ${node} still answered after ${withinMs} ms (${answered.length} answers)`);
  }

  /** Reads every acknowledged key through `node` (a ReadIndex read, served from its own state). */
  async function expectAllAcked(node: string): Promise<void> {
    for (const [k, w] of acked) {
      const g = await eventually(() => raw.get(node)!.call('Get', { key: key(k) }, 3000), 20000, 100);
      expect(g, `${node} ${k}`).to.include({ found: true, version: w.version });
      expect((g['value'] as Buffer).toString(), `${node} ${k}`).to.equal(w.value);
    }
  }

  it('an isolated shard leader: refuses reads and writes, the majority elects a new leader and serves, heal() catches it up', async () => {
    const k = 'part:leader';
    const shard = all.shardOfKey(toPKey(k));
    const v0 = await ackedPut(all, k, 'before');
    const old = await agreedLeader(shard);
    const majority = IDS.filter((id) => id !== old);
    cluster.isolate(old);

    // While `old` may still believe it leads (CheckQuorum takes an election timeout), it must
    // not commit a write. It may answer reads from its leader lease (cluster.read_mode lease, the
    // default), which is linearizable only if no other leader can be elected meanwhile: so every
    // read it answers must return v0 and have started before the majority acknowledged a newer
    // write; and once the lease is over it must refuse.
    const maj = await CacheClient.connect(majority.map((id) => cluster.node(id).address), { timeoutMs: 5000 });
    try {
      let majorityAckedAt = Number.POSITIVE_INFINITY;
      const [, leaseReads, v1] = await Promise.all([
        refused(old, 'Put', { key: key(k), value: Buffer.from('minority-put') }, 3000),
        readsUntilRefused(old, k, 5000),
        ackedPut(maj, k, 'majority').then((v) => {
          majorityAckedAt = Date.now();
          return v;
        }),
      ]);
      expect(v1).to.be.greaterThan(v0);
      for (const r of leaseReads) {
        expect(r.version, 'a read answered by the cut-off leader').to.equal(v0);
        expect(r.startedAt, 'a read the cut-off leader answered after the majority acknowledged a newer write').to.be.below(majorityAckedAt);
      }
      // the majority agrees on a new leader of the shard
      const fresh = await eventually(async () => {
        const seen = await Promise.all(majority.map((id) => leaderSeenBy(id, shard)));
        expect(seen[0]).to.be.oneOf(majority);
        expect(seen[1]).to.equal(seen[0]);
        return seen[0]!;
      }, 15000, 100);
      expect(fresh).to.not.equal(old);
      // it keeps serving, on every shard (the cut-off node led some of them)
      for (let i = 0; i < 16; i++) await ackedPut(maj, `during:${i}`, `d${i}`);
      expect((await maj.get(k)).value!.toString()).to.equal('majority');
      // the cut-off node, by now stepped down or not, never answers with the overwritten value
      for (let i = 0; i < 4; i++) {
        await refused(old, 'Get', { key: key(k) }, 1000);
        await refused(old, 'Put', { key: key(k), value: Buffer.from('minority-put-2') }, 1000);
        await refused(old, 'Get', { key: key('during:0') }, 1000);
      }
    } finally {
      maj.close();
      cluster.heal();
    }

    const g = await eventually(() => raw.get(old)!.call('Get', { key: key(k) }, 3000), 20000, 100);
    expect(g).to.include({ found: true, version: acked.get(k)!.version });
    expect((g['value'] as Buffer).toString()).to.equal('majority');
    for (const id of IDS) await expectAllAcked(id);
  });

  it('an isolated follower (black-holed links): never serves a stale read, the leader side keeps serving, heal() catches it up', async () => {
    // a shard whose leader is not the node we cut off, and a key on it
    await settledLeaders([...raw.values()]);
    const cut = 'n2';
    let shard = -1;
    let leader = '';
    for (let s = 0; s < SHARDS && shard < 0; s++) {
      const l = await agreedLeader(s);
      if (l !== cut) {
        shard = s;
        leader = l;
      }
    }
    expect(shard, `${cut} leads every shard`).to.be.at.least(0);
    let k = '';
    for (let i = 0; k === '' && i < 1000; i++) if (all.shardOfKey(toPKey(`part:f${i}`)) === shard) k = `part:f${i}`;
    const v0 = await ackedPut(all, k, 'old');
    // the follower has it (a read through it succeeds) before the cut
    expect(await eventually(() => raw.get(cut)!.call('Get', { key: key(k) }, 3000))).to.include({ found: true, version: v0 });

    cluster.isolate(cut, 'blackhole');
    const others = IDS.filter((id) => id !== cut);
    const maj = await CacheClient.connect(others.map((id) => cluster.node(id).address), { timeoutMs: 5000 });
    try {
      // the shard's leader is on the connected side: a write lands without an election
      const v1 = await ackedPut(maj, k, 'new');
      expect(v1).to.be.greaterThan(v0);
      expect(await leaderSeenBy(leader, shard)).to.equal(leader);
      for (let i = 0; i < 3; i++) {
        await refused(cut, 'Get', { key: key(k) }, 1500);
        // a follower read is a ReadIndex read too (DESIGN.md): no answer without the leader
        await refused(cut, 'Get', { key: key(k), consistency: 'FOLLOWER' }, 1500);
        await refused(cut, 'Put', { key: key(k), value: Buffer.from('from-the-cut-side') }, 1500);
      }
      for (let i = 0; i < 8; i++) await ackedPut(maj, `during-f:${i}`, `e${i}`);
    } finally {
      maj.close();
      cluster.heal();
    }

    const g = await eventually(() => raw.get(cut)!.call('Get', { key: key(k) }, 3000), 20000, 100);
    expect(g).to.include({ found: true, version: acked.get(k)!.version });
    expect((g['value'] as Buffer).toString()).to.equal('new');
    for (const id of IDS) await expectAllAcked(id);
  });
});
