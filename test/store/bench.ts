// Measurements, not assertions, outside npm test (run with `npm run bench:store`): idle CPU/memory per group with 1024
// groups on each of 3 hosts in one process, and a quick in-process put loop.
import { cleanupTempDirs } from '../helpers/tmp.js';
import { encodeKey } from '../../src/ring/index.js';
import { TestCluster, waitFor } from './helpers.js';

describe('store bench', function () {
  this.timeout(300000);
  afterEach(() => cleanupTempDirs());

  for (const quiesce of [true, false]) {
    it(`idle cost of 1024 groups x 3 hosts (quiescence ${quiesce ? 'on' : 'off'})`, async () => {
      const shards = Array.from({ length: 1024 }, (_, i) => i);
      const heap0 = process.memoryUsage().heapUsed;
      const c = new TestCluster([1, 2, 3], shards, { tickMs: 100, electionTick: 10, heartbeatTick: 2, quiesceAfterTicks: quiesce ? 20 : 0 });
      await c.startAll();
      c.campaignSpread();
      await c.waitLeaders(60000);
      if (quiesce) await waitFor(() => [...c.hosts.values()].every((h) => shards.filter((s) => h.isQuiesced(s)).length >= 1000), 60000, 'quiescence');
      else await new Promise((r) => setTimeout(r, 3000));
      global.gc?.();
      const heap1 = process.memoryUsage().heapUsed;
      const cpu0 = process.cpuUsage();
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, 5000));
      const cpu = process.cpuUsage(cpu0);
      const wall = Date.now() - t0;
      const pct = ((cpu.user + cpu.system) / 1000 / wall) * 100;
      const msgs = [...c.hosts.values()].reduce((n, h) => n + h.stats.messagesSent, 0);
      console.log(`    idle: 3072 replicas, CPU ${pct.toFixed(2)}% of one core (${(pct / 3).toFixed(2)}% per node, ${((pct / 3072) * 1000).toFixed(3)} m% per replica); heap ${((heap1 - heap0) / 3072 / 1024).toFixed(1)} KiB per replica; messages sent so far ${msgs}; quiesced ${[...c.hosts.values()].reduce((n, h) => n + shards.filter((s) => h.isQuiesced(s)).length, 0)}/3072`);
      await c.closeAll();
    });
  }

  it('put loop: 3 hosts, 16 shards, 256 in flight, 3 s, 100-byte values', async () => {
    const shards = Array.from({ length: 16 }, (_, i) => i);
    const c = new TestCluster([1, 2, 3], shards, { tickMs: 50 });
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();
    const value = Buffer.alloc(100, 7);
    let ops = 0;
    const end = Date.now() + 3000;
    const cpu0 = process.cpuUsage();
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; Date.now() < end; i++) {
        const s = (w + i) % shards.length;
        await c.leader(s)!.propose(s, { ops: [{ type: 'put', key: encodeKey(Buffer.from(`k${w}-${i % 1000}`)), value }] });
        ops++;
      }
    };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 256 }, (_, w) => worker(w)));
    const secs = (Date.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const h = [...c.hosts.values()];
    const logWrites = h.reduce((n, x) => n + x.stats.logWrites, 0);
    const entries = h.reduce((n, x) => n + x.stats.entriesProposed, 0);
    console.log(`    put loop: ${(ops / secs).toFixed(0)} puts/s, ${(((cpu.user + cpu.system) / ops)).toFixed(1)} us CPU/put (all 3 hosts), ${entries} entries, ${logWrites} raft-log writes (fsyncs) across 3 hosts`);
    await c.closeAll();
  });
});
