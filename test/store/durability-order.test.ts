// The pipelined host loop's ordering rules (src/store/host.ts, "the ready loop"), checked on every
// message as it leaves a host: whatever a message claims is durable must be in that host's
// Raft log storage (which holds exactly what was made durable) at the moment it is sent.
//  - an accepted MsgAppResp acknowledges entries up to m.index: they are durable on the sender;
//  - a commit index a leader sends (MsgApp, MsgHeartbeat) is backed by its own durable entries
//    (its vote in the commit quorum counts only after its fsync);
//  - a granted vote, and a vote request, are sent only once the voter's term and vote are durable;
//  - what a host has applied to its engine is durable in its log.
// Load: concurrent proposals on every shard while leadership moves (transfers, a stopped host).
import { expect } from 'chai';
import { MessageType } from '../../src/raft/index.js';
import type { MultiRaftHost } from '../../src/store/host.js';
import type { GroupMessage, Transport } from '../../src/store/transport.js';
import { encodeKey } from '../../src/ring/index.js';
import { cleanupTempDirs } from '../helpers/tmp.js';
import { TestCluster } from './helpers.js';

const SHARDS = [0, 1, 2, 3, 4, 5, 6, 7];

function check(h: MultiRaftHost, to: number, { groupId, message: m }: GroupMessage, violations: string[]): void {
  if (groupId === 0) return; // host-level messages
  const log = h.log.group(groupId);
  const durable = log.lastIndex();
  const where = `node ${h.nodeId} -> ${to}, group ${groupId}, ${MessageType[m.type]}`;
  if (m.type === MessageType.AppResp && !m.reject && m.index > durable) violations.push(`${where}: acks ${m.index}, durable up to ${durable}`);
  if ((m.type === MessageType.App || m.type === MessageType.Heartbeat) && m.commit > durable) violations.push(`${where}: commit ${m.commit}, own durable log ends at ${durable}`);
  if ((m.type === MessageType.VoteResp && !m.reject) || m.type === MessageType.Vote) {
    const voted = m.type === MessageType.Vote ? h.nodeId : m.to;
    if (log.hard.term !== m.term || log.hard.vote !== voted) violations.push(`${where}: term ${m.term} vote ${voted} not durable (durable term ${log.hard.term}, vote ${log.hard.vote})`);
  }
  if (h.hasReplica(groupId - 1) && h.appliedIndex(groupId - 1) > Math.max(durable, log.snapshot().metadata.index)) violations.push(`${where}: applied ${h.appliedIndex(groupId - 1)} beyond durable ${durable}`);
}

describe('store: the host loop sends nothing that claims a write not yet durable', function () {
  this.timeout(120000);
  let c: TestCluster;
  afterEach(async () => {
    await c?.closeAll();
    cleanupTempDirs();
  });

  it('acks, commit indexes, votes and applies are backed by the sender’s durable log, under load and leader changes', async () => {
    // turns overlap (several log writes in flight): the ordering rules matter most there
    c = new TestCluster([1, 2, 3], SHARDS, { maxTurnsInFlight: 8 });
    const violations: string[] = [];
    let checked = 0;
    const hub = c.hub;
    const base = hub.transport.bind(hub);
    hub.transport = (nodeId: number): Transport => {
      const t = base(nodeId);
      return {
        ...t,
        send: (to, batch) => {
          const h = c.hosts.get(nodeId);
          if (h) {
            for (const gm of batch) check(h, to, gm, violations);
            checked += batch.length;
          }
          t.send(to, batch);
        },
      };
    };
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();

    const value = Buffer.alloc(512, 7);
    let acked = 0;
    const writer = async (w: number, rounds: number): Promise<void> => {
      for (let i = 0; i < rounds; i++) {
        const s = SHARDS[(w + i) % SHARDS.length]!;
        const l = c.leader(s);
        if (!l) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        try {
          await l.propose(s, { ops: [{ type: 'put', key: encodeKey(Buffer.from(`w${w}:${i}`)), value }] });
          acked++;
        } catch {
          // NOT_LEADER / PROPOSAL_DROPPED / CLOSED while leadership moves: fine here
        }
      }
    };
    const load = Promise.all(Array.from({ length: 16 }, (_, w) => writer(w, 60)));
    // move leadership around while the writers run
    for (const s of SHARDS) {
      const l = c.leader(s);
      if (l) l.transferLeader(s, (l.nodeId % 3) + 1);
    }
    await new Promise((r) => setTimeout(r, 100));
    await c.stop(2);
    await new Promise((r) => setTimeout(r, 300));
    await c.start(2);
    await load;
    await c.waitLeaders();

    expect(violations.slice(0, 10)).to.deep.equal([]);
    expect(checked).to.be.greaterThan(500);
    expect(acked).to.be.greaterThan(0);
    expect(Math.max(...[...c.hosts.values()].map((h) => h.stats.maxTurnsInFlight)), 'turns overlapped').to.be.greaterThan(1);
  });
});
