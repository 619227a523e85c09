// Leader-lease reads in the multi-Raft host: served without a heartbeat round while the lease
// holds, and never on a lease the loop's lost ticks kept alive (ticks follow the monotonic clock).
import { expect } from 'chai';
import { encodeKey } from '../../src/ring/index.js';
import { cleanupTempDirs } from '../helpers/tmp.js';
import { TestCluster } from './helpers.js';

const k = (s: string): Buffer => encodeKey(Buffer.from(s));

/** Blocks the event loop (no timers, no I/O), as a long synchronous compaction slice would. */
function stallLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function outcome(p: Promise<{ found: boolean; value?: Uint8Array }>): Promise<string> {
  try {
    const r = await p;
    return r.found ? `value ${Buffer.from(r.value!).toString()}` : 'not found';
  } catch (err) {
    return `error ${(err as { code?: string }).code ?? String(err)}`;
  }
}

describe('store: leader-lease reads', function () {
  this.timeout(30000);
  let c: TestCluster;
  afterEach(async () => {
    c.hub.drop = undefined;
    await c?.closeAll();
    cleanupTempDirs();
  });

  it('a leader answers from its lease without a heartbeat round; after a loop stall longer than the lease it does not', async () => {
    // tickMs 10: election timeout 100 ms, lease 100 - 30 = 70 ms
    c = new TestCluster([1, 2, 3], [0], { readOnlyOption: 'lease', quiesceAfterTicks: 0, requestTimeoutMs: 400 });
    await c.startAll();
    c.hosts.get(1)!.campaign(0);
    await c.waitLeaders();
    const leader = c.leader(0)!;
    await leader.propose(0, { ops: [{ type: 'put', key: k('a'), value: Buffer.from('v1') }] });
    await new Promise((r) => setTimeout(r, 50)); // a few heartbeat rounds: the lease is fresh

    // The leader is cut off. Its lease still holds for a few ticks: reads need no round trip.
    c.hub.drop = (from, to) => from === leader.nodeId || to === leader.nodeId;
    expect(await outcome(leader.read(0, k('a')))).to.equal('value v1');

    // The loop stalls for 3 election timeouts: no tick is delivered, and in a real cluster the
    // followers would have elected a new leader meanwhile. The lease must be over.
    const caughtUp = leader.stats.ticksCaughtUp;
    stallLoop(300);
    const after = await outcome(leader.read(0, k('a')));
    expect(after, 'a read after the stall is not answered from the stale lease').to.match(/^error (TIMEOUT|NOT_LEADER)$/);
    expect(leader.stats.ticksCaughtUp - caughtUp).to.be.at.least(20);
  });

  it('reads keep being answered from the lease under a write load (appends renew it: no heartbeats next to them)', async () => {
    // electionTick 50: a 470 ms lease, so one slow fsync on a busy machine does not let it lapse
    // (this test is about appends renewing it, the first one about it ending)
    c = new TestCluster([1, 2, 3], [0], { readOnlyOption: 'lease', requestTimeoutMs: 2000, electionTick: 50 });
    await c.startAll();
    c.hosts.get(1)!.campaign(0);
    await c.waitLeaders();
    const leader = c.leader(0)!;
    let stop = false;
    let written = 0;
    const writer = (async () => {
      while (!stop) {
        await leader.propose(0, { ops: [{ type: 'put', key: k('w'), value: Buffer.from(String(written)) }] });
        written++;
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    const sentBefore = leader.stats.messagesSent;
    const beatsBefore = leader.stats.heartbeatsSent;
    for (let i = 0; i < 20; i++) {
      const before = written;
      const r = await leader.read(0, k('w'));
      // linearizable: the read sees at least every write acknowledged before it started
      expect(Number(Buffer.from(r.value!).toString())).to.be.at.least(before - 1);
      await new Promise((res) => setTimeout(res, 10));
    }
    stop = true;
    await writer;
    const beats = leader.stats.heartbeatsSent - beatsBefore;
    const sent = leader.stats.messagesSent - sentBefore;
    expect(leader.stats.leaseReads, 'reads answered from the lease').to.be.at.least(20);
    expect(beats, `heartbeats among ${sent} messages`).to.be.below(sent / 10);
  });
});
