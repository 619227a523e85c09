import { expect } from 'chai';
import { type MultiRaftHost, StoreError } from '../../src/store/host.js';
import type { CommandResult } from '../../src/store/commands.js';
import { encodeKey } from '../../src/ring/index.js';
import { cleanupTempDirs } from '../helpers/tmp.js';
import path from 'node:path';
import { LsmEngine } from '../../src/lsm/index.js';
import { readApplied } from '../../src/store/apply.js';
import { TestCluster, waitFor } from './helpers.js';

const k = (s: string): Buffer => encodeKey(Buffer.from(s));
const v = (s: string): Buffer => Buffer.from(s);
const SHARDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

async function proposeRetry(c: TestCluster, shardId: number, ops: Parameters<import('../../src/store/host.js').MultiRaftHost['propose']>[1]): Promise<CommandResult> {
  for (let attempt = 0; ; attempt++) {
    const l = c.leader(shardId);
    try {
      if (!l) throw new StoreError('NOT_LEADER', 'no leader');
      return await l.propose(shardId, ops);
    } catch (err) {
      if (attempt > 200 || !(err instanceof StoreError) || !['NOT_LEADER', 'PROPOSAL_DROPPED', 'TIMEOUT'].includes(err.code)) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

describe('store: MultiRaftHost (3 hosts, LocalHub, real files)', function () {
  this.timeout(60000);
  let c: TestCluster;
  afterEach(async () => {
    await c?.closeAll();
    cleanupTempDirs();
  });

  it('elects leaders; put/get/delete/putIfVersionMatch/atomic batches through the leader; NOT_LEADER with hint; follower ReadIndex read', async () => {
    c = new TestCluster([1, 2, 3], SHARDS);
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();
    const s = 5;
    const leader = c.leader(s)!;
    const follower = [...c.hosts.values()].find((h) => h !== leader)!;

    const p1 = await leader.propose(s, { ops: [{ type: 'put', key: k('a'), value: v('1') }] });
    expect(p1.applied).to.equal(true);
    const v1 = (p1.results[0] as { version: number }).version;
    expect(v1).to.be.greaterThan(0);
    const g1 = await leader.read(s, k('a'));
    expect(g1).to.deep.include({ found: true, version: v1 });
    expect(g1.value!.toString()).to.equal('1');

    // NOT_LEADER from a follower, with the right hint
    const err = await follower.propose(s, { ops: [{ type: 'put', key: k('a'), value: v('x') }] }).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(StoreError);
    expect((err as StoreError).code).to.equal('NOT_LEADER');
    expect((err as StoreError).leaderHint).to.equal(leader.nodeId);

    // putIfVersionMatch: mismatch reports the current version; match installs a newer version
    const bad = await leader.propose(s, { ops: [{ type: 'putIfVersionMatch', key: k('a'), value: v('2'), expectedVersion: v1 + 1 }] });
    expect(bad.applied).to.equal(false);
    expect(bad.results[0]).to.deep.equal({ type: 'putIfVersionMatch', ok: false, currentVersion: v1 });
    const ok = await leader.propose(s, { ops: [{ type: 'putIfVersionMatch', key: k('a'), value: v('2'), expectedVersion: v1 }] });
    const v2 = (ok.results[0] as { version: number }).version;
    expect(v2).to.be.greaterThan(v1);
    const create = await leader.propose(s, { ops: [{ type: 'putIfVersionMatch', key: k('new'), value: v('n'), expectedVersion: 0 }] });
    expect(create.applied).to.equal(true);
    const again = await leader.propose(s, { ops: [{ type: 'putIfVersionMatch', key: k('new'), value: v('n'), expectedVersion: 0 }] });
    expect(again.applied).to.equal(false);

    // follower read (ReadIndex from the follower) sees the latest committed write
    const fr = await follower.read(s, k('a'));
    expect(fr.value!.toString()).to.equal('2');
    expect(fr.version).to.equal(v2);

    // delete
    const d = await leader.propose(s, { ops: [{ type: 'delete', key: k('a') }] });
    expect(d.results[0]).to.deep.equal({ type: 'delete', found: true });
    const d2 = await leader.propose(s, { ops: [{ type: 'delete', key: k('a') }] });
    expect(d2.results[0]).to.deep.equal({ type: 'delete', found: false });
    expect((await follower.read(s, k('a'))).found).to.equal(false);

    // atomic batch: a failed condition aborts every op of the command
    const ab = await leader.propose(s, { ops: [{ type: 'put', key: k('b1'), value: v('x') }, { type: 'putIfVersionMatch', key: k('b2'), value: v('y'), expectedVersion: 12345 }] });
    expect(ab.applied).to.equal(false);
    expect(ab.results[0]).to.deep.equal({ type: 'aborted' });
    expect((await leader.read(s, k('b1'))).found).to.equal(false);
    const ab2 = await leader.propose(s, { ops: [{ type: 'put', key: k('b1'), value: v('x') }, { type: 'put', key: k('b2'), value: v('y') }, { type: 'put', key: k('b1'), value: v('z') }] });
    expect(ab2.applied).to.equal(true);
    const vs = ab2.results.map((r) => (r as { version: number }).version);
    expect(new Set(vs).size).to.equal(3); // distinct versions inside one entry
    expect((await follower.read(s, k('b1'))).value!.toString()).to.equal('z');

    // many concurrent proposals are batched into few entries
    const before = leader.stats.entriesProposed;
    const many = await Promise.all(Array.from({ length: 200 }, (_, i) => leader.propose(s, { ops: [{ type: 'put', key: k(`m${i}`), value: v(`${i}`) }] })));
    expect(many.every((r) => r.applied)).to.equal(true);
    expect(leader.stats.entriesProposed - before).to.be.lessThan(20);
  });

  it('survives a stopped host: the other two elect leaders and keep serving; the restarted host catches up (log and snapshot); no acknowledged write lost', async () => {
    c = new TestCluster([1, 2, 3], SHARDS, { snapshotEntries: 6 });
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();
    const acked = new Map<string, { shard: number; value: string; version: number }>();
    const write = async (i: number, tag: string): Promise<void> => {
      const shard = SHARDS[i % SHARDS.length]!;
      const key = `${tag}${i}`;
      const r = await proposeRetry(c, shard, { ops: [{ type: 'put', key: k(key), value: v(`${tag}-${i}`) }] });
      acked.set(key, { shard, value: `${tag}-${i}`, version: (r.results[0] as { version: number }).version });
    };
    await Promise.all(Array.from({ length: 120 }, (_, i) => write(i, 'a')));

    // stop node 1 (it led shards 0, 3, 6, 9)
    await c.stop(1);
    await c.waitLeaders(15000);
    for (const s of SHARDS) expect(c.leader(s)!.nodeId).to.not.equal(1);
    // many writes per shard while node 1 is down: its logs get compacted behind snapshots
    for (let round = 0; round < 12; round++) await Promise.all(Array.from({ length: 120 }, (_, i) => write(i + round * 1000, 'b')));
    const truncations = [...c.hosts.values()].reduce((n, h) => n + h.stats.logTruncations, 0);
    expect(truncations).to.be.greaterThan(0);

    // restart node 1 from disk: it catches up
    const h1 = await c.start(1);
    await waitFor(() => SHARDS.every((s) => h1.appliedIndex(s) >= c.leader(s)!.appliedIndex(s)), 20000, 'catch-up');
    expect(h1.stats.snapshotsApplied).to.be.greaterThan(0);
    // built from the leaders' engines when node 1 asked for entries their logs had truncated
    expect([...c.hosts.values()].reduce((n, h) => n + h.stats.snapshotsCreated, 0)).to.be.greaterThan(0);
    for (const [key, a] of acked) {
      const local = h1.readLocal(a.shard, k(key));
      expect(local.found, key).to.equal(true);
      expect(local.value!.toString()).to.equal(a.value);
      expect(local.version).to.equal(a.version);
      const lin = await c.leader(a.shard)!.read(a.shard, k(key));
      expect(lin.version).to.equal(a.version);
    }
  });

  it('a host down for a while catches up from entries the leader evicted from memory and reads back from its log', async () => {
    c = new TestCluster([1, 2, 3], [0]);
    await c.startAll();
    c.hosts.get(1)!.campaign(0);
    await c.waitLeaders();
    const leader = c.leader(0)!;
    const want = new Map<string, string>();
    const put = async (i: number): Promise<void> => {
      const value = `v${i}-${'x'.repeat(i * 37)}`;
      await proposeRetry(c, 0, { ops: [{ type: 'put', key: k(`key${i}`), value: v(value) }] });
      want.set(`key${i}`, value);
    };
    // once both followers are replicating (after the election they are probed one message at
    // a time), nothing is read back while they keep up
    await put(0);
    await waitFor(() => [...c.hosts.values()].every((h) => h.appliedIndex(0) >= leader.appliedIndex(0)), 10000, 'followers caught up');
    const steady = leader.log.stats.coldReads;
    for (let i = 1; i < 20; i++) await put(i);
    expect(leader.log.stats.coldReads - steady, 'nothing read back while the followers keep up').to.equal(0);
    await c.stop(3);
    for (let i = 20; i < 80; i++) await put(i);
    const h3 = await c.start(3);
    await waitFor(() => h3.appliedIndex(0) >= leader.appliedIndex(0), 20000, 'catch-up');
    expect(leader.log.stats.coldReads, 'the entries host 3 missed, read back from the log').to.be.at.least(60);
    expect(h3.stats.snapshotsApplied, 'caught up from entries, not a snapshot').to.equal(0);
    for (const [key, value] of want) expect(h3.readLocal(0, k(key)).value?.toString(), key).to.equal(value);
  });

  /** Host 1 leads shard 0; returns a function that cuts host 1 off (both directions) while `on`. */
  async function ledByHost1(): Promise<(cut: (from: number, to: number) => boolean) => void> {
    c = new TestCluster([1, 2, 3], [0], { requestTimeoutMs: 60000 });
    await c.startAll();
    c.hosts.get(1)!.campaign(0);
    await c.waitLeaders();
    // the new leader's empty entry must be everywhere and applied first: otherwise a test's
    // "lastIndex grew on the followers" could be that entry rather than the proposal under test
    const h1 = c.hosts.get(1)!;
    await waitFor(() => {
      const last = h1.replicaStatus(0).lastIndex;
      return last > 0 && [1, 2, 3].every((id) => {
        const s = c.hosts.get(id)!.replicaStatus(0);
        return s.lastIndex === last && s.applied === last;
      });
    }, 10000, 'the leader entry replicated and applied everywhere');
    return (cut) => {
      c.hub.drop = (from, to) => cut(from, to);
    };
  }

  it('a proposal in the log when leadership moves is answered with its result once the next leader commits it (not an unknown outcome)', async () => {
    const setCut = await ledByHost1();
    const h1 = c.hosts.get(1)!;
    // the followers get the entry, host 1 never hears that they did
    setCut((from, to) => to === 1 && from !== 1);
    const before = h1.replicaStatus(0).lastIndex;
    const put = h1.propose(0, { ops: [{ type: 'put', key: k('moved'), value: v('kept') }] });
    const outcome = put.then((r) => r, (e: unknown) => e);
    await waitFor(() => [2, 3].every((id) => c.hosts.get(id)!.replicaStatus(0).lastIndex > before), 10000, 'the entry on the followers');
    // host 1 is cut off entirely: 2 and 3 elect a leader, whose log holds the entry
    setCut((from, to) => from === 1 || to === 1);
    await waitFor(() => [2, 3].some((id) => c.hosts.get(id)!.isLeader(0)), 10000, 'a new leader');
    c.hub.drop = undefined;
    const r = await outcome;
    expect(r, String(r)).to.not.be.instanceOf(Error);
    const version = ((r as CommandResult).results[0] as { version: number }).version;
    const l = c.leader(0)!;
    expect(l.nodeId).to.not.equal(1);
    const read = await l.read(0, k('moved'));
    expect(read.found).to.equal(true);
    expect(read.version).to.equal(version);
  });

  it('a proposal whose entry the next leader replaced fails NOT_LEADER (provably not applied, so a client may retry it)', async () => {
    const setCut = await ledByHost1();
    const h1 = c.hosts.get(1)!;
    // host 1 appends alone: nobody else ever sees the entry
    setCut((from, to) => from === 1 || to === 1);
    const before = h1.replicaStatus(0).lastIndex;
    const outcome = h1.propose(0, { ops: [{ type: 'put', key: k('lost'), value: v('x') }] }).then((r) => r, (e: unknown) => e);
    await waitFor(() => h1.replicaStatus(0).lastIndex > before, 10000, 'the entry in host 1 log');
    await waitFor(() => [2, 3].some((id) => c.hosts.get(id)!.isLeader(0)), 10000, 'a new leader');
    // host 1 may not have noticed yet that it lost leadership: the new leader is 2 or 3
    const l = [2, 3].map((id) => c.hosts.get(id)!).find((h) => h.isLeader(0))!;
    await l.propose(0, { ops: [{ type: 'put', key: k('other'), value: v('y') }] });
    c.hub.drop = undefined;
    const r = await outcome;
    expect(r).to.be.instanceOf(StoreError);
    expect((r as StoreError).code, (r as Error).message).to.equal('NOT_LEADER');
    await waitFor(() => h1.replicaStatus(0).applied >= l.replicaStatus(0).commit, 10000, 'host 1 caught up');
    for (const h of c.hosts.values()) expect(h.readLocal(0, k('lost')).found, `host ${h.nodeId}`).to.equal(false);
  });

  it('a follower read sent to a leader that dies is re-sent to the next leader (not left to time out)', async () => {
    c = new TestCluster([1, 2, 3], [0], { requestTimeoutMs: 60000 });
    await c.startAll();
    c.hosts.get(1)!.campaign(0);
    await c.waitLeaders();
    const w = await c.leader(0)!.propose(0, { ops: [{ type: 'put', key: k('r'), value: v('x') }] });
    await c.stop(1);
    // host 2 still believes host 1 leads: its ReadIndex request goes to a dead node
    const read = c.hosts.get(2)!.read(0, k('r'));
    const outcome = await Promise.race([read.then((r) => r.version), new Promise<string>((r) => setTimeout(() => r('still waiting after 15 s'), 15000))]);
    expect(outcome).to.equal((w.results[0] as { version: number }).version);
  });

  it('a written group quiesces on every replica once replicated, without idle ticks or heartbeats; the followers learn the commit from the QUIESCE (no commit broadcast)', async () => {
    // idle-tick quiescence far away (1000 ticks = 10 s): only the eager path can quiesce here
    c = new TestCluster([1, 2, 3], [0, 1], { quiesceAfterTicks: 1000 });
    await c.startAll();
    c.hosts.get(1)!.campaign(0);
    c.hosts.get(1)!.campaign(1);
    await c.waitLeaders();
    const all = [...c.hosts.values()];
    const quiet = (s: number): boolean => all.every((h) => h.isQuiesced(s));
    const put = async (s: number, key: string): Promise<number> => {
      await c.leader(s)!.propose(s, { ops: [{ type: 'put', key: k(key), value: v(key) }] });
      return c.leader(s)!.appliedIndex(s);
    };
    await put(0, 'a');
    await waitFor(() => quiet(0), 3000, 'shard 0 quiesced everywhere after a put');
    // quiesced: nothing more goes out for the group over many election timeouts
    const sent = (): number => all.reduce((n, h) => n + h.stats.messagesSent, 0);
    const terms = (s: number): number[] => all.map((h) => h.replicaStatus(s).term);
    await waitFor(() => quiet(1), 3000, 'shard 1 quiesced');
    const before = sent();
    const term0 = terms(0);
    await new Promise((r) => setTimeout(r, 600)); // 60 ticks, >= 3 election timeouts
    expect(sent()).to.equal(before);
    expect(terms(0)).to.deep.equal(term0);
    // no commit-only appends go out (lazyCommitBroadcast): the QUIESCE message carries the
    // commit to the followers, and nobody campaigns
    let campaigns = 0;
    let commitOnlyApps = 0;
    c.hub.drop = (from, to, m) => {
      if (m.message.type === 7 /* PreVote */ || m.message.type === 5 /* Vote */) campaigns++;
      if (m.groupId === 1 && m.message.type === 3 /* App */ && m.message.entries.length === 0) commitOnlyApps++;
      return false;
    };
    const idx = await put(0, 'b');
    await waitFor(() => quiet(0), 3000, 'shard 0 quiesced again, host 3 included');
    expect(c.hosts.get(3)!.replicaStatus(0).commit).to.be.at.least(idx);
    await waitFor(() => c.hosts.get(3)!.appliedIndex(0) >= idx, 3000, 'host 3 applied the write');
    expect(c.hosts.get(3)!.readLocal(0, k('b')).found).to.equal(true);
    await new Promise((r) => setTimeout(r, 600));
    c.hub.drop = undefined;
    expect(campaigns, 'pre-votes or votes sent').to.equal(0);
    expect(commitOnlyApps, 'commit-only appends').to.equal(0);
    expect(terms(0)).to.deep.equal(term0);
    expect(quiet(0)).to.equal(true);
  });

  /** Three hosts over `n` shards, leaders spread, every replica quiesced. */
  async function quiescedCluster(n: number, extra: { electionTick?: number } = {}): Promise<{ shards: number[]; all: MultiRaftHost[] }> {
    const shards = Array.from({ length: n }, (_, i) => i);
    c = new TestCluster([1, 2, 3], shards, extra);
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();
    const all = [...c.hosts.values()];
    await waitFor(() => shards.every((s) => all.every((h) => h.isQuiesced(s))), 5000, 'every replica quiesced after the elections');
    return { shards, all };
  }

  it('under a write load over many groups no follower times out: a quiescing leader sends nothing after its QUIESCE (a heartbeat after it would wake followers into elections)', async () => {
    // electionTick 30 (300-600 ms): a follower times out only for a real silence, not for a slow
    // fsync on a busy machine; a follower wrongly woken after a QUIESCE still times out below
    const { shards, all } = await quiescedCluster(64, { electionTick: 30 });
    const timeouts = (): number => all.reduce((n, h) => n + h.stats.electionTimeouts, 0);
    const terms = (): number[] => shards.flatMap((s) => all.map((h) => h.replicaStatus(s).term));
    const timeouts0 = timeouts();
    const terms0 = terms();
    // 16 writers over random shards for 1.5 s: groups wake, replicate and quiesce all the time
    const until = Date.now() + 1500;
    let seed = 12345;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    await Promise.all(Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; Date.now() < until; i++) {
        const s = next() % shards.length;
        await proposeRetry(c, s, { ops: [{ type: 'put', key: k(`w${w}:${i}`), value: v('x') }] });
      }
    }));
    await waitFor(() => shards.every((s) => all.every((h) => h.isQuiesced(s))), 5000, 'every replica quiesced after the load');
    await new Promise((r) => setTimeout(r, 1000)); // 100 ticks: past any randomized election timeout (< 60)
    expect(timeouts() - timeouts0, 'election timeouts').to.equal(0);
    expect(terms()).to.deep.equal(terms0);
  });

  it('a stalled loop does not wake quiesced groups for its peers\' "silence"; a peer that really goes silent still wakes them', async () => {
    const { all } = await quiescedCluster(32);
    const wakes = (): number => all.reduce((n, h) => n + h.stats.peerSilenceWakes, 0);
    const caughtUp0 = all.reduce((n, h) => n + h.stats.ticksCaughtUp, 0);
    // the one event loop all hosts share holds for 3 election timeouts (30 ticks of 10 ms)
    const until = Date.now() + 300;
    while (Date.now() < until) {
      /* a stall */
    }
    await new Promise((r) => setTimeout(r, 100)); // 10 ticks: ping rounds ran after the stall
    expect(all.reduce((n, h) => n + h.stats.ticksCaughtUp, 0) - caughtUp0, 'ticks caught up after the stall').to.be.at.least(20);
    expect(wakes(), 'groups woken for peer silence after a stall').to.equal(0);
    // host 3 goes silent for real: the others wake the groups they share with it
    c.hub.drop = (from) => from === 3;
    await waitFor(() => wakes() > 0, 3000, 'groups woken once host 3 is silent');
    c.hub.drop = undefined;
  });

  it('applied state skips the engine WAL: after crash-like closes (memtables lost) every host re-applies from its Raft log (snapshot records + entries) to the same keys, values and versions', async () => {
    // small snapshotEntries: the logs hold snapshot records, so recovery takes both paths
    c = new TestCluster([1, 2, 3], [0, 1, 2], { snapshotEntries: 15 });
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();
    const want = new Map<string, { shard: number; value: string; version: number }>();
    for (let i = 0; i < 120; i++) {
      const shard = i % 3;
      const key = `k${i % 40}`; // overwrites: versions grow per key
      const value = `v${i}`;
      const r = await proposeRetry(c, shard, { ops: [{ type: 'put', key: k(`${shard}/${key}`), value: v(value) }] });
      want.set(`${shard}/${key}`, { shard, value, version: (r.results[0] as { version: number }).version });
    }
    const applied = [0, 1, 2].map((s) => c.leader(s)!.appliedIndex(s));
    // host 3 alone first, while the others keep serving; then all of them at once
    await c.stop(3, { crash: true });
    // the engine really lost the applied writes (nothing was flushed): recovery has work to do
    const e3 = await LsmEngine.open(path.join(c.dirs.get(3)!, 'engine'));
    try {
      expect(readApplied(e3, 0)).to.be.below(applied[0]!);
    } finally {
      await e3.close();
    }
    await proposeRetry(c, 0, { ops: [{ type: 'put', key: k('0/late'), value: v('late') }] }).then((r) => want.set('0/late', { shard: 0, value: 'late', version: (r.results[0] as { version: number }).version }));
    await c.start(3);
    await waitFor(() => c.hosts.get(3)!.appliedIndex(0) >= c.leader(0)!.appliedIndex(0), 10000, 'host 3 caught up');
    for (const id of [1, 2, 3]) await c.stop(id, { crash: true });
    await c.startAll();
    c.campaignSpread();
    await c.settle();
    for (const s of [0, 1, 2]) expect(c.leader(s)!.appliedIndex(s)).to.be.at.least(applied[s]!);
    for (const [key, w] of want) {
      const got = await c.leader(w.shard)!.read(w.shard, k(key));
      expect(got.found, key).to.equal(true);
      expect(Buffer.from(got.value!).toString(), key).to.equal(w.value);
      expect(got.version, key).to.equal(w.version);
    }
    // and every replica holds the same once it applied
    for (const h of c.hosts.values()) {
      for (const s of [0, 1, 2]) await waitFor(() => h.appliedIndex(s) >= c.leader(s)!.appliedIndex(s), 10000, `host ${h.nodeId} shard ${s} applied`);
      for (const [key, w] of want) expect(h.readLocal(w.shard, k(key)).version, `${key} on host ${h.nodeId}`).to.equal(w.version);
    }
  });

  it('restart: the persisted applied index prevents double apply; a putIfVersionMatch chain continues across a full restart', async () => {
    c = new TestCluster([1, 2, 3], [0, 1, 2]);
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();
    const s = 1;
    let ver = 0;
    const chain: number[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await c.leader(s)!.propose(s, { ops: [{ type: 'putIfVersionMatch', key: k('ctr'), value: v(String(i)), expectedVersion: ver }] });
      expect(r.applied).to.equal(true);
      ver = (r.results[0] as { version: number }).version;
      chain.push(ver);
    }
    await waitFor(() => [...c.hosts.values()].every((h) => h.appliedIndex(s) === c.leader(s)!.appliedIndex(s)));
    const appliedBefore = new Map([...c.hosts].map(([id, h]) => [id, h.appliedIndex(s)]));
    await c.closeAll();
    for (const id of [1, 2, 3]) {
      const h = await c.start(id);
      // recovered from the engine's meta key: nothing below it is applied again
      expect(h.appliedIndex(s)).to.equal(appliedBefore.get(id));
      expect(h.readLocal(s, k('ctr')).version).to.equal(ver);
    }
    c.campaignSpread();
    await c.waitLeaders();
    const stale = await c.leader(s)!.propose(s, { ops: [{ type: 'putIfVersionMatch', key: k('ctr'), value: v('x'), expectedVersion: chain[8]! }] });
    expect(stale.results[0]).to.deep.equal({ type: 'putIfVersionMatch', ok: false, currentVersion: ver });
    const next = await c.leader(s)!.propose(s, { ops: [{ type: 'putIfVersionMatch', key: k('ctr'), value: v('10'), expectedVersion: ver }] });
    expect(next.applied).to.equal(true);
    expect((await c.leader(s)!.read(s, k('ctr'))).value!.toString()).to.equal('10');
  });
});
