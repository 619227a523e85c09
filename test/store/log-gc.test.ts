// Raft-log garbage collection on three real hosts: under a stream of overwrites the node-wide Raft
// log stays a few GC rounds long (old segments deleted after the groups holding them are
// compacted), and a full restart recovers every shard from what is left (snapshot records plus
// the entries after them).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { TestCluster } from './helpers.js';

function dirBytes(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const f of readdirSync(dir)) {
    files++;
    bytes += statSync(path.join(dir, f)).size;
  }
  return { files, bytes };
}

describe('store: Raft-log GC (3 hosts, real files)', function () {
  this.timeout(60000);
  let c: TestCluster;
  afterEach(async () => {
    await c?.closeAll();
  });

  it('keeps the log bounded under overwrites and recovers every shard after a restart', async () => {
    const GC_BYTES = 128 * 1024;
    c = new TestCluster([1, 2, 3], [0, 1, 2, 3], { logGcBytes: GC_BYTES });
    await c.startAll();
    c.campaignSpread();
    await c.waitLeaders();
    const value = Buffer.alloc(1024, 1);
    const latest = new Map<string, number>();
    let written = 0;
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const shard = i % 4;
          const key = Buffer.from(`k${i}`);
          const v = Buffer.concat([value, Buffer.from(`-${round}`)]);
          const r = await c.leader(shard)!.propose(shard, { ops: [{ type: 'put', key, value: v }] });
          latest.set(`${shard}/k${i}`, (r.results[0] as { version: number }).version);
          written += v.length;
        }),
      );
    }
    const stats = [...c.hosts.values()].map((h) => h.stats);
    expect(stats.every((s) => s.logGcs > 0), JSON.stringify(stats.map((s) => s.logGcs))).to.equal(true);
    for (const [id, dir] of c.dirs) {
      const raft = dirBytes(path.join(dir, 'raft'));
      // 2 MB of values written; what stays is the live data (~100 KB per copy) and the last rounds
      expect(raft.bytes, `node ${id} raft log bytes (${raft.files} files)`).to.be.lessThan(written / 2);
      expect(raft.files, `node ${id} raft log files`).to.be.lessThan(8);
    }
    console.log(`      wrote ${(written / 1e6).toFixed(1)} MB; raft logs now ${[...c.dirs].map(([, d]) => `${(dirBytes(path.join(d, 'raft')).bytes / 1e3).toFixed(0)} KB`).join(', ')}; GC rounds ${stats.map((s) => s.logGcs).join('/')}, compactions ${stats.map((s) => s.logGcCompactions).join('/')}`);

    for (const id of [1, 2, 3]) await c.stop(id);
    await c.startAll();
    await c.waitLeaders();
    for (const [k, version] of latest) {
      const [shard, key] = k.split('/') as [string, string];
      for (const h of c.hosts.values()) {
        const r = await h.read(Number(shard), Buffer.from(key));
        expect(r.version, `${k} on node ${h.nodeId}`).to.equal(version);
      }
    }
  });
});
